"""Runs: one asyncio task per user message, owned by the app (never by an HTTP request), and the registry
of the runs live in this process.

The user's message, the run and its first event (`start`) are stored in one round trip before the model
is called (queries.start_turn). Model output streams into
the session's event log (events.Hub/EventWriter); each tool call becomes an `execute-local` event and the
run waits for POST tool-results (or times out with an error result), then feeds the result back to Claude
and continues. The assistant's message is stored with its status (complete, partial after an upstream
failure, cancelled). Usage is recorded per model call. The turn returns the run's Outcome, which is
written once. Heartbeats, the sweep of dead runs and requests from other replicas are liveness.py's.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from typing import TYPE_CHECKING

from . import queries
from .codec import dumps
from .auth import User
from .config import Config
from .db import Database, DatabaseBusy, DatabaseUnavailable, RetryBudget, retrying
from .errors import BUSY_MESSAGE, RunConflict, ServiceDraining, SessionNotFound, UsageLimitReached
from .events import DATABASE_LOST_PART, SHUTDOWN_MESSAGE, EventWriter, Hub, local_tool_result
from .history import build_history, without_tools
from .lifecycle import Lifecycle
from .liveness import Liveness
from .llm import LLM, StepState, UpstreamError
from .logs import log
from .tools import WRITING_TOOLS, system_prompt, tool_result_text, tools_for_mode
from .tracing import Tracer
from .usage import Usage

if TYPE_CHECKING:
    from .seqera_mcp import McpSession, McpTool, SeqeraMcp

logger = logging.getLogger("agent_backend.runs")
FINISH_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
                  "tool_use": "tool-calls", "refusal": "content-filter", "pause_turn": "other",
                  "model_context_window_exceeded": "length", None: "stop"}


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How a run ended, as stored on its row (status, finish_reason, error) and told to its stream."""
    status: str                       # completed, error, cancelled or interrupted
    finish_reason: str | None = None
    error: str | None = None
    terminal: dict | None = None      # the part that ends the stream, stored then sent (after the bookkeeping)
    tail: dict | None = None          # or, when the event log cannot be written, an id-less final part

    @classmethod
    def finished(cls, stop_reason: str | None) -> "Outcome":
        reason = FINISH_REASONS.get(stop_reason, "other")
        return cls("completed", reason, terminal={"type": "finish", "finishReason": reason})

    @classmethod
    def failed(cls, error: str) -> "Outcome":
        return cls("error", error=error, terminal={"type": "error", "error": error})

    @classmethod
    def cancelled(cls, reason: str) -> "Outcome":
        """By the user (a cancel or an expire), or by a shutdown."""
        if reason == "user":
            return cls("cancelled", "cancelled", terminal={"type": "finish", "finishReason": "cancelled"})
        return cls("interrupted", error="interrupted by shutdown",
                   terminal={"type": "error", "error": SHUTDOWN_MESSAGE})

    def final_part(self, usage: Usage) -> dict | None:
        """The terminal part as sent: a finish carries the run's usage."""
        if self.terminal is not None and self.terminal["type"] == "finish":
            return {**self.terminal, "usage": usage.stream_part()}
        return self.terminal


class Run:
    def __init__(self, mgr: "RunManager", *, run_id: str, session_id: str, turn: queries.TurnStart, user: User,
                 token: str | None, content: str, mode: str | None, hub: Hub):
        self.mgr, self.id, self.session_id, self.turn, self.user = mgr, run_id, session_id, turn, user
        self._token = token  # the caller's Platform token, for Seqera MCP only; in memory for the run only
        self.mcp: McpSession | None = None
        self.content, self.mode, self.hub = content, mode, hub
        self.task: asyncio.Task | None = None
        self.tool_waiters: dict[str, asyncio.Future] = {}
        self.cancel_reason: str | None = None
        self.state: StepState | None = None
        self.usage = Usage()
        self.answer: list[str] = []  # the text of the stored assistant blocks, for the trace
        self.finishing = False
        self.marks: dict[str, float] = {}
        self.outage = RetryBudget(mgr.cfg.db_write_retry)

    def emit(self, part: dict, durable: bool = False):
        return self.mgr.writer.emit(self.hub, part, durable=durable)

    def cancel(self, reason: str) -> None:
        # Once: a second cancel (Ctrl-C twice, or shutdown after a user cancel) would interrupt the storing
        # of the partial answer, and one during the final bookkeeping would leave the run registered.
        if self.task and not self.task.done() and self.cancel_reason is None and not self.finishing:
            self.cancel_reason = reason
            self.task.cancel()

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
        started = time.monotonic()
        span = self.mgr.tracer.turn(run_id=self.id, session_id=self.session_id, user_id=self.user.id,
                                    model=self.mgr.cfg.anthropic_model,
                                    inputs={"message": self.content, "mode": self.mode})
        outcome = Outcome("error")
        try:
            outcome = await self._ended(span, started)
        finally:
            await self._finish(outcome, span, started)

    async def _ended(self, span, started: float) -> Outcome:
        """The turn's outcome, whichever way it ends."""
        try:
            return await self._turn(span, started)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            outcome = Outcome.cancelled(self.cancel_reason or "shutdown")
            await self._store_partial(outcome.status)
            return outcome
        except DatabaseBusy:  # MySQL is fine: the error part can be stored, and says so
            log(logger, logging.WARNING, "run failed: database pool busy", run_id=self.id)
            return Outcome("error", error="database busy", terminal={"type": "error", "error": BUSY_MESSAGE})
        except DatabaseUnavailable:
            log(logger, logging.ERROR, "run failed: database unavailable", run_id=self.id)
            return Outcome("error", error="database unavailable", tail=DATABASE_LOST_PART)
        except Exception:
            logger.exception("run failed", extra={"fields": {"run_id": self.id}})
            return Outcome("error", error="internal error",
                           terminal={"type": "error", "error": "Internal error in agent-backend."})

    async def _turn(self, span, started: float) -> Outcome:
        cfg, turn = self.mgr.cfg, self.turn  # the `start` part was stored with the run's start (start_turn)
        if turn.first_turn:  # nothing earlier to load: the message just stored is all
            history = [{"role": "user", "content": [{"type": "text", "text": self.content}]}]
        else:
            history = build_history(await queries.list_messages(self.mgr.db, self.session_id))
        tools = tools_for_mode(self.mode) if turn.local_execution else []
        platform = await self._platform_tools(span)
        tools += [t.spec() for t in platform]
        if not tools:
            history = without_tools(history)
        system = system_prompt(cwd=turn.cwd, directory_context=turn.directory_context,
                               instruction_context=turn.instruction_context, mode=self.mode,
                               local_execution=turn.local_execution, platform_tools=bool(platform),
                               platform_problem=self.mcp.problem if self.mcp else None)
        self.marks["context_ms"] = round((time.monotonic() - started) * 1000, 2)

        def on_text(delta: str) -> None:
            self._checkpoint()
            if "first_token_ms" not in self.marks:
                self.marks["first_token_ms"] = round((time.monotonic() - started) * 1000, 2)
            self.emit({"type": "text-delta", "delta": delta})

        def on_thinking(delta: str) -> None:
            self._checkpoint()
            self.emit({"type": "reasoning", "delta": delta})

        for step in range(cfg.max_steps):
            self._checkpoint()
            state = self.state = StepState()
            child = span.child("anthropic.messages", "llm",
                               {"model": cfg.anthropic_model, "step": step, "messages": len(history)})
            try:
                await self.mgr.llm.stream(system=system, messages=history, tools=tools, state=state,
                                          on_text=on_text, on_thinking=on_thinking)
            except UpstreamError as exc:
                child.end(error=str(exc))
                await self._settle(state, "partial")
                return Outcome.failed(str(exc))
            blocks = await self._settle(state, "complete")
            child.end(outputs={"content": blocks, "stop_reason": state.stop_reason},
                      metadata={"usage": state.usage.as_dict()})
            if blocks:
                history.append({"role": "assistant", "content": blocks})
            tool_uses = [b for b in blocks if b["type"] == "tool_use"]
            if state.stop_reason != "tool_use" or not tool_uses:
                return Outcome.finished(state.stop_reason)
            results = [await self._run_tool(tu, tools) for tu in tool_uses]
            await self._add_message("user", results, "complete")
            history.append({"role": "user", "content": results})
        return Outcome.failed(f"Stopped after {cfg.max_steps} model calls in one turn (tool loop limit).")

    async def _platform_tools(self, span) -> list[McpTool]:
        """Seqera MCP's tools this turn may offer: in plan mode the read-only ones only. A tool that changes
        state runs only once the user approved it (_approval), which needs a CLI that runs local tools."""
        if self.mgr.mcp is None or not self._token:
            return []
        self.mcp = self.mgr.mcp.session(self._token, span)
        tools = await self.mcp.list_tools()
        if self.mode == "plan" or not self.turn.local_execution:
            return [t for t in tools if t.read_only]
        return tools

    async def _finish(self, outcome: Outcome, span, started: float) -> None:
        """Write the outcome: bookkeeping first, so that once the client sees the terminal part the run is
        over everywhere (a next message is never refused with 409 because of this run)."""
        self.finishing = True
        with contextlib.suppress(Exception):
            await self._store(lambda: queries.finish_run(self.mgr.db, self.id, status=outcome.status,
                                                         finish_reason=outcome.finish_reason, error=outcome.error,
                                                         usage=self.usage), idempotent=True)
        tail, terminal = outcome.tail, outcome.final_part(self.usage)
        if terminal is not None:
            try:
                fut = self.emit(terminal, durable=True)
                async with asyncio.timeout(10):
                    await fut
            except (Exception, asyncio.CancelledError):
                tail = terminal
        if tail is not None and not self.hub.done:
            self.hub.fail(DatabaseUnavailable(), tail)
        span.end(outputs={"answer": "".join(self.answer), "status": outcome.status, "usage": self.usage.as_dict()},
                 error=outcome.error)
        log(logger, logging.INFO, "run finished", run_id=self.id, session_id=self.session_id, status=outcome.status,
            finish_reason=outcome.finish_reason, duration_s=round(time.monotonic() - started, 3),
            input_tokens=self.usage.input_tokens, output_tokens=self.usage.output_tokens, **self.marks)
        self.mgr.run_done(self)
        if self.mcp is not None:  # last: the session's next message need not wait for it
            with contextlib.suppress(Exception):
                await self.mcp.close()

    async def _store(self, call, *, idempotent: bool = False):
        """A write of the run's outcome, retried through a brief MySQL outage (db.retrying); all of one run's
        writes share one budget, so in a real outage the run still ends within about cfg.db_write_retry."""
        return await retrying(call, self.outage, idempotent=idempotent)

    async def _add_message(self, role: str, content: list[dict], status: str) -> None:
        await self._store(lambda: queries.add_message(self.mgr.db, session_id=self.session_id, run_id=self.id,
                                                      role=role, content=content, status=status))

    async def _settle(self, state: StepState, status: str, *, kinds: tuple[str, ...] | None = None) -> list:
        """One model call is over: record its usage and store what it said (its complete blocks, of `kinds`
        when given) as `status`."""
        self.state = None
        if state.usage:
            self.usage += state.usage
            await self._store(lambda: queries.record_usage(
                self.mgr.db, user_id=self.user.id, session_id=self.session_id, run_id=self.id,
                model=self.mgr.cfg.anthropic_model, usage=state.usage))
        blocks = [b for b in state.complete_blocks() if kinds is None or b["type"] in kinds]
        if blocks:
            self.answer.extend(b["text"] for b in blocks if b["type"] == "text")
            await self._add_message("assistant", blocks, status)
        return blocks

    async def _store_partial(self, status: str) -> None:
        """On cancel: keep what the model said so far, and answer any unanswered tool call."""
        try:
            if self.state is not None:
                await self._settle(self.state, status, kinds=("text",))
            pending = [rid for rid, fut in self.tool_waiters.items() if not fut.done()]
            if pending:
                await self._add_message("user", [{"type": "tool_result", "tool_use_id": rid, "is_error": True,
                                                 "content": f"The run was {status} before the tool finished."}
                                                for rid in pending], status)
        except Exception as exc:
            log(logger, logging.WARNING, "could not store the partial answer", run_id=self.id,
                error=type(exc).__name__)

    async def _run_tool(self, tu: dict, offered: list[dict]) -> dict:
        """Run one tool call: refused, on Seqera MCP, or by the CLI (execute-local, then its posted result)."""
        name, args, tid = tu["name"], tu.get("input") or {}, tu["id"]
        self.emit({"type": "tool-call", "toolCallId": tid, "toolName": name, "args": args})
        remote = self.mcp.tools.get(name) if self.mcp else None
        ran_locally = False  # the CLI ran it and posted the result (and shows it itself)
        if tu.get("_bad_json") or name not in {t["name"] for t in offered}:
            text, is_error = tool_result_text({"stderr": f"Tool {name} was not run: {self._refusal(tu, remote)}.",
                                               "exit_code": 1}), True
        elif remote is not None and not remote.read_only and (denied := await self._approval(tid, name, args)):
            text, is_error = tool_result_text({"stderr": f"Tool {name} was not run: {denied}.", "exit_code": 1}), True
        elif remote is not None:
            self._checkpoint()
            called = await self.mcp.call(remote, args)
            text, is_error = called.text, called.is_error
        else:
            result = await self._run_locally(tid, name, args)
            ran_locally = result is not None
            result = result or {"stdout": "", "stderr": f"No result from the CLI within "
                                f"{self.mgr.cfg.tool_result_timeout:g}s; the tool call timed out.", "exit_code": 124}
            code = result.get("exit_code")
            text, is_error = tool_result_text(result), not (code == 0 or code is None)
        self.emit(local_tool_result(tid, text) if ran_locally else
                  {"type": "tool-result", "toolCallId": tid, "result": text})
        return {"type": "tool_result", "tool_use_id": tid, "content": text, "is_error": is_error}

    def _refusal(self, tu: dict, remote: McpTool | None) -> str:
        """Why a call was not run."""
        if tu.get("_bad_json"):
            return "its arguments were not valid JSON"
        if self.mode == "plan" and (tu["name"] in WRITING_TOOLS or (remote is not None and not remote.read_only)):
            return "it is not allowed in plan mode"
        return "it is not available"

    async def _approval(self, tid: str, name: str, args: dict) -> str | None:
        """Ask the user before a Platform tool that changes state, with the one approval CLI 1.12.0 has: an
        `execute-local` for it. On yes the CLI, which does not know the tool, answers `Unknown tool: <name>`
        (headless mode says yes to everything); on no, `Operation blocked: user denied approval`. None when
        approved, else why not, for the model."""
        answer = await self._run_locally(tid, name, args)
        if answer is None:
            return f"the user gave no answer within {self.mgr.cfg.tool_result_timeout:g}s"
        stderr = str(answer.get("stderr") or "")
        if stderr.startswith("Unknown tool"):
            return None
        if "denied" in stderr:
            return "the user declined it"
        return "the CLI did not approve it" + (f" ({stderr[:200]})" if stderr else "")

    async def _run_locally(self, tid: str, name: str, args: dict) -> dict | None:
        """Ask the CLI to run a local tool; its posted result, or None when none came in time."""
        self._checkpoint()
        fut = asyncio.get_running_loop().create_future()
        self.tool_waiters[tid] = fut
        await self.emit({"type": "execute-local", "toolName": name, "args": args, "requestId": tid}, durable=True)
        try:
            async with asyncio.timeout(self.mgr.cfg.tool_result_timeout):
                return await fut
        except asyncio.TimeoutError:
            log(logger, logging.INFO, "tool result timed out", run_id=self.id, tool=name)
            return None


class RunManager:
    """The runs live in this process (one per session at most) and their event hubs; starting, cancelling
    and feeding tool results to a run, here or (through MySQL) on the replica that runs it."""

    def __init__(self, cfg: Config, db: Database, llm: LLM, tracer: Tracer, writer: EventWriter,
                 lifecycle: Lifecycle, mcp: "SeqeraMcp | None" = None):
        self.cfg, self.db, self.llm, self.tracer, self.writer, self.mcp = cfg, db, llm, tracer, writer, mcp
        self.lifecycle = lifecycle
        self.owner = uuid.uuid4().hex
        self.runs: dict[str, Run] = {}
        self.hubs: dict[str, Hub] = {}
        self.starting: dict[str, str] = {}  # session id -> user id, while a run's start is being stored
        self._waiters: dict[str, asyncio.Future] = {}
        self.stale_after = max(4 * cfg.heartbeat_interval, cfg.stale_run_after)
        self.liveness = Liveness(self)

    def start(self) -> None:
        self.liveness.start()

    def busy(self, session_id: str) -> bool:
        """Whether a run of the session is live, or being started, in this process."""
        return session_id in self.runs or session_id in self.starting

    async def start_run(self, user: User, session_id: str, body: dict, token: str | None = None) -> Run:
        if self.lifecycle.draining:
            raise ServiceDraining()
        sid = session_id
        old = self.runs.get(sid)
        if (old is not None and old.user.id != user.id) or self.starting.get(sid, user.id) != user.id:
            raise SessionNotFound()  # another user's session: never reveal that it exists or is busy
        if old is not None and (old.finishing or old.cancel_reason) and old.task is not None:
            await asyncio.wait((old.task,), timeout=10)  # it is ending (terminal part being written): wait
        if sid in self.runs:
            raise RunConflict()
        if self.cfg.monthly_token_limit > 0:
            if (await queries.monthly_usage(self.db, user.id)).total >= self.cfg.monthly_token_limit:
                raise UsageLimitReached()
        if sid in self.starting:
            raise RunConflict()
        run_id, content = str(uuid.uuid4()), body["content"]
        previous = self.hubs.get(sid)
        # The run's first event is stored with its start, so that the stream's first event costs no round
        # trip of its own; numbered after any the previous hub handed out (they may still be on their way
        # to MySQL).
        start = dumps({"type": "start", "threadId": sid, "runId": run_id})
        self.starting[sid] = user.id
        try:
            turn = await queries.start_turn(
                self.db, session_id=sid, user_id=user.id, run_id=run_id, owner=self.owner, content=content,
                client_run_id=str(body.get("run_id") or "")[:64] or None, mode=body.get("mode"),
                stale_after_s=self.stale_after, running_here=sid in self.runs, first_event=("start", start),
                seq_floor=previous.next_seq if previous is not None else 0)
        finally:
            self.starting.pop(sid, None)
        hub = Hub(sid, run_id, turn.first_seq)
        hub.stored("start", start)
        hub.user_id = user.id
        run = Run(self, run_id=run_id, session_id=sid, turn=turn, user=user, token=token, content=content,
                  mode=body.get("mode"), hub=hub)
        self.hubs[sid] = hub
        self.runs[sid] = run
        run.task = asyncio.get_running_loop().create_task(run.execute(), name=f"run-{run_id}")
        waiter = self._waiters.pop(sid, None)
        if waiter and not waiter.done():
            waiter.set_result(None)
        log(logger, logging.INFO, "run started", run_id=run_id, session_id=sid, user_id=user.id,
            mode=body.get("mode"))
        return run

    def run_done(self, run: Run) -> None:
        if self.runs.get(run.session_id) is run:
            del self.runs[run.session_id]

    def prune_hubs(self, linger: float) -> None:
        """Forget the hubs of sessions whose last run ended over `linger` seconds ago."""
        now = time.monotonic()
        for sid, hub in list(self.hubs.items()):
            if hub.done and hub.finished_at and now - hub.finished_at > linger and sid not in self.runs:
                self.hubs.pop(sid, None)

    async def cancel(self, session_id: str, *, wait: float = 0.0) -> str | None:
        """Cancel the session's live run, here or (through MySQL) on the replica running it; with `wait`,
        give it up to that many seconds to end (its partial answer stored, its terminal part sent)."""
        run = self.runs.get(session_id)
        if run is not None:
            run.cancel("user")
            if wait > 0 and run.task is not None:
                await asyncio.wait((run.task,), timeout=wait)
            return run.id
        active = await queries.active_run(self.db, session_id, self.stale_after)
        if not active or active.owner == self.owner:
            return None
        await queries.add_run_request(self.db, active.id, "cancel", None, None)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and await queries.active_run(self.db, session_id, self.stale_after):
            await asyncio.sleep(0.1)  # the owner picks the request up within liveness.REMOTE_POLL_S
        return active.id

    async def tool_result(self, session_id: str, request_id: str, result: dict) -> bool:
        run = self.runs.get(session_id)
        if run is not None:
            return run.resolve_tool(request_id, result)
        active = await queries.active_run(self.db, session_id, self.stale_after)
        if active and active.owner != self.owner:
            await queries.add_run_request(self.db, active.id, "tool_result", request_id, result)
            return True
        return False

    async def wait_run_started(self, session_id: str, timeout: float) -> None:
        fut = self._waiters.get(session_id)
        if fut is None or fut.done():
            fut = self._waiters[session_id] = asyncio.get_running_loop().create_future()
        await asyncio.wait((fut,), timeout=timeout)
        if fut.done() and self._waiters.get(session_id) is fut:
            self._waiters.pop(session_id, None)

    async def remote_run_active(self, session_id: str) -> bool:
        active = await queries.active_run(self.db, session_id, self.stale_after)
        return bool(active and active.owner != self.owner)

    async def shutdown(self, grace: float) -> None:
        """Refuse new runs, let running ones finish within `grace` seconds, interrupt the rest, then stop."""
        self.lifecycle.drain()
        tasks = [r.task for r in self.runs.values() if r.task]
        if tasks:
            log(logger, logging.INFO, "waiting for runs to finish", runs=len(tasks), grace_s=grace)
            await asyncio.wait(tasks, timeout=grace)
        left = [r for r in self.runs.values() if r.task and not r.task.done()]
        for run in left:
            run.cancel("shutdown")
        if left:
            await asyncio.wait([r.task for r in left], timeout=5)
        self.lifecycle.stop()
        for fut in self._waiters.values():
            if not fut.done():
                fut.set_result(None)
        await self.liveness.stopped()
