"""A local stand-in of the Anthropic Messages API (`POST /v1/messages`), scriptable.

It speaks the documented wire format, so the official `anthropic` SDK works against it unchanged:
with `stream: true` it sends `message_start`, then per content block `content_block_start`,
`content_block_delta` (`text_delta`; `thinking_delta`s then a `signature_delta`; or `input_json_delta`
with the tool input split into several `partial_json` chunks), `content_block_stop`, then
`message_delta` (stop_reason + usage) and `message_stop`, with `ping` events in between; without
`stream` it answers one Message object.

Script replies with `standin.script(Reply...)` (a FIFO queue; one reply per request):

    model = AnthropicStandIn().start()
    model.script(Reply.overloaded(), Reply.tool_use("execute_bash_local", {"command": "ls"}))
    model.script(Reply.text("done", delay=0.05))
    client = anthropic.AsyncAnthropic(base_url=model.url, api_key="k")
    ...
    model.message_requests[-1].json["tools"]      # what the service offered
    model.stop()

With nothing scripted it answers by itself ("smart" default): when the newest user message holds a
`tool_result`, it answers text quoting that result (`RESULT_PREFIX` + the output, or `PLATFORM_PREFIX`
after a Seqera MCP tool); when the newest user message asks to run a command written in backticks
(`please run `echo hi``) and `execute_bash_local` is offered, it calls that tool after the text
`TOOL_INTRO`; when it asks about the runs of a workspace written in backticks (`my runs in workspace
`acme/prod``) and Seqera MCP's `mcp__seqera__platform_list_workflows` is offered, it calls that after
`PLATFORM_INTRO`; otherwise it answers the fixed `DEFAULT_ANSWER`. Every one of these fixed texts says
it comes from a local stand-in, not Claude.

Run standalone: `python -m tests.support.standins.anthropic --port 8900`.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ._server import RECORDED, StandIn, serve_forever

DEFAULT_ANSWER = (
    "Hello from the local stand-in model. This fixed answer does not come from Claude: "
    "it is served by the test stand-in of the Anthropic Messages API."
)
TOOL_INTRO = "(Local stand-in model, not Claude.) I will run that command for you.\n"
RESULT_PREFIX = "(Local stand-in model, not Claude.) The command printed: "
PLATFORM_INTRO = "(Local stand-in model, not Claude.) I will look that up in your Seqera Platform.\n"
PLATFORM_PREFIX = "(Local stand-in model, not Claude.) Your Seqera Platform says: "
LIST_WORKFLOWS = "mcp__seqera__platform_list_workflows"

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}

_RUN_COMMAND = re.compile(r"\brun\b[^`]*`([^`]+)`", re.IGNORECASE | re.DOTALL)
_WORKSPACE_RUNS = re.compile(r"\bruns\b[^`]*\bworkspace\s+`([^`]+)`", re.IGNORECASE | re.DOTALL)


@dataclass
class Block:
    """One content block of a scripted reply: `text`, `thinking` (its deltas, then a signature) or `tool_use`."""

    type: str
    text: str = ""
    name: str = ""
    input: dict[str, Any] = field(default_factory=dict)
    id: str | None = None
    chunks: list[str] | None = None  # explicit delta chunks (text, or partial_json for tool_use)


@dataclass
class Reply:
    """One scripted answer to one `POST /v1/messages`. Build it with the classmethods."""

    blocks: list[Block] = field(default_factory=list)
    stop_reason: str = "end_turn"
    input_tokens: int = 25
    output_tokens: int | None = None  # default: derived from the content
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    delay: float = 0.0  # seconds between streamed events
    # Failures. status: an HTTP error before the first byte. fail: "error" (an `event: error` frame),
    # "drop" (connection closed without a terminal event) or "end" (the response ends cleanly, but without
    # message_delta and message_stop) after `fail_after` content deltas.
    status: int | None = None
    error_type: str | None = None
    error_message: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    fail: str | None = None
    fail_after: int = 1
    # Pause after this many content deltas, sending `ping`s, until `release()` or the client leaves.
    hold_after: int | None = None

    # ---- builders ---------------------------------------------------------------------------------
    @classmethod
    def text(cls, text: str, *, chunks: list[str] | None = None, **kw: Any) -> "Reply":
        return cls(blocks=[Block("text", text=text, chunks=chunks)], **kw)

    @classmethod
    def tool_use(
        cls,
        name: str,
        input: dict[str, Any],
        *,
        text: str | None = None,
        id: str | None = None,
        chunks: list[str] | None = None,
        **kw: Any,
    ) -> "Reply":
        blocks = [Block("text", text=text)] if text else []
        blocks.append(Block("tool_use", name=name, input=input, id=id, chunks=chunks))
        return cls(blocks=blocks, stop_reason="tool_use", **kw)

    @classmethod
    def http_error(cls, status: int, error_type: str | None = None, message: str | None = None,
                   headers: dict[str, str] | None = None) -> "Reply":
        et = error_type or _ERROR_TYPES.get(status, "api_error")
        return cls(status=status, error_type=et, error_message=message or f"stand-in {et}",
                   headers=dict(headers or {}))

    @classmethod
    def rate_limited(cls, **kw: Any) -> "Reply":
        kw.setdefault("headers", {"retry-after": "0"})
        return cls.http_error(429, "rate_limit_error", "Number of requests has exceeded your rate limit", **kw)

    @classmethod
    def overloaded(cls, **kw: Any) -> "Reply":
        return cls.http_error(529, "overloaded_error", "Overloaded", **kw)

    @classmethod
    def server_error(cls, **kw: Any) -> "Reply":
        return cls.http_error(500, "api_error", "Internal server error", **kw)

    @classmethod
    def stream_error(cls, text_before: str = "Partial answer ", *, error_type: str = "overloaded_error",
                     message: str = "Overloaded", fail_after: int | None = None, **kw: Any) -> "Reply":
        """Streams `text_before` (as deltas), then an `event: error` frame instead of message_stop."""
        r = cls.text(text_before, **kw)
        r.fail, r.error_type, r.error_message = "error", error_type, message
        r.fail_after = fail_after if fail_after is not None else len(r.blocks[0].chunks or _split_text(text_before))
        return r

    @classmethod
    def drop(cls, text_before: str = "Partial answer ", *, fail_after: int | None = None, **kw: Any) -> "Reply":
        """Streams `text_before`, then closes the connection mid-stream (no terminal event)."""
        r = cls.text(text_before, **kw)
        r.fail = "drop"
        r.fail_after = fail_after if fail_after is not None else len(r.blocks[0].chunks or _split_text(text_before))
        return r

    @classmethod
    def cut_off(cls, text_before: str = "Partial answer ", *, fail_after: int | None = None, **kw: Any) -> "Reply":
        """Streams `text_before`, then ends the response cleanly without message_delta / message_stop."""
        r = cls.drop(text_before, fail_after=fail_after, **kw)
        r.fail = "end"
        return r

    @classmethod
    def held(cls, text: str = "Thinking about it ... and the rest of the answer.", *, hold_after: int = 1,
             **kw: Any) -> "Reply":
        """Streams `hold_after` deltas, then waits (pinging) for `release()` or the client to leave."""
        return cls.text(text, hold_after=hold_after, **kw)

    # ---- derived ----------------------------------------------------------------------------------
    def usage_out(self) -> int:
        if self.output_tokens is not None:
            return self.output_tokens
        n = 0
        for b in self.blocks:
            n += len(b.text.split()) if b.type in ("text", "thinking") else len(json.dumps(b.input)) // 4 + 1
        return max(n, 1)


def _split_text(text: str) -> list[str]:
    """Split into word-sized deltas (at least one, even for empty text)."""
    parts = re.findall(r"\S+\s*|\s+", text)
    return parts or [""]


def _split_json(s: str, n: int = 3) -> list[str]:
    """Split a JSON text into n (or fewer, if short) pieces, as the API's input_json_delta does."""
    if len(s) < n:
        return [s]
    size = -(-len(s) // n)
    return [s[i:i + size] for i in range(0, len(s), size)]


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for b in content:
            if isinstance(b, dict):
                if b.get("type") == "text":
                    out.append(b.get("text", ""))
                elif b.get("type") == "tool_result":
                    out.append(_text_of(b.get("content", "")))
        return "".join(out)
    return ""


def api_key_of(rec: Any) -> str | None:
    """The API key a recorded request carried: `x-api-key`, or `Authorization: Bearer <key>` (which the
    anthropic SDK 2.x sends for an api_key)."""
    key = rec.header("x-api-key")
    if key:
        return key
    auth = rec.header("authorization") or ""
    return auth[7:] if auth.lower().startswith("bearer ") else None


def offered_tools(rec: Any) -> set[str]:
    """The names of the tools a recorded Messages request offered the model."""
    return {t["name"] for t in rec.json.get("tools") or []}


def tool_results(rec: Any) -> list[dict[str, Any]]:
    """The tool_result blocks of a recorded request's newest message (what the model got back)."""
    content = rec.json["messages"][-1]["content"]
    if not isinstance(content, list):
        return []
    return [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]


def tool_result_text(block: dict[str, Any]) -> str:
    """The text of a tool_result block (its content may be a string or a list of text blocks)."""
    return _text_of(block.get("content", ""))


class AnthropicStandIn(StandIn):
    name = "anthropic"

    def __init__(self, port: int = 0, *, api_key: str | None = None, smart: bool = True,
                 default_answer: str = DEFAULT_ANSWER) -> None:
        """api_key: when set, requests must carry it (x-api-key or Bearer; else 401 authentication_error)."""
        super().__init__(port)
        self.api_key = api_key
        self.smart = smart
        self.default_answer = default_answer
        self._queue: list[Reply] = []
        self._ids = itertools.count(1)
        self._releases = 0  # release() calls so far (under _idle); a held stream waits for one after it began
        self.streams_in_flight = 0
        self._holding = 0
        self._idle = threading.Condition()

    # ---- scripting --------------------------------------------------------------------------------
    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._queue.extend(replies)

    @property
    def pending(self) -> int:
        """Scripted replies not yet used."""
        with self._lock:
            return len(self._queue)

    def release(self) -> None:
        """Let every held stream (Reply.held / hold_after) in flight go on, also one that has not reached
        its hold yet (a release is never lost to that race); streams that start later hold again."""
        with self._idle:
            self._releases += 1

    @property
    def message_requests(self) -> list:
        """Every POST /v1/messages received, oldest first (Recorded; .json is the request body)."""
        return self.requests_to("/v1/messages", "POST")

    def wait_held(self, timeout: float = 10.0) -> bool:
        """Block until some stream is holding (has sent its first deltas and waits for release)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._holding > 0, timeout)

    # ---- HTTP ---------------------------------------------------------------------------------------
    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/messages/count_tokens", self._count_tokens)
        app.router.add_route("*", "/{tail:.*}", self._not_found)

    async def _not_found(self, request: web.Request) -> web.Response:
        return _error_response(404, "not_found_error", f"stand-in has no route {request.method} {request.path}")

    async def _count_tokens(self, request: web.Request) -> web.Response:
        body = request[RECORDED].json or {}
        return web.json_response({"input_tokens": max(1, len(json.dumps(body.get("messages", []))) // 4)})

    def _next_reply(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            if self._queue:
                return self._queue.pop(0)
        return self.default_reply(body)

    def default_reply(self, body: dict[str, Any]) -> Reply:
        """The unscripted answer (see module doc)."""
        if not self.smart:
            return Reply.text(self.default_answer)
        messages = body.get("messages") or []
        last = messages[-1] if messages else {}
        if last.get("role") == "user":
            content = last.get("content")
            if isinstance(content, list):
                results = [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]
                if results:
                    asked = messages[-2].get("content") if len(messages) > 1 else None
                    platform = any(isinstance(b, dict) and str(b.get("name", "")).startswith("mcp__")
                                   for b in (asked if isinstance(asked, list) else []))
                    return Reply.text((PLATFORM_PREFIX if platform else RESULT_PREFIX)
                                      + " ".join(tool_result_text(b).strip() for b in results))
            offered = {t.get("name") for t in body.get("tools") or [] if isinstance(t, dict)}
            m = _RUN_COMMAND.search(_text_of(content))
            if m and "execute_bash_local" in offered:
                return Reply.tool_use("execute_bash_local", {"command": m.group(1).strip()},
                                      text=TOOL_INTRO)
            m = _WORKSPACE_RUNS.search(_text_of(content))
            if m and LIST_WORKFLOWS in offered:
                return Reply.tool_use(LIST_WORKFLOWS, {"workspace": m.group(1).strip()}, text=PLATFORM_INTRO)
        return Reply.text(self.default_answer)

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        rec = request[RECORDED]
        if self.api_key is not None and api_key_of(rec) != self.api_key:
            rec.extra["reply"] = "401"
            return _error_response(401, "authentication_error", "invalid x-api-key")
        body = rec.json
        if not isinstance(body, dict) or "messages" not in body or "model" not in body:
            rec.extra["reply"] = "400"
            return _error_response(400, "invalid_request_error", "messages and model are required")
        reply = self._next_reply(body)
        n = next(self._ids)
        rec.extra["reply"] = reply
        if reply.status is not None:
            return _error_response(reply.status, reply.error_type or "api_error", reply.error_message or "",
                                   headers=reply.headers, request_id=f"req_standin_{n}")
        usage = {
            "input_tokens": reply.input_tokens,
            "output_tokens": reply.usage_out(),
            "cache_read_input_tokens": reply.cache_read_input_tokens,
            "cache_creation_input_tokens": reply.cache_creation_input_tokens,
        }
        rec.extra["usage"] = usage
        blocks = []
        for i, b in enumerate(reply.blocks):
            if b.type == "tool_use" and not b.id:
                b.id = f"toolu_standin_{n}_{i}"
            blocks.append(b)
        if not body.get("stream"):
            if reply.fail:
                return _error_response(500, reply.error_type or "api_error", reply.error_message or "failed")
            return web.json_response(
                {
                    "id": f"msg_standin_{n}",
                    "type": "message",
                    "role": "assistant",
                    "model": body["model"],
                    "content": [_final_block(b) for b in blocks],
                    "stop_reason": reply.stop_reason,
                    "stop_sequence": None,
                    "usage": usage,
                },
                headers={"request-id": f"req_standin_{n}"},
            )
        return await self._stream(request, rec, body, reply, blocks, usage, n)

    async def _stream(self, request: web.Request, rec: Any, body: dict[str, Any], reply: Reply,
                      blocks: list[Block], usage: dict[str, int], n: int) -> web.StreamResponse:
        resp = web.StreamResponse(headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            "request-id": f"req_standin_{n}",
        })
        await resp.prepare(request)
        with self._idle:
            releases_at_start = self._releases
        deltas_sent = 0
        self.streams_in_flight += 1

        async def send(event: str, data: dict[str, Any]) -> None:
            await resp.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())
            if reply.delay:
                await asyncio.sleep(reply.delay)

        async def after_delta(count: int = 1) -> bool:
            """Returns False when the scripted failure happened (stream must end). Called with count=0
            once after message_start, where a `fail_after=0` failure happens before any content."""
            nonlocal deltas_sent
            deltas_sent += count
            if count and reply.hold_after is not None and deltas_sent == reply.hold_after:
                await self._hold(send, releases_at_start)
            if reply.fail and deltas_sent >= reply.fail_after:
                if reply.fail == "error":
                    await send("error", {"type": "error", "error": {
                        "type": reply.error_type or "api_error", "message": reply.error_message or ""}})
                    rec.extra["failed"] = "error"
                elif reply.fail == "end":
                    rec.extra["failed"] = "end"
                    await resp.write_eof()
                else:
                    rec.extra["failed"] = "drop"
                    if request.transport is not None:
                        request.transport.abort()
                return False
            return True

        try:
            await send("message_start", {"type": "message_start", "message": {
                "id": f"msg_standin_{n}", "type": "message", "role": "assistant", "model": body["model"],
                "content": [], "stop_reason": None, "stop_sequence": None,
                "usage": {**usage, "output_tokens": 1},
            }})
            await send("ping", {"type": "ping"})
            if not await after_delta(0):
                return resp
            for i, b in enumerate(blocks):
                if b.type == "tool_use":
                    block = {"type": "tool_use", "id": b.id, "name": b.name, "input": {}}
                    kind, key = "input_json_delta", "partial_json"
                    pieces = b.chunks or _split_json(json.dumps(b.input))
                else:  # text or thinking: its deltas carry the text under the block's own type
                    block = {"type": b.type, b.type: "", **({"signature": ""} if b.type == "thinking" else {})}
                    kind, key, pieces = f"{b.type}_delta", b.type, b.chunks or _split_text(b.text)
                await send("content_block_start", {"type": "content_block_start", "index": i,
                                                   "content_block": block})
                for piece in pieces:
                    await send("content_block_delta", {"type": "content_block_delta", "index": i,
                                                       "delta": {"type": kind, key: piece}})
                    if not await after_delta():
                        return resp
                if b.type == "thinking":
                    await send("content_block_delta", {"type": "content_block_delta", "index": i,
                                                       "delta": {"type": "signature_delta",
                                                                 "signature": f"standin-signature-{i}"}})
                await send("content_block_stop", {"type": "content_block_stop", "index": i})
            await send("message_delta", {"type": "message_delta",
                                         "delta": {"stop_reason": reply.stop_reason, "stop_sequence": None},
                                         "usage": {"output_tokens": usage["output_tokens"]}})
            await send("message_stop", {"type": "message_stop"})
            rec.extra["completed"] = True
            await resp.write_eof()
        except (asyncio.CancelledError, ConnectionResetError):
            rec.extra["client_disconnected"] = True
            raise
        finally:
            self.streams_in_flight -= 1
        return resp

    async def _hold(self, send: Any, releases_at_start: int) -> None:
        """Ping until release() is called after this stream began (or the client leaves)."""
        with self._idle:
            self._holding += 1
            self._idle.notify_all()
        try:
            while True:
                with self._idle:
                    if self._releases > releases_at_start:
                        return
                await send("ping", {"type": "ping"})  # raises once the client has gone
                await asyncio.sleep(0.05)
        finally:
            with self._idle:
                self._holding -= 1
                self._idle.notify_all()


def _final_block(b: Block) -> dict[str, Any]:
    if b.type == "text":
        return {"type": "text", "text": b.text}
    return {"type": "tool_use", "id": b.id, "name": b.name, "input": b.input}


def _error_response(status: int, error_type: str, message: str, *, headers: dict[str, str] | None = None,
                    request_id: str = "req_standin_error") -> web.Response:
    return web.json_response(
        {"type": "error", "error": {"type": error_type, "message": message}, "request_id": request_id},
        status=status,
        headers={"request-id": request_id, **(headers or {})},
    )


if __name__ == "__main__":
    serve_forever(AnthropicStandIn())
