"""A black-box audit of ``design.md`` clause by clause, through the public API and the
emulator only, with inputs the other tests do not use.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import pytest

from robotmia_frames.cli import main
from tests.test_cli import assert_one_line_error

# ------------------------------------------------------------------ malformed lines


def _bad_file(tmp_path: Path) -> Path:
    path = tmp_path / "bad.jsonl"
    path.write_text(
        '{"event":"a","properties":{"time":1704067200}}\n\n{oops\n'
        '{"event":"b","properties":{"time":1704067201}}\n',
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize("command", ["read", "inspect"])
def test_cli_file_commands_take_the_on_bad_lines_their_error_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """design.md §3: malformed lines follow ``on_bad_lines``; the CLI's error for one
    tells the user to pass ``--on-bad-lines``, so the commands reading files take it."""
    path = _bad_file(tmp_path)
    argv = [command, str(path), "--timezone", "UTC", "--json"]
    assert main(argv, out=io.StringIO()) == 6
    line = assert_one_line_error(capsys.readouterr().err)
    assert "line 3" in line and "--on-bad-lines" in line
    out = io.StringIO()
    assert main([*argv, "--on-bad-lines", "skip"], out=out) == 0
    assert json.loads(out.getvalue())["rows"] == 2
    with warnings.catch_warnings():
        warnings.simplefilter("always")  # as outside pytest: printed, not raised
        assert main([*argv, "--on-bad-lines", "warn"], out=io.StringIO()) == 0
    warned = capsys.readouterr().err
    assert warned.startswith("warning: ") and "line 3: skipped malformed line" in warned


@pytest.mark.parametrize("command", ["read", "inspect"])
def test_cli_on_bad_lines_is_refused_for_a_dataset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    folder = tmp_path / "events"
    folder.mkdir()
    assert main([command, str(folder), "--on-bad-lines", "skip"], out=io.StringIO()) == 2
    assert "--on-bad-lines applies to export files" in assert_one_line_error(
        capsys.readouterr().err
    )
