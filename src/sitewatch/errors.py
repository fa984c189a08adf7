"""One error root, mixed with the builtin each error resembles (as rasterio does).

Exit codes follow the contract: 2 for unusable input (nothing written), 1 for a run that
finished partially or a check that failed.
"""

from __future__ import annotations


class SitewatchError(Exception):
    """Root of every error sitewatch raises on purpose."""

    exit_code = 1


class InputError(SitewatchError, ValueError):
    """The user's input cannot be used. Messages name the file, the record and the problem."""

    exit_code = 2


class SitesError(InputError):
    """A sites file is missing, unreadable or holds an invalid record."""


class ImageryError(InputError):
    """An imagery source cannot be discovered or read as a whole."""


class SceneError(SitewatchError):
    """One scene could not be read; the run goes on without it and is marked partial."""


class FetchError(SceneError, OSError):
    """A network read failed after bounded retries."""


class StoreError(SitewatchError):
    """The findings GeoPackage refused an operation or is damaged."""


class NotAStoreError(InputError, StoreError):
    """The ``--db`` path cannot be a findings GeoPackage (another file, a missing folder): unusable input."""


class UpgradeNeededError(InputError, StoreError):
    """The GeoPackage was written by an earlier sitewatch; ``sitewatch verify --upgrade`` brings it up to date."""


class SchemaError(StoreError, ValueError):
    """A write would silently corrupt the GeoPackage (wrong CRS, type or kind)."""


class ChainError(StoreError):
    """The review hash chain or a detection's status does not verify."""


class NotFoundError(SitewatchError, KeyError):
    """A named site, detection or scene is not in the GeoPackage."""

    exit_code = 2

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""
