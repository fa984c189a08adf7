"""The default detector on scenes drawn with numpy, and on the project's renderer.

A compound is drawn at 0.5 m on a 200 m square of textured soil: a blue-roofed block
with its shadow, a 0.6 m concrete wall with a 5 m shadow, a faint steel-mesh fence, and
3 m towers with long shadows. Each test asks one question: is it found where it stands,
and is nothing found where nothing stands (empty soil, a field greening, a gain change)?
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from affine import Affine
from scipy import ndimage
from shapely.ops import unary_union

from sitewatch.detect import StructureDetector, default_detector
from sitewatch.grid import Grid
from sitewatch.scenes import SceneRaster, SceneRef
from sitewatch.structures import KINDS, StructureMaps

BANDS = ("red", "green", "blue", "nir", "swir16")
SOIL = np.array([0.27, 0.22, 0.17, 0.31, 0.40], np.float32)
ROOF = np.array([0.16, 0.27, 0.46, 0.33, 0.28], np.float32)
CONCRETE = np.array([0.47, 0.45, 0.42, 0.48, 0.52], np.float32)
STEEL = np.array([0.09, 0.09, 0.10, 0.11, 0.12], np.float32)
FIELD_GREEN = np.array([0.05, 0.09, 0.05, 0.45, 0.22], np.float32)
SHADE = np.array([0.30, 0.32, 0.40, 0.28, 0.26], np.float32)[:, None]

RES = 0.5
N = 400  # 200 m at 0.5 m

# where things stand, in pixels (row, col) of the 0.5 m grid
BLOCK = (slice(60, 90), slice(60, 260))  # 100 x 15 m roof
WALL_ROW, WALL_COLS = 330, slice(40, 360)  # 160 m east-west wall
FENCE_COL, FENCE_ROWS = 300, slice(120, 300)  # 90 m north-south fence
TOWERS = ((200, 60), (200, 150))  # 3 m squares (top-left corners)
FIELD = (slice(120, 300), slice(20, 120))


def _soil(seed: int, track: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    tex = 1.0 + 0.05 * ndimage.gaussian_filter(rng.standard_normal((N, N)), 12) * 6
    tex += 0.02 * ndimage.gaussian_filter(rng.standard_normal((N, N)), 2) * 3
    img = (SOIL[:, None, None] * tex[None]).astype(np.float32)
    if track:  # a permanent dirt track, 6 m wide, 15% darker than the soil
        rr, cc = np.mgrid[0:N, 0:N]
        img[:, np.abs(rr - 0.6 * cc - 100) < 6] *= np.float32(0.85)
    return img


def draw(*, block=False, wall=False, fence=False, towers=False, green_field=False, gain=1.0, offset=0.0,
         track: bool = False, seed: int = 1, noise: float = 0.005) -> np.ndarray:
    """Five bands (band, row, col) of the compound with the chosen parts; sun from the south-south-east."""
    img = _soil(7, track)  # the ground is the same on every date
    if green_field:
        img[:, FIELD[0], FIELD[1]] = FIELD_GREEN[:, None, None]
    shade = np.zeros((N, N), bool)
    mesh = np.zeros((N, N), bool)
    if block:  # 12 m high: 24 px of shadow to the north
        shade[BLOCK[0].start - 24:BLOCK[0].start, BLOCK[1].start - 8:BLOCK[1].stop - 8] = True
    if wall:  # 5 m high: 10 px of shadow to the north
        shade[WALL_ROW - 10:WALL_ROW, WALL_COLS.start - 3:WALL_COLS.stop - 3] = True
    if towers:  # 10 m high: a 20 px shadow
        for r, c in TOWERS:
            for k in range(20):
                shade[r - k:r - k + 6, c - k // 3:c - k // 3 + 6] = True
    if fence:  # a mesh shadow 2 m to the west
        mesh[FENCE_ROWS, FENCE_COL - 4:FENCE_COL] = True
    img[:, mesh & ~shade] *= np.float32(0.82)
    img[:, shade] *= SHADE
    if block:
        img[:, BLOCK[0], BLOCK[1]] = ROOF[:, None, None]
    if wall:  # 0.6 m: one full pixel of concrete and a fifth of the next
        img[:, WALL_ROW, WALL_COLS] = CONCRETE[:, None]
        img[:, WALL_ROW + 1, WALL_COLS] = 0.8 * img[:, WALL_ROW + 1, WALL_COLS] + 0.2 * CONCRETE[:, None]
    if fence:  # 0.15 m of steel mesh: a faint dark pixel line
        img[:, FENCE_ROWS, FENCE_COL] = 0.55 * img[:, FENCE_ROWS, FENCE_COL] + 0.45 * STEEL[:, None]
    if towers:
        for r, c in TOWERS:
            img[:, r:r + 6, c:c + 6] = CONCRETE[:, None, None]
    img = img * np.float32(gain) + np.float32(offset)
    img += np.random.default_rng(seed).normal(0, noise, img.shape).astype(np.float32)
    return np.clip(img, 0.001, 1).astype(np.float32)


def raster(img: np.ndarray, *, res: float = RES, gsd: float | None = None, day: int = 1, valid=None,
           scene_id: str | None = None) -> SceneRaster:
    h, w = img.shape[1:]
    grid = Grid("EPSG:32645", Affine(res, 0, 500000.0, 0, -res, 4400000.0), w, h)
    when = dt.datetime(2020, 1, 1, 5, tzinfo=dt.timezone.utc) + dt.timedelta(days=day)
    ref = SceneRef(scene_id or f"s{day}", "test", when, {})
    v = np.ones((h, w), bool) if valid is None else valid
    bands = {b: np.where(v, img[i], np.nan).astype(np.float32) for i, b in enumerate(BANDS)}
    return SceneRaster(ref, grid, bands, v, ~v, "0" * 64, gsd or res)


@pytest.fixture(scope="module")
def det() -> StructureDetector:
    return default_detector()


@pytest.fixture(scope="module")
def reference(det) -> StructureMaps:
    """The site's first clear scene: empty soil, so later scenes align and normalise to it."""
    return det.maps(raster(draw(seed=11), day=0))


@pytest.fixture(scope="module")
def full(det, reference) -> StructureMaps:
    return det.maps(raster(draw(block=True, wall=True, fence=True, towers=True, seed=12), day=30), [reference])


def _share(mask: np.ndarray, where: tuple[slice, slice]) -> float:
    return float(mask[where].mean())


def test_identity_and_kinds(det, reference):
    assert det.name == "sitewatch-structures" and det.version == "6"
    assert reference.kinds == KINDS
    assert reference.observed.all()
    for k in KINDS:
        assert reference.presence[k].dtype == bool and reference.presence[k].shape == (N, N)
        assert reference.strength[k].shape == (N, N)
        assert 0 <= float(reference.strength[k].min()) and float(reference.strength[k].max()) <= 1


def test_empty_soil_shows_no_structures(reference):
    for k in KINDS:
        assert not reference.presence[k].any(), k


def test_block_is_a_building_where_it_stands(full):
    b = full.presence["building"]
    assert _share(b, BLOCK) > 0.7
    outside = b.copy()
    outside[BLOCK[0].start - 30:BLOCK[0].stop + 4, BLOCK[1].start - 12:BLOCK[1].stop + 4] = False
    assert outside.sum() * RES ** 2 < 20  # nothing else is a building


def test_wall_is_a_wall_along_its_line(full):
    w = full.presence["wall"]
    along = w[WALL_ROW - 4:WALL_ROW + 5, WALL_COLS].any(axis=0)
    assert along.mean() > 0.8  # found over most of its 160 m
    assert w[: WALL_ROW - 15].sum() == 0 or w[: WALL_ROW - 15].sum() * RES < 10  # and nowhere else


def test_fence_is_a_fence_not_a_wall(full):
    f, w = full.presence["fence"], full.presence["wall"]
    band = (FENCE_ROWS, slice(FENCE_COL - 8, FENCE_COL + 5))
    assert f[band].any(axis=1).mean() > 0.7  # most of its 90 m
    assert not w[band].any()


def test_towers_are_towers_with_their_shadows(full):
    t = full.presence["tower"]
    for r, c in TOWERS:
        assert t[r - 2:r + 8, c - 2:c + 8].any(), (r, c)
    lab, n = ndimage.label(t)
    assert n == len(TOWERS)
    assert not full.presence["building"][TOWERS[0][0]:TOWERS[0][0] + 6, TOWERS[0][1]:TOWERS[0][1] + 6].any()


@pytest.mark.parametrize("change", ["green_field", "gain", "haze"])
def test_no_structures_from_season_gain_or_haze(det, reference, change):
    kw = {"green_field": dict(green_field=True), "gain": dict(gain=1.35), "haze": dict(gain=0.9, offset=0.04)}[change]
    m = det.maps(raster(draw(seed=13, **kw), day=60), [reference])
    for k in KINDS:
        assert m.presence[k].sum() * RES ** 2 < 5, (change, k, int(m.presence[k].sum()))


def test_structures_found_through_misregistration(det):
    # the site's permanent ground (a track) is what the alignment locks on to; new
    # structures have no counterpart in the reference
    reference = det.maps(raster(draw(track=True, seed=21), day=0))
    img = draw(block=True, wall=True, towers=True, track=True, seed=14)
    moved = np.stack([ndimage.shift(b, (1.0, -1.5), order=1, mode="nearest") for b in img])
    m = det.maps(raster(moved, day=90), [reference])
    sx, sy = m.info["shift_px"]
    assert abs(sx - 1.5) < 0.3 and abs(sy + 1.0) < 0.3, m.info["shift_px"]
    assert _share(m.presence["building"], BLOCK) > 0.7


def test_a_dirt_track_is_not_a_fence(det):
    m = det.maps(raster(draw(track=True, seed=22), day=0))
    assert m.presence["fence"].sum() * RES < 10


def test_cloud_is_not_observed_and_not_a_structure(det, reference):
    img = draw(seed=15)
    yy, xx = np.mgrid[0:N, 0:N]
    cloud = np.hypot(yy - 200, xx - 200) < 60
    img[:, cloud] = 0.8  # bright and white, like a roof would be
    v = ~cloud
    m = det.maps(raster(img, day=120, valid=v), [reference])
    assert not m.observed[cloud].any()
    for k in KINDS:
        assert not m.presence[k].any(), k


def test_maps_survive_serialisation(full):
    back = StructureMaps.from_bytes(full.to_bytes())
    assert back.kinds == full.kinds
    for k in full.kinds:
        assert (back.presence[k] == full.presence[k]).all()
    assert back.info == dict(full.info)


# --- 10 m (Sentinel-2-like) ----------------------------------------------------------------------


def _s2(with_block: bool, seed: int) -> np.ndarray:
    """A 600 m square at 10 m; the block 100 x 30 m (10 x 3 pixels), roof plus shadow mixed in."""
    rng = np.random.default_rng(seed)
    n = 60
    tex = 1.0 + 0.04 * ndimage.gaussian_filter(np.random.default_rng(3).standard_normal((n, n)), 2) * 3
    img = (SOIL[:, None, None] * tex[None]).astype(np.float32)
    img[:, 40:50, 5:55] = FIELD_GREEN[:, None, None]  # a field, green on this date
    if with_block:
        img[:, 25:28, 25:35] = ROOF[:, None, None]
        img[:, 24, 25:35] = 0.5 * img[:, 24, 25:35] + 0.5 * img[:, 24, 25:35] * SHADE  # half a pixel of shadow
    img += rng.normal(0, 0.004, img.shape).astype(np.float32)
    return np.clip(img, 0.001, 1).astype(np.float32)


def test_10m_finds_a_100_by_30_m_block_and_never_walls_fences_or_towers(det):
    empty = det.maps(raster(_s2(False, 1), res=10.0, day=0))
    built = det.maps(raster(_s2(True, 2), res=10.0, day=30), [empty])
    assert built.kinds == ("building",) and empty.kinds == ("building",)
    assert set(built.presence) == {"building"}
    assert not empty.presence["building"].any()
    assert built.presence["building"][25:28, 25:35].mean() > 0.6
    # the block and its rim, not the field: at 10 m the learned change map (3x3 and 5x5 cues, a weaker
    # rim grown around a confident core) outlines a new structure up to 2 px (20 m) wide of it
    block = np.zeros(built.presence["building"].shape, bool)
    block[25:28, 25:35] = True
    assert not (built.presence["building"] & ~ndimage.binary_dilation(block, iterations=2)).any()


# --- the project's renderer (sitewatch.testbed.synth) ----------------------------------------------------


def _synth_raster(r, gsd: float, size: float, day: int) -> SceneRaster:
    n = r.bands["red"].shape[0]
    grid = Grid("EPSG:32645", Affine(gsd, 0, -size / 2, 0, -gsd, size / 2), n, n)
    ref = SceneRef(f"d{day}", "synth", dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(days=day), {})
    v = ~r.cloud
    bands = {k: np.where(v, b, np.nan).astype(np.float32) for k, b in r.bands.items()}
    return SceneRaster(ref, grid, bands, v, r.cloud, "0" * 64, gsd)


@pytest.mark.xfail(strict=True, reason="the building map at 0.3-2 m is now learned from real roofs (sitewatch.buildings); on the renderer's compound it also maps ground far from any drawn structure: real imagery is the judge (benchmarks/real.py, issue 13)")
def test_renderer_compound_at_half_a_metre(det):
    """Winter reference without the compound; summer scene with it, brighter sensor, misregistered."""
    from rasterio.features import rasterize

    from sitewatch.testbed import synth

    size, gsd = 240.0, 0.5
    structs, _ = synth.compound(3, size_m=size)
    ground = synth.Ground(size, 5, fields=((-size / 2 + 5, -size / 2 + 5, size / 3, size / 4),))
    empty = det.maps(_synth_raster(synth.render(ground, [], gsd, synth.Conditions(season=0.2), 1), gsd, size, 0))
    cond = synth.Conditions(season=0.9, gain=(1.2,) * 5, shift_px=(0.8, -1.2))
    m = det.maps(_synth_raster(synth.render(ground, structs, gsd, cond, 2), gsd, size, 100), [empty])
    for k in KINDS:
        assert not empty.presence[k].any(), k
    sx, sy = m.info["shift_px"]
    assert abs(sx + 0.8) < 0.3 and abs(sy - 1.2) < 0.3
    n = m.observed.shape[0]
    t = Affine(gsd, 0, -size / 2, 0, -gsd, size / 2)

    def mask(geom):
        return rasterize([(geom, 1)], out_shape=(n, n), transform=t, all_touched=True).astype(bool)

    towers_found = 0
    for s in structs:
        share = float(m.presence[s.kind][mask(s.footprint().buffer(2.0))].mean())
        if s.kind == "tower":
            towers_found += share > 0
        else:
            assert share > 0.2, (s.id, share)
    assert towers_found >= 3
    # nothing far from any structure or its shadow
    near = mask(unary_union([s.footprint().buffer(3.0).union(synth.shadow(s, cond.sun_azimuth, cond.sun_elevation)
                                                                .buffer(3.0)) for s in structs]))
    for k in KINDS:
        assert (m.presence[k] & ~near).sum() * gsd ** 2 < 15, k


def test_new_structures_do_not_shift_a_registered_scene(full):
    sx, sy = full.info["shift_px"]
    assert abs(sx) < 0.3 and abs(sy) < 0.3, full.info["shift_px"]


def _rendered(structs, ground, gsd, size, cond, seed, history=()):
    from sitewatch.testbed import synth

    r = synth.render(ground, structs, gsd, cond, seed)
    return default_detector().maps(_synth_raster(r, gsd, size, seed), list(history))


@pytest.mark.xfail(strict=True, reason="the building map at 0.3-2 m is now learned from real roofs (sitewatch.buildings); on the renderer's compound it maps ~3x the drawn roof area: real imagery is the judge (benchmarks/real.py, issue 13)")
def test_rendered_compound_metrics_against_the_drawing():
    """measure() on the renderer's compound: built area, wall and fence length, towers, enclosure."""
    from shapely.geometry import LineString

    from sitewatch.testbed import synth
    from sitewatch.changes import measure

    size, gsd = 240.0, 0.5
    structs, _ = synth.compound(11, size_m=size)
    ground = synth.Ground(size, 4)
    cond = synth.Conditions(season=0.3, noise=0.005)
    empty = _rendered([], ground, gsd, size, cond, 1)
    m = measure(_rendered(structs, ground, gsd, size, cond, 2, [empty]))
    kinds = {k: [s for s in structs if s.kind == k] for k in KINDS}
    built = sum(s.footprint().area for s in kinds["building"])
    wall = sum(LineString(s.points).length for s in kinds["wall"])
    fence = sum(LineString(s.points).length for s in kinds["fence"])
    ring = kinds["wall"][0].footprint()
    inside = ring.convex_hull.area - ring.area
    assert m.built_area_m2 == pytest.approx(built, rel=0.2)
    assert m.wall_length_m == pytest.approx(wall, rel=0.15)
    assert m.fence_length_m == pytest.approx(fence, rel=0.35)
    assert m.tower_count == len(kinds["tower"])
    assert m.enclosed_area_m2 == pytest.approx(inside, rel=0.1)


def test_rendered_road_is_not_a_fence():
    from sitewatch.testbed import synth
    from sitewatch.changes import measure

    size, gsd = 240.0, 0.5
    ground = synth.Ground(size, 4, roads=(((-size / 2, -size / 2 + 20), (size / 2, -size / 2 + 22)),))
    m = measure(_rendered([], ground, gsd, size, synth.Conditions(season=0.3), 1))
    assert m.fence_length_m is not None and m.fence_length_m < 10


def test_snow_and_water_are_not_structures(det, reference):
    img = draw(seed=41)
    yy, xx = np.mgrid[0:N, 0:N]
    snow = ndimage.gaussian_filter(np.random.default_rng(4).standard_normal((N, N)), 15) > 0.02
    img[:, snow] = np.array([0.80, 0.82, 0.85, 0.78, 0.10], np.float32)[:, None]  # bright, dark in SWIR
    pond = np.hypot(yy - 300, xx - 120) < 30
    img[:, pond] = np.array([0.04, 0.05, 0.06, 0.02, 0.01], np.float32)[:, None]  # dark, NIR lowest
    from sitewatch import clouds

    # the reader masks snow (and cloud) without scl as below; the detector sees the rest
    valid = ~clouds.detect({b: img[i] for i, b in enumerate(BANDS)}, RES)
    m = det.maps(raster(img, day=300, valid=valid), [reference])
    for k in KINDS:
        assert m.presence[k].sum() * RES ** 2 < 10, (k, int(m.presence[k].sum()))


def test_rendered_10m_halls_found_houses_and_fields_not():
    """Sentinel-2-like 10 m: four 100 x 30 m halls are buildings; 18 x 14 m houses are too small to claim."""
    from sitewatch.testbed import synth

    size, gsd = 1000.0, 10.0
    halls = [synth.Building(f"hall-{i}", -200.0 + i * 45, 150.0, w=30.0, h=100.0, height=15.0,
                            roof=synth.ROOF_BLUE if i % 2 else synth.ROOF_GREY) for i in range(4)]
    houses = [synth.Building(f"house-{i}", 200.0 + (i % 4) * 35, -300.0 + (i // 4) * 40, w=18.0, h=14.0,
                             height=6.0, roof=synth.ROOF_GREY) for i in range(8)]
    ground = synth.Ground(size, 9, fields=((-450.0, -450.0, 160.0, 120.0), (250.0, 250.0, 160.0, 120.0)))
    summer = synth.Conditions(season=0.9, noise=0.004)
    empty = _rendered(houses, ground, gsd, size, synth.Conditions(season=0.1, noise=0.004), 1)
    m = _rendered(houses + halls, ground, gsd, size, summer, 2, [empty])
    assert m.kinds == ("building",) and set(m.presence) == {"building"}
    n = m.observed.shape[0]
    t = Affine(gsd, 0, -size / 2, 0, -gsd, size / 2)
    from rasterio.features import rasterize

    hall_mask = rasterize([(h.footprint(), 1) for h in halls], out_shape=(n, n), transform=t).astype(bool)
    near = ndimage.binary_dilation(hall_mask, iterations=3)  # the change map's rim (up to 2-3 px at 10 m)
    assert m.presence["building"][hall_mask].mean() > 0.6
    # no field, no village: what is left are 1-px slivers along the green fields' edges (mixed pixels
    # below the vegetation threshold), none as large as a hall
    away = m.presence["building"] & ~near
    assert away.sum() * gsd ** 2 < 5000
    lab, n = ndimage.label(away, np.ones((3, 3)))
    assert n == 0 or ndimage.sum_labels(away, lab, np.arange(1, n + 1)).max() < hall_mask.sum() / len(halls)


def test_unmasked_snow_is_not_a_building(det, reference):
    img = draw(seed=42)
    snow = ndimage.gaussian_filter(np.random.default_rng(4).standard_normal((N, N)), 15) > 0.02
    img[:, snow] = np.array([0.80, 0.82, 0.85, 0.78, 0.10], np.float32)[:, None]
    m = det.maps(raster(img, day=310), [reference])
    assert m.presence["building"].sum() * RES ** 2 < 10


def test_radiometric_fit_against_the_reference_is_recorded(det, reference):
    import json

    m = det.maps(raster(draw(seed=31, gain=1.3, offset=0.02), day=200), [reference])
    r = m.info["radiometry"]  # reference = gain * scene + offset: this scene is 1.3x brighter plus haze
    assert r["gain"] == pytest.approx(1 / 1.3, abs=0.08) and r["used"] > 0.5 * N * N
    json.dumps(dict(m.info))


def test_low_sun_fences_at_0_6_m_inside_a_wall_are_fences():
    """At 0.6 m and a 20° sun a mesh fence is mostly its wide faint shadow band, its mesh
    line thinner than a pixel: inside a perimeter wall that band is a courtyard fence.
    (On open ground the mesh line is still required: see the dirt-track test.)"""
    from shapely.geometry import LineString

    from sitewatch.testbed import synth
    from sitewatch.changes import measure

    size, gsd = 400.0, 0.6
    structs, _ = synth.compound(90213, size_m=size, blocks=4)
    ground = synth.Ground(size, 6)
    cond = synth.Conditions(season=0.5, sun_azimuth=150.0, sun_elevation=20.0, noise=0.005)
    empty = _rendered([], ground, gsd, size, cond, 1)
    m = measure(_rendered(structs, ground, gsd, size, cond, 2, [empty]))
    fence = sum(LineString(s.points).length for s in structs if s.kind == "fence")
    assert m.fence_length_m == pytest.approx(fence, rel=0.35)


def test_a_wall_cut_short_by_snow_is_not_seen_absent(det, reference):
    """Snow patches (masked, not observed) cut the 160 m wall into pieces shorter than the 50 m a
    wall needs: the scene cannot map it, but the ground between the patches shows its line, so
    that scene is no clear view of its absence and the wall, there all along, is never "new"."""
    from sitewatch.changes import Observation, track

    valid = np.ones((N, N), bool)
    for c in (110, 200, 290):  # 12 m patches across the wall: visible pieces ~35 m
        valid[WALL_ROW - 40:WALL_ROW + 20, c - 12:c + 12] = False
    img = draw(wall=True, seed=21)
    snowy = det.maps(raster(img, day=10, valid=valid), [reference])
    summer = [det.maps(raster(draw(wall=True, seed=s), day=d), [reference]) for s, d in ((22, 160), (23, 200))]
    piece = (slice(WALL_ROW - 3, WALL_ROW + 4), slice(130, 170))  # clear ground between two patches
    assert snowy.observed[piece].all()
    assert not snowy.presence["wall"][piece].any()  # too short to map where snow cuts it ...
    assert all(m.presence["wall"][piece].any() for m in summer)
    # ... but its line is there: a response at least half the mapped wall's
    assert snowy.strength["wall"][piece].mean() >= 0.5 * summer[0].strength["wall"][piece].mean() > 0
    obs = [Observation(f"s{i}", dt.datetime(2020, 1 + 5 * i, 1, tzinfo=dt.timezone.utc), m)
           for i, m in enumerate([snowy, *summer])]
    assert [c for c in track(obs) if c.kind == "wall_new"] == []
    # the same pieces on a scene where the wall was not built are still absence: a wall seen built is new
    bare = det.maps(raster(draw(seed=24), day=5, valid=valid), [reference])
    obs = [Observation(f"s{i}", dt.datetime(2019 + i, 1, 1, tzinfo=dt.timezone.utc), m)
           for i, m in enumerate([bare, bare, *summer])]
    assert [c.kind for c in track(obs) if c.kind == "wall_new"]


def test_a_tower_whose_shadow_begins_past_a_mixed_edge_pixel_is_a_tower(det, reference):
    """Between a tower's lit top and its shadow there is often a pixel of neither (the edge blurred
    by resampling, a wall top at a compound's corner): the shadow is still the tower's."""
    img = draw(towers=True, seed=31)
    shade = np.zeros((N, N), bool)
    for r, c in TOWERS:
        for k in range(20):
            shade[r - k:r - k + 6, c - k // 3:c - k // 3 + 6] = True
    for r, c in TOWERS:
        ring = np.zeros((N, N), bool)
        ring[r - 1:r + 7, c - 1:c + 7] = True
        ring[r:r + 6, c:c + 6] = False
        ring &= shade
        img[:, ring] = 0.5 * img[:, ring] + 0.5 * CONCRETE[:, None]  # half lit top, half shadow
    m = det.maps(raster(img, day=40), [reference])
    for r, c in TOWERS:
        assert m.presence["tower"][r - 2:r + 8, c - 2:c + 8].any(), (r, c)
    # the gap is a pixel or two, not a licence: a bright square with no shadow is still no tower
    plain = draw(seed=32)
    for r, c in TOWERS:
        plain[:, r:r + 6, c:c + 6] = CONCRETE[:, None, None]
    assert not det.maps(raster(plain, day=41), [reference]).presence["tower"].any()
