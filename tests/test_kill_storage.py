"""SIGKILL at random moments while a dataset is re-exported, on local disk (Hive and
Delta) and on an S3 API server on loopback (Hive and Delta): every day reads back old or new
after each kill, and a run that is not killed equals a clean run.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import robotmia_frames as rf
from robotmia_frames.emulator import ExportServer, iter_generated_events
from tests.test_storage import _options

pytest.importorskip("deltalake")

DAYS = [f"2024-01-0{i}" for i in range(1, 6)]
OLD = {"events_per_day": 300, "seed": 1}
NEW = {"events_per_day": 400, "seed": 2}

_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import robotmia_frames as rf
    url, out, fmt, opts = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    rf.export_to_parquet(out, "2024-01-01", "2024-01-05", api_secret="kill-secret",
                         project_timezone="UTC", base_url=url, concurrency=2,
                         table_format=fmt, storage_options=opts or None)
    """
)


def _ids(gen: dict[str, Any]) -> dict[str, list[str]]:
    ids: dict[str, list[str]] = {}
    for e in iter_generated_events(DAYS[0], DAYS[-1], **gen):
        day = dt.date(1970, 1, 1) + dt.timedelta(days=int(e["properties"]["time"] // 86400))
        ids.setdefault(day.isoformat(), []).append(e["properties"]["$insert_id"])
    return {k: sorted(v) for k, v in ids.items()}


def _per_day(out: str, opts: dict[str, Any] | None) -> dict[str, list[str]]:
    df = rf.read_parquet_dataset(
        out, storage_options=opts, columns=["time", "properties.$insert_id"]
    )
    days = df["time"].dt.date.astype(str)
    return {
        day: sorted(df.loc[days == day, "properties.$insert_id"].tolist())
        for day in sorted(set(days))
    }


@pytest.mark.slow
@pytest.mark.parametrize(
    ("where", "fmt"), [("local", "hive"), ("local", "delta"), ("s3", "hive"), ("s3", "delta")]
)
def test_sigkill_then_rerun_equals_a_clean_run(
    tmp_path: Path, request: pytest.FixtureRequest, where: str, fmt: str
) -> None:
    opts: dict[str, Any] | None = None
    if where == "local":
        out = str(tmp_path / "ds")
    else:
        endpoint, bucket = (request.getfixturevalue(n) for n in ("s3_endpoint", "bucket"))
        out, opts = f"s3://{bucket}/ds", _options(endpoint)
    old_ids, new_ids = _ids(OLD), _ids(NEW)
    kw: dict[str, Any] = dict(
        api_secret="kill-secret", project_timezone="UTC", progress=False, storage_options=opts
    )
    clean = str(tmp_path / "clean") if where == "local" else out + "-clean"
    with ExportServer(api_secret="kill-secret", generate=OLD) as srv:
        for target in (out, clean):  # the same history; the clean one is never killed
            rf.export_to_parquet(
                target, DAYS[0], DAYS[-1], base_url=srv.url, table_format=fmt, **kw
            )
    assert _per_day(out, opts) == old_ids
    rng = random.Random(11)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    # a killed writer's lease on object storage runs out 2 s after its last renewal
    env["ROBOTMIA_LEASE_SECONDS"] = "2"
    with ExportServer(api_secret="kill-secret", generate=NEW) as srv:
        for _ in range(3):
            proc = subprocess.Popen(
                [sys.executable, "-c", _SCRIPT, srv.url, out, fmt, json.dumps(opts or {})],
                env=env,
            )
            time.sleep(rng.uniform(0.5, 3.0))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            state = _per_day(out, opts)
            for day in DAYS:
                assert state.get(day) in (old_ids[day], new_ids[day]), day
        for target in (out, clean):
            rf.export_to_parquet(
                target, DAYS[0], DAYS[-1], base_url=srv.url, table_format=fmt, **kw
            )
    assert _per_day(out, opts) == new_ids
    got = rf.read_parquet_dataset(out, storage_options=opts)
    want = rf.read_parquet_dataset(clean, storage_options=opts)
    key = ["properties.$insert_id", "event", "time"]
    pd.testing.assert_frame_equal(
        got.sort_values(key).reset_index(drop=True),
        want.sort_values(key).reset_index(drop=True),
        check_like=True,  # the same columns; their order may follow the kills
    )
