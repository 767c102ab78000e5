"""zlib and gzip, or ISA-L's faster drop-ins where installed (``isal``, optional).

ISA-L inflates export bodies about 2.2x faster than zlib and deflates at level 1
several times faster, through the same API. One import here, for the transport's
verifier, the parser's file reader and the pipeline's day files.

Example:
    >>> from robotmia_frames._zlib import zlib
    >>> zlib.decompress(zlib.compress(b"abc"))
    b'abc'
"""

from __future__ import annotations

import gzip as _std_gzip
import types
import zlib as _std_zlib

__all__ = ["gzip", "zlib"]

zlib: types.ModuleType
gzip: types.ModuleType
try:
    from isal import igzip as gzip
    from isal import isal_zlib as zlib
except ImportError:  # pragma: no cover - platforms without wheels
    zlib, gzip = _std_zlib, _std_gzip
