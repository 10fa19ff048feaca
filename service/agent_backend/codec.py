"""The one JSON encoding of the service: compact and UTF-8 (not ASCII-escaped), for stored rows (messages,
events, run requests) and SSE frames alike, so a stored event is sent byte for byte as it was written."""
from __future__ import annotations

import json
from typing import Any


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
