"""Finding scenes: a STAC API, a static STAC catalog (local or http), or a folder of GeoTIFFs.

All three end as the same :class:`~sitewatch.scenes.SceneRef` list, so everything after
discovery takes one code path whatever the source. :func:`probe` checks a source as a
whole before a run writes anything; :func:`discover` then finds one site's scenes, and
reports items it cannot use (no date, no usable band, Landsat) as named problems instead of
dropping them silently. What an item's numbers mean is decided here, per item, from what the
provider says (:func:`reflectance_rule`), and recorded with the scene: providers disagree about
the -0.1 offset of Sentinel-2 baseline 04.00, and a wrong guess shifts every reflectance by 0.1.

Layout: :mod:`.stacjson` (documents from a path or URL), :mod:`.sources` (what kind of source;
:func:`probe`), :mod:`.items` (an item to a scene), :mod:`.reflectance` (what its numbers mean),
:mod:`.acquisitions` (one scene per pass), :mod:`.folder` (GeoTIFFs as scenes) and
:mod:`.search` (:func:`discover`, :func:`find_again`). Read ``MAX_CLOUD_COVER`` from this
package (``from sitewatch.catalog import MAX_CLOUD_COVER`` at call time), where a caller may set it.
"""

from __future__ import annotations

from urllib.parse import urlparse  # noqa: F401  (kept importable from here, as before the split)

from .acquisitions import SAME_ACQUISITION_S, one_per_acquisition, same_acquisition
from .items import (ASSET_KEYS, LANDSAT_REFUSED, MAX_CLOUD_COVER, TIFF_SUFFIXES, WANTED, Discovery, sas_target,
                    scene_from_item)
from .items import _in_range, _parse_time  # noqa: F401  (tests check these rules directly)
from .reflectance import OFFSET_BASELINE, Reflectance, processing_baseline, reflectance_rule
from .search import discover, find_again
from .sources import DEFAULT_COLLECTION, EARTH_SEARCH, ApiTarget, api_target, probe, static_collections
from .stacjson import is_url, read_json, resolve

__all__ = [
    "ASSET_KEYS", "DEFAULT_COLLECTION", "EARTH_SEARCH", "LANDSAT_REFUSED", "MAX_CLOUD_COVER", "OFFSET_BASELINE",
    "SAME_ACQUISITION_S", "TIFF_SUFFIXES", "WANTED", "ApiTarget", "Discovery", "Reflectance", "api_target",
    "discover", "find_again", "is_url", "one_per_acquisition", "probe", "processing_baseline", "read_json",
    "reflectance_rule", "resolve", "same_acquisition", "sas_target", "scene_from_item", "static_collections",
]
