"""What an item's numbers mean: reflectance scale and offset, decided per item from what the provider says.

Providers disagree about the -0.1 offset of Sentinel-2 baseline 04.00, and a wrong guess shifts
every reflectance by 0.1; the rule applied is recorded with the scene.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..scenes import AssetRef

#: ESA's L2A digital numbers carry BOA_ADD_OFFSET = -1000 from processing baseline 04.00 (25 Jan 2022).
OFFSET_BASELINE = (4, 0)
_BASELINE_IN_NAME = re.compile(r"_N(\d{2})\.?(\d{2})(?:_|$)")


def processing_baseline(props: Mapping[str, Any], item_id: str = "") -> str | None:
    """Sentinel-2 processing baseline (``"04.00"``): the property (``s2:`` or v0's ``sentinel:``), else
    the ``_Nxxyy`` part of the product or datatake name."""
    for k in ("s2:processing_baseline", "sentinel:processing_baseline"):
        v = props.get(k)
        if isinstance(v, str) and re.fullmatch(r"\d{1,2}\.\d{2}", v.strip()):
            return v.strip().zfill(5)
    for v in (props.get("s2:product_uri"), props.get("sentinel:product_id"), props.get("s2:datatake_id"), item_id):
        m = _BASELINE_IN_NAME.search(str(v or ""))
        if m:
            return f"{m.group(1)}.{m.group(2)}"
    return None


@dataclass(frozen=True)
class Reflectance:
    """How an item's band numbers become reflectance, and on what authority."""

    scale: float
    offset: float
    rule: str
    baseline: str | None = None

    def properties(self) -> dict[str, Any]:
        return {"processing_baseline": self.baseline, "reflectance_scale": self.scale,
                "reflectance_offset": self.offset, "offset_rule": self.rule}


def reflectance_rule(props: Mapping[str, Any], band_refs: Mapping[str, AssetRef], item_id: str = "",
                     collection: str | None = None) -> Reflectance | None:
    """Per item, whether the -0.1 BOA offset of baseline >= 04.00 is still in the numbers.

    - ``earthsearch:boa_offset_applied`` / v0's ``sentinel:boa_offset_applied`` true: Element84
      already removed it, and its ``raster:bands`` offset -0.1 is wrong (Element84/earth-search#9:
      "the boa_offset_applied is the truth").
    - else the item's own ``raster:bands`` scale/offset (Earth Search ``sentinel-2-c1-l2a``,
      where -0.1 is right: Element84/earth-search#41; Landsat).
    - else, a Sentinel-2 L2A item without ``raster:bands`` (Planetary Computer): baseline >= 04.00
      means DN = reflectance x 10000 + 1000 (PC dataset page, "Baseline Change";
      microsoft/PlanetaryComputer#134), older baselines have no offset.
    None when the item says nothing either way (the reader's default per data type then applies).
    """
    baseline = processing_baseline(props, item_id)
    flag = props.get("earthsearch:boa_offset_applied", props.get("sentinel:boa_offset_applied"))
    given = [r for r in band_refs.values() if r.scale != 1.0 or r.offset != 0.0]
    scale = given[0].scale if given else 1e-4
    if flag is True:
        said = " (its raster:bands offset %g ignored)" % given[0].offset if given and given[0].offset else ""
        return Reflectance(scale, 0.0, "boa_offset_applied=true: offset already removed by the provider"
                                       + said + " [Element84/earth-search#9]", baseline)
    if given:
        return Reflectance(given[0].scale, given[0].offset, "the item's raster:bands scale/offset"
                           + (" [Element84/earth-search#41]" if "c1" in str(collection or "") else ""), baseline)
    if baseline is None:
        return None
    if tuple(int(x) for x in baseline.split(".")) >= OFFSET_BASELINE:
        return Reflectance(1e-4, -0.1, f"baseline {baseline} >= 04.00 without raster:bands: DN = reflectance x 10000"
                                       " + 1000 [ESA BOA_ADD_OFFSET; Planetary Computer sentinel-2-l2a 'Baseline "
                                       "Change', microsoft/PlanetaryComputer#134]", baseline)
    return Reflectance(1e-4, 0.0, f"baseline {baseline} < 04.00: DN = reflectance x 10000, no offset", baseline)
