"""One redaction helper: every log line, exception message and repr that could
carry a secret goes through :func:`redact` (or :func:`redact_url`) first."""

from __future__ import annotations

import re
import threading
from urllib.parse import urlsplit, urlunsplit

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None

MASK = "***"
ANYWHERE = 12


def register_secret(secret: str | None) -> None:
    """Remember ``secret`` so that :func:`redact` masks it wherever it appears."""
    global _pattern
    if secret and len(secret) >= 3:
        with _lock:
            if secret not in _secrets:
                _secrets.add(secret)
                _pattern = _compile(_secrets)


def _compile(secrets: set[str]) -> re.Pattern[str]:
    """One pattern for every secret, longest first.

    A secret of :data:`ANYWHERE` characters or more (a real project secret is
    32) is masked wherever it occurs. A shorter one that begins (ends) with a
    letter, digit or underscore is masked only where no such character stands
    right before (after) it, so that a secret such as ``secret`` does not
    mangle ``api_secret`` in an unrelated message."""
    parts = []
    for secret in sorted(secrets, key=len, reverse=True):
        body = re.escape(secret)
        if len(secret) >= ANYWHERE:
            parts.append(body)
            continue
        if secret[0].isalnum() or secret[0] == "_":
            body = r"(?<![0-9A-Za-z_])" + body
        if secret[-1].isalnum() or secret[-1] == "_":
            body += r"(?![0-9A-Za-z_])"
        parts.append(body)
    return re.compile("|".join(parts))


def redact(text: object) -> str:
    """Return ``str(text)`` with every registered secret replaced by ``***``.

    Example:
        >>> register_secret("s3cr3t-value")
        >>> redact("auth failed for s3cr3t-value")
        'auth failed for ***'
        >>> redact("?api_secret=s3cr3t-value&x=1")
        '?api_secret=***&x=1'
    """
    out = str(text)
    pattern = _pattern
    if pattern is None:
        return out
    return pattern.sub(MASK, out)


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
