"""Shared fixtures for the end-to-end tests: a real export server on loopback.

Hypothesis strategies live in ``tests/strategies.py``, not here.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from hypothesis import settings

from robotmia_frames.emulator import ExportServer

# Hypothesis' per-example deadline is a timed assert: on a loaded machine it fails
# examples that are right. Speed is measured by benchmarks/, not by tests.
settings.register_profile("no-deadline", deadline=None)
settings.load_profile("no-deadline")

#: The API secret every test server expects (long and distinctive, so that a test can
#: look for it in messages, logs and files).
SECRET = "e2e-secret-4b7f0c9a1d"


@pytest.fixture
def secret() -> str:
    """The API secret the ``server`` fixture's servers accept."""
    return SECRET


@pytest.fixture(autouse=True)
def _hermetic_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's robotmia settings (tests set them explicitly)."""
    monkeypatch.delenv("ROBOTMIA_API_SECRET", raising=False)
    monkeypatch.delenv("ROBOTMIA_PROJECT_TIMEZONE", raising=False)


ServerFactory = Callable[..., ExportServer]


@pytest.fixture
def server() -> Iterator[ServerFactory]:
    """Start :class:`ExportServer` instances on 127.0.0.1; all are stopped afterwards.

    ``server(events, **kwargs)``: ``api_secret`` defaults to :data:`SECRET`.
    """
    started: list[ExportServer] = []

    def start(events: Iterable[dict[str, Any]] | None = None, **kwargs: Any) -> ExportServer:
        kwargs.setdefault("api_secret", SECRET)
        srv = ExportServer(events, **kwargs).start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


def local_seconds(day: str | dt.date, seconds_into_day: float = 0.0) -> float:
    """Project-local export seconds, ``seconds_into_day`` after local midnight of ``day``.

    (Imported by other test modules: ``from tests.conftest import local_seconds``.)
    """
    d = dt.date.fromisoformat(day) if isinstance(day, str) else day
    return (d - dt.date(1970, 1, 1)).days * 86400 + seconds_into_day


_MOTO_CHILD = """
import sys
from moto.server import ThreadedMotoServer
srv = ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False)
srv.start()
print("ready", flush=True)
sys.stdin.read()  # until the parent closes it (or dies)
srv.stop()
"""


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """An S3 API server on 127.0.0.1 (moto's ``ThreadedMotoServer``, a free port).

    It runs in a child process: ``deltalake`` holds the GIL in some calls (a table's
    ``history()``), which would starve a server thread of this process and hang.
    """
    import socket
    import subprocess
    import sys

    pytest.importorskip("moto.server")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    proc = subprocess.Popen(
        [sys.executable, "-c", _MOTO_CHILD, str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield f"http://127.0.0.1:{port}"
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture
def bucket(s3_endpoint: str) -> str:
    """A new, empty bucket on the ``s3_endpoint`` server (keys of ``tests.test_storage``)."""
    import uuid

    s3fs = pytest.importorskip("s3fs")
    name = f"b-{uuid.uuid4().hex[:12]}"
    creator = s3fs.S3FileSystem(
        key="testing-key",
        secret="testing-secret",
        endpoint_url=s3_endpoint,
        skip_instance_cache=True,
    )
    creator.mkdir(name)  # us-east-1: no location constraint
    return name


def wait_until(condition: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    """Poll ``condition`` until it is true; fail naming ``what`` after ``timeout`` seconds.

    The timeout only guards against a hang (a loaded machine never comes near it): a
    test orders events by waiting for them, never by sleeping a guessed time.
    (Imported by other test modules: ``from tests.conftest import wait_until``.)
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {timeout:g} s for {what}")
        time.sleep(0.01)


def release_when(condition: Callable[[], object], gate: threading.Event) -> threading.Thread:
    """Set ``gate`` (e.g. a ``Fault.hold``) from a background thread once ``condition``
    holds (or after the hang guard of :func:`wait_until`: the test's asserts then fail)."""

    def run() -> None:
        try:
            wait_until(condition, "the condition to release the gate")
        finally:
            gate.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def errors_at_once(call: Callable[[], object], times: int = 2) -> list[BaseException]:
    """Run ``call`` in ``times`` threads at once; the exceptions they raised (none: ``[]``).

    (Imported by other test modules: ``from tests.conftest import errors_at_once``.)
    """
    errors: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:  # collected for the caller's assertion
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(times)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def read_day(url: str, day: str = "2024-01-01", **options: Any) -> Any:
    """``rf.read_robotmia_export`` of one day from the server at ``url`` (the test
    secret, UTC), with ``options``.

    (Imported by other test modules: ``from tests.conftest import read_day``.)
    """
    import robotmia_frames as rf

    options.setdefault("api_secret", SECRET)
    options.setdefault("project_timezone", "UTC")
    return rf.read_robotmia_export(day, day, base_url=url, **options)
