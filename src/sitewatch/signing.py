"""Signing Planetary Computer asset URLs with a SAS token, at read time.

Planetary Computer's blobs answer 403 to an unsigned read. The token comes from PC's token
endpoint through the ``planetary-computer`` package (``PC_SDK_SAS_URL`` and
``PC_SDK_SUBSCRIPTION_KEY`` configure it); tokens expire (``msft:expiry``), so hrefs are signed
just before each read, never stored signed, and a 403 on a signed read renews the token once.
"""

from __future__ import annotations

from urllib.parse import urlparse

from .errors import FetchError


def _settings_url() -> str:
    from planetary_computer.settings import Settings

    return str(Settings.get().sas_url)


def sign(href: str, target: str | None, renew: bool = False) -> str:
    """``href`` with a SAS token for ``target`` (``account/container``) appended; unchanged when None.

    ``renew`` drops a cached token first (it was refused: expired or revoked early).
    """
    if not target:
        return href
    import requests
    from planetary_computer import sas

    account, _, container = target.partition("/")
    url = f"{_settings_url()}/{account}/{container}"
    if renew:
        sas.TOKEN_CACHE.pop(url, None)
    try:
        token = sas.get_token(account, container, retry_total=2, retry_backoff_factor=0.2)
    except requests.HTTPError as exc:
        code = exc.response.status_code if exc.response is not None else "?"
        hint = " (set PC_SDK_SUBSCRIPTION_KEY?)" if code in (401, 403, 429) else ""
        raise FetchError(f"no SAS token for {target} from {url}: HTTP {code}{hint}") from None
    except (requests.RequestException, ValueError) as exc:
        raise FetchError(f"no SAS token for {target} from {url}: {type(exc).__name__}: {str(exc)[:120]}") from None
    sep = "&" if urlparse(href).query else "?"
    return f"{href}{sep}{token.token}"


def forbidden(href: str, target: str | None) -> str:
    """What a 403 on ``href`` means, in one line."""
    if target:
        return (f"403 Forbidden reading {href} even with a fresh SAS token for {target} from {_settings_url()} "
                f"(token refused: PC_SDK_SUBSCRIPTION_KEY missing or not allowed?)")
    host = urlparse(href).netloc
    if host.endswith(".blob.core.windows.net"):
        return f"403 Forbidden reading {href}: a Planetary Computer blob needs a SAS token (unsigned read)"
    return (f"403 Forbidden reading {href}: the asset needs credentials sitewatch does not have "
            f"(a signed URL, or a requester-pays bucket)")
