"""A local robotmia export server and a deterministic event generator.

Tests, the demo and the benchmarks use it: real HTTP over a real loopback socket.

Example:
    >>> from robotmia_frames.emulator import ExportServer, generate_events
    >>> with ExportServer(generate_events(100), api_secret="s") as srv:
    ...     srv.url.endswith("/api/2.0/export/")
    True
"""

from __future__ import annotations

from .budget import Budget, VirtualClock
from .engage import EngageEndpoint, generate_profiles
from .generator import generate_events, hostile_lines, iter_generated_events, write_export_file
from .server import (
    HTML_PAGE,
    ExportServer,
    Fault,
    GeneratorConfig,
    RequestRecord,
    ServerStats,
    serve_forever,
)

__all__ = [
    "HTML_PAGE",
    "Budget",
    "EngageEndpoint",
    "ExportServer",
    "Fault",
    "GeneratorConfig",
    "RequestRecord",
    "ServerStats",
    "VirtualClock",
    "generate_events",
    "generate_profiles",
    "hostile_lines",
    "iter_generated_events",
    "serve_forever",
    "write_export_file",
]
