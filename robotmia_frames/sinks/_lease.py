"""One writer at a time on object storage: a lease object beside the dataset.

A writer creates the lease object ``.<name>.robotmia-lease`` next to the dataset
folder (inside it for a dataset at a bucket's root) with a conditional write that
fails when the object exists: on S3, a ``PUT`` with ``If-None-Match: *``. While it
writes, a background thread renews the lease every third of its time to live with
``If-Match`` on the lease's own ETag, and the writer deletes it at the end (again
with ``If-Match``), so a writer never removes a lease that is no longer its own.

A second writer polls until the lease is gone, then takes it; it fails with a clear
error after the lock timeout (``ROBOTMIA_LOCK_TIMEOUT``). A lease left by a killed
writer is stale once it has not been renewed for its time to live
(``ROBOTMIA_LEASE_SECONDS``, 60 by default): by the time it records, or, whatever
the clocks say, once the waiter has watched it unchanged that long. The next writer
then takes it over with a conditional write on the ETag it read, so of two waiters
only one wins.

Filesystems without conditional writes (fsspec's default, ``pyarrow.fs`` wrapped by
fsspec) get the same protocol with an existence check before the write, which
leaves a short window in which two writers starting at the same instant could
both proceed.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from ..errors import InvalidArgumentError
from ._storage import LOCK_TIMEOUT_ENV, env_seconds

__all__ = ["LEASE_SECONDS_ENV", "Lease", "lease_path"]

#: Seconds a writer's lease lives without renewal (default 60).
LEASE_SECONDS_ENV = "ROBOTMIA_LEASE_SECONDS"
_DEFAULT_TTL = 60.0
_SUFFIX = ".robotmia-lease"


def lease_ttl() -> float:
    """The lease's time to live, from ``ROBOTMIA_LEASE_SECONDS`` (default 60 s)."""
    value = env_seconds(LEASE_SECONDS_ENV, _DEFAULT_TTL)
    if not value > 0:
        raise InvalidArgumentError(f"{LEASE_SECONDS_ENV} must be more than 0 seconds")
    return value


def lease_path(root: str) -> str:
    """The lease object of the dataset at ``root`` (a path inside its filesystem):
    beside the folder, so that no reader of the dataset meets it; inside it when the
    dataset is a bucket's root.

    Example:
        >>> lease_path("bucket/events/2024"), lease_path("bucket")
        ('bucket/events/.2024.robotmia-lease', 'bucket/.robotmia-lease')
    """
    root = root.rstrip("/")
    parent, name = posixpath.split(root)
    if not parent or parent == "/":
        return posixpath.join(root, _SUFFIX)
    return posixpath.join(parent, f".{name}{_SUFFIX}")


class _Store:
    """Reads and conditional writes of one small object (fsspec's generic calls)."""

    atomic = False

    def __init__(self, fs: Any, path: str) -> None:
        self.fs = fs
        self.path = path

    def create(self, body: bytes) -> Any:
        """Write ``body`` if no object exists; its token, or None if one exists."""
        if self.fs.exists(self.path):
            return None
        try:
            self._write(body, mode="create")
        except FileExistsError:
            return None
        return body

    def _write(self, body: bytes, mode: str = "overwrite") -> None:
        from fsspec.implementations.arrow import ArrowFSWrapper

        if not isinstance(self.fs, ArrowFSWrapper):
            self.fs.pipe_file(self.path, body, mode=mode)
            return
        # a pyarrow filesystem: one upload of a local file, as a day is written (its
        # output stream, which pipe_file uses, makes a multipart upload even of a few
        # bytes, which the S3 test server fails to complete)
        import pyarrow.fs as pafs

        with tempfile.TemporaryDirectory(prefix="robotmia-lease-") as tmp:
            local = os.path.join(tmp, "lease")
            with open(local, "wb") as f:
                f.write(body)
            pafs.copy_files(local, self.path, destination_filesystem=self.fs.fs)

    def read(self) -> tuple[bytes, Any] | None:
        """The object's bytes and token (None: no object)."""
        try:
            body = bytes(self.fs.cat_file(self.path))
        except FileNotFoundError:
            return None
        return body, body

    def replace(self, body: bytes, token: Any) -> Any:
        """Overwrite the object if it still has ``token``; the new token, or None."""
        current = self.read()
        if current is None or current[1] != token:
            return None
        self._write(body)
        return body

    def delete(self, token: Any) -> None:
        """Remove the object if it still has ``token``."""
        current = self.read()
        if current is not None and current[1] == token:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(self.path)


class _S3Store(_Store):
    """The same on S3 (s3fs), atomic: ``If-None-Match: *`` creates, ``If-Match`` on
    the ETag replaces and deletes."""

    atomic = True

    def __init__(self, fs: Any, path: str) -> None:
        super().__init__(fs, path)
        self.bucket, self.key, _ = fs.split_path(path)

    def _put(self, body: bytes, **condition: str) -> Any:
        try:
            out = self.fs.call_s3(
                "put_object", Bucket=self.bucket, Key=self.key, Body=body, **condition
            )
        except FileExistsError:  # If-None-Match failed
            return None
        except OSError as exc:  # If-Match failed (s3fs: EINVAL), or no such object
            if _precondition_failed(exc) or isinstance(exc, FileNotFoundError):
                return None
            raise
        finally:
            self.fs.invalidate_cache(self.path)
        return out.get("ETag")

    def create(self, body: bytes) -> Any:
        return self._put(body, IfNoneMatch="*")

    def read(self) -> tuple[bytes, Any] | None:
        for _ in range(5):
            self.fs.invalidate_cache(self.path)
            try:
                with self.fs.open(self.path, "rb") as f:  # its reads are pinned to the ETag
                    return f.read(), f.details.get("ETag")
            except FileNotFoundError:
                return None
            except OSError as exc:  # replaced between its HEAD and GET: read it again
                if not (_precondition_failed(exc) or type(exc).__name__ == "FileExpired"):
                    raise
        return b"", None  # replaced at every read: as if not seen yet

    def replace(self, body: bytes, token: Any) -> Any:
        if token is None:
            return None
        return self._put(body, IfMatch=str(token))

    def delete(self, token: Any) -> None:
        with contextlib.suppress(FileNotFoundError):
            try:
                self.fs.call_s3("delete_object", Bucket=self.bucket, Key=self.key, IfMatch=token)
            except OSError as exc:
                if not _precondition_failed(exc):
                    raise
            finally:
                self.fs.invalidate_cache(self.path)


def _precondition_failed(exc: BaseException) -> bool:
    cause = exc.__cause__
    response = getattr(cause, "response", None)
    if isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code", ""))
        return code in ("PreconditionFailed", "412", "ConditionalRequestConflict")
    return "PreconditionFailed" in str(exc) or "412" in str(exc)


def _store(fs: Any, path: str) -> _Store:
    if type(fs).__module__.split(".")[0] == "s3fs" and hasattr(fs, "call_s3"):
        return _S3Store(fs, path)
    return _Store(fs, path)


class Lease:
    """The writer lease of one dataset on object storage.

    Example:
        >>> from robotmia_frames.sinks import locate
        >>> loc = locate("memory://docs/leased/events")
        >>> with Lease(loc.fs, loc.path, url=loc.url).held(timeout=1):
        ...     loc.fs.exists("/docs/leased/.events.robotmia-lease")
        True
        >>> loc.fs.exists("/docs/leased/.events.robotmia-lease")
        False
    """

    def __init__(self, fs: Any, root: str, *, url: str, ttl: float | None = None) -> None:
        self.path = lease_path(root)
        self.url = url
        self.ttl = lease_ttl() if ttl is None else ttl
        self.store = _store(fs, self.path)
        self.owner = uuid.uuid4().hex
        self._token: Any = None
        self._renewals = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.lost = False

    def _body(self) -> bytes:
        self._renewals += 1
        doc = {
            "owner": self.owner,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "renewed_at": time.time(),
            "ttl": self.ttl,
            "renewals": self._renewals,
        }
        return json.dumps(doc).encode()

    @contextlib.contextmanager
    def held(self, timeout: float) -> Iterator[None]:
        """Take the lease (waiting up to ``timeout`` seconds), renew it while the body
        runs, and give it back."""
        self.acquire(timeout)
        keeper = threading.Thread(target=self._keep, name="robotmia-lease", daemon=True)
        keeper.start()
        failed = False
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            self._stop.set()
            keeper.join()
            self.release()
            if self.lost and not failed:
                raise InvalidArgumentError(
                    f"the writer lease of {self.url} ({self.path}) was taken over by "
                    f"another writer while this one wrote (not renewed within "
                    f"{self.ttl:g} s): another writer may have replaced days meanwhile. "
                    "Run the export again once it has finished."
                )

    def acquire(self, timeout: float) -> None:
        """Create the lease, or take over a stale one; fail after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        seen: Any = object()
        seen_since = time.monotonic()
        while True:
            token = self.store.create(self._body())
            if token is not None:
                self._token = token
                return
            current = self.store.read()
            now = time.monotonic()
            holder: dict[str, Any] = {}
            if current is not None:
                body, tok = current
                with contextlib.suppress(ValueError, TypeError):
                    loaded = json.loads(body)
                    holder = loaded if isinstance(loaded, dict) else {}
                if tok != seen:
                    seen, seen_since = tok, now
                if self._stale(holder, now - seen_since):
                    token = self.store.replace(self._body(), tok)
                    if token is not None:
                        self._token = token
                        return
            if now >= deadline:
                raise self._busy(holder, timeout)
            time.sleep(max(0.02, min(1.0, self.ttl / 4, deadline - now)))

    def _stale(self, holder: dict[str, Any], unchanged_for: float) -> bool:
        """Whether the holder's lease ran out: by its own record, or watched unchanged
        for longer than its time to live."""
        ttl = holder.get("ttl")
        ttl = float(ttl) if isinstance(ttl, (int, float)) and ttl > 0 else self.ttl
        if unchanged_for > ttl:
            return True
        renewed = holder.get("renewed_at")
        return isinstance(renewed, (int, float)) and renewed + ttl < time.time()

    def _busy(self, holder: dict[str, Any], waited: float) -> InvalidArgumentError:
        who = ""
        if holder.get("host") is not None:
            who = f", held by {holder.get('host')} pid {holder.get('pid')}"
        return InvalidArgumentError(
            f"the dataset {self.url} is being written by another process (lease "
            f"{self.path}{who}); waited {waited:g} s. Let the other run finish, or wait "
            f"longer with {LOCK_TIMEOUT_ENV}=<seconds>. A lease whose writer was killed "
            f"runs out {self.ttl:g} s after its last renewal ({LEASE_SECONDS_ENV})."
        )

    def _keep(self) -> None:
        """Renew the lease every third of its time to live until released."""
        while not self._stop.wait(self.ttl / 3):
            with contextlib.suppress(Exception):  # a network error: again at the next tick
                if not self.renew():
                    return

    def renew(self) -> bool:
        """Renew the lease (a conditional write on its ETag); False, and :attr:`lost`
        set, when another writer has taken it over."""
        with self._lock:
            if self.lost or self._token is None:
                return False
            token = self.store.replace(self._body(), self._token)
            if token is None:
                self.lost = True
                return False
            self._token = token
            return True

    def release(self) -> None:
        """Delete the lease if it is still this writer's."""
        with self._lock:
            if self._token is not None and not self.lost:
                with contextlib.suppress(Exception):
                    self.store.delete(self._token)
            self._token = None
