"""changes.KindSeries: one kind's maps over a site's scenes, as the change tracker judges them."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pytest
from affine import Affine

from sitewatch.changes import TOLERANCE_M, KindSeries, Observation
from sitewatch.grid import Grid
from sitewatch.structures import StructureMaps, kinds_for_gsd

RES = 0.5
GRID = Grid("EPSG:32645", Affine(RES, 0, 500000.0, 0, -RES, 4400000.0), 40, 40)


def _obs(i: int, dot: tuple[int, int] | None, seen: bool = True) -> Observation:
    kinds = kinds_for_gsd(RES)
    presence = {k: np.zeros(GRID.shape, bool) for k in kinds}
    if dot is not None:
        presence["fence"][dot] = True
    strength = {k: presence[k].astype(np.float32) * np.float32(0.7) for k in kinds}
    observed = np.full(GRID.shape, seen, bool)
    when = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(days=10 * i)
    return Observation(f"s{i}", when, StructureMaps(GRID, kinds, presence, strength, observed))


def test_series_holds_one_entry_per_scene_and_widens_presence_by_the_kinds_tolerance():
    obs = [_obs(0, None), _obs(1, (20, 20)), _obs(2, (20, 20), seen=False)]
    ks = KindSeries.of("fence", obs, GRID)
    assert ks.kind == "fence" and [o.scene_id for o in ks.obs] == ["s0", "s1", "s2"]
    assert len(ks.present) == len(ks.present_near) == len(ks.strength) == len(ks.observed) == 3
    assert ks.res == RES and ks.transform == GRID.transform
    tol_px = round(TOLERANCE_M["fence"] / RES)
    near = ks.present_near[1]
    assert near[ks.present[1]].all()  # near holds every present pixel
    # widened by the tolerance along the row and column (binary dilation, cross-shaped steps)
    assert near[20, 20 + tol_px] and near[20 - tol_px, 20] and not near[20, 20 + tol_px + 1]
    assert not ks.present_near[0].any()  # nothing mapped stays nothing
    assert float(ks.strength[1][20, 20]) == pytest.approx(0.7) and not ks.observed[2].any()


def test_series_is_frozen():
    ks = KindSeries.of("building", [_obs(0, None), _obs(1, None)], GRID)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ks.kind = "wall"  # type: ignore[misc]
