"""sitewatch: dated, reproducible, reviewed evidence of construction at candidate detention sites."""

from __future__ import annotations

__all__ = ["__version__"]
__version__ = "0.1.0"
