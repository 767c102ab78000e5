"""Every public signature is pinned: ``inspect.signature`` of each public function,
class and method of ``robotmia_frames``, ``robotmia_frames.Client`` and
``robotmia_frames.dask`` is exactly the one recorded in ``public_signatures.json``
(names, order, kinds, defaults and annotations). A new keyword is added there on
purpose, with its entry in ``CHANGELOG.md``."""

from __future__ import annotations

import inspect
import json
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

import robotmia_frames as rf

PINNED = json.loads((Path(__file__).with_name("public_signatures.json")).read_text())


def _public(module: types.ModuleType, prefix: str) -> Iterator[tuple[str, object]]:
    names = getattr(module, "__all__", None) or [n for n in vars(module) if n[0] != "_"]
    for name in names:
        obj = getattr(module, name)
        if not callable(obj) or isinstance(obj, types.ModuleType):
            continue
        yield f"{prefix}.{name}", obj
        if isinstance(obj, type):
            for member, value in vars(obj).items():
                if (member[0] != "_" or member == "__init__") and callable(value):
                    yield f"{prefix}.{name}.{member}", value


def _signatures() -> dict[str, str]:
    dask = pytest.importorskip("robotmia_frames.dask")
    found = {}
    for module, prefix in ((rf, "rf"), (dask, "rfd")):
        for name, obj in _public(module, prefix):
            try:
                found[name] = str(inspect.signature(obj))  # type: ignore[arg-type]
            except (TypeError, ValueError):  # a builtin without one
                continue
    return found


def test_every_public_signature_is_the_pinned_one() -> None:
    found = _signatures()
    assert sorted(found) == sorted(PINNED)
    changed = {name: (PINNED[name], sig) for name, sig in found.items() if sig != PINNED[name]}
    assert changed == {}


def test_the_readers_are_the_client_methods_on_a_new_client() -> None:
    """``read_export_file`` and ``read_parquet_dataset`` are documented as functions of
    ``robotmia_frames.readers``, with the Client method's signature less ``self``."""
    for name in ("read_export_file", "read_parquet_dataset"):
        func = getattr(rf, name)
        method = inspect.signature(getattr(rf.Client, name))
        assert func.__name__ == func.__qualname__ == name
        assert func.__module__ == "robotmia_frames.readers"
        assert "Example:" in func.__doc__
        assert (
            list(inspect.signature(func).parameters.values())
            == list(method.parameters.values())[1:]
        )
