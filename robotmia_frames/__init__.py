"""robotmia-frames: robotmia raw event exports as pandas, Arrow and Parquet.

Example:
    >>> import robotmia_frames as rf
    >>> callable(rf.read_robotmia_export)
    True
"""

from ._version import __version__
from .api import (
    ExportSummary,
    export_to_parquet,
    read_export_file,
    read_parquet_dataset,
    read_robotmia_export,
    sync_to_parquet,
)
from .errors import (
    APIError,
    AuthenticationError,
    IncompleteDownloadError,
    InvalidArgumentError,
    NetworkError,
    ParseError,
    RobotmiaError,
    RobotmiaWarning,
    WhereSyntaxError,
)
from .profiles import read_robotmia_profiles
from .transport import RateLimit, RateLimiter
from .where import validate_where

__all__ = [
    "APIError",
    "AuthenticationError",
    "ExportSummary",
    "IncompleteDownloadError",
    "InvalidArgumentError",
    "NetworkError",
    "ParseError",
    "RateLimit",
    "RateLimiter",
    "RobotmiaError",
    "RobotmiaWarning",
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
