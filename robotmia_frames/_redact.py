"""One redaction helper: every log line, exception message and repr that could
carry a secret goes through :func:`redact` (or :func:`redact_url`) first."""

from __future__ import annotations

import threading
from urllib.parse import urlsplit, urlunsplit

_lock = threading.Lock()
_secrets: set[str] = set()

MASK = "***"


def register_secret(secret: str | None) -> None:
    """Remember ``secret`` so that :func:`redact` masks it wherever it appears."""
    if secret and len(secret) >= 3:
        with _lock:
            _secrets.add(secret)


def redact(text: object) -> str:
    """Return ``str(text)`` with every registered secret replaced by ``***``.

    Example:
        >>> register_secret("s3cr3t-value")
        >>> redact("auth failed for s3cr3t-value")
        'auth failed for ***'
    """
    out = str(text)
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in out:
            out = out.replace(secret, MASK)
    return out


def redact_url(url: str) -> str:
    """Drop any ``user:password@`` part of a URL and mask registered secrets.

    Example:
        >>> redact_url("https://user:pw@data.example.com/api/2.0/export/")
        'https://***@data.example.com/api/2.0/export/'
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact(url)
    if parts.username is not None or parts.password is not None:
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{MASK}@{host}" + (f":{parts.port}" if parts.port else "")
        parts = parts._replace(netloc=netloc)
    return redact(urlunsplit(parts))
