"""The rate limit of one export held across every worker of a Dask cluster."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any, cast

from .. import _options, transport


class ClusterRateLimiter(transport.RateLimiter):
    """A :class:`~robotmia_frames.RateLimit` held across every worker of a cluster.

    On Dask workers (``distributed``): ``concurrent`` is a ``distributed.Semaphore``
    with that many leases, held for each HTTP attempt; ``per_second`` and
    ``per_hour`` are sliding windows over a log of attempt start times kept on the
    scheduler (``Client.set_metadata``), read and updated under a
    ``distributed.Lock``: an attempt starts only when fewer than ``per_second``
    attempts started in the last ``1 + margin`` seconds (and fewer than
    ``per_hour`` in the last ``3600 + margin``). A server's ``Retry-After`` is
    written to the same log and holds every worker back. ``margin`` absorbs
    network jitter and clock differences between machines, so that the server,
    which counts requests when they arrive, sees the budget kept.

    Times are the workers' wall clocks (keep them NTP-synced). A worker that dies
    holding a slot gives it back when its lease times out
    (``distributed.scheduler.locks.lease-timeout``, 30 s by default). Outside a
    Dask worker (or with no limit at all) it acts as a plain, per-process
    :class:`~robotmia_frames.RateLimiter`. Pass one instance to several calls to
    share one budget between them; the state lives on the scheduler under
    ``name``.

    Example:
        >>> from robotmia_frames import RateLimit
        >>> limiter = ClusterRateLimiter(RateLimit(per_second=2, concurrent=2))
        >>> limiter.limit.per_second, limiter.name.startswith("robotmia-rate-")
        (2, True)
    """

    def __init__(
        self,
        limit: transport.RateLimit | None = None,
        *,
        name: str | None = None,
        margin: float = 0.1,
    ) -> None:
        super().__init__(limit)
        self.margin = _options.seconds(margin, "margin", allow_zero=True)
        self.name = name or f"robotmia-rate-{uuid.uuid4().hex}"
        self._init_lock = threading.Lock()
        self._shared: tuple[Any, Any, Any] | None = None
        lim = self.limit
        self._cluster_windows = [
            (length + self.margin, most)
            for length, most in ((1.0, lim.per_second), (3600.0, lim.per_hour))
            if most is not None
        ]

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (_limiter, (self.limit, self.name, self.margin))

    def __dask_tokenize__(self) -> tuple[str, str]:
        return ("robotmia_frames.dask.ClusterRateLimiter", self.name)

    def __repr__(self) -> str:
        lim = self.limit
        return (
            f"ClusterRateLimiter(per_hour={lim.per_hour!r}, per_second={lim.per_second!r}, "
            f"concurrent={lim.concurrent!r}, name={self.name!r})"
        )

    @property
    def unlimited(self) -> bool:
        """True when no limit is set (nothing to hold across workers)."""
        return not self._cluster_windows and self.limit.concurrent is None

    def _primitives(self) -> tuple[Any, Any, Any] | None:
        """(semaphore, lock, client) when running on a Dask worker, else None."""
        if self.unlimited:
            return None
        with self._init_lock:
            if self._shared is None:
                from distributed import Lock, Semaphore, get_client, get_worker

                try:
                    get_worker()
                except ValueError:
                    return None
                concurrent = self.limit.concurrent
                self._shared = (
                    Semaphore(max_leases=concurrent, name=f"{self.name}-slots")
                    if concurrent is not None
                    else None,
                    Lock(f"{self.name}-lock"),
                    get_client(),
                )
            return self._shared

    def _load(self, client: Any) -> dict[str, Any]:
        """The shared log: ``starts`` (wall-clock times) and ``paused_until``."""
        empty = {"starts": [], "paused_until": 0.0}
        return cast("dict[str, Any]", client.get_metadata(["robotmia_frames", self.name], empty))

    def _save(self, client: Any, starts: list[float], paused_until: float) -> None:
        state = {"starts": starts, "paused_until": paused_until}
        client.set_metadata(["robotmia_frames", self.name], state)

    def _wait(self, state: dict[str, Any], now: float) -> float:
        wait = max(0.0, float(state["paused_until"]) - now)
        for length, most in self._cluster_windows:
            recent = [t for t in state["starts"] if t > now - length]
            if len(recent) >= most:
                wait = max(wait, recent[-most] + length - now)
        return wait

    def _start(self, lock: Any, client: Any) -> None:
        """Wait until the cluster-wide budget allows one more query, and log it."""
        horizon = max((length for length, _ in self._cluster_windows), default=0.0)
        while True:
            with lock:
                state = self._load(client)
                now = time.time()
                wait = self._wait(state, now)
                if wait <= 0:
                    starts = [t for t in state["starts"] if t > now - horizon]
                    self._save(client, [*starts, now], state["paused_until"])
                    return
            time.sleep(min(wait, 1.0))

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Wait for the cluster-wide budget and a free slot; hold the slot for the attempt."""
        shared = self._primitives()
        if shared is None:
            with super().slot():
                yield
            return
        semaphore, lock, client = shared
        begin = time.monotonic()
        if semaphore is not None:
            semaphore.acquire()
        try:
            self._start(lock, client)
            self.queries += 1
            self.waited += time.monotonic() - begin
            yield
        finally:
            if semaphore is not None:
                semaphore.release()

    def pause(self, seconds: float) -> None:
        """Hold every worker back for ``seconds`` (a server's ``Retry-After``)."""
        shared = self._primitives()
        if shared is None:
            super().pause(seconds)
            return
        _, lock, client = shared
        with lock:
            state = self._load(client)
            until = max(float(state["paused_until"]), time.time() + seconds)
            self._save(client, state["starts"], until)


def _limiter(limit: transport.RateLimit, name: str, margin: float) -> ClusterRateLimiter:
    return ClusterRateLimiter(limit, name=name, margin=margin)
