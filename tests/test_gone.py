"""A reference roof gone by the roof's own evidence (sitewatch.gone), on tiny hand-made rasters: a pale roof
taken off pale ground is gone; a standing roof under another light, sensor, view or paint is not; nor one
the scene's own map still maps, one only partly changed, or one the scene barely saw."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from sitewatch import finechange, gone

RES = 0.5
ROOF = (slice(40, 64), slice(36, 68))  # 12 x 16 m


def _ground(seed: int, shape: tuple[int, int] = (112, 112)) -> dict[str, np.ndarray]:
    """Pale sandy ground with a speckled texture (RGB reflectance)."""
    rng = np.random.default_rng(seed)
    tex = rng.normal(0, 1, shape).astype(np.float32)
    tex = (tex + np.roll(tex, 1, 0) + np.roll(tex, 1, 1)) / 3
    return {b: (v * (1 + 0.06 * tex)).astype(np.float32) for b, v in {"red": 0.34, "green": 0.31, "blue": 0.26}.items()}


def _with_roof(scene: dict[str, np.ndarray], roof=(0.40, 0.40, 0.39), shift: tuple[int, int] = (0, 0),
               sl=ROOF) -> dict[str, np.ndarray]:
    """A pale flat roof (a ridge down its middle) brighter than the sand, with its shadow on the south side."""
    out = {b: v.copy() for b, v in scene.items()}
    (r0, r1), (c0, c1) = (sl[0].start + shift[0], sl[0].stop + shift[0]), (sl[1].start + shift[1], sl[1].stop + shift[1])
    mid = (r0 + r1) // 2
    for b, v in zip(gone.BANDS, roof):
        out[b][r0:r1, c0:c1] = v
        out[b][mid - 1:mid + 1, c0:c1] = v * 0.8  # the ridge
        out[b][r1:r1 + 5, c0 + 3:c1 + 3] = 0.08  # shadow
    return out


def _mask(sl=ROOF, shape=(112, 112)) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[sl] = True
    return m


def _gone(ref, cur, own=None, both=None) -> bool:
    roofs = _mask()
    both = np.ones(roofs.shape, bool) if both is None else both
    own = np.zeros(roofs.shape, bool) if own is None else own
    got = gone.gone_roofs(roofs, own, ref, cur, both, RES)
    assert not (got & ~roofs).any()
    return bool(got[roofs].all())


def test_a_pale_roof_taken_off_pale_ground_is_gone():
    ref = _with_roof(_ground(1))
    assert _gone(ref, _ground(2))


def test_a_standing_roof_under_other_light_and_sensor_is_not_gone():
    ref = _with_roof(_ground(1))
    cur = {b: (1.5 * v + 0.04 + np.random.default_rng(3).normal(0, 0.01, v.shape)).astype(np.float32)
           for b, v in _with_roof(_ground(4)).items()}
    assert not _gone(ref, cur)


def test_a_standing_roof_seen_from_another_angle_is_not_gone():
    ref = _with_roof(_ground(1))
    cur = _with_roof(_ground(5), shift=(4, -3))  # the roof leans 2.5 m in an off-nadir view
    assert not _gone(ref, cur)


def test_a_standing_roof_painted_another_colour_is_not_gone():
    ref = _with_roof(_ground(1))
    cur = _with_roof(_ground(1), roof=(0.12, 0.20, 0.40))  # repainted blue: changed all over, outline kept
    assert not _gone(ref, cur)


def test_a_roof_the_scenes_own_map_still_maps_is_not_gone():
    ref = _with_roof(_ground(1))
    own = np.zeros((112, 112), bool)
    own[42:62, 38:66] = True
    assert not _gone(ref, _ground(2), own=own)


def test_a_roof_only_partly_changed_is_not_gone():
    ref = _with_roof(_ground(1))
    cur = _with_roof(_ground(1))
    for b, v in _ground(2).items():  # a third of it (a lean-to, a corner) taken down
        cur[b][40:64, 58:68] = v[40:64, 58:68]
    assert not _gone(ref, cur)


def test_a_roof_the_scene_barely_saw_is_not_judged():
    ref = _with_roof(_ground(1))
    both = np.ones((112, 112), bool)
    both[40:64, 36:56] = False  # a cloud over most of it
    assert not _gone(ref, _ground(2), both=both)


def test_the_facts_of_a_roof_gone_and_standing():
    ref = _with_roof(_ground(1))
    roof, own = _mask(), np.zeros((112, 112), bool)
    both = np.ones(roof.shape, bool)
    gone_f = gone.roof_facts(gone.Pair(ref, _ground(2), both), roof, own, RES)
    stand_f = gone.roof_facts(gone.Pair(ref, _with_roof(_ground(2)), both), roof, own, RES)
    assert gone_f["change"] >= gone.CHANGE_MIN > stand_f["change"]
    assert gone_f["match_edge"] <= gone.MATCH_EDGE_MAX < stand_f["match_edge"]
    assert gone.is_gone(gone_f) and not gone.is_gone(stand_f)


def test_for_scene_drops_a_roof_gone_and_zeroes_its_strength():
    """Through finechange.for_scene: the reference's pale roof, which the change model may read as no
    change, leaves the later scene's map, and its strength there is 0 (the tracker reads gone, not unknown)."""
    ref = _with_roof(_ground(1))
    valid = np.ones((112, 112), bool)
    roof = _mask()
    presence, strength, _, keep, _ = finechange.for_scene(ref, valid, (), roof, roof * np.float32(0.8), RES)
    first = SimpleNamespace(features=keep, presence={"building": presence}, strength={"building": strength})
    none = np.zeros(valid.shape, bool)
    p2, s2, _, _, info = finechange.for_scene(_ground(2), valid, (first,), none, none * np.float32(0), RES)
    assert not p2[roof].any() and float(s2[roof].max()) == 0.0
    p3, _, _, _, info3 = finechange.for_scene(_with_roof(_ground(2)), valid, (first,), none, none * np.float32(0), RES)
    assert p3[roof].all() and "roofs_gone_by_rule" not in info3


def test_a_roof_of_the_scenes_own_map_within_reach_keeps_it_standing():
    """Under another sun what the reference mapped may be a wall or a shadow, metres from where the roof
    shows now: a roof of the scene's own map (whole) within 3 m of it keeps it standing; one further off
    does not."""
    ref = _with_roof(_ground(1))
    near = _mask((slice(68, 92), slice(36, 68)))  # 2 m past the roof's southern edge
    far = _mask((slice(76, 100), slice(36, 68)))  # 6 m past it
    assert not _gone(ref, _ground(2), own=near)
    assert _gone(ref, _ground(2), own=far)
