"""Anthropic trouble: errors before the first byte are retried a bounded number of times; an error after
streaming began becomes an `error` part and the partial answer is kept."""
from __future__ import annotations

import pytest

from tests.support.standins.anthropic import DEFAULT_ANSWER, Reply

BEFORE_FIRST_BYTE = {
    "rate_limited_429": Reply.rate_limited,
    "overloaded_529": Reply.overloaded,
    "server_error_500": Reply.server_error,
    "unavailable_503": lambda: Reply.http_error(503, "api_error", "unavailable"),
}


@pytest.mark.parametrize("kind", BEFORE_FIRST_BYTE)
async def test_retried_before_first_byte(service, alice, kind):
    make = BEFORE_FIRST_BYTE[kind]
    service.anthropic.script(make(), make())
    sid = await alice.create_session()
    turn = await alice.turn(sid, "hello")
    assert turn.terminal["type"] == "finish", turn.parts
    assert turn.text == DEFAULT_ANSWER  # the user sees one clean answer, no trace of the retries
    assert len(service.anthropic.message_requests) == 3
    assert "error" not in turn.types


async def test_retries_are_bounded_then_an_error_part(service, alice):
    retries = service.config.llm_retries
    service.anthropic.script(*[Reply.overloaded() for _ in range(retries + 5)])
    sid = await alice.create_session()
    turn = await alice.turn(sid, "hello")
    assert turn.terminal["type"] == "error"
    assert isinstance(turn.terminal["error"], str) and turn.terminal["error"]
    assert len(service.anthropic.message_requests) == retries + 1
    service.sentinels.assert_absent(str(turn.parts), "the error part")
    history = (await alice.messages(sid)).body["messages"]
    assert history[0]["role"] == "user" and history[0]["content"] == "hello"  # stored before the model call


async def test_client_errors_are_not_retried(service, alice):
    service.anthropic.script(Reply.http_error(400, "invalid_request_error", "prompt is too long"))
    sid = await alice.create_session()
    turn = await alice.turn(sid, "hello")
    assert turn.terminal["type"] == "error"
    assert len(service.anthropic.message_requests) == 1


async def test_wrong_api_key_is_an_error_part_without_the_key(service, alice):
    service.anthropic.api_key = "some-other-key"
    sid = await alice.create_session()
    turn = await alice.turn(sid, "hello")
    assert turn.terminal["type"] == "error"
    assert len(service.anthropic.message_requests) == 1
    service.sentinels.assert_absent(str(turn.parts), "the error part", also={"other": "some-other-key"})


MID_STREAM = {"error_event": Reply.stream_error, "dropped_connection": Reply.drop,
              # message_start, a text block's deltas, then a clean end: no message_delta, no message_stop
              "ended_without_message_stop": Reply.cut_off}


@pytest.mark.parametrize("failure", MID_STREAM)
async def test_failure_mid_stream_keeps_the_partial_answer(service, alice, failure):
    partial = "The first half of the answer "
    service.anthropic.script(MID_STREAM[failure](partial))
    sid = await alice.create_session()
    turn = await alice.turn(sid, "hello")
    assert turn.terminal["type"] == "error"
    assert turn.text == partial
    assert len(service.anthropic.message_requests) == 1  # never retried once text was shown
    assert service.anthropic.message_requests[0].extra["failed"] == MID_STREAM[failure](partial).fail
    history = (await alice.messages(sid)).body["messages"]
    assert [m["role"] for m in history] == ["user", "assistant"]
    assert history[1]["content"].strip() == partial.strip()
    assert history[1]["status"] == "partial"  # never presented as a complete answer
    # The session is usable afterwards.
    assert (await alice.turn(sid, "again")).terminal["type"] == "finish"


async def test_an_answer_cut_off_says_so(service, alice):
    service.anthropic.script(Reply.cut_off("Half an answer "))
    sid = await alice.create_session()
    turn = await alice.turn(sid, "hello")
    assert "finish" not in turn.types
    assert "cut off" in turn.terminal["error"]


async def test_a_stream_cut_off_before_any_content_is_retried(service, alice):
    service.anthropic.script(Reply.cut_off(fail_after=0))  # after message_start, before any content block
    sid = await alice.create_session()
    turn = await alice.turn(sid, "hello")
    assert turn.terminal["type"] == "finish" and turn.text == DEFAULT_ANSWER
    assert len(service.anthropic.message_requests) == 2


async def test_failure_mid_tool_input_is_an_error(service, alice):
    reply = Reply.tool_use("execute_bash_local", {"command": "echo never-complete-json"})
    reply.fail, reply.fail_after, reply.error_type = "error", 2, "overloaded_error"
    service.anthropic.script(reply)
    sid = await alice.create_session()
    turn = await alice.turn(sid, "hello")
    assert turn.terminal["type"] == "error"
    assert "execute-local" not in turn.types  # a half-received tool call is never executed
