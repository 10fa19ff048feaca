"""Liveness across replicas, through MySQL: the heartbeat of this process's runs, the sweep of runs whose
process died (or whose final update was lost), and the delivery of tool results and cancels that reached
another replica (run_requests).

A run that is active here refreshes its heartbeat every `heartbeat_interval`; a run marked running whose
heartbeat is older than `stale_after` belongs to a process that stopped, and is ended with an error part
so its clients stop waiting (queries.end_dead_run).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from . import queries
from .db import utc_ago
from .events import LOST_MESSAGE, SHUTDOWN_MESSAGE
from .logs import log

if TYPE_CHECKING:
    from .runs import RunManager

logger = logging.getLogger("agent_backend.runs")
HUB_LINGER_S = 120.0
REMOTE_POLL_S = 0.5


class Liveness:
    def __init__(self, mgr: "RunManager"):
        self.mgr = mgr
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._heartbeat(), name="run-heartbeat"),
                       loop.create_task(self._poll_remote_requests(), name="run-requests")]

    async def stopped(self) -> None:
        """Once the lifecycle is stopped: the loops end within one pause; any still running is cancelled."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2)
        for task in self._tasks:
            task.cancel()

    async def _heartbeat(self) -> None:
        mgr = self.mgr
        swept_at = 0.0
        while not mgr.lifecycle.stopped:
            with contextlib.suppress(Exception):
                await queries.heartbeat_runs(mgr.db, [r.id for r in mgr.runs.values()])
                await self.end_dead_runs(own=True)
                if time.monotonic() - swept_at > mgr.stale_after:
                    await self.end_dead_runs(own=False)
                    swept_at = time.monotonic()
            mgr.prune_hubs(HUB_LINGER_S)
            await mgr.lifecycle.pause(mgr.cfg.heartbeat_interval)

    async def end_dead_runs(self, *, own: bool) -> None:
        """Runs marked running in MySQL that nobody executes: with `own`, this process's runs that it no
        longer runs (their final update was lost, e.g. in a MySQL outage); else runs whose owner stopped
        heart-beating. Own runs count once a heartbeat old (a start that commits meanwhile is in
        mgr.starting, then in mgr.runs), others once stale_after old."""
        mgr = self.mgr
        if own:
            dead = await queries.orphaned_runs(mgr.db, mgr.owner, started_before=utc_ago(mgr.cfg.heartbeat_interval),
                                               live=[r.id for r in mgr.runs.values()])
        else:
            dead = await queries.stale_runs(mgr.db, heartbeat_before=utc_ago(mgr.stale_after))
        for run in dead:
            if mgr.busy(run.session_id):
                continue
            status = await queries.end_dead_run(
                mgr.db, run, error_part={"type": "error", "error": LOST_MESSAGE if own else SHUTDOWN_MESSAGE},
                reason="final update lost" if own else "owner stopped")
            if status == "interrupted":
                log(logger, logging.WARNING, "marked an orphaned run interrupted", run_id=run.id,
                    why="its final update was lost" if own else "its owner stopped")

    async def _poll_remote_requests(self) -> None:
        """Deliver tool results and cancels that reached another replica (see run_requests)."""
        mgr = self.mgr
        while not mgr.lifecycle.stopped:
            if mgr.runs:
                by_id = {r.id: r for r in mgr.runs.values()}
                try:
                    for req in await queries.take_run_requests(mgr.db, list(by_id)):
                        run = by_id.get(req.run_id)
                        if run is None:
                            continue
                        if req.kind == "cancel":
                            run.cancel("user")
                        elif req.kind == "tool_result" and isinstance(req.payload, dict):
                            run.resolve_tool(req.request_id, req.payload)
                except Exception as exc:
                    log(logger, logging.DEBUG, "remote request poll failed", error=type(exc).__name__)
            await mgr.lifecycle.pause(REMOTE_POLL_S)
