"""The window cache behind ``cache_dir=``: verified day-window bodies, still
compressed as received, with a small JSON manifest. Keys never include the secret:
they include an HMAC of it under a random salt kept in the cache folder, so that two
projects (two secrets) sharing a folder and an endpoint never read each other's
bodies."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import threading
from pathlib import Path
from typing import Any

from .._fsutil import write_json_atomic
from ..errors import InvalidArgumentError
from ._config import DownloadResult, WindowRequest

MANIFEST = "manifest.json"
SALT = "salt"


class WindowCache:
    """A folder of verified window bodies, keyed by endpoint and request parameters.

    Example:
        >>> import tempfile, datetime as dt
        >>> from robotmia_frames.transport import WindowRequest
        >>> cache = WindowCache(tempfile.mkdtemp())
        >>> req = WindowRequest(dt.date(2024, 1, 1), dt.date(2024, 1, 1))
        >>> cache.lookup("https://data.robotmia.com/api/2.0/export/", req) is None
        True
    """

    def __init__(self, root: str | os.PathLike[str], *, api_secret: str | None = None) -> None:
        self.root = Path(os.fspath(root))
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            why = "it is a file" if isinstance(exc, FileExistsError) else exc.strerror or exc
            raise InvalidArgumentError(
                f"cache_dir {self.root} cannot hold the cache: {why}. "
                "Pass a folder (it is created if missing)"
            ) from None
        self._lock = threading.Lock()
        self._manifest = self._load()
        self._project = self._project_id(api_secret) if api_secret else ""

    def _project_id(self, api_secret: str) -> str:
        """An HMAC of the secret under this folder's salt (made once, at random)."""
        path = self.root / SALT
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            salt = path.read_bytes()
        else:
            salt = os.urandom(16)
            with os.fdopen(fd, "wb") as f:
                f.write(salt)
        return hmac.new(salt, api_secret.encode(), hashlib.sha256).hexdigest()[:24]

    def key(self, base_url: str, request: WindowRequest) -> str:
        params = dict(sorted(request.params().items()))
        blob = json.dumps(
            {"url": base_url, "params": params, "project": self._project}, sort_keys=True
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:24]

    def path_for(self, base_url: str, request: WindowRequest) -> Path:
        return self._path(request, self.key(base_url, request))

    def _path(self, request: WindowRequest, key: str) -> Path:
        return self.root / f"{request.label}-{key}.jsonl.gz"

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads((self.root / MANIFEST).read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def lookup(self, base_url: str, request: WindowRequest) -> DownloadResult | None:
        """A cached, complete body for this request, or None."""
        key = self.key(base_url, request)
        with self._lock:
            entry = self._manifest.get(key)
        path = self._path(request, key)
        if not isinstance(entry, dict) or not path.is_file():
            return None
        if path.stat().st_size != entry.get("bytes"):
            return None  # not the file the manifest vouches for
        return DownloadResult(
            path=path,
            compressed=bool(entry.get("compressed", True)),
            bytes_received=int(entry["bytes"]),
            attempts=0,
            request=request,
        )

    def record(self, base_url: str, result: DownloadResult) -> None:
        """Vouch for a verified download (already renamed into the cache)."""
        key = self.key(base_url, result.request)
        entry = {
            "window": result.request.label,
            "params": result.request.params(),
            "bytes": result.path.stat().st_size,
            "compressed": result.compressed,
            "fetched_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }
        with self._lock:
            self._manifest[key] = entry
            self._save()

    def _save(self) -> None:
        write_json_atomic(self.root / MANIFEST, self._manifest, prefix=".manifest-")
