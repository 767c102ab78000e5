"""``read_parquet_dataset(path, where=...)`` on a 1,000,000-row dataset, against the
same filter hand-written in pandas on ``pandas.read_parquet`` (issue 6).

The dataset (10 days of 100,000 generated events, project timezone New York, ~1% of
values with a type conflict, as real projects have) is exported once from the
emulator over loopback with ``export_to_parquet`` and cached in ``bench-data/``.
Each measurement is the best of ``--repeat`` runs, in this process; both sides
return a pandas DataFrame with every column.

    python benchmarks/bench_where.py
    python benchmarks/bench_where.py --rows 200000 --repeat 3
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import DATA, machine

import robotmia_frames as rf
from robotmia_frames.emulator import ExportServer, GeneratorConfig
from robotmia_frames.where import compile_where

SECRET = "bench-secret"
TZ = "America/New_York"
DAYS = 10


def dataset(rows: int) -> Path:
    """The cached dataset of ``rows`` events (exported over loopback if missing)."""
    root = DATA / f"where-{rows}"
    done = root / "_robotmia" / "bench-complete"
    if done.exists():
        return root
    per_day = -(-rows // DAYS)
    gen = GeneratorConfig(events_per_day=per_day, seed=6, from_date="2024-01-01",
                          to_date=f"2024-01-{DAYS:02d}")  # fmt: skip
    t = time.perf_counter()
    with ExportServer(api_secret=SECRET, generate=gen, compresslevel=1, project_timezone=TZ) as srv:
        summary = rf.export_to_parquet(root, "2024-01-01", f"2024-01-{DAYS:02d}", api_secret=SECRET,
                                       project_timezone=TZ, base_url=srv.url, concurrency=2)  # fmt: skip
    done.parent.mkdir(parents=True, exist_ok=True)
    done.write_text(str(summary.rows))
    print(f"# exported {summary.rows:,} rows in {time.perf_counter() - t:.1f} s to {root}")
    return root


def _utc(local: str) -> pd.Timestamp:
    return pd.Timestamp(local, tz=TZ).tz_convert("UTC")


def pandas_os_plan(df: pd.DataFrame) -> pd.DataFrame:
    m = (df["properties.$os"] == "iOS") & df["properties.Plan"].isin(["pro", "business"])
    return df[m.fillna(False).astype(bool)]


def pandas_time_load(df: pd.DataFrame) -> pd.DataFrame:
    load = pd.to_numeric(df["properties.Load time"], errors="coerce")
    t = df["time"]
    m = (t >= _utc("2024-01-03 09:00")) & (t < _utc("2024-01-05 17:00")) & (load > 2.5)
    return df[m.fillna(False).astype(bool)]


def pandas_lists(df: pd.DataFrame) -> pd.DataFrame:
    tags = df["properties.Tags"].explode()
    sale = (tags == "sale").fillna(False).astype(bool).groupby(level=0).any()
    qty = pd.to_numeric(df["properties.Item quantities"].explode(), errors="coerce")
    big = (qty >= 4).fillna(False).astype(bool).groupby(level=0).any()
    return df[(sale | big).reindex(df.index, fill_value=False)]


CASES: list[tuple[str, str, Callable[[pd.DataFrame], pd.DataFrame]]] = [
    (
        "strings",
        'properties["$os"] == "iOS" and properties["Plan"] in ["pro", "business"]',
        pandas_os_plan,
    ),
    (
        "time + mixed column",
        'event["$time"] >= datetime("2024-01-03T09:00:00") and '
        'event["$time"] < datetime("2024-01-05T17:00:00") and properties["Load time"] > 2.5',
        pandas_time_load,
    ),
    (
        "lists",
        '"sale" in properties["Tags"] or any(X, properties["Item quantities"], X >= 4)',
        pandas_lists,
    ),
]


def best(fn: Callable[[], pd.DataFrame], repeat: int) -> tuple[float, int]:
    times = []
    n = 0
    for _ in range(repeat):
        t = time.perf_counter()
        n = len(fn())
        times.append(time.perf_counter() - t)
    return min(times), n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    root = dataset(args.rows)
    files = sorted(root.rglob("*.parquet"))
    print(f"# {machine()}")
    print(f"# dataset: {args.rows:,} rows, {len(files)} files, {DAYS} days, timezone {TZ}")
    t_read, n_all = best(lambda: pd.read_parquet(root), args.repeat)
    print(f"# pandas.read_parquet alone: {t_read:.2f} s for {n_all:,} rows")
    header = f"{'case':<22}{'rows kept':>11}{'where= s':>10}{'pandas s':>10}{'pandas/where':>14}"
    print(header)
    for name, where, by_hand in CASES:
        compiled = compile_where(where, _schema(files[0]), project_timezone=TZ)
        t_where, n_where = best(lambda w=where: rf.read_parquet_dataset(root, where=w), args.repeat)
        t_pandas, n_pandas = best(lambda f=by_hand: f(pd.read_parquet(root)), args.repeat)
        same = "" if n_where == n_pandas else f"  (pandas kept {n_pandas:,})"
        print(f"{name:<22}{n_where:>11,}{t_where:>10.2f}{t_pandas:>10.2f}"
              f"{t_pandas / t_where:>13.2f}x{same}")  # fmt: skip
        pushed = "pushed down" if compiled.expression is not None else "nothing pushed"
        resid = ", residual" if compiled.has_residual else ""
        print(f"{'':<22}  {where}\n{'':<22}  ({pushed}{resid})")


def _schema(path: Path) -> object:
    import pyarrow.parquet as pq

    return pq.read_schema(path)


if __name__ == "__main__":
    main()
