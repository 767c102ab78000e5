"""robotmia-frames: robotmia raw event exports as pandas, Arrow and Parquet.

The public surface is what this module exports (``__all__``); every other module
is private. See ``docs/api.md``.

Example:
    >>> import robotmia_frames as rf
    >>> callable(rf.read_robotmia_export)
    True
"""

from ._options import DateLike
from ._progress import ProgressUpdate
from ._version import __version__
from .api import (
    ExportSummary,
    export_to_parquet,
    read_robotmia_export,
    read_robotmia_profiles,
    sync_to_parquet,
)
from .client import Client
from .errors import (
    APIError,
    AuthenticationError,
    IncompleteDownloadError,
    InvalidArgumentError,
    MemoryBudgetError,
    MetaMismatchError,
    NetworkError,
    ParseError,
    RobotmiaError,
    RobotmiaWarning,
    TypeMismatchError,
    WhereSyntaxError,
)
from .readers import read_export_file, read_parquet_dataset
from .transport import RateLimit, RateLimiter
from .where import validate_where

__all__ = [
    "APIError",
    "AuthenticationError",
    "Client",
    "DateLike",
    "ExportSummary",
    "IncompleteDownloadError",
    "InvalidArgumentError",
    "MemoryBudgetError",
    "MetaMismatchError",
    "NetworkError",
    "ParseError",
    "ProgressUpdate",
    "RateLimit",
    "RateLimiter",
    "RobotmiaError",
    "RobotmiaWarning",
    "TypeMismatchError",
    "WhereSyntaxError",
    "__version__",
    "export_to_parquet",
    "read_export_file",
    "read_parquet_dataset",
    "read_robotmia_export",
    "read_robotmia_profiles",
    "sync_to_parquet",
    "validate_where",
]
