"""The per-date map's boosted trees: the shared forward pass, the node-array check, the loader, the cues."""

import numpy as np
import pytest

from sitewatch import buildings, pixelmodel


def _stump(feature: int, threshold: float, lo: float, hi: float) -> dict:
    """One split: rows with the cue at or below ``threshold`` get ``lo``, the others ``hi``."""
    return {"feature": [feature, 0, 0], "threshold": [threshold, 0.0, 0.0], "left": [1, -1, -1],
            "right": [2, -1, -1], "value": [0.0, lo, hi], "depth": 1}


def test_trees_logit_sums_the_leaves_each_row_reaches_and_the_baseline():
    doc = {"baseline": 0.25, "trees": [_stump(0, 0.5, -1.0, 2.0), _stump(1, -3.0, 0.5, -0.5)]}
    x = np.array([[0.5, -3.0], [0.6, -3.0], [0.0, 7.0], [9.0, 9.0]], np.float32)
    got = pixelmodel.trees_logit(x, doc)
    assert got.tolist() == pytest.approx([0.25 - 1 + 0.5, 0.25 + 2 + 0.5, 0.25 - 1 - 0.5, 0.25 + 2 - 0.5])


def test_a_deeper_tree_routes_each_row_down_its_own_branch():
    # node 0 splits cue 0 at 0; its left (1) splits cue 1 at 0; leaves 2, 3 under 1 and 4 under 0's right
    t = {"feature": [0, 1, 0, 0, 0], "threshold": [0.0, 0.0, 0.0, 0.0, 0.0], "left": [1, 2, -1, -1, -1],
         "right": [4, 3, -1, -1, -1], "value": [0.0, 0.0, 1.0, 2.0, 3.0], "depth": 2}
    x = np.array([[-1, -1], [-1, 1], [1, -1], [1, 1]], np.float32)
    assert pixelmodel.trees_logit(x, {"baseline": 0.0, "trees": [t]}).tolist() == [1.0, 2.0, 3.0, 3.0]


@pytest.mark.parametrize("broken", [
    {"left": [1, -1]},                      # arrays of different lengths
    {"feature": [5, 0, 0]},                 # a split on a cue that does not exist
    {"left": [7, -1, -1]},                  # a child outside the tree
    {"right": [0, -1, -1]},                 # a child before its parent: the walk would never end
    {"right": [-1, -1, -1]},                # a node with one child
])
def test_node_arrays_that_do_not_link_up_are_refused(broken):
    tree = {**_stump(0, 0.5, -1.0, 2.0), **broken}
    with pytest.raises(ValueError):
        pixelmodel.check_trees({"baseline": 0.0, "trees": [tree]}, n_cues=2, what="test")
    pixelmodel.check_trees({"baseline": 0.0, "trees": [_stump(1, 0.5, -1.0, 2.0)]}, n_cues=2, what="test")


def _map_doc(tree: dict, **over) -> dict:
    return {"cues": list(buildings.MAP_FEATURES), "kind": "trees", "baseline": 0.0, "trees": [tree], "threshold": 0.3,
            **over}


def test_validate_map_refuses_other_cues_a_logistic_and_no_threshold():
    good = _map_doc(_stump(buildings.MAP_CUES.index("sat_s"), 0.2, -2.0, 2.0))
    buildings.validate_map(good)
    for bad in ({**good, "cues": list(buildings.CUES)}, {**good, "kind": "logistic"},
                {k: v for k, v in good.items() if k != "threshold"},
                {**good, "cues": list(buildings.MAP_CUES)}, _map_doc(_stump(len(buildings.MAP_FEATURES), 0.2, -2.0, 2.0))):
        with pytest.raises(ValueError):
            buildings.validate_map(bad)


def test_map_probability_is_the_trees_sigmoid_per_pixel_in_the_cues_shape():
    doc = _map_doc(_stump(buildings.MAP_CUES.index("sat_s"), 0.2, -2.0, 2.0))
    c = {k: np.zeros((3, 4), np.float32) for k in buildings.MAP_CUES}
    c["sat_s"][1, 2] = 0.5
    p = buildings.map_probability(c, np.ones((3, 4), bool), doc)
    assert p.shape == (3, 4) and p.dtype == np.float32
    assert p[1, 2] == pytest.approx(1 / (1 + np.exp(-2.0)))
    assert np.delete(p.ravel(), 6) == pytest.approx(1 / (1 + np.exp(2.0)))


def test_a_cues_rank_is_its_place_in_the_scenes_seen_ground():
    """The rank half of the features: the same cue value ranks high in a scene where it is rare, low where
    it is common; ground the scene did not see does not move the ranks."""
    c = {k: np.zeros((10, 10), np.float32) for k in buildings.MAP_CUES}
    c["tex1"] = np.arange(100, dtype=np.float32).reshape(10, 10)
    valid = np.ones((10, 10), bool)
    x = buildings.map_matrix(c, buildings.scene_quantiles(c, valid))
    j = len(buildings.MAP_CUES) + buildings.MAP_CUES.index("tex1")
    assert x.shape == (100, len(buildings.MAP_FEATURES))
    assert x[:, buildings.MAP_CUES.index("tex1")].tolist() == list(range(100))
    assert np.all(np.diff(x[:, j]) >= 0) and x[0, j] < 0.02 and x[99, j] > 0.98
    assert x[50, j] == pytest.approx(0.5, abs=0.02)
    # the lower half unseen: pixel 50 is now the least textured seen ground
    half = valid.copy()
    half[:5] = False
    y = buildings.map_matrix(c, buildings.scene_quantiles(c, half))
    assert y[50, j] < 0.02 and y[99, j] > 0.98
    # a tie (every pixel 0) ranks in the middle
    assert x[0, len(buildings.MAP_CUES)] == pytest.approx(0.5, abs=0.01)
    # flat indices read the same rows as the whole scene
    rows = np.array([3, 50, 97])
    assert np.array_equal(buildings.map_matrix(c, buildings.scene_quantiles(c, valid), rows), x[rows])


def test_use_map_swaps_the_trees_and_goes_back():
    doc = _map_doc(_stump(0, 0.2, -2.0, 2.0))
    shipped = buildings.map_model()
    buildings.use_map(doc)
    try:
        assert buildings.map_model()["trees"] == doc["trees"]
    finally:
        buildings.use_map(None)
    assert buildings.map_model() is shipped
    with pytest.raises(ValueError):
        buildings.use_map({**doc, "cues": ["bright"]})
    buildings.use_map(None)


def test_the_shipped_model_file_is_small_and_its_trees_valid():
    from importlib import resources

    raw = resources.files("sitewatch").joinpath("data/building_model.json").read_bytes()
    assert len(raw) < 200_000
    m = buildings.model()
    assert tuple(m["cues"]) == buildings.CUES and len(m["fine"]["coef"]) == 2 * len(buildings.CUES)
    if "map" in m:
        buildings.validate_map(m["map"])


def _scene(rng: np.random.Generator) -> tuple[dict, dict, np.ndarray]:
    raw = {b: (0.15 + 0.05 * rng.random((120, 120))).astype(np.float32) for b in ("red", "green", "blue")}
    for b, v in (("red", 0.35), ("green", 0.35), ("blue", 0.36)):
        raw[b][40:70, 40:70] = v           # a pale grey roof ...
    for b in raw:
        raw[b][70:78, 40:70] = 0.03        # ... its shadow on one side
    valid = np.ones((120, 120), bool)
    from sitewatch import align

    rel = align.relative_to_ground(raw, align.ground_levels(raw, valid))
    return rel, raw, valid


def test_map_cues_read_a_uniform_gain_and_the_pixel_size_alike():
    """Sensors differ by gain and pixel size: the extra cues are ratios, robust units or metre-sized windows."""
    rng = np.random.default_rng(3)
    rel, raw, valid = _scene(rng)
    a = buildings.map_cues(rel, raw, valid, 0.5)
    b = buildings.map_cues(rel, {k: v * 1.7 for k, v in raw.items()}, valid, 0.5)
    for k in ("sat_s", "sat_m", "dark_s", "shadow_side3", "shadow_side6", "bright_robust"):
        assert np.abs(a[k] - b[k]).max() < 1e-3, k
    assert set(a) == set(buildings.MAP_CUES)
    # the shadow is dark ground on one side of the roof's edge, not all round
    assert a["shadow_side3"][66, 55] > 0.5 and a["shadow_side3"][55, 55] < 0.2
    # the same ground at 1 m: the windows shrink in pixels, so a cue at the same place reads about the same
    half = {k: v[::2, ::2] for k, v in raw.items()}
    relh = {k: v[::2, ::2] for k, v in rel.items()}
    c = buildings.map_cues(relh, half, valid[::2, ::2], 1.0)
    assert abs(float(c["sat_m"][27, 27]) - float(a["sat_m"][55, 55])) < 0.05


def test_the_detector_maps_roofs_with_the_trees_when_the_model_holds_them():
    """detect's 0.3-2 m building map follows the map's trees when there are any (here hand-made: bright in
    the scene's robust units is roof), cleaned with their own threshold; the logistic otherwise."""
    from sitewatch.detect import StructureDetector

    rng = np.random.default_rng(7)
    rel, raw, valid = _scene(rng)
    j = buildings.MAP_CUES.index("bright_robust")
    doc = _map_doc(_stump(j, 1.0, -4.0, 4.0), threshold=0.5)
    buildings.use_map(doc)
    try:
        building, strength = StructureDetector()._learned_buildings(rel, raw, valid, 0.5)
    finally:
        buildings.use_map(None)
    assert building[45:65, 45:65].all()            # the pale roof, 15 x 15 m
    assert not building[:30].any() and not building[90:].any()
    assert strength[50, 50] > 0.9 and strength[10, 10] == 0
    # the same roof with the stump turned round: nothing is bright *and* not a roof
    buildings.use_map(_map_doc(_stump(j, 1.0, 4.0, -4.0), threshold=0.5))
    try:
        flipped, _ = StructureDetector()._learned_buildings(rel, raw, valid, 0.5)
    finally:
        buildings.use_map(None)
    assert not flipped[45:65, 45:65].any()
