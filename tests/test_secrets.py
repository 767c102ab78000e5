"""Secret hygiene: the API secret never shows up in logs, errors, reprs, the CLI's
output, the cache, the dataset or the sync state.

Each test looks for the secret itself and for its HTTP Basic form (the base64 of
``secret:``), which is what the Authorization header carries.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import inspect
import io
import logging
import socket
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

import robotmia_frames as rf
from robotmia_frames import _progress, cli, transport
from robotmia_frames.emulator import ExportServer, Fault
from tests.conftest import SECRET, ServerFactory, local_seconds

START = dt.date(2024, 1, 1)
EVENTS = [
    {
        "event": "open",
        "properties": {
            "time": local_seconds(START + dt.timedelta(days=d), 60 * i),
            "distinct_id": f"u{i}",
            "$insert_id": f"{d}-{i}",
        },
    }
    for d in range(2)
    for i in range(30)
]


def forms(secret: str) -> list[str]:
    """The secret as it could leak: itself and its Basic-auth header token."""
    token = base64.b64encode(f"{secret}:".encode()).decode()
    return [secret, token, token.rstrip("=")]


def assert_clean(*texts: object, secret: str = SECRET) -> None:
    for text in texts:
        shown = text.decode("latin-1") if isinstance(text, bytes) else str(text)
        for form in forms(secret):
            assert form not in shown, f"secret leaked into: {shown[:300]!r}"


def chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, its causes, contexts and exceptions in args, each once."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        cur = todo.pop()
        if id(cur) in seen:
            continue
        seen.add(id(cur))
        yield cur
        todo += [a for a in cur.args if isinstance(a, BaseException)]
        todo += [e for e in (cur.__cause__, cur.__context__) if e is not None]


def exception_texts(exc: BaseException) -> list[str]:
    texts = ["".join(traceback.format_exception(exc))]
    for cur in chain(exc):
        texts += [str(cur), repr(cur), *map(repr, cur.args)]
        texts += [repr(v) for v in vars(cur).values()]
    return texts


def read(srv: ExportServer, **kw: Any) -> Any:
    kw.setdefault("api_secret", SECRET)
    kw.setdefault("project_timezone", "UTC")
    kw.setdefault("base_url", srv.url)
    kw.setdefault("retry_backoff", 0.01)
    kw.setdefault("progress", False)
    return rf.read_robotmia_export(START, START + dt.timedelta(days=1), **kw)


def files_of(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    for name in ("", "robotmia_frames", "urllib3", "requests"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def log_texts(caplog: pytest.LogCaptureFixture) -> list[str]:
    formatter = logging.Formatter("%(name)s %(message)s")
    out = []
    for record in caplog.records:
        out.append(formatter.format(record))  # the message, args and any traceback
        out.append(repr(record.args))
    return out


# ------------------------------------------------------------------ logs and errors


def test_debug_logs_and_errors_never_carry_the_secret(
    server: ServerFactory, debug_logs: pytest.LogCaptureFixture
) -> None:
    srv = server(EVENTS)
    tls = server(EVENTS, tls=True)
    errors: list[BaseException] = []

    def failing(srv: ExportServer, **kw: Any) -> None:
        with pytest.raises(rf.RobotmiaError) as info:
            read(srv, **kw)
        errors.append(info.value)
        srv.clear_faults()

    assert len(read(srv)) == 60  # a clean run, logged at DEBUG
    srv.add_fault(Fault(status=500, times=2))
    srv.add_fault(Fault(reset=True))
    srv.add_fault(Fault(truncate_at=50))
    srv.add_fault(Fault(status=429, retry_after=0.01))
    assert len(read(srv, concurrency=1)) == 60  # every retry is logged
    srv.add_fault(Fault(status=400, message=f"bad request from {SECRET}", times=99))  # echoed
    failing(srv=srv, max_retries=0)
    srv.add_fault(Fault(status=403, times=99))
    failing(srv=srv)
    failing(srv=srv, api_secret=SECRET + "-wrong")  # a 401: neither secret is shown
    srv.add_fault(Fault(status=503, message=SECRET, times=99))
    failing(srv=srv, max_retries=1)
    srv.add_fault(Fault(reset=True, times=99))
    failing(srv=srv, max_retries=1)
    srv.add_fault(Fault(terminated_early=True, times=99))
    failing(srv=srv, max_retries=1)
    srv.add_fault(Fault(redirect=f"http://localhost:{srv.port}/api/2.0/export/", times=99))
    failing(srv=srv)
    srv.add_fault(Fault(garbage=b"not json\n", content_encoding="", times=99))
    failing(srv=srv)
    failing(srv=tls)  # certificate verification failure
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    failing(srv=srv, base_url=f"http://127.0.0.1:{port}/api/2.0/export/", max_retries=1)

    kinds = {type(e).__name__ for e in errors}
    assert kinds >= {"APIError", "AuthenticationError", "NetworkError", "IncompleteDownloadError"}
    assert any(isinstance(e, rf.APIError) and e.server_message for e in errors)
    texts = [t for e in errors for t in exception_texts(e)]
    logs = log_texts(debug_logs)
    assert any(r.name.startswith("urllib3") for r in debug_logs.records)  # really at DEBUG
    assert any("retrying" in t for t in logs)
    assert_clean(*texts, *logs)
    assert_clean(*texts, *logs, secret=SECRET + "-wrong")


def test_secret_in_the_url_is_masked() -> None:
    secret = f"url-secret-{uuid.uuid4().hex}"  # never seen (registered) before
    for url in (
        f"http://user:{secret}@data.robotmia.com/api/2.0/export/",
        f"http://{secret}@data.robotmia.com/api/2.0/export/",
        f"http://data.robotmia.com/api/2.0/export/?key={secret}",
    ):
        with pytest.raises(ValueError) as info:
            rf.read_robotmia_export(
                "2024-01-01", "2024-01-01", api_secret=secret, project_timezone="UTC",
                base_url=url,
            )  # fmt: skip
        assert_clean(*exception_texts(info.value), secret=secret)


def test_missing_or_invalid_arguments_do_not_echo_the_secret() -> None:
    for kw in (
        {"project_timezone": "Not/AZone"},
        {"project_timezone": "UTC", "event": []},
        {"project_timezone": "UTC", "region": "mars"},
        {"project_timezone": "UTC", "where": "properties["},
    ):
        with pytest.raises(ValueError) as info:
            rf.read_robotmia_export("2024-01-01", "2024-01-01", api_secret=SECRET, **kw)
        assert_clean(*exception_texts(info.value))


# ------------------------------------------------------------------ reprs


def test_reprs_of_public_objects(server: ServerFactory, tmp_path: Path) -> None:
    srv = server(EVENTS)
    updates: list[Any] = []
    plan = _plan(
        START, START, api_secret=SECRET, project_timezone="UTC", base_url=srv.url,
        cache_dir=tmp_path / "cache", progress=updates.append,
        rate_limit=rf.RateLimit(per_second=10),
    )  # fmt: skip
    config = plan.config
    request = plan.request(START)
    result = transport.download_window(config, request, tmp_path / "w.jsonl.gz")
    cache = transport.WindowCache(tmp_path / "cache")
    cache.record(config.base_url, result)
    summary = rf.export_to_parquet(
        tmp_path / "ds", START, START, api_secret=SECRET, project_timezone="UTC",
        base_url=srv.url, progress=False,
    )  # fmt: skip
    objects: list[object] = [
        config,
        dataclasses.replace(config, read_timeout=5.0),
        plan,
        plan.limiter,
        plan.limiter.limit,
        plan.progress,
        request,
        result,
        cache,
        cache.lookup(config.base_url, request),
        summary,
        transport.RetryEvent(1, 0.5, "HTTP 500", 500),
        _progress.ProgressUpdate(1, 2, 3, 4, 0.0),
        srv,
        *srv.requests,
        Fault(status=500),
        transport.AttemptFailed("auth", "HTTP 401", retryable=False, status_code=401),
    ]
    texts = []
    for obj in objects:
        texts += [repr(obj), str(obj)]
    assert "api_secret='***'" in repr(config)
    assert_clean(*texts)


# ------------------------------------------------------------------ the CLI


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROBOTMIA_API_SECRET", SECRET)
    monkeypatch.setenv("ROBOTMIA_PROJECT_TIMEZONE", "UTC")


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    out = io.StringIO()
    code = cli.main(args, out=out)
    captured = capsys.readouterr()
    return code, out.getvalue() + captured.out + captured.err


def test_cli_output_never_shows_the_secret(
    server: ServerFactory,
    tmp_path: Path,
    cli_env: None,
    capsys: pytest.CaptureFixture[str],
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    srv = server(EVENTS)
    tls = server(EVENTS, tls=True)
    base = ["export", "2024-01-01", "2024-01-02", "--out", str(tmp_path / "ds")]
    outputs = []
    code, text = run_cli([*base, "--base-url", srv.url], capsys)
    assert code == 0 and "wrote 60 rows" in text
    outputs.append(text)
    srv.add_fault(Fault(status=400, message=f"echo {SECRET}"))
    code, text = run_cli(["--debug", *base, "--base-url", srv.url], capsys)
    assert code == 4 and "Traceback" in text
    outputs.append(text)
    srv.add_fault(Fault(status=401))
    code, text = run_cli(["--debug", *base, "--base-url", srv.url], capsys)
    assert code == 3
    outputs.append(text)
    code, text = run_cli(["--debug", *base, "--base-url", tls.url], capsys)  # no CA bundle
    assert code == 5 and "certificate" in text
    outputs.append(text)
    code, text = run_cli([*base, "--base-url", tls.url, "--ca-bundle", str(tls.ca_bundle)], capsys)
    assert code == 0
    outputs.append(text)
    remote = f"http://u:{SECRET}@example.com/api/2.0/export/"
    code, text = run_cli([*base, "--base-url", remote], capsys)
    assert code == 2
    outputs.append(text)
    assert_clean(*outputs, *log_texts(debug_logs))


# ------------------------------------------------------------------ files


def test_cache_dataset_and_sync_state_never_hold_the_secret(
    server: ServerFactory, tmp_path: Path
) -> None:
    srv = server(EVENTS)
    cache, ds, synced = tmp_path / "cache", tmp_path / "ds", tmp_path / "synced"
    kw: dict[str, Any] = dict(
        api_secret=SECRET, project_timezone="UTC", base_url=srv.url, progress=False
    )
    read(srv, cache_dir=cache, parquet_path=tmp_path / "via-read")
    rf.export_to_parquet(ds, START, START + dt.timedelta(days=1), cache_dir=cache, **kw)
    rf.export_to_parquet(
        tmp_path / "by-event", START, START, partition_by=("date", "event"), dedupe=True, **kw
    )
    rf.sync_to_parquet(synced, from_date=START, to_date=START + dt.timedelta(days=1), **kw)
    srv.add_fault(Fault(status=500, times=99))
    with contextlib.suppress(rf.APIError):
        rf.export_to_parquet(ds, START, START, max_retries=1, retry_backoff=0.01, **kw)

    manifest = cache / transport._cache.MANIFEST
    assert manifest.is_file() and not (synced / "_robotmia").exists()  # state: in footers
    files = [*files_of(cache), *files_of(tmp_path / "via-read"), *files_of(ds)]
    files += [*files_of(tmp_path / "by-event"), *files_of(synced)]
    parquet = [p for p in files if p.suffix == ".parquet"]
    assert len(parquet) >= 6 and len(files) > len(parquet)
    assert_clean(*(p.read_bytes() for p in files), *(str(p) for p in files))
    for p in parquet:
        meta = pq.read_metadata(p)
        assert_clean(str(meta.metadata), str(pq.read_schema(p)), str(meta))
    # Cached bodies are the server's bytes, still compressed: check them inflated too.
    import gzip

    assert_clean(*(gzip.decompress(p.read_bytes()) for p in cache.glob("*.jsonl.gz")))


def _plan(from_date: str, to_date: str, **kw: Any) -> Any:
    """The checked plan of an export, as the client builds it."""
    settings = inspect.signature(rf.Client).parameters
    client = rf.Client(**{k: v for k, v in kw.items() if k in settings})
    call = {k: v for k, v in kw.items() if k not in settings}
    return client._conn.plan(from_date, to_date, **call)
