"""The incremental-sync state kept inside a dataset (``_robotmia/sync.json``)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._fsutil import write_json_atomic

STATE_FILE = Path("_robotmia") / "sync.json"


@dataclass(frozen=True)
class SyncState:
    """The last day a sync run covered, and what it asked for."""

    last_day: dt.date | None
    metadata: dict[str, Any] = field(default_factory=dict)


def load_state(root: Path) -> SyncState | None:
    """The state of the dataset at ``root``, or None before the first sync."""
    try:
        data = json.loads((root / STATE_FILE).read_text())
        last = data.get("last_day")
        return SyncState(dt.date.fromisoformat(last) if last else None, data.get("metadata", {}))
    except (OSError, ValueError, AttributeError):
        return None


def save_state(root: Path, state: SyncState) -> None:
    """Write the state atomically (temp file, fsync, rename)."""
    payload = {
        "last_day": state.last_day.isoformat() if state.last_day else None,
        "metadata": state.metadata,
        "updated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    write_json_atomic(root / STATE_FILE, payload, prefix=".sync-")
