"""The command line in its own words: flags in messages, "did you mean", exit codes,
JSON errors, plurals, and a local server that sets up the shell (``serve``).

Every test runs the real ``robotmia-frames`` executable in a subprocess.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
from pathlib import Path

import pytest

from tests.conftest import SECRET, ServerFactory
from tests.test_cli import CLI, assert_one_line_error, run_cli

README = Path(__file__).resolve().parents[1] / "README.md"


def error_of(proc: subprocess.CompletedProcess[str], code: int = 2) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    return assert_one_line_error(proc.stderr)


@pytest.mark.parametrize(
    ("tz", "meant"),
    [
        ("PST", "America/Los_Angeles"),
        ("America/LosAngeles", "America/Los_Angeles"),
        ("Europe/paris", "Europe/Paris"),
    ],
)
def test_timezone_typos_get_a_did_you_mean(tmp_path: Path, tz: str, meant: str) -> None:
    line = error_of(
        run_cli(
            "export",
            "2024-01-01",
            "2024-01-02",
            "--out",
            str(tmp_path / "o"),
            "--timezone",
            tz,
            env={"ROBOTMIA_API_SECRET": "s"},
        )
    )
    assert f"unknown --timezone {tz!r}" in line
    assert f"did you mean {meant!r}?" in line
    assert "project_timezone" not in line


def test_messages_name_flags_not_parameters(tmp_path: Path) -> None:
    day = error_of(run_cli("read", str(tmp_path), "--from", "2024-1-1"))
    assert day.startswith("error: --from must be a day, YYYY-MM-DD")
    assert "from_date" not in day and "datetime" not in day
    order = error_of(
        run_cli(
            "export",
            "2024-01-02",
            "2024-01-01",
            "--out",
            str(tmp_path / "o"),
            "--timezone",
            "UTC",
            env={"ROBOTMIA_API_SECRET": "s"},
        )
    )
    assert "FROM 2024-01-02 is after TO 2024-01-01" in order
    secret = error_of(
        run_cli(
            "export", "2024-01-01", "2024-01-01", "--out", str(tmp_path / "o"), "--timezone", "UTC"
        )
    )
    assert "ROBOTMIA_API_SECRET" in secret and "api_secret=" not in secret
    tz = error_of(
        run_cli(
            "export",
            "2024-01-01",
            "2024-01-01",
            "--out",
            str(tmp_path / "o"),
            env={"ROBOTMIA_API_SECRET": "s"},
        )
    )
    assert "pass --timezone Europe/Paris" in tz and "project_timezone" not in tz


def test_any_keyword_that_is_a_flag_is_named_as_the_flag(tmp_path: Path) -> None:
    args = ["export", "2024-01-01", "2024-01-31", "--out", str(tmp_path / "o"), "--dry-run"]
    line = error_of(run_cli(*args, "--timezone", "UTC", "--window-days", "99"))
    assert line.startswith("error: --window-days must be") and "window_days" not in line


def test_dollar_key_in_where_hints_the_property_syntax(tmp_path: Path) -> None:
    line = error_of(
        run_cli(
            "export",
            "2024-01-01",
            "2024-01-01",
            "--out",
            str(tmp_path / "o"),
            "--timezone",
            "UTC",
            "--where",
            '$os == "iOS"',
            env={"ROBOTMIA_API_SECRET": "s"},
        )
    )
    assert 'properties["$os"]' in line


def test_json_errors_are_json_on_stdout(tmp_path: Path) -> None:
    proc = run_cli("read", str(tmp_path / "nothing-here"), "--json")
    assert proc.returncode == 2
    doc = json.loads(proc.stdout)
    assert doc["error"]["exit_code"] == 2
    assert "no dataset folder or export file" in doc["error"]["message"]
    assert proc.stderr.startswith("error: ")


def test_an_output_folder_that_is_a_file_is_a_usage_error(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    line = error_of(
        run_cli(
            "export",
            "2024-01-01",
            "2024-01-01",
            "--out",
            str(target),
            "--timezone",
            "UTC",
            "--base-url",
            "http://127.0.0.1:9/api/2.0/export/",
            env={"ROBOTMIA_API_SECRET": "s"},
        )
    )
    assert f"{target} is a file, not a folder" in line
    inside = error_of(
        run_cli(
            "export", "2024-01-01", "2024-01-01", "--out", str(target / "sub"),
            "--timezone", "UTC", "--base-url", "http://127.0.0.1:9/api/2.0/export/",
            env={"ROBOTMIA_API_SECRET": "s"},
        )
    )  # fmt: skip
    assert f"{target} is a file, not a folder" in inside


def test_busy_port_suggests_port_0() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = error_of(run_cli("serve", "--port", str(port)))
    assert f"port {port} is in use" in line and "--port 0" in line


def test_serve_prints_its_secret_and_env_lines() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROBOTMIA_")}
    lines = []
    with subprocess.Popen(
        [*CLI, "serve", "--port", "0", "--days", "1", "--events-per-day", "5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        proc.terminate()
        proc.communicate(timeout=30)
    text = "".join(lines)
    assert "secret it expects: test-secret" in text
    m = re.search(r"export ROBOTMIA_BASE_URL=(\S+) ROBOTMIA_API_SECRET=test-secret "
                  r"ROBOTMIA_PROJECT_TIMEZONE=America/Los_Angeles", text)  # fmt: skip
    assert m and m.group(1).startswith("http://127.0.0.1:"), text


def test_serve_never_prints_a_secret_from_the_environment() -> None:
    out = subprocess.run(
        [
            "bash",
            "-c",
            f'eval "$({" ".join(CLI)} serve --print-env --days 1)"; '
            'kill "$ROBOTMIA_SERVE_PID"; echo "$ROBOTMIA_BASE_URL"',
        ],
        env={**os.environ, "ROBOTMIA_API_SECRET": "env-secret-9f8e7d"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "env-secret-9f8e7d" not in out.stdout + out.stderr
    assert out.stdout.strip().startswith("http://127.0.0.1:")


def _readme_tour() -> tuple[list[str], str]:
    """The README tour: its command lines (less ``serve``) and its Python block."""
    text = README.read_text()
    tour = text.split("## A tour", 1)[1].split("\n## ", 1)[0]
    python = re.search(r"```python\n(.*?)```", tour, re.S)
    bash = re.search(r"```bash\n(.*?)```", tour, re.S)
    assert python and bash
    commands = [
        line.split("  #")[0].strip()
        for line in bash.group(1).splitlines()
        if line.startswith("robotmia-frames ") and not line.startswith("robotmia-frames serve")
    ]
    return commands, python.group(1)


@pytest.mark.slow
def test_the_readme_tour_runs_unchanged_against_serve(tmp_path: Path) -> None:
    """``eval "$(robotmia-frames serve --print-env)"``, then the README's lines as written."""
    commands, python = _readme_tour()
    assert len(commands) >= 4
    (tmp_path / "tour.py").write_text(python)
    exe = " ".join(CLI)
    script = "\n".join(
        [
            "set -euo pipefail",
            f'eval "$({exe} serve --print-env --days 31 --events-per-day 40)"',
            "trap 'kill \"$ROBOTMIA_SERVE_PID\"' EXIT",
            f'robotmia-frames() {{ {exe} "$@" --no-progress; }}',
            *commands,
            "python tour.py",
        ]
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROBOTMIA_")}
    proc = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "wrote " in proc.stdout and "synced 2024-01-" in proc.stdout
    assert "dataset: " in proc.stdout  # inspect
    assert "properties.distinct_id" in proc.stdout  # the tour's print(df[...].head())
    assert (tmp_path / "events").is_dir()


def test_read_an_empty_file_says_what_it_is(tmp_path: Path) -> None:
    empty = tmp_path / "export"  # no extension, no bytes, no timezone
    empty.write_bytes(b"")
    proc = run_cli("read", str(empty))
    assert proc.returncode == 0, proc.stderr
    assert "(no rows)" in proc.stdout
    assert "is an empty file: an export with no events" in proc.stdout
    assert "--timezone" not in proc.stdout + proc.stderr


def test_plurals_are_right(tmp_path: Path, server: ServerFactory) -> None:
    from robotmia_frames.cli import plural

    assert [plural(1, "day"), plural(1, "file"), plural(2, "day")] == ["1 day", "1 file", "2 days"]
    # what the command prints
    one = {"event": "e", "properties": {"time": 1704067200, "n": 1}}
    path = tmp_path / "two.jsonl"
    path.write_text(json.dumps(one) + "\n" + json.dumps(one) + "\n")
    proc = run_cli("read", str(path), "--timezone", "UTC", "--limit", "1")
    assert proc.returncode == 0, proc.stderr
    assert "2 rows x 3 columns (first 1 row shown)" in proc.stdout
    path.write_text(json.dumps(one) + "\n")
    proc = run_cli("read", str(path), "--timezone", "UTC", "--columns", "event")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip().endswith("1 row x 1 column")
    inspect_ = run_cli("inspect", str(path))
    assert "rows: 1 over 1 day" in inspect_.stdout, inspect_.stdout
    srv = server([one], project_timezone="UTC")
    env = {"ROBOTMIA_API_SECRET": SECRET, "ROBOTMIA_BASE_URL": srv.url}
    args = ["export", "2024-01-01", "2024-01-01", "--out", str(tmp_path / "ds")]
    proc = run_cli(*args, "--timezone", "UTC", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "wrote 1 row for 1 day in 1 file" in proc.stdout


def test_a_refused_secret_speaks_of_the_variable_not_the_keyword(
    tmp_path: Path, server: ServerFactory
) -> None:
    srv = server([], api_secret="the-right-one")
    args = ["export", "2024-01-01", "2024-01-01", "--out", str(tmp_path / "o"), "--timezone", "UTC"]
    env = {"ROBOTMIA_API_SECRET": "a-wrong-one", "ROBOTMIA_BASE_URL": srv.url}
    proc = run_cli(*args, "--json", env=env)
    line = error_of(proc, 3)
    assert "Check ROBOTMIA_API_SECRET." in line and "api_secret" not in line
    assert "a-wrong-one" not in proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)["error"]
    assert (doc["type"], doc["exit_code"]) == ("AuthenticationError", 3)
    assert "api_secret" not in doc["message"]


def _codes(rows: list[tuple[str, str]]) -> dict[int, str]:
    """Exit codes and their meanings, in plain words (no Markdown backticks)."""
    return {int(code): " ".join(text.replace("`", "").split()) for code, text in rows}


def test_the_exit_code_table_of_the_docs_is_the_commands() -> None:
    from robotmia_frames import cli
    from robotmia_frames.cli._parser import EXIT_CODES

    doc = (README.parent / "docs" / "cli.md").read_text()
    table = doc.split("## Exit codes", 1)[1].split("\n\n", 2)[1]
    documented = _codes(re.findall(r"^\| (\d+) \| (.+?) \|$", table, flags=re.M))
    shown = _codes(re.findall(r"^  (\d+)\s+(.+)$", EXIT_CODES, flags=re.M))
    assert documented == shown  # docs/cli.md says what --help says
    constants = {v for k, v in vars(cli).items() if k.startswith("EXIT_") and isinstance(v, int)}
    assert set(documented) == constants  # every code the command uses, and no other
    # --help prints the same table
    assert "6    malformed export data" in run_cli("--help").stdout
