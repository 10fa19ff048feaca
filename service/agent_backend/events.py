"""The per-session event log behind the SSE stream.

A run emits parts (AI-SDK-like dicts) into its session's Hub. One EventWriter per app flushes
every pending part of every hub in a single multi-row INSERT (group commit: while one flush is in
flight the next batch accumulates; consecutive text/reasoning deltas are merged into one event).
Only after the INSERT commits are the events published to the hub's in-memory list that SSE
followers read, so every `id:` a client sees is durable and can be replayed from MySQL with
`?cursor=`; the hub holds only the newest HELD_FRAMES or so, and a follower further behind reads back
from MySQL. If MySQL stays unreachable the run is failed; its final `error` part is then sent
live without an `id` (it cannot be replayed).

What a stream sends: a live stream (no `history_only`) starts at the first event of the session's latest
run, or at `cursor` when that points into that run or after it, so it never begins with an earlier run's
tail; it leaves out the results of tools the CLI ran itself (it shows its own; see `live()`). A replay
that needs MySQL and cannot read it answers 503 before the stream starts (EventStreamer.first_page);
an outage that begins mid-replay ends the stream with an id-less `error` part, never with ids skipped.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, Callable, NamedTuple

from aiohttp import web

from . import queries
from .codec import dumps, dumps_delta
from .db import Database, DatabaseBusy, DatabaseUnavailable, RetryBudget, retrying
from .errors import BUSY_RETRY_AFTER_S
from .lifecycle import Lifecycle
from .logs import log

logger = logging.getLogger("agent_backend.events")
TERMINAL = frozenset({"finish", "error"})
MERGEABLE = frozenset({"text-delta", "reasoning"})
MAX_STATEMENT_BYTES = 1024 * 1024  # characters of event data per INSERT (the driver's own limit was 1 MB)
CHUNK_ROWS = 64
# The last part a live stream gets when its events cannot be stored (MySQL gone for over db_write_retry).
DATABASE_LOST_PART = {"type": "error", "error": "The service lost its database; the answer could not be stored. "
                                                "Please retry."}
# ... and when they cannot be stored because no pooled connection came free (MySQL is fine, the service is not).
DATABASE_BUSY_PART = {"type": "error", "error": "The service is busy; the answer could not be stored. Please retry "
                                                f"in {BUSY_RETRY_AFTER_S} s."}
# The last part of a stream whose replay from MySQL broke off: what came before it is not the whole story.
REPLAY_LOST_PART = {"type": "error", "error": "The service lost its database while sending this conversation's "
                                              "earlier events; the rest could not be read. Please retry shortly."}
# The error part that ends the event log of a run whose process died, or whose final update was lost.
SHUTDOWN_MESSAGE = "The agent-backend service restarted and interrupted this run; send your message again."
LOST_MESSAGE = "This run was interrupted (the service lost its database); send your message again."
PAGE = 500  # events read from MySQL per query when replaying
# Published frames a hub keeps for its live streams: between HELD_FRAMES and twice that many, the newest. A
# stream further behind reads the earlier ones back from MySQL (every published frame is stored), so a long
# run costs a bounded amount of memory however many events it has. 32 is 1.6 s of a stream at 20 frames/s
# (more under load, when the writer merges deltas): a live stream is at most a flush behind; one further
# behind has stalled, and costs one query to catch up. (64 measured ~10 KiB more per open stream.)
HELD_FRAMES = 32


def frame(seq: int | None, data: str) -> bytes:
    head = f"id: {seq}\n" if seq is not None else ""
    return f"{head}data: {data}\n\n".encode()


def local_tool_result(tool_call_id: str, text: str) -> dict:
    """The `tool-result` part of a tool the CLI ran itself: kept in the log for history replays (a resumed
    session shows it), left out of live streams (the CLI already shows the result it posted)."""
    return {"type": "tool-result", "toolCallId": tool_call_id, "result": text, "local": True}


def live(kind: str, data: str) -> bool:
    """Whether a stored event (its type column and JSON) goes to live streams: all but local tool results."""
    return kind != "tool-result" or not json.loads(data).get("local")


class Framed(NamedTuple):
    """A stored event as live streams send it."""
    seq: int
    terminal: bool
    live: bool
    frame: bytes


class Hub:
    """Live state of one session's current run: pending parts and published (durable) frames."""

    def __init__(self, session_id: str, run_id: str, first_seq: int):
        self.session_id, self.run_id = session_id, run_id
        self.user_id: str | None = None
        self.first_seq = self.next_seq = first_seq
        self.frames: list[Framed] = []  # contiguous seqs, the newest published ones (HELD_FRAMES)
        self.held_from = first_seq  # the seq of frames[0]; earlier ones are read from MySQL
        self.pending: list[dict] = []
        self.pending_futs: list[asyncio.Future] = []
        self.done = False
        self.failed: BaseException | None = None
        self.tail: bytes | None = None  # an un-addressable final frame when the log could not be written
        self.finished_at: float | None = None
        self._waiters: list[asyncio.Future] = []  # one per stream waiting in wait()

    def stored(self, kind: str, data: str) -> None:
        """Publish an event the caller has already stored as number `next_seq` (the run's first, stored with
        its start)."""
        seq = self.next_seq
        self.next_seq += 1
        self.publish([Framed(seq, kind in TERMINAL, live(kind, data), frame(seq, data))])

    def publish(self, items: list["Framed"]) -> None:
        self.frames.extend(items)
        if len(self.frames) > 2 * HELD_FRAMES:
            dropped = len(self.frames) - HELD_FRAMES
            del self.frames[:dropped]
            self.held_from += dropped
        if any(f.terminal for f in items):
            self.done = True
            self.finished_at = time.monotonic()
        self._notify()

    def fail(self, exc: BaseException, tail_part: dict | None = None) -> None:
        self.failed = exc
        if tail_part is not None:
            self.tail = frame(None, dumps(tail_part))
        self.done = True
        self.finished_at = time.monotonic()
        self._notify()

    def _notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        _resolve(waiters)

    async def wait(self, timeout: float) -> None:
        """Until the hub changes, or `timeout` seconds. A future of the caller's own, resolved by `_notify` or
        the timer (a cancelled caller cancels only that): cheaper than asyncio.wait, once per delta a stream."""
        if timeout <= 0:
            return
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._waiters.append(fut)
        timer = loop.call_later(timeout, _resolve, (fut,))
        try:
            await fut
        finally:
            timer.cancel()
            if fut in self._waiters:  # timed out or cancelled, not notified
                self._waiters.remove(fut)

    def frames_from(self, seq: int) -> list["Framed"]:
        """The held frames from `seq` on (the caller checks that seq >= held_from)."""
        idx = seq - self.held_from
        return self.frames[max(idx, 0):] if idx < len(self.frames) else []


def _resolve(futs) -> None:
    """Resolve each of `futs` not already done (a stream's wait that timed out, a part that was stored)."""
    for fut in futs:
        if not fut.done():
            fut.set_result(None)


def _coalesce(parts: list[dict]) -> list[dict]:
    out: list[dict] = []
    for part in parts:
        prev = out[-1] if out else None
        if (prev is not None and part.get("type") in MERGEABLE and prev.get("type") == part.get("type")
                and len(prev) == 2 and len(part) == 2):
            out[-1] = {"type": prev["type"], "delta": prev["delta"] + part["delta"]}
        else:
            out.append(part)
    return out


def _unstorable(cause: BaseException | None) -> DatabaseUnavailable:
    """What storing a part raises once its hub failed for `cause`: busy when the pool was, else unavailable."""
    if isinstance(cause, DatabaseBusy):
        return DatabaseBusy("event log busy")
    return DatabaseUnavailable("event log unavailable")


def _fail_futs(futs: list[asyncio.Future], cause: BaseException | None) -> None:
    for fut in futs:
        if not fut.done():
            fut.set_exception(_unstorable(cause))
            fut.exception()  # retrieved: the run may already be gone


class _Numbered(NamedTuple):
    """A hub's pending parts, numbered: what to insert, then publish, then resolve."""
    hub: Hub
    items: list[Framed]
    futs: list[asyncio.Future]
    rows: list[queries.NewEvent]


class EventWriter:
    def __init__(self, db: Database, write_retry: float, lifecycle: Lifecycle):
        self.db, self.write_retry, self.lifecycle = db, write_retry, lifecycle
        self._dirty: dict[Hub, None] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="event-writer")

    async def close(self) -> None:
        """Once the lifecycle is stopped (no run emits any more): flush what is pending, then end."""
        self._wake.set()
        if self._task:
            await asyncio.wait((self._task,), timeout=self.write_retry + 1)
            if not self._task.done():
                self._task.cancel()

    def emit(self, hub: Hub, part: dict, *, durable: bool = False) -> asyncio.Future | None:
        """Queue a part; with durable=True returns a future resolved once it is stored."""
        if hub.failed is not None:
            raise _unstorable(hub.failed)
        hub.pending.append(part)
        fut = None
        if durable:
            fut = asyncio.get_running_loop().create_future()
            hub.pending_futs.append(fut)
        self._dirty[hub] = None
        self._wake.set()
        return fut

    def _take(self, hub: Hub) -> "_Numbered | None":
        """Number a hub's pending parts."""
        parts, futs = _coalesce(hub.pending), hub.pending_futs
        hub.pending, hub.pending_futs = [], []
        if hub.failed is not None:  # its run is over: nothing more may be numbered or stored
            _fail_futs(futs, hub.failed)
            return None
        if not parts:
            _resolve(futs)
            return None
        items, rows = [], []
        for part in parts:
            seq = hub.next_seq
            hub.next_seq += 1
            kind = str(part.get("type", ""))[:32]
            data = (dumps_delta(kind, part["delta"]) if kind in MERGEABLE and len(part) == 2
                    and isinstance(part.get("delta"), str) else dumps(part))
            rows.append(queries.NewEvent(hub.session_id, seq, hub.run_id, kind, data))
            items.append(Framed(seq, kind in TERMINAL, live(kind, data), frame(seq, data)))
        return _Numbered(hub, items, futs, rows)

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._dirty:
                if self.lifecycle.stopped:
                    return
                continue
            hubs = list(self._dirty)
            self._dirty.clear()
            # Statements of about CHUNK_ROWS rows: each chunk is published as soon as it commits, and
            # the event loop gets a turn between chunks (a 300-row batch in one go blocked it ~20 ms).
            chunk: list[_Numbered] = []
            rows_in_chunk = 0
            for hub in hubs:
                entry = self._take(hub)
                if entry is None:
                    continue
                chunk.append(entry)
                rows_in_chunk += len(entry.rows)
                if rows_in_chunk >= CHUNK_ROWS:
                    await self._flush(chunk)
                    chunk, rows_in_chunk = [], 0
            if chunk:
                await self._flush(chunk)

    async def _flush(self, batch: list["_Numbered"]) -> None:
        try:
            await self._write([row for entry in batch for row in entry.rows])
            done = [(entry, None) for entry in batch]
        except DatabaseUnavailable as exc:
            done = [(entry, exc) for entry in batch]
        except Exception:
            # e.g. a duplicate key: write each session's rows alone so only the culprit fails
            done = []
            for entry in batch:
                try:
                    await self._write(entry.rows)
                    done.append((entry, None))
                except Exception as exc:
                    done.append((entry, exc))
        for (hub, items, futs, rows), exc in done:
            if exc is None:
                hub.publish(items)
                _resolve(futs)
            else:
                busy = isinstance(exc, DatabaseBusy)
                log(logger, logging.WARNING if busy else logging.ERROR, "event log write failed; failing the run",
                    error=type(exc).__name__, detail=str(exc)[:300], events=len(rows),
                    session_id=hub.session_id, run_id=hub.run_id)
                hub.fail(exc, DATABASE_BUSY_PART if busy else DATABASE_LOST_PART)
                _fail_futs(futs, exc)

    async def _write(self, rows: list[queries.NewEvent]) -> None:
        chunks, current, size = [], [], 0
        for row in rows:
            n = len(row.data) + 100
            if current and size + n > MAX_STATEMENT_BYTES:
                chunks.append(current)
                current, size = [], 0
            current.append(row)
            size += n
        if current:
            chunks.append(current)
        for chunk in chunks:
            # Idempotent enough: a chunk applied before its connection died fails again on the primary key.
            await retrying(lambda c=chunk: queries.insert_events(self.db, c), RetryBudget(self.write_retry),
                             idempotent=True)


class EventStreamer:
    """Serves GET .../events: replay from MySQL, then follow the live hub (or poll MySQL when the run
    belongs to another replica), `: ping` every `ping_interval` seconds, end after finish/error."""

    def __init__(self, db: Database, hubs: dict[str, Hub], run_started: Callable[[str, float], Any],
                 remote_run_active: Callable[[str], Any], ping_interval: float, lifecycle: Lifecycle):
        self.db, self.hubs = db, hubs
        self._run_started, self._remote_active = run_started, remote_run_active
        self.ping_interval, self.lifecycle = ping_interval, lifecycle

    async def start_seq(self, session_id: str, cursor: int | None) -> int:
        """Where a live stream starts: the first event of the session's latest run, or `cursor` when it
        points into that run or after it. A cursor left in an earlier run (the TUI's, after a cancel) never
        replays that run's tail: its terminal part would end the new run's stream before it began."""
        hub = self.hubs.get(session_id)
        if hub is not None and not hub.done:
            first = hub.first_seq
        else:
            latest = await queries.latest_run(self.db, session_id)
            if latest is None:
                first = 1
            elif latest.first_seq is not None:
                first = int(latest.first_seq)
            else:
                first = await queries.last_seq(self.db, session_id) + 1
        return max(first, cursor or 0)

    async def first_page(self, session_id: str, pos: int, *, history_only: bool) -> list[queries.StoredEvent] | None:
        """Before the response starts: the first stored events a stream from `pos` must replay, or None
        when the live run in memory has them all. DatabaseUnavailable here is a 503, not an empty stream."""
        hub = self.hubs.get(session_id)
        if not history_only and hub is not None and pos >= hub.held_from:
            return None
        return await queries.read_events(self.db, session_id, pos - 1, PAGE)

    async def history(self, resp: web.StreamResponse, session_id: str, cursor: int,
                      rows: list[queries.StoredEvent]) -> None:
        """Every stored event from `cursor`, then `event: done`; an outage mid-way ends it with an error part
        instead (a partial history is never presented as whole)."""
        while True:
            for seq, _type, data in rows:
                await resp.write(frame(seq, data))
                cursor = seq + 1
            if len(rows) < PAGE:
                break
            try:
                rows = await queries.read_events(self.db, session_id, cursor - 1, PAGE)
            except DatabaseUnavailable:
                await resp.write(frame(None, dumps(REPLAY_LOST_PART)))
                return
        await resp.write(b"event: done\ndata: {}\n\n")

    async def follow(self, resp: web.StreamResponse, session_id: str, pos: int,
                     rows: list[queries.StoredEvent] | None) -> None:
        """Stored events from `pos` (`rows`: the first page, read before the response started), then the live
        run, until its terminal part. Ids are never skipped: when stored events that must come first cannot
        be read, the stream ends with an error part; while merely waiting for events it keeps trying."""
        await resp.write(b": ping\n\n" + frame(None, '{"type":"history_end"}'))
        last_write = time.monotonic()
        behind = False  # the last page read was full: more stored events to replay
        while True:
            hub = self.hubs.get(session_id)
            if rows is None and hub is not None and pos >= hub.held_from:
                items = hub.frames_from(pos)
                if items:
                    await resp.write(b"".join(f.frame for f in items if f.live))
                    last_write = time.monotonic()
                    pos = items[-1].seq + 1
                    if any(f.terminal for f in items):
                        return
                    continue
                if hub.done:
                    if hub.tail is not None:
                        await resp.write(hub.tail)
                    return
                await hub.wait(max(0.0, self.ping_interval - (time.monotonic() - last_write)))
            else:
                if rows is None:
                    try:
                        rows = await queries.read_events(self.db, session_id, pos - 1, PAGE)
                    except DatabaseUnavailable:
                        if behind or (hub is not None and pos < hub.held_from):  # mid-replay: never skip
                            await resp.write(frame(None, dumps(REPLAY_LOST_PART)))
                            return
                behind = rows is not None and len(rows) == PAGE
                if rows:
                    await resp.write(b"".join(frame(s, d) for s, k, d in rows if live(k, d)))
                    last_write = time.monotonic()
                    pos = rows[-1].seq + 1
                    if any(k in TERMINAL for _, k, _ in rows):
                        return
                    rows = None
                    continue
                failed, rows = rows is None, None
                if hub is not None:  # nothing stored before the live run: continue in memory
                    pos = max(pos, hub.first_seq)
                    continue
                if self.lifecycle.stopped:
                    return
                wait = max(0.05, self.ping_interval - (time.monotonic() - last_write))
                remote = False
                if not failed:
                    try:
                        remote = await self._remote_active(session_id)
                    except DatabaseUnavailable:
                        remote = False
                if remote:
                    await asyncio.sleep(min(0.25, wait))  # another replica runs it: poll the log
                else:
                    await self._run_started(session_id, min(wait, 2.0))
            if time.monotonic() - last_write >= self.ping_interval:
                await resp.write(b": ping\n\n")
                last_write = time.monotonic()
