"""``robotmia-frames inspect`` on a dataset on object storage (an S3 API server on
loopback, credentials from the ``AWS_*`` environment) and on Delta tables: the real
command in a subprocess, compared with the same export inspected on local disk."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

import robotmia_frames as rf
from robotmia_frames.emulator import generate_events
from tests.conftest import SECRET, ServerFactory
from tests.test_cli import run_cli
from tests.test_storage import KEY, REGION, SECRET_KEY, _kw, _options

pytest.importorskip("moto.server")
pytest.importorskip("deltalake")


def _aws_env(endpoint: str) -> dict[str, str]:
    """The environment that points the command's S3 client at the server at ``endpoint``."""
    return {
        "AWS_ACCESS_KEY_ID": KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": endpoint,
    }


def _inspect(source: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    proc = run_cli("inspect", source, "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert isinstance(doc, dict)
    return doc


def _same(doc: dict[str, Any]) -> dict[str, Any]:
    """What must not depend on where or how the dataset is stored."""
    keys = ("kind", "rows", "days", "rows_per_day", "time_min", "time_max", "columns")
    return {k: doc[k] for k in keys}


def test_inspect_s3_and_delta_datasets(
    server: ServerFactory, s3_endpoint: str, bucket: str, tmp_path: Path
) -> None:
    events = generate_events(90, days=3)
    events.append({"event": "late", "properties": {"time": events[0]["properties"]["time"]}})
    srv = server(events, project_timezone="UTC")
    aws = _aws_env(s3_endpoint)
    opts = _options(s3_endpoint)
    kw = _kw(srv, project_timezone="UTC")
    local = tmp_path / "hive"
    rf.export_to_parquet(local, "2024-01-01", "2024-01-03", **kw)
    targets: list[tuple[str, str | None]] = [
        (f"s3://{bucket}/hive", None),
        (str(tmp_path / "delta"), "delta"),
        (f"s3://{bucket}/delta", "delta"),
    ]
    for target, fmt in targets:
        where = opts if target.startswith("s3://") else None
        rf.export_to_parquet(
            target, "2024-01-01", "2024-01-03", table_format=fmt, storage_options=where, **kw
        )
    want = _same(_inspect(str(local)))
    assert want["rows"] == 91 and want["days"] == 3
    env = {**{k: v for k, v in os.environ.items() if k.startswith("PYTHON")}, **aws}
    for target, fmt in targets:
        doc = _inspect(target, env)
        assert _same(doc) == want, target
        assert doc["source"] == target
        assert doc["files"] == 3 and doc["bytes"] > 0
        assert ("table format: delta" in doc["notes"]) == (fmt == "delta")
    # and as text
    proc = run_cli("inspect", f"s3://{bucket}/delta", env=env)
    assert proc.returncode == 0, proc.stderr
    assert f"dataset: s3://{bucket}/delta" in proc.stdout
    assert "rows: 91 over 3 days" in proc.stdout
    assert "table format: delta" in proc.stdout
    assert SECRET_KEY not in proc.stdout + proc.stderr


def test_inspect_a_missing_remote_dataset_is_a_clear_error(s3_endpoint: str, bucket: str) -> None:
    proc = run_cli("inspect", f"s3://{bucket}/nothing", env=_aws_env(s3_endpoint))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"error: no dataset at s3://{bucket}/nothing")
    assert "Traceback" not in proc.stderr
    assert SECRET not in proc.stderr
