"""The conversation sent to the model, rebuilt from stored messages: pure functions, no I/O.

Stored messages are what happened, including runs that were cancelled, interrupted or cut off mid-way;
the Messages API wants alternating roles starting with the user, every `tool_use` answered by a
`tool_result` in the next user turn, and no result without its call. `build_history` repairs one into
the other: it never drops a text the user or the model wrote.
"""
from __future__ import annotations

import json
from typing import Iterable

INTERRUPTED_RESULT = "No result: the run was interrupted before the tool finished."
# Block types each role may send back to the model; anything else (thinking, server tools) is left out.
_KEPT = {"assistant": ("text", "tool_use"), "user": ("text", "tool_result")}


def build_history(messages: Iterable) -> list[dict]:
    """Stored messages (anything with `role` and `content`) -> a valid Messages API conversation."""
    return _answer_tool_calls(_merge_turns(messages))


def _merge_turns(messages: Iterable) -> list[dict]:
    """Keep the blocks the model accepts, drop empty texts and empty messages, merge consecutive messages of
    one role into one turn, and start with the user."""
    out: list[dict] = []
    for m in messages:
        kept = _KEPT.get(m.role)
        if kept is None:
            continue
        blocks = [b for b in (m.content or []) if isinstance(b, dict) and b.get("type") in kept
                  and (b.get("type") != "text" or b.get("text"))]
        if not blocks:
            continue
        if out and out[-1]["role"] == m.role:
            out[-1]["content"] = out[-1]["content"] + blocks
        else:
            out.append({"role": m.role, "content": blocks})
    while out and out[0]["role"] != "user":
        out.pop(0)
    return out


def _interrupted(tool_use_ids: Iterable[str]) -> list[dict]:
    return [{"type": "tool_result", "tool_use_id": tid, "is_error": True, "content": INTERRUPTED_RESULT}
            for tid in tool_use_ids]


def _tool_use_ids(turn: dict | None) -> list[str]:
    if turn is None or turn["role"] != "assistant":
        return []
    return [b["id"] for b in turn["content"] if b.get("type") == "tool_use"]


def _answer_tool_calls(turns: list[dict]) -> list[dict]:
    """Every tool call answered in the next user turn (an error result where none was stored), results
    first and in any order, results without their call dropped."""
    fixed: list[dict] = []
    for i, turn in enumerate(turns):
        if turn["role"] == "user":
            asked = set(_tool_use_ids(fixed[-1] if fixed else None))
            results = [b for b in turn["content"] if b.get("type") == "tool_result" and b.get("tool_use_id") in asked]
            missing = _interrupted(sorted(asked - {b["tool_use_id"] for b in results}))
            content = results + missing + [b for b in turn["content"] if b.get("type") == "text"]
            if content:
                fixed.append({"role": "user", "content": content})
        else:
            fixed.append(turn)
            nxt = turns[i + 1] if i + 1 < len(turns) else None
            if nxt is None or nxt["role"] != "user":
                ids = _tool_use_ids(turn)
                if ids:
                    fixed.append({"role": "user", "content": _interrupted(ids)})
    return fixed


def without_tools(history: list[dict]) -> list[dict]:
    """The conversation with its tool calls and results as text, for a request that offers no tools (the
    Messages API refuses tool blocks then): a session without local execution whose Platform tools were
    there on an earlier turn and are not now."""
    def text_of(block: dict) -> dict:
        if block.get("type") == "tool_use":
            return {"type": "text", "text": f"[called {block.get('name')} with {json.dumps(block.get('input'))}]"}
        if block.get("type") == "tool_result":
            content = block.get("content")
            body = content if isinstance(content, str) else json.dumps(content)
            return {"type": "text", "text": f"[{'error' if block.get('is_error') else 'result'}: {body}]"}
        return block
    return [{"role": m["role"], "content": [text_of(b) for b in m["content"]]} for m in history]
