"""A griffe extension for the docs build: ``Example:`` sections render as examples.

The package's docstrings write ``Example:`` (singular) over doctest blocks. Google
style, as griffe parses it, only knows ``Examples:``; without this the ``>>>`` lines
would render as plain prose. Sphinx roles (``:func:`x```) become plain code. Used by
``mkdocs.yml``; the package is not changed.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE = re.compile(r"^(\s*)Example:[ \t]*$", re.MULTILINE)
_ROLE = re.compile(r":(?:func|class|meth|mod|data|attr|exc|obj):`~?([^`]+)`")


class ExampleSections(griffe.Extension):
    """Rename ``Example:`` section headers to ``Examples:`` in every docstring."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            text = _EXAMPLE.sub(r"\1Examples:", obj.docstring.value)
            obj.docstring.value = _ROLE.sub(r"`\1`", text)  # Sphinx roles: plain code
