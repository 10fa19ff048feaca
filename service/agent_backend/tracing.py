"""LangSmith tracing with the `langsmith` SDK: a run per turn, each model call a child run.

One Client per app, pointed at LANGSMITH_ENDPOINT. Without LANGCHAIN_API_KEY nothing is created and
nothing is sent. SDK calls run on one dedicated worker thread (ordered, never on the event loop);
any exception is logged and swallowed, so tracing can never fail a turn. Traces carry the session
and user ids as metadata, the conversation text and token usage, never a token or API key.
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


class _NoopSpan:
    def child(self, *a, **k) -> "_NoopSpan":
        return self

    def end(self, *a, **k) -> None:
        pass


class Span:
    def __init__(self, tracer: "Tracer", run_tree: Any):
        self._tracer, self._rt = tracer, run_tree

    def child(self, name: str, run_type: str, inputs: dict) -> "Span | _NoopSpan":
        holder: dict[str, Any] = {}

        def make():
            child = self._rt.create_child(name=name, run_type=run_type, inputs=inputs,
                                          start_time=datetime.now(timezone.utc))
            holder["rt"] = child
            child.post()
        span = Span(self._tracer, None)
        self._tracer._submit(make, then=lambda: setattr(span, "_rt", holder.get("rt")))
        return span

    def end(self, outputs: dict | None = None, error: str | None = None, metadata: dict | None = None) -> None:
        def finish():
            if self._rt is None:
                return
            self._rt.end(outputs=outputs, error=error, metadata=metadata)
            self._rt.patch()
        self._tracer._submit(finish)


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

    def _submit(self, fn, then=None) -> None:
        if self._pool is None:
            return

        def guarded():
            try:
                fn()
                if then is not None:
                    then()
            except Exception as exc:  # tracing never fails a turn
                log(logger, logging.WARNING, "tracing call failed", error=type(exc).__name__)
        try:
            self._pool.submit(guarded)
        except RuntimeError:
            pass  # executor shut down

    def turn(self, *, run_id: str, session_id: str, user_id: str, model: str, inputs: dict) -> Span | _NoopSpan:
        if not self.enabled:
            return _NoopSpan()
        from langsmith.run_trees import RunTree
        span = Span(self, None)
        metadata = {"session_id": session_id, "user_id": user_id, "run_id": run_id, "model": model,
                    "environment": self.environment}

        def make():
            rt = RunTree(name="agent-turn", run_type="chain", inputs=inputs, project_name=PROJECT,
                         id=uuid.UUID(run_id), client=self._client, extra={"metadata": metadata},
                         tags=[f"env:{self.environment}"], start_time=datetime.now(timezone.utc))
            span._rt = rt
            rt.post()
        self._submit(make)
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
