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
import dataclasses
import json
import logging
import random
from typing import Any, Callable

import anthropic
import httpx2

from .config import Config
from .logs import log
from .usage import Usage

logger = logging.getLogger("agent_backend.llm")
RETRYABLE_TYPES = frozenset({"overloaded_error", "api_error", "rate_limit_error", "timeout_error"})


class UpstreamError(Exception):
    def __init__(self, message: str, *, started: bool):
        super().__init__(message)
        self.started = started


class StreamCutOff(Exception):
    """The model's stream ended cleanly but without `message_stop`: the answer is incomplete (an upstream
    or a gateway behind ANTHROPIC_BASE_URL closed the response early). Handled like a dropped connection."""


@dataclasses.dataclass
class StepState:
    """What one model call has produced so far (kept by the caller, so a cancel still sees it)."""
    blocks: list[dict] = dataclasses.field(default_factory=list)
    partial_json: dict[int, str] = dataclasses.field(default_factory=dict)
    index_map: dict[int, int] = dataclasses.field(default_factory=dict)
    stop_reason: str | None = None
    usage: Usage = Usage()
    started: bool = False
    attempts: int = 0

    def complete_blocks(self) -> list[dict]:
        """Content blocks safe to store and send back to the model (unfinished tool calls dropped)."""
        out = []
        for i, block in enumerate(self.blocks):
            if block["type"] == "tool_use" and block.get("_open"):
                continue
            if block["type"] == "text" and not block.get("text"):
                continue
            out.append({k: v for k, v in block.items() if not k.startswith("_")})
        return out


def _usage_from(obj: Any, usage: Usage) -> Usage:
    """`usage` with the counts the SDK's usage object `obj` reports (each one is the call's total so far)."""
    if obj is None:
        return usage
    found = {dst: val for src, dst in (("input_tokens", "input_tokens"), ("output_tokens", "output_tokens"),
                                       ("cache_read_input_tokens", "cache_read_tokens"),
                                       ("cache_creation_input_tokens", "cache_creation_tokens"))
             if isinstance(val := getattr(obj, src, None), int)}
    return dataclasses.replace(usage, **found)


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
                state.blocks.clear(); state.partial_json.clear(); state.index_map.clear()

    async def _once(self, system, messages, tools, state: StepState, on_text, on_thinking) -> None:
        kwargs: dict[str, Any] = {"model": self.model, "max_tokens": self.cfg.max_tokens, "system": system,
                                  "messages": messages, "stream": True}
        if tools:
            kwargs["tools"] = tools
        stream = await self.client.messages.create(**kwargs)
        stopped = False
        try:
            async for event in stream:
                etype = event.type
                if etype == "message_stop":
                    stopped = True
                elif etype == "message_start":
                    state.usage = _usage_from(getattr(event.message, "usage", None), state.usage)
                elif etype == "content_block_start":
                    block = event.content_block
                    state.started = True
                    state.index_map[event.index] = len(state.blocks)
                    if block.type == "text":
                        state.blocks.append({"type": "text", "text": block.text or ""})
                        if block.text:
                            on_text(block.text)
                    elif block.type == "tool_use":
                        state.blocks.append({"type": "tool_use", "id": block.id, "name": block.name,
                                             "input": {}, "_open": True})
                        state.partial_json[event.index] = ""
                    elif block.type == "thinking":
                        state.blocks.append({"type": "thinking", "thinking": block.thinking or "",
                                             "signature": getattr(block, "signature", "") or ""})
                    else:  # server tools etc.: keep for the record, never replayed
                        state.blocks.append({"type": block.type, "_skip": True, "_open": True})
                elif etype == "content_block_delta":
                    delta = event.delta
                    pos = state.index_map.get(event.index)
                    if pos is None:
                        continue
                    block = state.blocks[pos]
                    if delta.type == "text_delta":
                        block["text"] = block.get("text", "") + delta.text
                        on_text(delta.text)
                    elif delta.type == "input_json_delta":
                        state.partial_json[event.index] = state.partial_json.get(event.index, "") + delta.partial_json
                    elif delta.type == "thinking_delta":
                        block["thinking"] = block.get("thinking", "") + delta.thinking
                        on_thinking(delta.thinking)
                    elif delta.type == "signature_delta":
                        block["signature"] = delta.signature
                elif etype == "content_block_stop":
                    pos = state.index_map.get(event.index)
                    if pos is None:
                        continue
                    block = state.blocks[pos]
                    if block["type"] == "tool_use":
                        raw = state.partial_json.pop(event.index, "")
                        try:
                            block["input"] = json.loads(raw) if raw.strip() else {}
                        except ValueError:
                            block["input"] = {}
                            block["_bad_json"] = True
                        block.pop("_open", None)
                elif etype == "message_delta":
                    state.stop_reason = getattr(event.delta, "stop_reason", None) or state.stop_reason
                    state.usage = _usage_from(getattr(event, "usage", None), state.usage)
        finally:
            with contextlib.suppress(Exception):
                await stream.close()
        if not stopped:
            raise StreamCutOff()
        # drop blocks we never send back (unknown block types)
        state.blocks[:] = [b for b in state.blocks if not b.get("_skip")]
