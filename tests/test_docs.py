"""Every code snippet of the docs (and of the README) runs, against the local emulator.

Conventions for ``docs/*.md`` and ``README.md`` (what this test does with each fence):

- ```` ```python ```` blocks run, in page order, in one namespace per page, in a
  fresh working folder. They are written as a user would write them: without
  ``base_url`` or ``api_secret``. The test points the library's default endpoints
  (every ``region``, and the profiles endpoint) at an :class:`ExportServer` on
  loopback and sets ``ROBOTMIA_API_SECRET``, so the snippets really export.
- ```` ```pycon ```` blocks are doctests (``ELLIPSIS``, ``NORMALIZE_WHITESPACE``), run
  in the same namespace, so their outputs are checked too.
- ```` ```bash ```` lines that start with ``robotmia-frames`` must parse with the
  CLI's own argument parser (they are not run: they talk to robotmia).
- Anything else (``text``, ``json``, ...) is not code. A ``<!-- no-test -->`` line
  right before a fence skips that block (say why next to it).

Also checked: the type-policy table of ``docs/type-policy.md`` against the docstring
table of ``robotmia_frames/typepolicy.py``, and the exit codes of ``docs/cli.md``
against the CLI's ``--help``.
"""

from __future__ import annotations

import doctest
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import robotmia_frames.profiles as profiles_module
from robotmia_frames import cli, transport
from robotmia_frames.cli import _parser as cli_parser
from robotmia_frames.emulator import ExportServer, GeneratorConfig
from robotmia_frames.parse import typepolicy

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [*sorted(DOCS.glob("*.md")), ROOT / "README.md"]
SECRET = "docs-secret-9f1e"
TIMEZONE = "America/Los_Angeles"

#: Blocks of pages owned elsewhere that cannot run as they are: (page, text in the
#: block) -> why.
SKIP = {
    ("where.md", "rf.validate_where('properties[\"plan\"] == pro')"): (
        "shows a WhereSyntaxError on purpose; tests/test_where_docs.py covers the page"
    ),
}

_FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.S | re.M)


@dataclass(frozen=True)
class Block:
    page: str
    lang: str
    code: str
    line: int
    skipped: bool


def blocks(path: Path) -> list[Block]:
    text = path.read_text()
    out = []
    for m in _FENCE.finditer(text):
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        line = text.count("\n", 0, m.start()) + 2  # the first line of the code
        lang = m.group(1).strip().split(" ")[0] if m.group(1).strip() else ""
        skipped = before.strip().startswith("<!-- no-test") or any(
            page == path.name and snippet in m.group(2) for page, snippet in SKIP
        )
        out.append(Block(path.name, lang, m.group(2), line, skipped))
    return out


@pytest.fixture
def emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ExportServer]:
    """A server with three months of events and 20,000 profiles behind the defaults."""
    generate = GeneratorConfig(
        events_per_day=100, seed=11, from_date="2024-01-01", to_date="2024-03-31"
    )
    with ExportServer(
        api_secret=SECRET,
        project_timezone=TIMEZONE,
        generate=generate,
        generate_profiles=20_000,
    ) as srv:
        for region in list(transport.REGION_URLS):
            monkeypatch.setitem(transport.REGION_URLS, region, srv.url)
        monkeypatch.setattr(profiles_module, "DEFAULT_PROFILES_URL", srv.engage_url)
        monkeypatch.setenv("ROBOTMIA_API_SECRET", SECRET)
        monkeypatch.setenv("ROBOTMIA_PROJECT_TIMEZONE", TIMEZONE)
        monkeypatch.chdir(tmp_path)
        yield srv


def _run_pycon(block: Block, namespace: dict[str, Any]) -> None:
    parser = doctest.DocTestParser()
    test = parser.get_doctest(
        block.code, namespace, f"{block.page}:{block.line}", block.page, block.line
    )
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    report: list[str] = []
    runner.run(test, out=report.append, clear_globs=False)
    namespace.update(test.globs)
    assert runner.failures == 0, "".join(report)


def _runnable(page: Path) -> bool:
    return any(b.lang in ("python", "pycon") and not b.skipped for b in blocks(page))


@pytest.mark.parametrize("page", [p for p in PAGES if _runnable(p)], ids=lambda p: p.name)
def test_page_snippets_run(page: Path, emulator: ExportServer) -> None:
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    ran = 0
    for block in blocks(page):
        if block.skipped:
            continue
        if block.lang == "python":
            code = compile("\n" * (block.line - 1) + block.code, str(page), "exec")
            exec(code, namespace)
            ran += 1
        elif block.lang == "pycon":
            _run_pycon(block, namespace)
            ran += 1
    assert ran


def _commands(text: str) -> Iterator[list[str]]:
    for line in text.replace("\\\n", " ").splitlines():
        line = line.strip()
        if not line.startswith("robotmia-frames"):
            continue
        words = shlex.split(line, comments=True)
        for stop in ("|", ">", "&&", ";"):
            if stop in words:
                words = words[: words.index(stop)]
        yield words[1:]


def _bash_commands() -> list[tuple[str, list[str]]]:
    found = []
    for path in PAGES:
        text = path.read_text()
        for m in _FENCE.finditer(text):
            if m.group(1).strip() in ("bash", "sh", "console"):
                found.extend((path.name, argv) for argv in _commands(m.group(2)))
    return found


def test_documented_commands_parse() -> None:
    found = _bash_commands()
    assert len(found) > 15
    commands = {argv[0] for _, argv in found if argv and not argv[0].startswith("-")}
    assert {"demo", "export", "sync", "read", "inspect", "serve"} <= commands
    parser = cli.build_parser()
    for page, argv in found:
        try:
            parser.parse_args(argv)
        except SystemExit as exc:  # pragma: no cover - the failure message
            pytest.fail(f"{page}: robotmia-frames {shlex.join(argv)} does not parse ({exc})")


def test_cli_help_examples_parse() -> None:
    """The examples in every subcommand's --help epilog parse too."""
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    choices: dict[str, Any] = sub.choices  # type: ignore[assignment]
    seen = 0
    for name, subparser in choices.items():
        for argv in _commands(subparser.epilog or ""):
            assert argv[0] == name
            parser.parse_args(argv)
            seen += 1
    assert seen >= 10


# ------------------------------------------------------------------ tables that must agree


def _docstring_table() -> list[tuple[str, str]]:
    doc = typepolicy.__doc__ or ""
    lines = doc.splitlines()
    rules = [i for i, ln in enumerate(lines) if re.fullmatch(r"=+\s+=+", ln.strip())]
    assert len(rules) == 3, "typepolicy's docstring table lost its shape"
    header = lines[rules[0]]
    split = header.index(" ", header.index("=")) + 1
    split = header.index("=", split)
    rows = []
    for ln in lines[rules[1] + 1 : rules[2]]:
        if ln.strip():
            rows.append((ln[:split].strip(), ln[split:].strip()))
    return rows


def _docs_table() -> list[tuple[str, str]]:
    text = (DOCS / "type-policy.md").read_text()
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("| values seen in a column"))
    rows = []
    for ln in lines[start + 2 :]:
        if not ln.startswith("|"):
            break
        cells = [c.strip() for c in ln.strip().strip("|").split("|")]
        rows.append((cells[0], cells[1]))
    return rows


def _normal(cell: str) -> str:
    return re.sub(r"\s+", " ", cell.replace("``", "`")).strip()


def test_type_policy_table_matches_the_code() -> None:
    code = [(_normal(a), _normal(b)) for a, b in _docstring_table()]
    docs = [(_normal(a), _normal(b)) for a, b in _docs_table()]
    assert len(code) >= 9
    assert docs == code


def test_cli_exit_codes_match_the_docs() -> None:
    in_help = dict(re.findall(r"^  (\d+)\s+(.+)$", cli_parser.EXIT_CODES, re.M))
    text = (DOCS / "cli.md").read_text().split("## Exit codes", 1)[1]
    in_docs = dict(re.findall(r"^\| (\d+) \| (.+?) \|$", text, re.M))
    assert {k: v.replace("`", "") for k, v in in_docs.items()} == in_help
    assert set(in_help) == {"0", "1", "2", "3", "4", "5", "6", "7", "130", "143"}
