"""Build the optional C scanner; everything else is declared in pyproject.toml.

``robotmia_frames.parse._scan`` speeds up parsing several-fold. It is optional: where it
cannot be compiled, installation goes on and the engine runs in pure Python (and
says so once, see docs/engine.md).

The scanner uses only the Limited API of Python 3.11 (``Py_LIMITED_API``), so one
``abi3`` wheel per platform serves CPython 3.11 and every later version. Python
3.10 (whose Limited API has no buffer protocol, which the scanner needs to read
chunks and hand back results without copies) and free-threaded interpreters
(which have no stable ABI yet) get a build for their own version.
"""

import sys
import sysconfig

from setuptools import Extension, setup

LIMITED_API = 0x030B0000
abi3 = sys.version_info >= (3, 11) and not sysconfig.get_config_var("Py_GIL_DISABLED")

setup(
    ext_modules=[
        Extension(
            "robotmia_frames.parse._scan",
            ["robotmia_frames/parse/_scan.c"],
            optional=True,
            py_limited_api=abi3,
            define_macros=[("Py_LIMITED_API", hex(LIMITED_API))] if abi3 else [],
            extra_compile_args=[] if sys.platform == "win32" else ["-O2", "-std=c99"],
        )
    ],
    options={"bdist_wheel": {"py_limited_api": "cp311"}} if abi3 else {},
)
