"""Where a dataset lives: a local folder, ``file://``, or any fsspec/pyarrow URL.

:func:`locate` turns the public ``path``/``storage_options``/``filesystem`` keywords
into a :class:`Location` (an fsspec filesystem and a path inside it), checking
everything it can before any request is sent and without writing anything:
an unknown scheme or a missing filesystem package is an
:class:`~robotmia_frames.errors.InvalidArgumentError` naming the package to install.

:func:`writer_lock` is the one-writer-at-a-time lock. Its file lives in the
user's cache folder, keyed by the dataset's location, never inside the dataset,
so that no reader ever sees it; on object storage it is a lease object beside the
dataset (``_lease.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidArgumentError

if TYPE_CHECKING:
    import pyarrow.fs as pafs

__all__ = [
    "LOCK_TIMEOUT_ENV",
    "Location",
    "arrow_filesystem",
    "locate",
    "lock_path",
    "upload_checked",
    "writer_lock",
]

#: Seconds a second writer waits for the first one's lock (default 600).
LOCK_TIMEOUT_ENV = "ROBOTMIA_LOCK_TIMEOUT"
_DEFAULT_LOCK_TIMEOUT = 600.0


@dataclass(frozen=True)
class Location:
    """A dataset's filesystem (fsspec) and its root path inside it.

    Example:
        >>> loc = locate("memory://docs/location")
        >>> loc.path, loc.local, loc.url
        ('/docs/location', False, 'memory://docs/location')
    """

    fs: Any = field(repr=False)
    path: str
    url: str
    local: bool

    def join(self, *parts: str) -> str:
        """A path below the root."""
        return posixpath.join(self.path, *parts)

    @property
    def local_root(self) -> Path:
        """The root as a local path (local datasets only)."""
        return Path(self.path)


def _protocol_name(fs: Any) -> str:
    proto = getattr(fs, "protocol", "file")
    return str(proto[0] if isinstance(proto, (tuple, list)) else proto)


def _is_local_fs(fs: Any) -> bool:
    from fsspec.implementations.local import LocalFileSystem

    return isinstance(fs, LocalFileSystem)


def _wrap_filesystem(filesystem: Any) -> Any:
    """An fsspec filesystem for ``filesystem`` (fsspec already, or pyarrow.fs)."""
    from fsspec import AbstractFileSystem

    if isinstance(filesystem, AbstractFileSystem):
        return filesystem
    import pyarrow.fs as pafs

    if isinstance(filesystem, pafs.FileSystem):
        if isinstance(filesystem, pafs.LocalFileSystem):
            from fsspec.implementations.local import LocalFileSystem

            return LocalFileSystem()
        from fsspec.implementations.arrow import ArrowFSWrapper

        return ArrowFSWrapper(filesystem)
    raise InvalidArgumentError(
        "filesystem must be a pyarrow.fs.FileSystem or an fsspec filesystem, "
        f"got {type(filesystem).__name__}"
    )


def _local_folder(filesystem: Any) -> str | None:
    """The local folder that ``filesystem`` is a view of (pyarrow's
    ``SubTreeFileSystem`` or fsspec's ``DirFileSystem`` over the local disk, nested
    or not), else None. Such a dataset is a local one: days are swapped in by an
    atomic rename, and folders exist before files are put in them.

    Example:
        >>> import pyarrow.fs as pafs
        >>> _local_folder(pafs.SubTreeFileSystem("/data", pafs.LocalFileSystem()))
        '/data'
        >>> _local_folder(pafs.LocalFileSystem()) is None
        True
    """
    import pyarrow.fs as pafs
    from fsspec.implementations.dirfs import DirFileSystem

    if isinstance(filesystem, pafs.SubTreeFileSystem):
        base, inner = filesystem.base_path, filesystem.base_fs
    elif isinstance(filesystem, DirFileSystem):
        base, inner = filesystem.path, filesystem.fs
    else:
        return None
    if isinstance(inner, pafs.LocalFileSystem) or _is_local_fs(inner):
        return str(base).rstrip("/") or "/"
    outer = _local_folder(inner)
    return None if outer is None else os.path.join(outer, str(base).lstrip("/"))


def _missing_package(protocol: str) -> str:
    from fsspec.registry import known_implementations

    info = known_implementations.get(protocol, {})
    err = str(info.get("err") or "")
    cls = str(info.get("class") or "")
    package = cls.split(".", 1)[0] if cls else protocol
    hint = f"pip install {package}"
    return f"{err} ({hint})" if err else hint


def locate(
    path: str | os.PathLike[str],
    *,
    storage_options: Mapping[str, Any] | None = None,
    filesystem: Any = None,
    name: str = "path",
) -> Location:
    """Resolve a dataset location without touching it.

    ``path`` is a local path, a ``file://`` URL, or any fsspec URL (``s3://``,
    ``gs://``, ``abfs://``, ``memory://``, ...); with ``filesystem`` it is a path
    inside that filesystem. ``storage_options`` go to the fsspec filesystem, as in
    pandas.

    Example:
        >>> locate("s3x://bucket/events")
        Traceback (most recent call last):
        ...
        robotmia_frames.errors.InvalidArgumentError: path: unknown storage scheme 's3x' in 's3x://bucket/events'
    """
    if storage_options is not None and not isinstance(storage_options, Mapping):
        raise InvalidArgumentError(
            f"storage_options must be a dict or None, got {type(storage_options).__name__}"
        )
    options = dict(storage_options or {})
    if isinstance(path, os.PathLike):
        raw = os.fspath(path)
    elif isinstance(path, str):
        raw = path
    else:
        raise InvalidArgumentError(
            f"{name} must be a str or os.PathLike, got {type(path).__name__}"
        )
    if not raw:
        raise InvalidArgumentError(f"{name} must not be empty")
    if filesystem is not None:
        if options:
            raise InvalidArgumentError(
                "pass storage_options or filesystem, not both (configure the filesystem itself)"
            )
        root = _local_folder(filesystem)
        if root is not None:  # a view of a local folder: the local, atomic path
            from fsspec.implementations.local import LocalFileSystem

            full = os.path.abspath(os.path.join(root, raw.lstrip("/")))
            return Location(LocalFileSystem(), full, raw, True)
        fs = _wrap_filesystem(filesystem)
        inner = fs._strip_protocol(raw)
        if _is_local_fs(fs):
            inner = os.path.abspath(inner)
        return Location(fs, str(inner).rstrip("/") or "/", raw, _is_local_fs(fs))
    if "://" not in raw:
        if options:
            raise InvalidArgumentError(
                f"storage_options are for URLs such as s3://...; {name} {raw!r} is a local path"
            )
        from fsspec.implementations.local import LocalFileSystem

        # "~/events" is in the home folder, as in pandas (not a folder named "~")
        return Location(LocalFileSystem(), os.path.abspath(os.path.expanduser(raw)), raw, True)
    protocol = raw.split("://", 1)[0].lower()
    from fsspec.registry import get_filesystem_class, known_implementations

    try:
        cls = get_filesystem_class(protocol)
    except ValueError:
        raise InvalidArgumentError(
            f"{name}: unknown storage scheme {protocol!r} in {raw!r}"
        ) from None
    except ImportError:
        raise InvalidArgumentError(
            f"{name}: {raw!r} needs a filesystem package: {_missing_package(protocol)}"
        ) from None
    if protocol not in known_implementations and not protocol:
        raise InvalidArgumentError(f"{name}: unknown storage scheme in {raw!r}")
    try:
        fs = cls(**options)
    except TypeError as exc:
        raise InvalidArgumentError(f"storage_options for {protocol}://: {exc}") from None
    inner = str(cls._strip_protocol(raw)).rstrip("/")
    if not inner:
        raise InvalidArgumentError(f"{name}: {raw!r} names no folder")
    local = _is_local_fs(fs)
    if local:
        inner = os.path.abspath(inner)
    return Location(fs, inner, raw, local)


def env_seconds(name: str, default: float) -> float:
    """A number of seconds from the environment variable ``name`` (``default`` when
    unset; never below 0).

    Example:
        >>> env_seconds("ROBOTMIA_DOCS_UNSET_SECONDS", 5.0)
        5.0
    """
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InvalidArgumentError(f"{name} must be a number of seconds, got {raw!r}") from None
    return max(value, 0.0)


def _lock_timeout() -> float:
    return env_seconds(LOCK_TIMEOUT_ENV, _DEFAULT_LOCK_TIMEOUT)


def lock_path(location: Location) -> Path:
    """The lock file of a dataset, keyed by its location: in the user's cache folder
    (``~/.cache/robotmia-frames/locks``), else the temporary directory; never
    inside the dataset or beside it."""
    key = f"{_protocol_name(location.fs)}://{location.path}"
    if location.local:
        key = "file://" + os.path.realpath(location.path)
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    for base in (Path(cache) / "robotmia-frames" / "locks", Path(tempfile.gettempdir())):
        with contextlib.suppress(OSError):
            base.mkdir(parents=True, exist_ok=True)
            if os.access(base, os.W_OK):
                return base / f"robotmia-frames-{digest}.lock"
    return Path(tempfile.gettempdir()) / f"robotmia-frames-{digest}.lock"


@contextlib.contextmanager
def writer_lock(location: Location) -> Iterator[None]:
    """Hold the dataset's writer lock; a second writer waits, then fails clearly.

    Locally it is a file lock (:func:`lock_path`); on object storage (any other
    filesystem) a lease object beside the dataset, created by a conditional write
    (:class:`~robotmia_frames.sinks._lease.Lease`). The wait is
    ``ROBOTMIA_LOCK_TIMEOUT`` seconds (default 600).

    Example:
        >>> with writer_lock(locate("memory://docs/locked")):
        ...     pass
    """
    timeout = _lock_timeout()
    if not location.local:
        from ._lease import Lease

        with Lease(location.fs, location.path, url=location.url).held(timeout):
            yield
        return
    from filelock import FileLock, Timeout

    path = lock_path(location)
    lock = FileLock(str(path), timeout=timeout)
    try:
        lock.acquire()
    except Timeout:
        raise InvalidArgumentError(
            f"the dataset {location.url} is being written by another process "
            f"(lock {path}); waited {timeout:g} s. Let the other run finish, or "
            f"wait longer with {LOCK_TIMEOUT_ENV}=<seconds>"
        ) from None
    try:
        yield
    finally:
        lock.release()


def upload_checked(source: str, target: str, fs: pafs.FileSystem) -> None:
    """Upload the local file ``source`` to ``target`` through a pyarrow filesystem,
    and check that it landed: ``pyarrow.fs.copy_files`` logs the error of a failed
    part and returns as if the object had been written. A failed multipart upload is
    never completed, so the old object stays; the check (the object's size and last
    64 KiB, the Parquet footer, against the file's) turns that into an error. The
    pending upload itself is left to the bucket's lifecycle rules: pyarrow cannot
    abort one."""
    import pyarrow.fs as pafs

    pafs.copy_files(source, target, destination_filesystem=fs)
    size = os.path.getsize(source)
    tail = min(size, 64 << 10)
    with open(source, "rb") as f:
        f.seek(size - tail)
        want = f.read()
    try:
        with fs.open_input_file(target) as obj:
            got_size = obj.size()
            got = obj.read_at(tail, got_size - tail) if got_size >= tail else b""
    except OSError as exc:
        raise OSError(exc.errno, f"uploading {target} failed: {exc}") from exc
    if got_size != size or got != want:
        raise OSError(
            f"uploading {target} failed: the object there is not the day just written "
            "(a part of the upload failed); the day's previous object, if any, is intact"
        )


def arrow_filesystem(fs: Any) -> Any:
    """A pyarrow filesystem for an fsspec one (the wrapped one for pyarrow's own)."""
    from fsspec.implementations.arrow import ArrowFSWrapper
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    if isinstance(fs, ArrowFSWrapper):
        return fs.fs
    return PyFileSystem(FSSpecHandler(fs))
