"""A local robotmia export server and a deterministic event generator.

Tests, the demo and the benchmarks use it: real HTTP over a real loopback socket.

Example:
    >>> from robotmia_frames.emulator import ExportServer, generate_events
    >>> with ExportServer(generate_events(100), api_secret="s") as srv:
    ...     srv.url.endswith("/api/2.0/export/")
    True
"""

from __future__ import annotations

from .engage import EngageEndpoint, generate_profiles
from .generator import generate_events, iter_generated_events, write_export_file
from .server import ExportServer, Fault, GeneratorConfig, RequestRecord, serve_forever

__all__ = [
    "EngageEndpoint",
    "ExportServer",
    "Fault",
    "GeneratorConfig",
    "RequestRecord",
    "generate_events",
    "generate_profiles",
    "iter_generated_events",
    "serve_forever",
    "write_export_file",
]
