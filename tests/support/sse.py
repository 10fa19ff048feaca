"""Server-sent events, parsed one way for every reader in this repository.

    frames, rest = take_frames(buffer)        # complete frames (text) at the start of a byte buffer
    frame = parse_frame(text)                 # Frame(id, event, data, comment, raw); lenient
    frame = parse_frame(text, strict=True)    # raises SSEError on what the Seqera CLI could not read
    frames = parse(body)                      # a whole body, e.g. a replayed history

Frames are separated by "\\n\\n" only (the CLI's live parser does not accept "\\r\\n"). Field values are
stripped. `data` is the text of the frame's data line (the last one if there are several); `json()`
decodes it. Lenient parsing ignores lines it does not know; strict parsing accepts comments and the
`id`, `event` and `data` fields only, and requires an integer id and exactly one line of JSON data per
frame that has data, as the CLI does.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

SEPARATOR = b"\n\n"


class SSEError(ValueError):
    """A frame the Seqera CLI's parser could not read (strict parsing only)."""


@dataclass
class Frame:
    raw: str
    id: str | None = None
    event: str | None = None
    data: str | None = None
    comment: str | None = None
    data_lines: int = 0

    def json(self) -> Any:
        """The data line decoded as JSON (None without one); ValueError if it is not JSON."""
        return None if self.data is None else json.loads(self.data)


def take_frames(buf: bytes) -> tuple[list[str], bytes]:
    """The complete frames at the start of `buf`, decoded and without their separator, and the rest."""
    *frames, rest = buf.split(SEPARATOR)
    return [f.decode() for f in frames], rest


def parse_frame(text: str, *, strict: bool = False) -> Frame:
    """One frame (without its separator)."""
    if strict and "\r" in text:
        raise SSEError(f"CR in an SSE frame (the CLI splits on \\n\\n only): {text!r}")
    frame = Frame(raw=text)
    for line in text.split("\n"):
        if line.startswith(":"):
            frame.comment = line[1:].strip()
        elif line.startswith("id:"):
            frame.id = line[3:].strip()
            if strict and not _is_int(frame.id):
                raise SSEError(f"non-integer SSE id {frame.id!r} (the CLI uses ids as cursors)")
        elif line.startswith("data:"):
            frame.data_lines += 1
            frame.data = line[5:].strip()
            if strict:
                try:
                    json.loads(frame.data)
                except ValueError:
                    raise SSEError(f"SSE data is not one-line JSON: {frame.data!r}") from None
        elif line.startswith("event:"):
            frame.event = line[6:].strip()
        elif line and strict:
            raise SSEError(f"unexpected SSE line {line!r}")
    if strict and frame.data_lines > 1:
        raise SSEError(f"several data: lines in one frame (the CLI keeps only the last): {text!r}")
    return frame


def parse(body: str, *, strict: bool = False) -> list[Frame]:
    """Every frame of a complete body; blank ones are skipped, an unterminated last one is kept."""
    return [parse_frame(chunk, strict=strict) for chunk in body.split("\n\n") if chunk.strip()]


def _is_int(value: str) -> bool:
    try:
        int(value)
    except ValueError:
        return False
    return True
