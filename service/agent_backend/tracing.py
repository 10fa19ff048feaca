"""LangSmith tracing with the `langsmith` SDK: a run per turn, each model call a child run.

One Client per app, pointed at LANGSMITH_ENDPOINT. Without LANGCHAIN_API_KEY nothing is created and
nothing is sent. SDK calls run on one dedicated worker thread (ordered, never on the event loop), a
turn's from when it ends or has run HOLD_S (`_Held`); any exception is logged and swallowed, so tracing
can never fail a turn. Traces carry the session and user ids as metadata, the conversation text and
token usage, never a token or API key.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import uuid
from datetime import datetime, timezone
from typing import Any

from .config import Config
from .logs import log

logger = logging.getLogger("agent_backend.tracing")
PROJECT = "agent-backend"
HOLD_S = 1.0  # a turn's trace is sent once it ends, or once it has run this long (then as it goes)


def _now() -> datetime:
    return datetime.now(timezone.utc)


class _NoopSpan:
    def child(self, *a, **k) -> "_NoopSpan":
        return self

    def end(self, *a, **k) -> None:
        pass


class _Held:
    """A turn's SDK calls, held back until it ends or has run HOLD_S (`Span.release`): building and posting
    runs takes the GIL from the event loop for about a millisecond per turn, which a short turn would pay
    in time to first token. Times are taken when a span starts or ends, not when its call runs."""

    def __init__(self) -> None:
        self.calls: list | None = []
        self.timer: asyncio.TimerHandle | None = None


class Span:
    def __init__(self, tracer: "Tracer", held: _Held, *, root: bool = False):
        self._tracer, self._held, self._root = tracer, held, root
        self._rt: Any = None

    def child(self, name: str, run_type: str, inputs: dict) -> "Span":
        span = Span(self._tracer, self._held)
        start = _now()

        def make():
            if self._rt is None:
                return
            span._rt = self._rt.create_child(name=name, run_type=run_type, inputs=inputs, start_time=start)
            span._rt.post()
        self._submit(make)
        return span

    def release(self) -> None:
        """Send what the turn held back, and from now on each call as it comes (idempotent)."""
        calls, self._held.calls = self._held.calls, None
        if self._held.timer is not None:
            self._held.timer.cancel()
        for fn in calls or ():
            self._tracer._submit(fn)

    def end(self, outputs: dict | None = None, error: str | None = None, metadata: dict | None = None) -> None:
        end = _now()

        def finish():
            if self._rt is None:
                return
            self._rt.end(outputs=outputs, error=error, metadata=metadata, end_time=end)
            self._rt.patch()
        self._submit(finish)
        if self._root:  # the turn is over: nothing is held any longer
            self.release()

    def _submit(self, fn) -> None:
        if self._held.calls is not None:
            self._held.calls.append(fn)
        else:
            self._tracer._submit(fn)


class Tracer:
    def __init__(self, cfg: Config):
        self.enabled = cfg.tracing_enabled
        self.environment = cfg.environment
        self._client = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        if self.enabled:
            from langsmith import Client
            self._client = Client(api_url=cfg.langsmith_endpoint, api_key=cfg.langchain_api_key)
            self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="langsmith")

    def _submit(self, fn) -> None:
        if self._pool is None:
            return

        def guarded():
            try:
                fn()
            except Exception as exc:  # tracing never fails a turn
                log(logger, logging.WARNING, "tracing call failed", error=type(exc).__name__)
        try:
            self._pool.submit(guarded)
        except RuntimeError:
            pass  # executor shut down

    def turn(self, *, run_id: str, session_id: str, user_id: str, model: str, inputs: dict) -> Span | _NoopSpan:
        """The turn's root span; its calls and its children's are held until its `end()`, or HOLD_S."""
        if not self.enabled:
            return _NoopSpan()
        from langsmith.run_trees import RunTree
        span = Span(self, _Held(), root=True)
        metadata = {"session_id": session_id, "user_id": user_id, "run_id": run_id, "model": model,
                    "environment": self.environment}
        start = _now()

        def make():
            span._rt = RunTree(name="agent-turn", run_type="chain", inputs=inputs, project_name=PROJECT,
                               id=uuid.UUID(run_id), client=self._client, extra={"metadata": metadata},
                               tags=[f"env:{self.environment}"], start_time=start)
            span._rt.post()
        span._submit(make)
        span._held.timer = asyncio.get_running_loop().call_later(HOLD_S, span.release)
        return span

    async def close(self, timeout: float = 5.0) -> None:
        if self._pool is None:
            return
        loop = asyncio.get_running_loop()

        def drain():
            try:
                self._client.flush(timeout=timeout)
            except Exception as exc:
                log(logger, logging.WARNING, "tracing flush failed", error=type(exc).__name__)
        try:
            await asyncio.wait((loop.run_in_executor(self._pool, drain),), timeout=timeout + 1)
        except Exception:
            pass
        self._pool.shutdown(wait=False)
        try:
            await asyncio.wait((loop.run_in_executor(None, lambda: self._client.close(timeout=0)),), timeout=2)
        except Exception:
            pass
