"""The Messages API's stream, decoded without the SDK's models (pure: no I/O, no SDK).

llm.py gets the raw HTTP response from the `anthropic` SDK (its auth, base URL, timeouts and error
mapping stay the SDK's) and feeds the body here: `SseDecoder` cuts it into server-sent events, and
`StepState.apply` folds each event's JSON into what the model call has produced so far. The SDK's own
stream built a pydantic model per event, about 40% of the event loop under load; this reads the JSON
with orjson and looks at the few fields the service uses. Events are handled as the SDK's stream does:
`ping` and events without a name are skipped, and so are events without data; an `error` event raises
StreamErrorEvent (llm.py turns it into the SDK's APIStatusError); unknown event and delta types are
ignored. What is dispatched on is the data's `type`, as with the SDK.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any, Callable

import orjson

from .usage import Usage

_USAGE_FIELDS = (("input_tokens", "input_tokens"), ("output_tokens", "output_tokens"),
                 ("cache_read_input_tokens", "cache_read_tokens"),
                 ("cache_creation_input_tokens", "cache_creation_tokens"))


class StreamErrorEvent(Exception):
    """An `event: error` in the stream: `body` is its data (parsed JSON, else the text), `message` the
    SDK's wording for it."""

    def __init__(self, message: str, body: object):
        super().__init__(message)
        self.message, self.body = message, body


def usage_from(obj: Any, usage: Usage) -> Usage:
    """`usage` with the counts a usage object of the stream reports (each one the call's total so far)."""
    if not isinstance(obj, dict):
        return usage
    found = {dst: val for src, dst in _USAGE_FIELDS if isinstance(val := obj.get(src), int)}
    return dataclasses.replace(usage, **found) if found else usage


class SseDecoder:
    """Server-sent events from the chunks of a response body: `feed(chunk)` returns the events completed by
    it as (event name or None, data) pairs, data lines joined by newlines; `end()` once the body has ended.
    Lines end with LF, CRLF or CR; comments and fields other than `event` and `data` are dropped; an event without its closing blank
    line (the body ended first) is never returned, as with the SDK's decoder."""

    __slots__ = ("_buf", "_event", "_data")

    def __init__(self) -> None:
        self._buf = b""
        self._event: str | None = None
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[tuple[str | None, bytes]]:
        buf = self._buf + chunk if self._buf else chunk
        if b"\r" in buf:
            # A CR at the very end may be the first half of a CRLF: keep it until the next chunk.
            held = buf.endswith(b"\r")
            if held:
                buf = buf[:-1]
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        else:
            held = False
        lines = buf.split(b"\n")
        self._buf = lines.pop() + (b"\r" if held else b"")
        out: list[tuple[str | None, bytes]] = []
        for line in lines:
            if not line:
                if self._event is not None or self._data:
                    out.append((self._event, b"\n".join(self._data)))
                    self._event, self._data = None, []
                continue
            name, _, value = line.partition(b":")
            if value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                self._data.append(value)
            elif name == b"event":
                self._event = value.decode("utf-8", "replace")
            # comments (an empty name), id, retry and unknown fields: nothing the Messages API needs
        return out

    def end(self) -> list[tuple[str | None, bytes]]:
        """At the end of the body: the event that a CR held back by `feed` completes, if any."""
        if self._buf.endswith(b"\r"):
            self._buf = self._buf[:-1]
            return self.feed(b"\n")
        return []


def error_event(data: bytes) -> StreamErrorEvent:
    """The exception for an `event: error` with `data`, worded as the SDK words it."""
    text = data.decode("utf-8", "replace")
    try:
        body: object = json.loads(text)
        message = f"{body}"
    except ValueError:
        body, message = text, text or "Error code: 200"
    return StreamErrorEvent(message, body)


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
        for block in self.blocks:
            if block["type"] == "tool_use" and block.get("_open"):
                continue
            if block["type"] == "text" and not block.get("text"):
                continue
            out.append({k: v for k, v in block.items() if not k.startswith("_")})
        return out

    def reset(self) -> None:
        """Before a retry: nothing of the failed attempt's content is kept."""
        self.blocks.clear(); self.partial_json.clear(); self.index_map.clear()

    def drop_skipped(self) -> None:
        """After the stream: drop the blocks never sent back (server tools and other unknown kinds)."""
        self.blocks[:] = [b for b in self.blocks if not b.get("_skip")]

    def apply(self, event: str | None, data: bytes, on_text: Callable[[str], None],
              on_thinking: Callable[[str], None]) -> bool:
        """Fold one server-sent event into the state; True when it is `message_stop`. Raises StreamErrorEvent
        for an `error` event (and ValueError for data that is not JSON, as the SDK's stream does)."""
        if event is None or event == "ping":
            return False
        if event == "error":
            raise error_event(data)
        if not data:
            return False
        ev = orjson.loads(data)
        etype = ev.get("type") if isinstance(ev, dict) else None
        if etype == "content_block_delta":  # nearly every event: first
            pos = self.index_map.get(ev["index"])
            if pos is None:
                return False
            delta = ev["delta"]
            dtype = delta.get("type")
            block = self.blocks[pos]
            if dtype == "text_delta":
                text = delta["text"]
                block["text"] = block.get("text", "") + text
                on_text(text)
            elif dtype == "input_json_delta":
                index = ev["index"]
                self.partial_json[index] = self.partial_json.get(index, "") + delta["partial_json"]
            elif dtype == "thinking_delta":
                text = delta["thinking"]
                block["thinking"] = block.get("thinking", "") + text
                on_thinking(text)
            elif dtype == "signature_delta":
                block["signature"] = delta["signature"]
        elif etype == "message_stop":
            return True
        elif etype == "message_start":
            message = ev.get("message")
            self.usage = usage_from(message.get("usage") if isinstance(message, dict) else None, self.usage)
        elif etype == "content_block_start":
            block, index = ev["content_block"], ev["index"]
            kind = block.get("type")
            self.started = True
            self.index_map[index] = len(self.blocks)
            if kind == "text":
                text = block.get("text") or ""
                self.blocks.append({"type": "text", "text": text})
                if text:
                    on_text(text)
            elif kind == "tool_use":
                self.blocks.append({"type": "tool_use", "id": block["id"], "name": block["name"], "input": {},
                                    "_open": True})
                self.partial_json[index] = ""
            elif kind == "thinking":
                self.blocks.append({"type": "thinking", "thinking": block.get("thinking") or "",
                                    "signature": block.get("signature") or ""})
            else:  # server tools etc.: kept for the record, never replayed
                self.blocks.append({"type": kind, "_skip": True, "_open": True})
        elif etype == "content_block_stop":
            index = ev["index"]
            pos = self.index_map.get(index)
            if pos is None:
                return False
            block = self.blocks[pos]
            if block["type"] == "tool_use":
                raw = self.partial_json.pop(index, "")
                try:
                    block["input"] = json.loads(raw) if raw.strip() else {}
                except ValueError:
                    block["input"] = {}
                    block["_bad_json"] = True
                block.pop("_open", None)
        elif etype == "message_delta":
            delta = ev.get("delta")
            self.stop_reason = (delta.get("stop_reason") if isinstance(delta, dict) else None) or self.stop_reason
            self.usage = usage_from(ev.get("usage"), self.usage)
        return False
