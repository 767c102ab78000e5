"""A day upload through a ``pyarrow.fs.S3FileSystem`` that fails mid-way (the
connection to the S3 API server is cut during the multipart upload) raises, and the
day's old object stays as it was: no partial object is ever visible.

The connection is cut by a TCP relay on loopback between pyarrow and the S3 server
(moto), which forwards bytes until a limit and then drops every upload connection.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pytest

from robotmia_frames.sinks import ParquetDataset, locate
from tests.test_storage import KEY, REGION, SECRET_KEY, _options, _s3fs

pytest.importorskip("moto.server")

DAY = dt.date(2024, 1, 1)


class Relay:
    """Forwards loopback TCP connections to ``port``; once ``limit`` bytes have gone
    upstream, a chunk that is not a read or a delete closes its connection."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sent = 0
        self.limit: int | None = None
        self.cut = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.port))
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, up: bool) -> None:
        try:
            while data := src.recv(1 << 16):
                if up:
                    with self._lock:
                        over = self.limit is not None and self.sent + len(data) > self.limit
                        if over and not data.startswith((b"GET ", b"HEAD ", b"DELETE ")):
                            self.cut += 1
                            return
                        self.sent += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                s.close()

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def relay(s3_endpoint: str) -> Iterator[Relay]:
    r = Relay(int(s3_endpoint.rsplit(":", 1)[1]))
    yield r
    r.close()


def _table(rows: int, width: int) -> pa.Table:
    return pa.table(
        {
            "event": ["e"] * rows,
            "time": pa.array([0] * rows, pa.timestamp("us", tz="UTC")),
            "properties.blob": [os.urandom(width).hex() for _ in range(rows)],
        }
    )


def test_a_failed_multipart_upload_raises_and_leaves_the_old_day(
    relay: Relay, bucket: str, s3_endpoint: str
) -> None:
    fs = pafs.S3FileSystem(
        access_key=KEY,
        secret_key=SECRET_KEY,
        endpoint_override=relay.url,
        region=REGION,
        retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=2),
    )
    ds = ParquetDataset(locate(f"{bucket}/ds", filesystem=fs))
    old = _table(10, 16)
    ds.write_day(DAY, old.schema, iter(old.to_batches()))
    key = f"{bucket}/ds/date=2024-01-01/part-0.parquet"
    before = _s3fs(s3_endpoint).cat_file(key)
    relay.limit = relay.sent + (12 << 20)  # the upload of the new day is cut after 12 MiB
    new = _table(2_000, 8 << 10)  # about 32 MiB of incompressible text: several parts
    with pytest.raises(OSError, match=f"uploading {key} failed: the object there is not"):
        ds.write_day(DAY, new.schema, iter(new.to_batches()))
    assert relay.cut > 0  # the relay did cut the upload
    s3 = _s3fs(s3_endpoint)
    s3.invalidate_cache()
    assert s3.cat_file(key) == before  # the old day, whole
    assert s3.find(bucket) == [key]  # no partial or staging object
    reader: Any = ParquetDataset(locate(f"s3://{bucket}/ds", storage_options=_options(s3_endpoint)))
    assert sum(t.num_rows for t in reader.read_tables()) == 10
