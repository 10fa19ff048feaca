"""history.build_history: stored messages, however a run ended, become a conversation the Messages API
accepts, and nothing anyone wrote is lost."""
from __future__ import annotations

from agent_backend.history import INTERRUPTED_RESULT, build_history, without_tools
from agent_backend.queries import Message


def msg(role: str, *content: dict) -> Message:
    return Message(0, None, role, list(content), "complete", None)


def text(t: str) -> dict:
    return {"type": "text", "text": t}


def call(tid: str) -> dict:
    return {"type": "tool_use", "id": tid, "name": "bash_local", "input": {"command": "ls"}}


def result(tid: str, content: str = "ok") -> dict:
    return {"type": "tool_result", "tool_use_id": tid, "content": content}


def interrupted(tid: str) -> dict:
    return {"type": "tool_result", "tool_use_id": tid, "is_error": True, "content": INTERRUPTED_RESULT}


def test_a_plain_conversation_is_kept_as_it_is():
    stored = [msg("user", text("hi")), msg("assistant", text("hello")), msg("user", text("bye"))]
    assert build_history(stored) == [{"role": "user", "content": [text("hi")]},
                                     {"role": "assistant", "content": [text("hello")]},
                                     {"role": "user", "content": [text("bye")]}]


def test_consecutive_messages_of_one_role_become_one_turn():
    # Two user messages in a row: the first run failed before the model said anything.
    stored = [msg("user", text("one")), msg("user", text("two")), msg("assistant", text("a"))]
    assert build_history(stored) == [{"role": "user", "content": [text("one"), text("two")]},
                                     {"role": "assistant", "content": [text("a")]}]


def test_it_starts_with_the_user_and_drops_empty_and_unknown_blocks():
    stored = [msg("assistant", text("orphan")), msg("system", text("x")),
              msg("user", text(""), text("q"), {"type": "image"}),
              msg("assistant", {"type": "thinking", "thinking": "hm"}, text("a")), msg("assistant")]
    assert build_history(stored) == [{"role": "user", "content": [text("q")]},
                                     {"role": "assistant", "content": [text("a")]}]


def test_a_tool_call_without_its_result_gets_an_error_result():
    # Cancelled while the CLI ran the tool, then the user wrote again.
    stored = [msg("user", text("run it")), msg("assistant", call("t1"), call("t2")),
              msg("user", result("t2")), msg("user", text("next"))]
    assert build_history(stored) == [
        {"role": "user", "content": [text("run it")]},
        {"role": "assistant", "content": [call("t1"), call("t2")]},
        {"role": "user", "content": [result("t2"), interrupted("t1"), text("next")]}]


def test_a_last_tool_call_is_answered_too():
    stored = [msg("user", text("run it")), msg("assistant", text("sure"), call("t1"))]
    assert build_history(stored)[-1] == {"role": "user", "content": [interrupted("t1")]}


def test_a_result_without_its_call_is_dropped():
    stored = [msg("user", text("q")), msg("assistant", text("a")), msg("user", result("gone"), text("more"))]
    assert build_history(stored)[-1] == {"role": "user", "content": [text("more")]}
    only_result = [msg("user", text("q")), msg("assistant", text("a")), msg("user", result("gone"))]
    assert build_history(only_result) == [{"role": "user", "content": [text("q")]},
                                          {"role": "assistant", "content": [text("a")]}]


def test_nothing_stored_is_an_empty_conversation():
    assert build_history([]) == []
    assert build_history([msg("assistant", text("a"))]) == []


def test_without_tools_the_calls_and_results_become_text():
    history = build_history([msg("user", text("q")), msg("assistant", text("looking"), call("t1")),
                             msg("user", result("t1", "3 runs")), msg("user", text("and?"))])
    flat = without_tools(history)
    assert [m["role"] for m in flat] == [m["role"] for m in history]
    assert all(b["type"] == "text" for m in flat for b in m["content"])
    assert flat[1]["content"][1]["text"] == '[called bash_local with {"command": "ls"}]'
    assert flat[2]["content"][0]["text"] == "[result: 3 runs]"
