"""The notebooks run top to bottom, without error, and draw their plots.

Each notebook in ``notebooks/`` is executed with nbclient in a fresh kernel (it starts
the emulator itself). The quickstart's main plot (the cell tagged ``main-plot``) is
written to ``docs/img/quickstart.png``, the picture of the docs' front page.
Skipped when the ``notebooks`` extra (nbclient, nbformat, ipykernel, matplotlib) is
not installed; CI installs it.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
SCREENSHOT = ROOT / "docs" / "img" / "quickstart.png"

#: Notebook -> how many plots (image/png outputs) it draws.
EXPECTED_PLOTS = {"quickstart.ipynb": 5, "timezones.ipynb": 2}

pytestmark = pytest.mark.slow


def _execute(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    # The inline backend is what a notebook user sees; an MPLBACKEND=Agg from the
    # environment would swallow the figures.
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    book = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(
        book,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    return book


def _pngs(cell: Any) -> list[bytes]:
    return [
        base64.b64decode(out["data"]["image/png"])
        for out in cell.get("outputs", [])
        if "image/png" in out.get("data", {})
    ]


@pytest.mark.parametrize("name", sorted(EXPECTED_PLOTS))
def test_notebook_runs_and_plots(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    book = _execute(name, tmp_path, monkeypatch)
    code = [c for c in book.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code), "a cell did not run"
    errors = [o for c in code for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert errors == []
    stderr = [
        o.get("text", "")
        for c in code
        for o in c.get("outputs", [])
        if o["output_type"] == "stream" and o.get("name") == "stderr"
    ]
    assert stderr == [], stderr  # no warnings printed in the notebook either
    plots = [png for c in code for png in _pngs(c)]
    assert len(plots) == EXPECTED_PLOTS[name]
    assert all(png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000 for png in plots)

    main = [c for c in code if "main-plot" in c.get("metadata", {}).get("tags", [])]
    assert len(main) == 1 and len(_pngs(main[0])) == 1
    if name == "quickstart.ipynb":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        SCREENSHOT.write_bytes(_pngs(main[0])[0])


def test_notebooks_are_stored_without_outputs() -> None:
    """Committed notebooks are clean: outputs come from the run, not from git."""
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        book = nbformat.read(path, as_version=4)
        nbformat.validate(book)
        for cell in book.cells:
            if cell.cell_type == "code":
                assert cell.get("outputs") == [] and cell.get("execution_count") is None, path
    assert {p.name for p in NOTEBOOKS.glob("*.ipynb")} == set(EXPECTED_PLOTS)
