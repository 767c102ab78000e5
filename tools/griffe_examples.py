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


class MadeFunctions(griffe.Extension):
    """Document a module function made by a call (``read_export_file =
    on_a_new_client(...)``) as the function it is: its signature and docstring as
    Python reports them (``inspect.signature``), not as a module attribute."""

    def on_module_members(self, *, mod: griffe.Module, **kwargs: Any) -> None:
        made = [
            name
            for name, member in mod.members.items()
            if not member.is_alias
            and member.is_attribute
            and "on_a_new_client(" in str(member.value)
        ]
        if made:
            runtime = griffe.inspect(mod.path)
            for name in made:
                mod.set_member(name, runtime.members[name])
