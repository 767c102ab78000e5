"""Build the optional C scanner; everything else is declared in pyproject.toml.

``robotmia_frames.parse._scan`` speeds up parsing several-fold. It is optional: where it
cannot be compiled, installation goes on and the engine runs in pure Python.
"""

import sys

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "robotmia_frames.parse._scan",
            ["robotmia_frames/parse/_scan.c"],
            optional=True,
            extra_compile_args=[] if sys.platform == "win32" else ["-O2", "-std=c99"],
        )
    ]
)
