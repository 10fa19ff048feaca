"""The one JSON encoding of the service: compact and UTF-8 (not ASCII-escaped), for stored rows (messages,
events, run requests) and SSE frames alike, so a stored event is sent byte for byte as it was written."""
from __future__ import annotations

import json
from typing import Any

import orjson


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def dumps_delta(kind: str, delta: str) -> str:
    """`dumps({"type": kind, "delta": delta})`, the part of nearly every event, faster: orjson writes the same
    text for any string (tests/unit/test_codec.py), except that it refuses a lone surrogate, left to dumps."""
    try:
        return orjson.dumps({"type": kind, "delta": delta}).decode()
    except TypeError:
        return dumps({"type": kind, "delta": delta})
