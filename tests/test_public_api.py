"""The public surface: ``robotmia_frames.__all__`` is exactly what users may import,
the module functions are thin wrappers over :class:`robotmia_frames.Client`, and the
error tree is the documented one."""

from __future__ import annotations

import inspect
import types

import pandas as pd
import pyarrow as pa
import pytest

import robotmia_frames as rf
from robotmia_frames.emulator import ExportServer, generate_events

PUBLIC = {
    "APIError",
    "AuthenticationError",
    "Client",
    "DateLike",
    "ExportSummary",
    "IncompleteDownloadError",
    "InvalidArgumentError",
    "MemoryBudgetError",
    "MetaMismatchError",
    "NetworkError",
    "ParseError",
    "ProgressUpdate",
    "RateLimit",
    "RateLimiter",
    "RobotmiaError",
    "RobotmiaWarning",
    "TypeMismatchError",
    "WhereSyntaxError",
    "__version__",
    "export_to_parquet",
    "read_export_file",
    "read_parquet_dataset",
    "read_robotmia_export",
    "read_robotmia_profiles",
    "sync_to_parquet",
    "validate_where",
}


def test_all_is_pinned_and_sorted() -> None:
    assert set(rf.__all__) == PUBLIC
    assert list(rf.__all__) == sorted(rf.__all__)
    for name in rf.__all__:
        assert hasattr(rf, name), name


def test_nothing_public_outside_all() -> None:
    """Every public attribute of the package is in ``__all__`` or is a subpackage."""
    extra = {
        n
        for n, v in vars(rf).items()
        if not n.startswith("_") and n not in rf.__all__ and not isinstance(v, types.ModuleType)
    }
    assert extra == set()


def test_error_tree() -> None:
    for exc in (
        rf.AuthenticationError,
        rf.APIError,
        rf.IncompleteDownloadError,
        rf.NetworkError,
        rf.ParseError,
        rf.InvalidArgumentError,
        rf.MetaMismatchError,
        rf.MemoryBudgetError,
        rf.WhereSyntaxError,
    ):
        assert issubclass(exc, rf.RobotmiaError), exc
    assert issubclass(rf.InvalidArgumentError, ValueError)
    assert issubclass(rf.WhereSyntaxError, rf.InvalidArgumentError)
    assert issubclass(rf.RobotmiaWarning, UserWarning)
    assert issubclass(rf.MemoryBudgetError, MemoryError)


def test_bad_arguments_are_robotmia_errors() -> None:
    with pytest.raises(rf.RobotmiaError, match="from_date"):
        rf.read_robotmia_export("2024-02-01", "2024-01-01", api_secret="s", project_timezone="UTC")


@pytest.mark.parametrize(
    "name", ["read_robotmia_export", "export_to_parquet", "sync_to_parquet", "read_export_file"]
)
def test_module_functions_match_client_methods(name: str) -> None:
    """Each module function takes the client's settings plus its method's keywords."""
    func = inspect.signature(getattr(rf, name)).parameters
    method = inspect.signature(getattr(rf.Client, name)).parameters
    settings = inspect.signature(rf.Client).parameters
    for p in method:
        if p != "self":
            assert p in func, (name, p)
    for p in func:
        assert p in method or p in settings, (name, p)


def test_client_holds_settings_once(tmp_path) -> None:
    events = generate_events(30, days=3)
    with ExportServer(events, api_secret="s3cret") as srv:
        client = rf.Client(api_secret="s3cret", project_timezone="UTC", base_url=srv.url)
        df = client.read_robotmia_export("2024-01-01", "2024-01-03")
        table = client.read_robotmia_export("2024-01-01", "2024-01-03", return_type="arrow")
        summary = client.export_to_parquet(tmp_path / "ds", "2024-01-01", "2024-01-03")
    assert isinstance(df, pd.DataFrame) and isinstance(table, pa.Table)
    assert len(df) == table.num_rows == summary.rows == 30
    back = client.read_parquet_dataset(tmp_path / "ds")
    assert len(back) == 30
    assert "s3cret" not in repr(client)


def test_client_checks_settings_at_construction() -> None:
    with pytest.raises(rf.InvalidArgumentError, match="timeout"):
        rf.Client(timeout=-1)
    with pytest.raises(rf.InvalidArgumentError, match="http://"):
        rf.Client(base_url="http://example.com/api/2.0/export/")
    with pytest.raises(rf.InvalidArgumentError, match="concurrency"):
        rf.Client(concurrency=0)


def test_base_url_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    events = generate_events(10, days=1)
    with ExportServer(events, api_secret="s") as srv:
        monkeypatch.setenv("ROBOTMIA_BASE_URL", srv.url)
        monkeypatch.setenv("ROBOTMIA_API_SECRET", "s")
        df = rf.read_robotmia_export("2024-01-01", "2024-01-01", project_timezone="UTC")
    assert len(df) == 10


def _keywords(func: object, *skip: str) -> set[str]:
    params = inspect.signature(func).parameters.values()  # type: ignore[arg-type]
    return {p.name for p in params if p.kind is p.KEYWORD_ONLY and p.name not in skip}


@pytest.mark.parametrize(
    ("typed", "func"),
    [
        ("ClientSettings", rf.Client),
        ("ClientReadRobotmiaExport", rf.Client.read_robotmia_export),
        ("ClientExportToParquet", rf.Client.export_to_parquet),
        ("ClientReadExportFile", rf.Client.read_export_file),
        ("ClientReadParquetDataset", rf.Client.read_parquet_dataset),
        ("ClientReadRobotmiaProfiles", rf.Client.read_robotmia_profiles),
        ("ApiReadRobotmiaExport", rf.read_robotmia_export),
        ("ApiExportToParquet", rf.export_to_parquet),
        ("ClientReadExportFile", rf.read_export_file),
        ("ClientReadParquetDataset", rf.read_parquet_dataset),
        ("ApiReadRobotmiaProfiles", rf.read_robotmia_profiles),
    ],
)
def test_overload_keywords_are_the_signatures(typed: str, func: object) -> None:
    """The TypedDicts of the ``@overload`` s name exactly the keywords of their function."""
    from robotmia_frames import _typing

    td = getattr(_typing, typed)
    keys = set(td.__required_keys__) | set(td.__optional_keys__)
    assert keys == _keywords(func, "return_type", "split_by", "plan")


@pytest.mark.parametrize(
    ("export", "read"),
    [
        (rf.export_to_parquet, rf.read_robotmia_export),
        (rf.Client.export_to_parquet, rf.Client.read_robotmia_export),
    ],
)
def test_export_to_parquet_takes_every_read_keyword(export: object, read: object) -> None:
    """design.md §3: ``export_to_parquet`` takes ``read_robotmia_export``'s keywords,
    less ``parquet_path`` and ``return_type``, with the same defaults."""
    wanted = _keywords(read, "parquet_path", "return_type")
    have = _keywords(export)
    assert wanted <= have, sorted(wanted - have)
    ours = inspect.signature(export).parameters  # type: ignore[arg-type]
    theirs = inspect.signature(read).parameters  # type: ignore[arg-type]
    assert {k: ours[k].default for k in wanted} == {k: theirs[k].default for k in wanted}
