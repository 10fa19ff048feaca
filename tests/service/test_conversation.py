"""A full conversation over the HTTP protocol exactly as the CLI speaks it, with a tool-call round trip."""
from __future__ import annotations

import asyncio
import json
import uuid

from tests.support.cli import run_bash, start_held_turn
from tests.support.service import MODEL
from tests.support.standins.anthropic import (DEFAULT_ANSWER, RESULT_PREFIX, Reply, api_key_of, offered_tools,
                                              tool_result_text)

CLI_TOOLS = {"execute_bash_local", "read_file_local", "write_file_local", "edit_file_local",
             "list_directory_local", "search_files_local"}
WRITING_TOOLS = {"execute_bash_local", "write_file_local", "edit_file_local"}


async def history_parts(cli, sid) -> list[dict]:
    """Every part of a session's stored history, as the CLI loads it when it resumes (`history_only`)."""
    hist = await cli.open_events(sid, cursor=0, history_only=True)
    await hist.read_to_end()
    await hist.close()
    return hist.parts()


def last_user_blocks(request) -> list:
    msg = request.json["messages"][-1]
    assert msg["role"] == "user"
    return msg["content"] if isinstance(msg["content"], list) else [{"type": "text", "text": msg["content"]}]


async def test_plain_answer(service, alice):
    sid = await alice.create_session()
    assert isinstance(sid, str) and sid
    turn = await alice.turn(sid, "What is Nextflow?")
    assert turn.text == DEFAULT_ANSWER
    assert turn.terminal["type"] == "finish" and turn.terminal["finishReason"] == "stop"
    assert "start" in turn.types and turn.types.index("start") < turn.types.index("text-delta")
    [req] = service.anthropic.message_requests
    assert req.json["model"] == MODEL
    assert req.json["stream"] is True
    assert api_key_of(req) == service.sentinels.anthropic_key
    assert "What is Nextflow?" in json.dumps(last_user_blocks(req))


async def test_tool_call_round_trip(service, alice):
    sentinel = f"roundtrip-{uuid.uuid4().hex[:10]}"
    sid = await alice.create_session()
    turn = await alice.turn(sid, f"Please run `echo {sentinel}` in my project", tools=run_bash)

    # The stream: the model's call became an execute-local part the CLI answered.
    [call] = turn.tool_calls
    assert call["toolName"] == "execute_bash_local"
    assert call["args"] == {"command": f"echo {sentinel}"}
    types = turn.types
    assert types.index("execute-local") < types.index("finish")
    # The CLI shows the result it ran and posted: the live stream never sends it back a second time ...
    assert "tool-result" not in types
    # ... but the history a resumed session loads (`history_only`) has it, for the CLI to show.
    [stored] = [p for p in await history_parts(alice, sid) if p.get("type") == "tool-result"]
    assert stored["toolCallId"] == call["requestId"] and sentinel in json.dumps(stored["result"])
    assert "I will run that command for you." in turn.text
    assert (RESULT_PREFIX + sentinel) in turn.text
    assert turn.terminal == {**turn.terminal, "type": "finish", "finishReason": "stop"}

    # The model: offered the CLI's tools, then got the real command output back as a tool_result.
    first, second = service.anthropic.message_requests
    assert CLI_TOOLS <= offered_tools(first)
    tool_use_id = first.extra["reply"].blocks[-1].id
    assistant = second.json["messages"][-2]
    assert assistant["role"] == "assistant"
    assert any(b.get("type") == "tool_use" and b.get("id") == tool_use_id and b.get("input") == call["args"]
               for b in assistant["content"])
    [result] = [b for b in last_user_blocks(second) if b.get("type") == "tool_result"]
    assert result["tool_use_id"] == tool_use_id
    assert sentinel in tool_result_text(result)

    # Usage in the finish part adds up both model calls of the run.
    usage = turn.terminal["usage"]
    sent = [r.extra["usage"] for r in (first, second)]
    assert usage["promptTokens"] == sum(u["input_tokens"] for u in sent)
    assert usage["completionTokens"] == sum(u["output_tokens"] for u in sent)
    assert usage["totalTokens"] == usage["promptTokens"] + usage["completionTokens"]

    # The conversation is stored: the user's words and the final answer.
    r = await alice.messages(sid)
    assert r.status == 200
    msgs = r.body["messages"]
    assert msgs[0]["role"] == "user" and sentinel in msgs[0]["content"]
    assert msgs[-1]["role"] == "assistant" and (RESULT_PREFIX + sentinel) in msgs[-1]["content"]
    for m in msgs:
        assert set(m) >= {"id", "role", "content", "timestamp"}
        assert isinstance(m["content"], str)


async def test_failed_command_reaches_the_model(service, alice):
    service.anthropic.script(Reply.tool_use("execute_bash_local", {"command": "false"}), Reply.text("it failed"))
    sid = await alice.create_session()

    async def fail(tool, args):
        return {"stdout": "", "stderr": "permission denied: SENTINEL-STDERR", "exit_code": 3}

    turn = await alice.turn(sid, "run it", tools=fail)
    assert turn.text == "it failed"
    [result] = [b for b in last_user_blocks(service.anthropic.message_requests[1]) if b.get("type") == "tool_result"]
    assert "SENTINEL-STDERR" in tool_result_text(result)
    assert "3" in tool_result_text(result)


async def test_tool_the_cli_does_not_know(service, alice):
    service.anthropic.script(Reply.tool_use("create_directory_local", {"path": "x"}), Reply.text("ok then"))
    sid = await alice.create_session()
    turn = await alice.turn(sid, "make a dir", tools=run_bash)
    assert turn.terminal["type"] == "finish"
    # Not run by the CLI (no execute-local): the live stream is the only place the CLI learns the result.
    assert "execute-local" not in turn.types
    [result] = [p for p in turn.parts if p["type"] == "tool-result"]
    assert "was not run" in result["result"]
    second = service.anthropic.message_requests[1]
    assert [b for b in last_user_blocks(second) if b.get("type") == "tool_result"]


async def test_several_tool_calls_in_one_reply(service, alice):
    service.anthropic.script(
        Reply(blocks=[
            Reply.tool_use("execute_bash_local", {"command": "echo one"}).blocks[0],
            Reply.tool_use("execute_bash_local", {"command": "echo two"}).blocks[0],
        ], stop_reason="tool_use"),
        Reply.text("both done"),
    )
    sid = await alice.create_session()
    turn = await alice.turn(sid, "run two things", tools=run_bash)
    assert [c["args"]["command"] for c in turn.tool_calls] == ["echo one", "echo two"]
    assert turn.text == "both done"
    results = [b for b in last_user_blocks(service.anthropic.message_requests[1]) if b.get("type") == "tool_result"]
    assert sorted(tool_result_text(b).strip() for b in results) == ["one", "two"]


async def test_plan_mode_offers_no_tools_that_write_or_run(service, alice):
    sid = await alice.create_session()
    await alice.turn(sid, "plan something", mode="plan")
    offered = offered_tools(service.anthropic.message_requests[0])
    assert not offered & WRITING_TOOLS
    assert {"read_file_local", "list_directory_local"} <= offered


async def test_text_streams_before_the_model_has_finished(service, alice):
    held = await start_held_turn(alice, service.anthropic, "first-words and the rest", message="hello")
    stream = held.stream
    assert held.first.data["delta"] == "first-words "
    assert service.anthropic.streams_in_flight == 1  # the model is still holding its answer
    service.anthropic.release()
    await stream.until_type("finish")
    assert stream.text() == "first-words and the rest"
    await stream.close()


async def test_second_message_while_running_is_409(service, alice):
    service.anthropic.script(Reply.held())
    sid = await alice.create_session()
    assert (await alice.send(sid, "first")).status < 300
    assert await asyncio.to_thread(service.anthropic.wait_held)
    r = await alice.send(sid, "second")
    assert r.status == 409, r.text
    assert r.detail
    service.anthropic.release()
    stream = await alice.open_events(sid)
    await stream.until_type("finish")
    await stream.close()
    turn = await alice.turn(sid, "third")  # once the run is over a new one may start
    assert turn.terminal["type"] == "finish"


def _revive_last_run(service, sid: str, owner: str | None) -> str:
    """Make the session's last run look live again (running, fresh heartbeat), as if its final update had
    been lost; `owner` None keeps this service's own. Its id."""
    with service.db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT id FROM runs WHERE session_id=%s ORDER BY started_at DESC LIMIT 1", (sid,))
        (run_id,) = cur.fetchone()
        cur.execute("UPDATE runs SET status='running', finished_at=NULL, heartbeat_at=UTC_TIMESTAMP(),"
                    " owner=COALESCE(%s, owner) WHERE id=%s", (owner, run_id))
    return run_id


def _counts(service, sid: str) -> tuple:
    with service.db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT (SELECT COUNT(*) FROM runs WHERE session_id=%s), (SELECT COUNT(*) FROM messages"
                    " WHERE session_id=%s), (SELECT COUNT(*) FROM events WHERE session_id=%s)", (sid, sid, sid))
        return cur.fetchone()


async def test_a_live_run_of_another_replica_is_409_and_nothing_is_stored(service, alice):
    sid = await alice.create_session()
    assert (await alice.turn(sid, "first")).terminal["type"] == "finish"
    _revive_last_run(service, sid, owner="another-replica")
    before = _counts(service, sid)
    r = await alice.send(sid, "second")
    assert r.status == 409, r.text
    assert _counts(service, sid) == before  # no run, message or event of the refused turn


async def test_a_run_of_this_process_whose_final_update_was_lost_does_not_block_the_next(service, alice):
    sid = await alice.create_session()
    assert (await alice.turn(sid, "first")).terminal["type"] == "finish"
    lost = _revive_last_run(service, sid, owner=None)  # live in MySQL, but no task of this process runs it
    turn = await alice.turn(sid, "second")
    assert turn.terminal["type"] == "finish" and turn.text == DEFAULT_ANSWER
    with service.db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT status FROM runs WHERE id=%s", (lost,))
        assert cur.fetchone() == ("interrupted",)


async def test_a_turn_stores_its_start_part_first_with_the_next_number(service, alice):
    sid = await alice.create_session()
    first = await alice.turn(sid, "first")
    second = await alice.turn(sid, "second")
    ids = [e.id for e in first.events + second.events if e.id is not None]
    assert ids == list(range(1, len(ids) + 1))  # one numbering across the session's runs, no gaps
    with service.db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT e.data FROM events e JOIN runs r ON r.id=e.run_id WHERE e.session_id=%s"
                    " AND e.seq=(SELECT MIN(seq) FROM events WHERE run_id=r.id) ORDER BY e.seq", (sid,))
        starts = [json.loads(d) for (d,) in cur.fetchall()]
    assert [p["type"] for p in starts] == ["start", "start"]
    assert all(p["threadId"] == sid for p in starts) and starts[0]["runId"] != starts[1]["runId"]


async def test_live_stream_without_cursor_starts_with_history_end(service, alice):
    # With -c the CLI drops text until it has seen history_end: it must come before the run's text.
    sid = await alice.create_session()
    turn = await alice.turn(sid, "hello")
    assert "history_end" in turn.types
    assert turn.types.index("history_end") < turn.types.index("text-delta")
    turn2 = await alice.turn(sid, "again")
    assert turn2.types.index("history_end") < turn2.types.index("text-delta")
    # Earlier turns' terminal parts are not replayed on the live stream (the CLI would stop at them).
    assert [t for t in turn2.types if t in ("finish", "error")] == ["finish"]
    assert turn2.text == DEFAULT_ANSWER


async def test_sse_frames_are_what_the_cli_can_read(service, alice):
    sid = await alice.create_session()
    turn = await alice.turn(sid, "please run `echo frames`", tools=run_bash)
    ids = [e.id for e in turn.events if e.id is not None]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for e in turn.events:
        if e.data is not None and e.type not in ("history_end",):
            assert e.id is not None, f"part without id cannot be resumed: {e.raw!r}"


async def test_unanswered_tool_call_times_out_into_an_error_result(make_service, sentinels):
    svc = await make_service(tool_result_timeout=0.5)
    alice = svc.cli(sentinels.alice_token)
    svc.anthropic.script(Reply.tool_use("execute_bash_local", {"command": "sleep 1000"}), Reply.text("gave up"))
    sid = await alice.create_session()
    assert (await alice.send(sid, "run something slow")).status < 300
    stream = await alice.open_events(sid)
    await stream.until_type("execute-local")  # ...and never answer it, like a CLI that went away
    end = await stream.until_type("finish", "error")
    await stream.close()
    assert end.type == "finish" and stream.text().endswith("gave up")
    [result] = [b for b in last_user_blocks(svc.anthropic.message_requests[1]) if b.get("type") == "tool_result"]
    assert result.get("is_error") is True
    assert "time" in tool_result_text(result).lower()
