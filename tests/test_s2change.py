"""The 10 m two-date change model on tiny synthetic scenes: normalisation, a new block, missing bands."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest

from sitewatch import s2change


def _scene(seed: int = 0, shape: tuple[int, int] = (64, 64)) -> dict[str, np.ndarray]:
    """Bare soil with field-like texture: reflectance per band, float32."""
    rng = np.random.default_rng(seed)
    base = {"blue": 0.10, "green": 0.14, "red": 0.18, "nir": 0.26, "swir16": 0.32}
    field = rng.normal(0, 1, shape).astype(np.float32)
    return {b: (v * (1 + 0.08 * field) + rng.normal(0, 0.004, shape)).astype(np.float32) for b, v in base.items()}


def _run(ref, cur, drop=()):
    ref = {k: v for k, v in ref.items() if k not in drop}
    cur = {k: v for k, v in cur.items() if k not in drop}
    valid = np.ones(next(iter(cur.values())).shape, bool)
    out = s2change.change_map(ref, cur, valid)
    assert out is not None
    return out


def test_uniform_gain_and_haze_are_not_change():
    ref = _scene(1)
    # the same ground, a different day: a uniform gain and an additive haze, and sensor noise
    rng = np.random.default_rng(2)
    cur = {b: (1.3 * v + 0.06 + rng.normal(0, 0.003, v.shape)).astype(np.float32) for b, v in ref.items()}
    presence, p, both, info = _run(ref, cur)
    assert both.all()
    assert presence.mean() < 0.01, presence.mean()
    assert info["change_model"] == s2change.model()["name"]


def test_a_new_bright_block_on_soil_is_flagged():
    ref = _scene(3)
    cur = {b: v.copy() for b, v in _scene(3).items()}
    block = (slice(20, 32), slice(24, 36))
    for b, v in {"blue": 0.30, "green": 0.32, "red": 0.34, "nir": 0.36, "swir16": 0.38}.items():
        cur[b][block] = v  # a pale concrete roof, 120 m across, where there was soil
    presence, p, _, _ = _run(ref, cur)
    inside = presence[block].mean()
    outside = presence.copy()
    outside[18:34, 22:38] = False
    assert inside > 0.6, inside
    assert outside.mean() < 0.02, outside.mean()
    assert p[block].mean() > p[~presence].mean()


@pytest.mark.parametrize("drop, used", [(("swir16",), "blue,green,red,nir"), (("swir16", "nir"), "blue,green,red")])
def test_missing_bands_use_the_smaller_model(drop, used):
    ref = _scene(4)
    cur = {b: v.copy() for b, v in _scene(4).items()}
    block = (slice(10, 22), slice(10, 22))
    for b in cur:
        cur[b][block] = 0.35
    presence, _, _, info = _run(ref, cur, drop)
    assert ",".join(info["change_bands"]) == used
    assert presence[block].mean() > 0.5


def test_no_model_without_the_visible_bands():
    ref = {"red": np.ones((8, 8), np.float32), "nir": np.ones((8, 8), np.float32)}
    assert s2change.change_map(ref, ref, np.ones((8, 8), bool)) is None


def test_ground_the_reference_did_not_see_is_not_observed():
    ref = _scene(5)
    ref = {k: v.copy() for k, v in ref.items()}
    for v in ref.values():
        v[:, :16] = np.nan
    _, p, both, _ = _run(ref, _scene(5))
    assert not both[:, :16].any() and both[:, 16:].all()
    assert (p[:, :16] == 0).all()


def test_shipped_model_loads_and_validates():
    doc = json.loads(resources.files("sitewatch").joinpath(s2change.MODEL_FILE).read_text())
    m = s2change.validate(doc)
    assert {tuple(k.split(",")) for k in m["models"]} == set(s2change.BAND_SETS)
    assert len(s2change.model()["sha256"]) == 64
    bad = {**doc, "models": {**doc["models"], "blue,green,red": {**doc["models"]["blue,green,red"], "coef": [0.0]}}}
    with pytest.raises(ValueError, match="coefficients"):
        s2change.validate(bad)


def test_training_writes_the_shipped_model_and_one_per_fold(tmp_path, capsys):
    """What both training scripts end with (sitewatch.pixelmodel): a fitted logistic the forward pass
    reads back, and one held-out file per left-out city."""
    import json
    import time

    from sitewatch import pixelmodel

    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 2)).astype(np.float32)
    y = (x[:, 0] + 0.2 * rng.normal(size=400) > 0).astype(int)
    fit = pixelmodel.fit_logistic(x, y, 1.0, max_iter=200)
    assert fit["coef"][0] > 1 and abs(fit["coef"][1]) < fit["coef"][0] / 4
    out = tmp_path / "m.json"
    pixelmodel.write_models(out, {"fit": fit}, {"rennes": {"fit": fit}}, str(tmp_path / "folds"), "m", time.perf_counter())
    assert json.loads(out.read_text())["fit"] == fit
    assert json.loads((tmp_path / "folds" / "m-without-rennes.json").read_text())["fit"] == fit
    assert "wrote 1 held-out models" in capsys.readouterr().out


def test_an_outline_on_both_dates_persists_under_haze_a_new_one_does_not():
    """Structure persistence (issue 13: standing roofs that brightened, towers under a hazy first date):
    the dates' outlines correlate where a building stood on both, whatever the haze; not where it is new."""
    ref = {k: v.copy() for k, v in _scene(6).items()}
    old, new = (slice(8, 20), slice(8, 20)), (slice(40, 52), slice(40, 52))
    for v in ref.values():
        v[old] = 0.30
    # the next date: the standing roof brighter, everything under a haze that halves the contrast
    cur = {k: v.copy() for k, v in ref.items()}
    for v in cur.values():
        v[old] = 0.36
        v[new] = 0.34
    cur = {k: (0.5 * v + 0.5 * float(np.median(v))).astype(np.float32) for k, v in cur.items()}
    f = s2change.features(ref, cur, np.ones((64, 64), bool), s2change.BANDS, structure=True)
    rim = np.zeros((64, 64), bool)
    rim[7:21, 7:21], rim[9:19, 9:19] = True, False
    rim_new = np.zeros((64, 64), bool)
    rim_new[39:53, 39:53], rim_new[41:51, 41:51] = True, False
    for k in s2change.STRUCT_WINS:
        assert f[f"gcorr{k}"][rim].mean() > 0.6, (k, f[f"gcorr{k}"][rim].mean())
        assert f[f"gcorr{k}"][rim_new].mean() < f[f"gcorr{k}"][rim].mean() - 0.3, k
    assert set(s2change.STRUCT_CUES) <= set(f)
    plain = s2change.features(ref, cur, np.ones((64, 64), bool), s2change.BANDS)
    assert not set(s2change.STRUCT_CUES) & set(plain)  # only for a model that reads them
