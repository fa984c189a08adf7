"""sitewatch: dated, reproducible, reviewed evidence of construction at candidate detention sites.

The public API (``sitewatch.__all__``)::

    import sitewatch
    sitewatch.monitor(sites_gdf, "https://earth-search.aws.element84.com/v1", "findings.gpkg",
                      collection="sentinel-2-l2a", since="2024-05-01", until="2024-09-30")
    sitewatch.open("findings.gpkg").detections().plot()

Everything but the errors is imported on first use (PEP 562), so ``import sitewatch`` does
not pull in numpy, rasterio or geopandas.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

from .errors import (ChainError, FetchError, ImageryError, InputError, NotAStoreError, NotFoundError, SceneError,
                     SchemaError, SitesError, SitewatchError, StoreError)

__version__ = "0.1.0"

#: Public name -> (module, attribute), imported when first asked for.
_LAZY = {
    "read_sites": ("sitewatch.api", "read_sites"),
    # monitor and scan are also the names of library modules; see _CallableModule
    "monitor": ("sitewatch.monitor", None),
    "scan": ("sitewatch.scan", None),
    "open": ("sitewatch.api", "open_findings"),
    "estimate": ("sitewatch.api", "estimate"),
    "SiteCost": ("sitewatch.cost", "SiteCost"),
    "Findings": ("sitewatch.api", "Findings"),
    "RunSummary": ("sitewatch.monitor", "RunSummary"),
    "SiteResult": ("sitewatch.monitor", "SiteResult"),
    "ScanSummary": ("sitewatch.scan", "ScanSummary"),
    "Site": ("sitewatch.sites", "Site"),
    "Detector": ("sitewatch.structures", "Detector"),
    "StructureMaps": ("sitewatch.structures", "StructureMaps"),
    "SceneRaster": ("sitewatch.scenes", "SceneRaster"),
    "SceneRef": ("sitewatch.scenes", "SceneRef"),
    "Grid": ("sitewatch.grid", "Grid"),
    "default_detector": ("sitewatch.detect", "default_detector"),
}

__all__ = [
    "__version__", "read_sites", "monitor", "estimate", "scan", "open", "Findings", "SiteCost", "RunSummary", "SiteResult", "ScanSummary",
    "Site", "Detector", "StructureMaps", "SceneRaster", "SceneRef", "Grid", "default_detector",
    "SitewatchError", "InputError", "SitesError", "ImageryError", "SceneError", "FetchError", "StoreError",
    "NotAStoreError", "SchemaError", "ChainError", "NotFoundError",
]

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ imports on demand
    from .api import Findings, estimate, monitor, read_sites, scan
    from .cost import SiteCost
    from .api import open_findings as open  # noqa: A001
    from .detect import default_detector
    from .grid import Grid
    from .monitor import RunSummary, SiteResult
    from .scan import ScanSummary
    from .scenes import SceneRaster, SceneRef
    from .sites import Site
    from .structures import Detector, StructureMaps


class _CallableModule(types.ModuleType):
    """``sitewatch.monitor`` and ``sitewatch.scan`` are library modules *and* the API's functions.

    Python binds a package's submodule as the package attribute of the same name whenever it
    is imported, so a plain function ``sitewatch.monitor`` would be replaced by the module the
    first time anything imports ``sitewatch.monitor``. Instead the module itself is callable:
    ``sitewatch.monitor(...)`` is :func:`sitewatch.api.monitor`, and ``sitewatch.monitor.run``
    is still there.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module("sitewatch.api"), self.__name__.rsplit(".", 1)[1])(*args, **kwargs)


def _api_module(name: str) -> None:
    """Make the module ``name`` callable as the API function it is named after (see :class:`_CallableModule`)."""
    module = sys.modules[name]
    module.__class__ = _CallableModule
    module.__wrapped__ = getattr(importlib.import_module("sitewatch.api"), name.rsplit(".", 1)[1])  # signature, help


def __getattr__(name: str) -> Any:
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'sitewatch' has no attribute {name!r}") from None
    mod = importlib.import_module(module)
    value = mod if attr is None else getattr(mod, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
