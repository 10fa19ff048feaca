"""Claude through the official `anthropic` SDK: one AsyncAnthropic client per app, streaming
Messages API with tools.

Before the first content byte, 429/5xx/overloaded answers and connection failures are retried
(`llm_retries` extra attempts, exponential backoff from `llm_backoff`, honouring a short
Retry-After). Once content has streamed, a failure raises UpstreamError carrying what was received
so the caller can keep the partial answer. The SDK's own retries are off so this policy is the only one.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Any, Callable

import anthropic
import httpx2

from .anthropic_sse import SseDecoder, StepState, StreamErrorEvent
from .config import Config
from .logs import log

__all__ = ["LLM", "StepState", "StreamCutOff", "UpstreamError", "describe"]

logger = logging.getLogger("agent_backend.llm")
RETRYABLE_TYPES = frozenset({"overloaded_error", "api_error", "rate_limit_error", "timeout_error"})


class UpstreamError(Exception):
    def __init__(self, message: str, *, started: bool):
        super().__init__(message)
        self.started = started


class StreamCutOff(Exception):
    """The model's stream ended cleanly but without `message_stop`: the answer is incomplete (an upstream
    or a gateway behind ANTHROPIC_BASE_URL closed the response early). Handled like a dropped connection."""


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    if response is None:
        return None
    with contextlib.suppress(Exception):
        value = float(response.headers.get("retry-after", ""))
        if 0 <= value <= 10:
            return value
    return None


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, (StreamCutOff, anthropic.APIConnectionError, anthropic.RateLimitError,
                        anthropic.InternalServerError)):
        return True
    if isinstance(exc, anthropic.APIStatusError):
        return exc.status_code in (408, 409, 429) or exc.status_code >= 500 or (exc.type in RETRYABLE_TYPES)
    return False


def describe(exc: BaseException) -> str:
    if isinstance(exc, anthropic.APIStatusError):
        kind = exc.type or f"HTTP {exc.status_code}"
        msg = exc.api_message or ""
        return f"model provider error ({kind}){': ' + msg if msg else ''}"
    if isinstance(exc, anthropic.APITimeoutError):
        return "model provider timed out"
    if isinstance(exc, anthropic.APIConnectionError):
        return "model provider unreachable"
    if isinstance(exc, StreamCutOff):
        return "the model's answer was cut off: its stream ended before message_stop"
    return f"model call failed ({type(exc).__name__})"


class LLM:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.model = cfg.anthropic_model
        timeout = httpx2.Timeout(cfg.llm_timeout, connect=10.0)
        # The SDK's aiohttp transport (aiohttp is already ours): about a third less event-loop CPU per
        # streamed token than its default httpx/anyio stack. Must be created inside the running loop.
        self.client = anthropic.AsyncAnthropic(
            api_key=cfg.anthropic_api_key, base_url=cfg.anthropic_base_url, max_retries=0, timeout=timeout,
            http_client=anthropic.DefaultAioHttpClient(timeout=timeout))

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.client.close()

    async def stream(self, *, system: str, messages: list[dict], tools: list[dict], state: StepState,
                     on_text: Callable[[str], None], on_thinking: Callable[[str], None],
                     on_attempt: Callable[[int], None] | None = None) -> StepState:
        delay = self.cfg.llm_backoff
        while True:
            state.attempts += 1
            if on_attempt:
                on_attempt(state.attempts)
            try:
                await self._once(system, messages, tools, state, on_text, on_thinking)
                return state
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if getattr(exc, "from_callback", False):
                    raise  # the caller's own failure (e.g. its event log is gone), not the model's
                if state.started:
                    log(logger, logging.WARNING, "model stream failed after it started", error=describe(exc))
                    raise UpstreamError(describe(exc), started=True) from None
                if not _retryable(exc) or state.attempts > self.cfg.llm_retries:
                    log(logger, logging.WARNING, "model call failed", error=describe(exc), attempts=state.attempts)
                    raise UpstreamError(describe(exc), started=False) from None
                wait = _retry_after(exc)
                wait = delay if wait is None else max(wait, delay)
                log(logger, logging.INFO, "retrying model call", error=describe(exc), attempt=state.attempts,
                    wait_s=round(wait, 3))
                await asyncio.sleep(wait * (1 + random.random() * 0.2))
                delay = min(delay * 2, 8.0)
                state.reset()

    async def _once(self, system, messages, tools, state: StepState, on_text, on_thinking) -> None:
        kwargs: dict[str, Any] = {"model": self.model, "max_tokens": self.cfg.max_tokens, "system": system,
                                  "messages": messages, "stream": True}
        if tools:
            kwargs["tools"] = tools
        # The raw response: the request, its headers, timeouts and the APIStatusError of a non-2xx answer are
        # the SDK's; the body's events are decoded here (anthropic_sse), without a pydantic model per event.
        response = await self.client.messages.with_streaming_response.create(**kwargs).__aenter__()
        stopped = False
        try:
            decoder, apply = SseDecoder(), state.apply
            async for chunk in response.http_response.aiter_bytes():
                for event, data in decoder.feed(chunk):
                    if apply(event, data, on_text, on_thinking):
                        stopped = True
            for event, data in decoder.end():
                stopped = apply(event, data, on_text, on_thinking) or stopped
        except StreamErrorEvent as exc:  # as the SDK's stream raises it: an APIStatusError subclass
            raise self.client._make_status_error(exc.message, body=exc.body, response=response.http_response) from None
        finally:
            with contextlib.suppress(Exception):
                await response.close()
        if not stopped:
            raise StreamCutOff()
        state.drop_skipped()
