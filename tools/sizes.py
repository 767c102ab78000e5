"""Module and function sizes of the package, for ``docs/architecture.md``.

Prints the modules over ``--over`` lines (the emulator included) and the ``--top``
longest functions and methods, in source lines (``def`` line to last line).

Example:
    python tools/sizes.py --top 5
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path(__file__).parents[1] / "robotmia_frames")
    ap.add_argument("--over", type=int, default=500, help="list modules over this many lines")
    ap.add_argument("--top", type=int, default=5, help="list this many longest functions")
    args = ap.parse_args()
    files = sorted(args.root.rglob("*.py"))
    functions: list[tuple[int, str]] = []
    print(f"modules over {args.over} lines:")
    for path in files:
        text = path.read_text()
        name = path.relative_to(args.root.parent).as_posix()
        lines = len(text.splitlines())
        if lines > args.over:
            print(f"  {lines:5d}  {name}")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                functions.append((size, f"{name}:{node.lineno} {node.name}"))
    print(f"longest {args.top} functions:")
    for size, where in sorted(functions, reverse=True)[: args.top]:
        print(f"  {size:5d}  {where}")


if __name__ == "__main__":
    main()
