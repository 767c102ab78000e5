"""One writer at a time on object storage: the lease object, against an S3 API server
on loopback (moto's ``ThreadedMotoServer``; conditional PUTs with ``If-None-Match``
and ``If-Match`` over HTTP through s3fs)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

import robotmia_frames as rf
from robotmia_frames import sinks
from robotmia_frames.emulator import generate_events
from tests.conftest import ServerFactory, errors_at_once
from tests.test_storage import _kw, _options, _s3fs

pytest.importorskip("moto.server")


def _location(endpoint: str, bucket: str) -> sinks.Location:
    return sinks.locate(f"s3://{bucket}/events", storage_options=_options(endpoint))


def _lease(location: sinks.Location, **kw: Any) -> sinks.Lease:
    return sinks.Lease(location.fs, location.path, url=location.url, **kw)


def _holder(endpoint: str, bucket: str) -> dict[str, Any]:
    doc = json.loads(_s3fs(endpoint).cat_file(f"{bucket}/.events.robotmia-lease"))
    assert isinstance(doc, dict)
    return doc


def test_the_lease_is_created_by_a_conditional_put(s3_endpoint: str, bucket: str) -> None:
    location = _location(s3_endpoint, bucket)
    first, second = _lease(location), _lease(location)
    assert type(first.store).__name__ == "_S3Store" and first.store.atomic
    first.acquire(timeout=0)
    assert _holder(s3_endpoint, bucket)["owner"] == first.owner
    with pytest.raises(rf.InvalidArgumentError, match="being written by another process"):
        second.acquire(timeout=0.3)
    assert _holder(s3_endpoint, bucket)["owner"] == first.owner  # never overwritten
    first.release()
    assert not _s3fs(s3_endpoint).exists(f"{bucket}/.events.robotmia-lease")
    second.acquire(timeout=0)
    assert _holder(s3_endpoint, bucket)["owner"] == second.owner
    second.release()


def test_a_second_writer_waits_then_fails_and_keeps_the_first_ones_work(
    server: ServerFactory, s3_endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = server(generate_events(40, days=2), project_timezone="UTC")
    url = f"s3://{bucket}/events"
    kw = _kw(srv, project_timezone="UTC", storage_options=_options(s3_endpoint))
    rf.export_to_parquet(url, "2024-01-01", "2024-01-02", **kw)
    before = rf.read_parquet_dataset(url, storage_options=_options(s3_endpoint))
    srv.clear_requests()
    monkeypatch.setenv(sinks.LOCK_TIMEOUT_ENV, "0.5")
    location = _location(s3_endpoint, bucket)
    with sinks.writer_lock(location):
        holder = _holder(s3_endpoint, bucket)
        with pytest.raises(rf.InvalidArgumentError) as info:
            rf.export_to_parquet(url, "2024-01-01", "2024-01-02", **kw)
        message = str(info.value)
        assert "being written by another process" in message
        assert f"{bucket}/.events.robotmia-lease" in message
        assert "ROBOTMIA_LOCK_TIMEOUT" in message
        with pytest.raises(rf.InvalidArgumentError, match="ROBOTMIA_LOCK_TIMEOUT"):
            rf.sync_to_parquet(url, "2024-01-01", "2024-01-02", **kw)
        assert srv.requests == []  # refused before any request
        assert _holder(s3_endpoint, bucket)["owner"] == holder["owner"]
    after = rf.read_parquet_dataset(url, storage_options=_options(s3_endpoint))
    assert after.equals(before)
    keys = sorted(_s3fs(s3_endpoint).find(bucket))
    assert keys == [f"{bucket}/events/date=2024-01-0{d}/part-0.parquet" for d in (1, 2)]


def test_two_writers_at_once_both_finish(
    server: ServerFactory, s3_endpoint: str, bucket: str, tmp_path: Path
) -> None:
    srv = server(generate_events(60, days=3), project_timezone="UTC")
    url = f"s3://{bucket}/events"
    kw = _kw(srv, project_timezone="UTC", storage_options=_options(s3_endpoint))
    errors = errors_at_once(lambda: rf.export_to_parquet(url, "2024-01-01", "2024-01-03", **kw))
    assert errors == []
    clean = rf.export_to_parquet(
        tmp_path / "clean", "2024-01-01", "2024-01-03", **_kw(srv, project_timezone="UTC")
    )
    got = rf.read_parquet_dataset(url, storage_options=_options(s3_endpoint))
    want = rf.read_parquet_dataset(clean.path)
    key = ["properties.$insert_id"]
    assert sorted(got[key[0]]) == sorted(want[key[0]])
    assert not _s3fs(s3_endpoint).exists(f"{bucket}/.events.robotmia-lease")


def test_a_stale_lease_runs_out(
    server: ServerFactory, s3_endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer killed while it held the lease leaves it behind: the next writer takes
    it once it has not been renewed for its time to live."""
    srv = server(generate_events(20, days=2), project_timezone="UTC")
    url = f"s3://{bucket}/events"
    kw = _kw(srv, project_timezone="UTC", storage_options=_options(s3_endpoint))
    left = {"owner": "killed", "host": "h", "pid": 1, "renewed_at": time.time() - 600, "ttl": 60}
    _s3fs(s3_endpoint).pipe_file(f"{bucket}/.events.robotmia-lease", json.dumps(left).encode())
    monkeypatch.setenv(sinks.LOCK_TIMEOUT_ENV, "0")  # no wait needed: it ran out long ago
    assert rf.export_to_parquet(url, "2024-01-01", "2024-01-02", **kw).rows == 20
    assert not _s3fs(s3_endpoint).exists(f"{bucket}/.events.robotmia-lease")


def test_a_lease_watched_unchanged_for_its_time_runs_out_whatever_the_clocks_say(
    s3_endpoint: str, bucket: str
) -> None:
    location = _location(s3_endpoint, bucket)
    # renewed "in the future" by a clock far ahead, then its writer was killed
    left = {"owner": "killed", "renewed_at": time.time() + 3600, "ttl": 0.3}
    _s3fs(s3_endpoint).pipe_file(f"{bucket}/.events.robotmia-lease", json.dumps(left).encode())
    lease = _lease(location)
    started = time.monotonic()
    lease.acquire(timeout=120)
    assert time.monotonic() - started >= 0.3  # it waited out the lease's own time
    assert _holder(s3_endpoint, bucket)["owner"] == lease.owner
    lease.release()


def test_a_renewed_lease_stays_its_writers_and_a_release_never_deletes_anothers(
    s3_endpoint: str, bucket: str
) -> None:
    location = _location(s3_endpoint, bucket)
    first = _lease(location, ttl=600)
    first.acquire(timeout=0)
    assert first.renew() and first.renew()
    assert _holder(s3_endpoint, bucket)["renewals"] == 3
    assert _holder(s3_endpoint, bucket)["owner"] == first.owner
    # another writer takes the lease over (as if the first had stalled past its time)
    second = _lease(location, ttl=600)
    read = second.store.read()
    assert read is not None
    second._token = second.store.replace(second._body(), read[1])
    assert second._token is not None
    assert not first.renew() and first.lost  # its conditional write fails
    first.release()
    assert _holder(s3_endpoint, bucket)["owner"] == second.owner  # left in place
    second.release()
    assert not _s3fs(s3_endpoint).exists(f"{bucket}/.events.robotmia-lease")


def test_a_writer_whose_lease_was_taken_over_says_so(s3_endpoint: str, bucket: str) -> None:
    location = _location(s3_endpoint, bucket)
    first = _lease(location, ttl=600)
    with pytest.raises(rf.InvalidArgumentError, match="taken over by another writer"):  # noqa: SIM117
        with first.held(timeout=0):
            second = _lease(location, ttl=600)
            read = second.store.read()
            assert read is not None
            second._token = second.store.replace(second._body(), read[1])
            first.renew()
    assert _holder(s3_endpoint, bucket)["owner"] == second.owner
    second.release()


def test_memory_datasets_take_the_same_lease() -> None:
    location = sinks.locate("memory://lease-test/events")
    first, second = _lease(location), _lease(location)
    with first.held(timeout=0):
        assert location.fs.exists("/lease-test/.events.robotmia-lease")
        with pytest.raises(rf.InvalidArgumentError, match="being written by another process"):
            second.acquire(timeout=0.1)
    assert not location.fs.exists("/lease-test/.events.robotmia-lease")
