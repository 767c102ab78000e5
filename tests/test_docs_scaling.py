"""The snippets of ``docs/scaling.md`` run, on a real LocalCluster, against the emulator.

``tests/test_docs.py`` runs every page's ``python`` blocks, but the base install has
no Dask: the scaling page marks its blocks ``<!-- no-test: needs the dask extra;
tests/test_docs_scaling.py runs it -->`` and this module runs exactly those, in
page order, in one namespace, with the same emulator behind the default endpoints.
The Spark block (``<!-- no-test: needs Spark ...``) is documented only.
"""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("distributed")
pytest.importorskip("dask.dataframe")

from tests import test_docs
from tests.test_docs import DOCS, blocks

#: the docs' emulator, behind the library's default endpoints (see tests/test_docs.py)
emulator = test_docs.emulator

PAGE = DOCS / "scaling.md"
MARK = "<!-- no-test: needs the dask extra; tests/test_docs_scaling.py runs it -->"


def _marked() -> list[Any]:
    text = PAGE.read_text()
    out = []
    for block in blocks(PAGE):
        lines = text.splitlines()
        # the line before the fence (block.line is the first line of the code)
        if lines[block.line - 3].strip() == MARK:
            out.append(block)
    return out


def test_every_python_block_is_run_or_documented_only() -> None:
    text = PAGE.read_text().splitlines()
    for block in blocks(PAGE):
        if block.lang != "python":
            continue
        before = text[block.line - 3].strip()
        assert before == MARK or before.startswith("<!-- no-test: needs Spark"), block.line
    assert len(_marked()) >= 6


def test_scaling_page_snippets_run(request: pytest.FixtureRequest) -> None:
    srv = request.getfixturevalue("emulator")
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    try:
        for block in _marked():
            code = compile("\n" * (block.line - 1) + block.code, str(PAGE), "exec")
            exec(code, namespace)
    finally:  # a failed snippet must not leave the cluster running
        for name in ("client", "cluster"):
            obj = namespace.get(name)
            if obj is not None:
                obj.close()
    # the snippets ran against the emulator (auto windows: several days per request)
    assert srv.requests and all(r.status == 200 for r in srv.requests)
