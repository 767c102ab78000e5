"""Progress where people are: a widget in Jupyter, a bar on a terminal, nothing when
piped or in CI (``progress=None``, the default)."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from robotmia_frames import _progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_default_on_a_terminal_is_a_text_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(sys, "stderr", _Terminal())
    p = _progress.make(None, total=3)
    assert p is not None
    try:
        assert type(p._bar).__module__ == "tqdm.std"
        assert p._bar.delay == 1.0  # short work stays quiet
    finally:
        p.close()


def test_default_when_piped_or_in_ci_is_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal
    assert _progress.make(None, total=3) is None
    monkeypatch.setattr(sys, "stderr", _Terminal())
    monkeypatch.setenv("CI", "true")
    assert _progress.make(None, total=3) is None


def test_forced_bar_shows_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    p = _progress.make(True, total=2)
    assert p is not None
    try:
        assert p._bar.delay == 0.0
        p.window_done(10, 5)
    finally:
        p.close()
    assert "robotmia export" in sys.stderr.getvalue()


NOTEBOOK_CODE = """\
import json, pathlib, warnings
import robotmia_frames as rf
from robotmia_frames import _progress
warnings.simplefilter("error")  # tqdm's "IProgress not found" would fail the cell
lines = [{"event": "e", "properties": {"time": 1704067200 + i, "n": i}} for i in range(2000)]
path = pathlib.Path("export.jsonl")
path.write_text("".join(json.dumps(x) + "\\n" for x in lines))
df = rf.read_export_file(path, project_timezone="UTC", progress=True)
default = _progress.make(None, total=1)
# an export: bytes counted from the download threads, rows as batches are parsed
from robotmia_frames.emulator import ExportServer, GeneratorConfig
seen = []
with ExportServer(generate=GeneratorConfig(events_per_day=3000, to_date="2024-01-02"),
                  api_secret="s") as srv:
    kw = dict(api_secret="s", project_timezone="UTC", base_url=srv.url)
    exported = rf.read_robotmia_export("2024-01-01", "2024-01-02", progress=True, **kw)
    rf.read_robotmia_export("2024-01-01", "2024-01-02", progress=seen.append, **kw)
print(json.dumps({"rows": len(df), "in_notebook": _progress.in_notebook(),
                  "default_bar": type(default._bar).__module__, "exported": len(exported),
                  "updates_before_a_day": sum(u.windows_done == 0 for u in seen) > 1}))
default.close()
"""


@pytest.mark.slow
def test_in_jupyter_the_bar_is_a_widget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("ipywidgets")
    monkeypatch.delenv("CI", raising=False)
    book = nbformat.v4.new_notebook()
    book.cells.append(nbformat.v4.new_code_cell(NOTEBOOK_CODE))
    client = nbclient.NotebookClient(
        book, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    outputs = book.cells[0].outputs
    widgets = [
        o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]
    assert widgets, outputs  # the forced bar: a widget, not text on stderr
    assert not [o for o in outputs if o.get("name") == "stderr"], outputs
    printed = json.loads(next(o["text"] for o in outputs if o.get("name") == "stdout"))
    assert printed == {
        "rows": 2000,
        "in_notebook": True,
        "default_bar": "tqdm.notebook",
        "exported": 6000,
        "updates_before_a_day": True,
    }
