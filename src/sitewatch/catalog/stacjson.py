"""STAC documents from a local path or an http(s) URL, and hrefs relative to them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlparse

from .. import httpio
from ..errors import FetchError, ImageryError


def is_url(s: str) -> bool:
    return urlparse(s).scheme in ("http", "https")


def read_json(href: str) -> Any:
    """A JSON document from a local path or an http(s) URL, with one-line errors."""
    if is_url(href):
        try:
            return httpio.get_json(href)
        except FetchError as exc:
            raise ImageryError(f"{exc}") from None
    p = Path(href)
    if not p.exists():
        raise ImageryError(f"{href}: no such file or folder")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ImageryError(f"{href}: not a text file (expected STAC JSON)") from None
    except json.JSONDecodeError as exc:
        raise ImageryError(f"{href}: broken JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None


def resolve(href: str, base: str) -> str:
    """An href relative to the document it appeared in."""
    if is_url(href) or Path(href).is_absolute():
        return href
    if is_url(base):
        return urljoin(base, href)
    return str((Path(base).parent / href).resolve())
