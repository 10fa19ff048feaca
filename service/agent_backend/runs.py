"""Runs: one asyncio task per user message, owned by the app (never by an HTTP request).

The user's message is stored before the model is called. Model output streams into the session's
event log (events.Hub/EventWriter); each tool call becomes an `execute-local` event and the run
waits for POST tool-results (or times out with an error result), then feeds the result back to
Claude and continues. The assistant's message is stored with its status (complete, partial after
an upstream failure, cancelled). Usage is recorded per model call. A run that is active on this
replica refreshes a heartbeat in MySQL so another replica (or a restart) can tell a live run from
one whose process died.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid


from . import db as q
from .auth import User
from .config import Config
from .db import Database, DatabaseUnavailable
from .events import DATABASE_LOST_PART, EventWriter, Hub, local_tool_result
from .llm import LLM, StepState, UpstreamError
from .logs import log
from .tools import LOCAL_TOOL_NAMES, WRITING_TOOLS, system_prompt, tool_result_text, tools_for_mode
from .tracing import Tracer

logger = logging.getLogger("agent_backend.runs")
FINISH_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
                  "tool_use": "tool-calls", "refusal": "content-filter", "pause_turn": "other",
                  "model_context_window_exceeded": "length", None: "stop"}
HUB_LINGER_S = 120.0
REMOTE_POLL_S = 0.5
SHUTDOWN_MESSAGE = "The agent-backend service restarted and interrupted this run; send your message again."
LOST_MESSAGE = "This run was interrupted (the service lost its database); send your message again."


class RunConflict(Exception):
    pass


class UsageLimitReached(Exception):
    pass


class ServiceDraining(Exception):
    pass


class SessionNotFound(Exception):
    pass


def _zero_usage() -> dict:
    return {"input_tokens": 0, "output_tokens": 0, "cache_read_tokens": 0, "cache_creation_tokens": 0}


def build_history(messages: list[dict]) -> list[dict]:
    """Stored messages -> a valid Messages API conversation (alternating roles, every tool_use
    answered by a tool_result, no dangling results, starting with the user)."""
    out: list[dict] = []
    for m in messages:
        role = m["role"]
        if role not in ("user", "assistant"):
            continue
        blocks = [b for b in (m["content"] or []) if isinstance(b, dict)]
        if role == "assistant":
            blocks = [b for b in blocks if b.get("type") in ("text", "tool_use") and
                      (b.get("type") != "text" or b.get("text"))]
        else:
            blocks = [b for b in blocks if b.get("type") in ("text", "tool_result") and
                      (b.get("type") != "text" or b.get("text"))]
        if not blocks:
            continue
        if out and out[-1]["role"] == role:
            out[-1]["content"] = out[-1]["content"] + blocks
        else:
            out.append({"role": role, "content": list(blocks)})
    while out and out[0]["role"] != "user":
        out.pop(0)
    fixed: list[dict] = []
    for i, msg in enumerate(out):
        if msg["role"] == "user":
            prev = fixed[-1] if fixed and fixed[-1]["role"] == "assistant" else None
            allowed = {b["id"] for b in prev["content"] if b.get("type") == "tool_use"} if prev else set()
            results = [b for b in msg["content"] if b.get("type") == "tool_result" and b.get("tool_use_id") in allowed]
            seen = {b["tool_use_id"] for b in results}
            missing = [{"type": "tool_result", "tool_use_id": tid, "is_error": True,
                        "content": "No result: the run was interrupted before the tool finished."}
                       for tid in sorted(allowed - seen)]
            texts = [b for b in msg["content"] if b.get("type") == "text"]
            content = results + missing + texts
            if content:
                fixed.append({"role": "user", "content": content})
        else:
            fixed.append(msg)
            nxt = out[i + 1] if i + 1 < len(out) else None
            if any(b.get("type") == "tool_use" for b in msg["content"]) and (nxt is None or nxt["role"] != "user"):
                ids = [b["id"] for b in msg["content"] if b.get("type") == "tool_use"]
                fixed.append({"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": tid, "is_error": True,
                     "content": "No result: the run was interrupted before the tool finished."} for tid in ids]})
    return fixed


class Run:
    def __init__(self, mgr: "RunManager", *, run_id: str, session: dict, user: User, content: str,
                 mode: str | None, hub: Hub):
        self.mgr, self.id, self.session, self.user = mgr, run_id, session, user
        self.session_id = session["id"]
        self.content, self.mode, self.hub = content, mode, hub
        self.task: asyncio.Task | None = None
        self.tool_waiters: dict[str, asyncio.Future] = {}
        self.cancel_reason: str | None = None
        self.state: StepState | None = None
        self.usage = _zero_usage()
        self.finishing = False
        self.marks: dict[str, float] = {}
        self.outage = q.RetryBudget(mgr.cfg.db_write_retry)

    def emit(self, part: dict, durable: bool = False):
        return self.mgr.writer.emit(self.hub, part, durable=durable)

    def cancel(self, reason: str) -> None:
        # Once: a second cancel (Ctrl-C twice, or shutdown after a user cancel) would interrupt the storing
        # of the partial answer, and one during the final bookkeeping would leave the run registered.
        if self.task and not self.task.done() and self.cancel_reason is None and not self.finishing:
            self.cancel_reason = reason
            self.task.cancel()

    def _first_token(self, started: float) -> None:
        if "first_token_ms" not in self.marks:
            self.marks["first_token_ms"] = round((time.monotonic() - started) * 1000, 2)

    def _checkpoint(self) -> None:
        # A cancel request is also honoured here, in case a library swallowed the task cancellation.
        if self.cancel_reason is not None:
            raise asyncio.CancelledError()

    def resolve_tool(self, request_id: str, result: dict) -> bool:
        fut = self.tool_waiters.get(request_id)
        if fut is None or fut.done():
            return False
        fut.set_result(result)
        return True

    async def execute(self) -> None:
        cfg, db = self.mgr.cfg, self.mgr.db
        status, finish_reason, error = "error", None, None
        terminal: dict | None = None   # the part that ends the stream, emitted last (after bookkeeping)
        tail: dict | None = None       # or, when the event log cannot be written, an id-less final part
        span = self.mgr.tracer.turn(run_id=self.id, session_id=self.session_id, user_id=self.user.id,
                                    model=cfg.anthropic_model, inputs={"message": self.content, "mode": self.mode})
        answer_text: list[str] = []
        started = time.monotonic()
        try:
            self.emit({"type": "start", "threadId": self.session_id, "runId": self.id})
            if self.session.get("first_turn"):  # nothing earlier to load: the message just stored is all
                history = [{"role": "user", "content": [{"type": "text", "text": self.content}]}]
            else:
                history = build_history(await q.list_messages(db, self.session_id))
            dctx, ictx, cwd = (self.session.get("directory_context"), self.session.get("instruction_context"),
                               self.session.get("cwd") or "")
            local = bool(self.session.get("local_execution", True))
            tools = tools_for_mode(self.mode) if local else []
            system = system_prompt(cwd=cwd, directory_context=dctx, instruction_context=ictx, mode=self.mode,
                                   local_execution=local)
            self.marks["context_ms"] = round((time.monotonic() - started) * 1000, 2)
            for step in range(cfg.max_steps):
                self._checkpoint()
                state = self.state = StepState()
                child = span.child("anthropic.messages", "llm",
                                   {"model": cfg.anthropic_model, "step": step, "messages": len(history)})
                try:
                    await self.mgr.llm.stream(
                        system=system, messages=history, tools=tools, state=state,
                        on_text=lambda d: (self._checkpoint(), self._first_token(started), answer_text.append(d),
                                           self.emit({"type": "text-delta", "delta": d})),
                        on_thinking=lambda d: (self._checkpoint(), self.emit({"type": "reasoning", "delta": d})))
                except UpstreamError as exc:
                    child.end(error=str(exc))
                    self.state = None
                    await self._record_usage(state)
                    blocks = state.complete_blocks()
                    if blocks:
                        await self._add_message("assistant", blocks, "partial")
                    error = str(exc)
                    terminal = {"type": "error", "error": error}
                    return
                self.state = None
                await self._record_usage(state)
                blocks = state.complete_blocks()
                child.end(outputs={"content": blocks, "stop_reason": state.stop_reason},
                          metadata={"usage": dict(state.usage)})
                if blocks:
                    await self._add_message("assistant", blocks, "complete")
                    history.append({"role": "assistant", "content": blocks})
                tool_uses = [b for b in blocks if b["type"] == "tool_use"]
                if state.stop_reason == "tool_use" and tool_uses:
                    results = []
                    for tu in tool_uses:
                        results.append(await self._run_tool(tu, tools))
                    await self._add_message("user", results, "complete")
                    history.append({"role": "user", "content": results})
                    continue
                finish_reason = FINISH_REASONS.get(state.stop_reason, "other")
                status = "completed"
                terminal = {"type": "finish", "finishReason": finish_reason}
                return
            error = f"Stopped after {cfg.max_steps} model calls in one turn (tool loop limit)."
            terminal = {"type": "error", "error": error}
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            reason = self.cancel_reason or "shutdown"
            status = "cancelled" if reason == "user" else "interrupted"
            await self._store_partial(status)
            if reason == "user":
                finish_reason = "cancelled"
                terminal = {"type": "finish", "finishReason": "cancelled"}
            else:
                error = "interrupted by shutdown"
                terminal = {"type": "error", "error": SHUTDOWN_MESSAGE}
        except DatabaseUnavailable:
            error = "database unavailable"
            log(logger, logging.ERROR, "run failed: database unavailable", run_id=self.id)
            tail = DATABASE_LOST_PART
        except Exception:
            error = "internal error"
            logger.exception("run failed", extra={"fields": {"run_id": self.id}})
            terminal = {"type": "error", "error": "Internal error in agent-backend."}
        finally:
            self.finishing = True
            # Bookkeeping first, so that once the client sees the terminal part the run is over everywhere
            # (a next message is never refused with 409 because of this run).
            with contextlib.suppress(Exception):
                await self._store(lambda: q.finish_run(db, self.id, status=status, finish_reason=finish_reason,
                                                       error=error, usage=self.usage), idempotent=True)
            if terminal is not None:
                if terminal["type"] == "finish":
                    terminal["usage"] = self._usage_part()
                try:
                    fut = self.emit(terminal, durable=True)
                    async with asyncio.timeout(10):
                        await fut
                except (Exception, asyncio.CancelledError):
                    tail = terminal
            if tail is not None and not self.hub.done:
                self.hub.fail(DatabaseUnavailable(), tail)
            span.end(outputs={"answer": "".join(answer_text), "status": status, "usage": dict(self.usage)},
                     error=error)
            log(logger, logging.INFO, "run finished", run_id=self.id, session_id=self.session_id, status=status,
                finish_reason=finish_reason, duration_s=round(time.monotonic() - started, 3),
                input_tokens=self.usage["input_tokens"], output_tokens=self.usage["output_tokens"], **self.marks)
            self.mgr._run_done(self)

    async def _store(self, call, *, idempotent: bool = False):
        """A write of the run's outcome, retried through a brief MySQL outage (q.retrying); all of one run's
        writes share one budget, so in a real outage the run still ends within about cfg.db_write_retry."""
        return await q.retrying(call, self.outage, idempotent=idempotent)

    async def _add_message(self, role: str, content: list[dict], status: str) -> None:
        await self._store(lambda: q.add_message(self.mgr.db, session_id=self.session_id, run_id=self.id, role=role,
                                                content=content, status=status))

    def _usage_part(self) -> dict:
        prompt = self.usage["input_tokens"]
        return {"promptTokens": prompt, "completionTokens": self.usage["output_tokens"],
                "totalTokens": prompt + self.usage["output_tokens"]}

    async def _record_usage(self, state: StepState) -> None:
        if not any(state.usage.values()):
            return
        for k, v in state.usage.items():
            self.usage[k] += v
        await self._store(lambda: q.record_usage(self.mgr.db, user_id=self.user.id, session_id=self.session_id,
                                                 run_id=self.id, model=self.mgr.cfg.anthropic_model, usage=state.usage))

    async def _store_partial(self, status: str) -> None:
        """On cancel: keep what the model said so far, and answer any unanswered tool call."""
        try:
            state, self.state = self.state, None
            if state is not None:
                await self._record_usage(state)
                blocks = [b for b in state.complete_blocks() if b["type"] == "text"]
                if blocks:
                    await self._add_message("assistant", blocks, status)
            pending = [rid for rid, fut in self.tool_waiters.items() if not fut.done()]
            if pending:
                await self._add_message("user", [{"type": "tool_result", "tool_use_id": rid, "is_error": True,
                                                 "content": f"The run was {status} before the tool finished."}
                                                for rid in pending], status)
        except Exception as exc:
            log(logger, logging.WARNING, "could not store the partial answer", run_id=self.id,
                error=type(exc).__name__)

    async def _run_tool(self, tu: dict, offered: list[dict]) -> dict:
        name, args, tid = tu["name"], tu.get("input") or {}, tu["id"]
        self.emit({"type": "tool-call", "toolCallId": tid, "toolName": name, "args": args})
        offered_names = {t["name"] for t in offered}
        ran_locally = False  # the CLI ran it and posted the result (and shows it itself)
        if name not in LOCAL_TOOL_NAMES or name not in offered_names or tu.get("_bad_json"):
            why = ("its arguments were not valid JSON" if tu.get("_bad_json") else
                   "it is not allowed in plan mode" if name in WRITING_TOOLS and self.mode == "plan" else
                   "it is not available")
            result = {"stdout": "", "stderr": f"Tool {name} was not run: {why}.", "exit_code": 1}
        else:
            self._checkpoint()
            fut = asyncio.get_running_loop().create_future()
            self.tool_waiters[tid] = fut
            await self.emit({"type": "execute-local", "toolName": name, "args": args, "requestId": tid},
                            durable=True)
            try:
                async with asyncio.timeout(self.mgr.cfg.tool_result_timeout):
                    result = await fut
                ran_locally = True
            except asyncio.TimeoutError:
                result = {"stdout": "", "stderr": f"No result from the CLI within "
                          f"{self.mgr.cfg.tool_result_timeout:g}s; the tool call timed out.", "exit_code": 124}
                log(logger, logging.INFO, "tool result timed out", run_id=self.id, tool=name)
        text = tool_result_text(result)
        self.emit(local_tool_result(tid, text) if ran_locally else
                  {"type": "tool-result", "toolCallId": tid, "result": text})
        code = result.get("exit_code")
        return {"type": "tool_result", "tool_use_id": tid, "content": text,
                "is_error": not (code == 0 or code is None)}


class RunManager:
    def __init__(self, cfg: Config, db: Database, llm: LLM, tracer: Tracer, writer: EventWriter):
        self.cfg, self.db, self.llm, self.tracer, self.writer = cfg, db, llm, tracer, writer
        self.owner = uuid.uuid4().hex
        self.runs: dict[str, Run] = {}
        self.hubs: dict[str, Hub] = {}
        self.closing = asyncio.Event()
        self.draining = False
        self._waiters: dict[str, asyncio.Future] = {}
        self._starting: dict[str, str] = {}  # session id -> user id, while a run's start is being stored
        self._bg: list[asyncio.Task] = []
        self.stale_after = max(4 * cfg.heartbeat_interval, cfg.stale_run_after)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._bg.append(loop.create_task(self._heartbeat(), name="run-heartbeat"))
        self._bg.append(loop.create_task(self._poll_remote_requests(), name="run-requests"))

    async def _heartbeat(self) -> None:
        swept_at = 0.0
        while not self.closing.is_set():
            with contextlib.suppress(DatabaseUnavailable, Exception):
                await q.heartbeat_runs(self.db, [r.id for r in self.runs.values()])
                await self._end_dead_runs(own=True)
                if time.monotonic() - swept_at > self.stale_after:
                    await self._end_dead_runs(own=False)
                    swept_at = time.monotonic()
            now = time.monotonic()
            for sid, hub in list(self.hubs.items()):
                if hub.done and hub.finished_at and now - hub.finished_at > HUB_LINGER_S and sid not in self.runs:
                    self.hubs.pop(sid, None)
            closing = asyncio.ensure_future(self.closing.wait())
            await asyncio.wait((closing,), timeout=self.cfg.heartbeat_interval)
            closing.cancel()

    async def _end_dead_runs(self, *, own: bool) -> None:
        """Runs marked running in MySQL that nobody executes: with `own`, this process's runs that are no longer
        in self.runs (their final update was lost, e.g. in a MySQL outage); else runs whose owner stopped
        heart-beating. Each ends its event log with an error part, so clients stop waiting, and is marked
        interrupted; one whose terminal part did reach the event log is only marked as that part says.
        Own runs count once a heartbeat old (a start that commits meanwhile is in self._starting, then in
        self.runs), others once stale_after old."""
        age = self.cfg.heartbeat_interval if own else self.stale_after
        cutoff = q.utc_ago(age)
        if own:
            live = [r.id for r in self.runs.values()]
            sql = "SELECT id, session_id, started_at FROM runs WHERE status='running' AND owner=%s AND started_at < %s"
            args: list = [self.owner, cutoff]
            if live:
                sql += f" AND id NOT IN ({','.join(['%s'] * len(live))})"
                args += live
            rows = await self.db.fetchall(sql, args)
        else:
            rows = await self.db.fetchall("SELECT id, session_id, started_at FROM runs WHERE status='running'"
                                          " AND heartbeat_at < %s", (cutoff,))
        for run_id, session_id, started_at in rows:
            if session_id in self.runs or session_id in self._starting:
                continue
            async with self.db.transaction() as tx:
                # The session row lock orders this with start_run on every replica: a newer run of the
                # session owns the next event numbers, and then nothing is appended for the dead one.
                row = await tx.fetchone(
                    "SELECT (SELECT COUNT(*) FROM runs r WHERE r.session_id=s.id AND r.started_at > %s),"
                    " (SELECT COALESCE(MAX(e.seq), 0) FROM events e WHERE e.session_id=s.id)"
                    " FROM sessions s WHERE s.id=%s FOR UPDATE", (started_at, session_id))
                # Re-read under lock: another replica's sweep, or the run's own late update, may have won.
                state = await tx.fetchone(
                    "SELECT r.status, (SELECT e.data FROM events e WHERE e.session_id=r.session_id AND e.run_id=r.id"
                    " AND e.type IN ('finish','error') ORDER BY e.seq DESC LIMIT 1) FROM runs r WHERE r.id=%s FOR UPDATE",
                    (run_id,))
                if state is None or state[0] != "running":
                    continue
                if state[1] is not None:  # it ended; only its final update was lost
                    part = q.json.loads(state[1])
                    status = ("error" if part.get("type") == "error" else
                              "cancelled" if part.get("finishReason") == "cancelled" else "completed")
                    await tx.execute("UPDATE runs SET status=%s, finished_at=%s WHERE id=%s", (status, q.utcnow(), run_id))
                    continue
                if row is not None and int(row[0]) == 0:
                    await tx.execute(
                        "INSERT INTO events (session_id, seq, run_id, type, data, created_at) VALUES (%s,%s,%s,%s,%s,%s)",
                        (session_id, int(row[1]) + 1, run_id, "error",
                         q.dumps({"type": "error", "error": LOST_MESSAGE if own else SHUTDOWN_MESSAGE}), q.utcnow()))
                await tx.execute("UPDATE runs SET status='interrupted', finished_at=%s, error=%s "
                                 "WHERE id=%s AND status='running'",
                                 (q.utcnow(), "final update lost" if own else "owner stopped", run_id))
            log(logger, logging.WARNING, "marked an orphaned run interrupted", run_id=run_id,
                why="its final update was lost" if own else "its owner stopped")

    async def start_run(self, user: User, session: dict, body: dict) -> Run:
        if self.draining:
            raise ServiceDraining()
        sid = session["id"]
        old = self.runs.get(sid)
        if (old is not None and old.user.id != user.id) or self._starting.get(sid, user.id) != user.id:
            raise SessionNotFound()  # another user's session: never reveal that it exists or is busy
        if old is not None and (old.finishing or old.cancel_reason) and old.task is not None:
            await asyncio.wait((old.task,), timeout=10)  # it is ending (terminal part being written): wait
        if sid in self.runs:
            raise RunConflict()
        if self.cfg.monthly_token_limit > 0:
            used = await q.monthly_usage(self.db, user.id)
            if used["input_tokens"] + used["output_tokens"] >= self.cfg.monthly_token_limit:
                raise UsageLimitReached()
        run_id = str(uuid.uuid4())
        content = body["content"]
        cutoff = q.utc_ago(self.stale_after)
        if sid in self._starting:
            raise RunConflict()
        self._starting[sid] = user.id
        try:
            row = await self._store_turn(sid, user, run_id, content, body, cutoff)
        finally:
            self._starting.pop(sid, None)
        first_seq = int(row[5]) + 1
        session = dict(session, local_execution=bool(row[0]), cwd=row[1],
                       directory_context=q.json.loads(row[2]) if row[2] else None, instruction_context=row[3],
                       first_turn=not row[6])
        previous = self.hubs.get(sid)
        if previous is not None:  # numbers it handed out may still be on their way to MySQL
            first_seq = max(first_seq, previous.next_seq)
        hub = Hub(sid, run_id, first_seq)
        hub.user_id = user.id
        run = Run(self, run_id=run_id, session=session, user=user, content=content, mode=body.get("mode"), hub=hub)
        self.hubs[sid] = hub
        self.runs[sid] = run
        run.task = asyncio.get_running_loop().create_task(run.execute(), name=f"run-{run_id}")
        waiter = self._waiters.pop(sid, None)
        if waiter and not waiter.done():
            waiter.set_result(None)
        log(logger, logging.INFO, "run started", run_id=run_id, session_id=sid, user_id=user.id,
            mode=body.get("mode"))
        return run

    async def _store_turn(self, sid: str, user: User, run_id: str, content: str, body: dict, cutoff) -> tuple:
        """The run's start in one transaction and two round trips (multi-statement): lock the session row
        (serialises runs of a session across replicas) while reading its context, its live run, the last
        event number and whether it has earlier messages; then insert the run and the user's message,
        touch the session and commit."""
        async with self.db.connection() as conn:
            _, rows = await self.db.script(
                conn,
                "START TRANSACTION;"
                " SELECT s.local_execution, s.cwd, s.directory_context, s.instruction_context,"
                f" (SELECT CONCAT(r.id, ' ', r.owner) FROM runs r WHERE r.session_id=s.id AND {q.LIVE_RUN}"
                "   ORDER BY r.started_at DESC LIMIT 1),"
                " (SELECT COALESCE(MAX(e.seq), 0) FROM events e WHERE e.session_id=s.id),"
                " EXISTS(SELECT 1 FROM messages m WHERE m.session_id=s.id)"
                " FROM sessions s WHERE s.id=%s AND s.user_id=%s FOR UPDATE", (cutoff, sid, user.id))
            row = rows[0] if rows else None
            orphan = None
            if row is not None and row[4]:
                active_id, active_owner = row[4].split(" ", 1)
                if active_owner == self.owner and sid not in self.runs:
                    orphan = active_id  # ours, but not running here any more (its final update was lost)
            if row is None or (row[4] and orphan is None) or sid in self.runs:
                await self.db.script(conn, "ROLLBACK")
                if row is None:
                    raise SessionNotFound()
                raise RunConflict()
            now = q.utcnow()
            title = content.strip().splitlines()[0][:200] if content.strip() else None
            sql = ("INSERT INTO runs (id, session_id, user_id, client_run_id, status, mode, owner, heartbeat_at,"
                   " started_at) VALUES (%s,%s,%s,%s,'running',%s,%s,%s,%s);"
                   " INSERT INTO messages (session_id, run_id, role, content, status, created_at)"
                   " VALUES (%s,%s,'user',%s,'complete',%s);"
                   " UPDATE sessions SET last_used=%s, expired_at=NULL, title=COALESCE(title, %s) WHERE id=%s;")
            args: list = [run_id, sid, user.id, str(body.get("run_id") or "")[:64] or None, body.get("mode"),
                          self.owner, now, now,
                          sid, run_id, q.dumps([{"type": "text", "text": content}]), now,
                          now, title, sid]
            if orphan:
                sql = "UPDATE runs SET status='interrupted', finished_at=%s WHERE id=%s AND status='running'; " + sql
                args = [now, orphan, *args]
            await self.db.script(conn, sql + " COMMIT", args)
            return row

    def _run_done(self, run: Run) -> None:
        if self.runs.get(run.session_id) is run:
            del self.runs[run.session_id]

    async def cancel(self, session_id: str, *, wait: float = 0.0) -> str | None:
        """Cancel the session's live run, here or (through MySQL) on the replica running it; with `wait`,
        give it up to that many seconds to end (its partial answer stored, its terminal part sent)."""
        run = self.runs.get(session_id)
        if run is not None:
            run.cancel("user")
            if wait > 0 and run.task is not None:
                await asyncio.wait((run.task,), timeout=wait)
            return run.id
        active = await q.active_run(self.db, session_id, self.stale_after)
        if not active or active[1] == self.owner:
            return None
        await q.add_run_request(self.db, active[0], "cancel", None, None)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and await q.active_run(self.db, session_id, self.stale_after):
            await asyncio.sleep(0.1)  # the owner picks the request up within REMOTE_POLL_S
        return active[0]

    async def tool_result(self, session_id: str, request_id: str, result: dict) -> bool:
        run = self.runs.get(session_id)
        if run is not None:
            return run.resolve_tool(request_id, result)
        active = await q.active_run(self.db, session_id, self.stale_after)
        if active and active[1] != self.owner:
            await q.add_run_request(self.db, active[0], "tool_result", request_id, result)
            return True
        return False

    async def _poll_remote_requests(self) -> None:
        """Deliver tool results and cancels that reached another replica (see run_requests)."""
        while not self.closing.is_set():
            if self.runs:
                by_id = {r.id: r for r in self.runs.values()}
                try:
                    for run_id, kind, request_id, payload in await q.take_run_requests(self.db, list(by_id)):
                        run = by_id.get(run_id)
                        if run is None:
                            continue
                        if kind == "cancel":
                            run.cancel("user")
                        elif kind == "tool_result" and isinstance(payload, dict):
                            run.resolve_tool(request_id, payload)
                except Exception as exc:
                    log(logger, logging.DEBUG, "remote request poll failed", error=type(exc).__name__)
            closing = asyncio.ensure_future(self.closing.wait())
            await asyncio.wait((closing,), timeout=REMOTE_POLL_S)
            closing.cancel()

    async def wait_run_started(self, session_id: str, timeout: float) -> None:
        fut = self._waiters.get(session_id)
        if fut is None or fut.done():
            fut = self._waiters[session_id] = asyncio.get_running_loop().create_future()
        await asyncio.wait((fut,), timeout=timeout)
        if fut.done() and self._waiters.get(session_id) is fut:
            self._waiters.pop(session_id, None)

    async def remote_run_active(self, session_id: str) -> bool:
        row = await q.active_run(self.db, session_id, self.stale_after)
        return bool(row and row[1] != self.owner)

    async def shutdown(self, grace: float) -> None:
        """Refuse new runs, let running ones finish within `grace` seconds, then interrupt the rest."""
        self.draining = True
        tasks = [r.task for r in self.runs.values() if r.task]
        if tasks:
            log(logger, logging.INFO, "waiting for runs to finish", runs=len(tasks), grace_s=grace)
            await asyncio.wait(tasks, timeout=grace)
        left = [r for r in self.runs.values() if r.task and not r.task.done()]
        for run in left:
            run.cancel("shutdown")
        if left:
            await asyncio.wait([r.task for r in left], timeout=5)
        self.closing.set()
        for fut in self._waiters.values():
            if not fut.done():
                fut.set_result(None)
        if self._bg:
            await asyncio.wait(self._bg, timeout=2)
        for task in self._bg:
            task.cancel()
