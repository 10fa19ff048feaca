"""Where the process is in its life: serving, draining (SIGTERM: no new sessions or messages, readiness
503, runs given their grace), stopped (runs over: background loops, streams and the event writer end).
One object, shared by everything that must behave differently as the service shuts down.
"""
from __future__ import annotations

import asyncio
import enum


class Phase(enum.IntEnum):
    SERVING = 0
    DRAINING = 1
    STOPPED = 2


class Lifecycle:
    def __init__(self) -> None:
        self.phase = Phase.SERVING
        self._stopped = asyncio.Event()
        self.drain_task: asyncio.Task | None = None  # the SIGTERM drain (app.drain_then_stop), once started

    @property
    def draining(self) -> bool:
        """No new work: draining or stopped."""
        return self.phase >= Phase.DRAINING

    @property
    def stopped(self) -> bool:
        return self.phase is Phase.STOPPED

    def drain(self) -> None:
        self.phase = max(self.phase, Phase.DRAINING)

    def stop(self) -> None:
        self.phase = Phase.STOPPED
        self._stopped.set()

    async def pause(self, seconds: float) -> None:
        """Sleep up to `seconds`, ending early once stopped: the wait of a background loop."""
        if not self._stopped.is_set():
            stopped = asyncio.ensure_future(self._stopped.wait())
            await asyncio.wait((stopped,), timeout=seconds)
            stopped.cancel()
