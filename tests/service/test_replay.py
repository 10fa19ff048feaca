"""Events are stored: a dropped stream does not stop the run, a reconnect with `cursor` replays from there
and follows live, and `history_only=true` replays and ends."""
from __future__ import annotations

import asyncio

from tests.support.cli import eventually, run_bash, start_held_turn
from tests.support.standins.anthropic import Block, Reply

ANSWER = "alpha beta gamma delta epsilon zeta eta theta"


async def last_answer(cli, sid) -> str | None:
    """The content of the session's newest assistant message, None before there is one."""
    r = await cli.messages(sid)
    assistants = [m for m in (r.body or {}).get("messages", []) if m["role"] == "assistant"]
    return assistants[-1]["content"] if assistants else None


async def test_reconnect_with_cursor_gets_the_rest(service, alice):
    held = await start_held_turn(alice, service.anthropic, ANSWER, hold_after=2, message="tell me")
    sid, first, ev = held.sid, held.stream, held.first
    seen_text = first.text()
    last_id = first.last_id
    assert last_id is not None and ev.id is not None
    first.drop()  # the network goes away mid-answer

    service.anthropic.release()
    second = await alice.open_events(sid, cursor=last_id + 1)
    await second.until_type("finish")
    await second.close()
    assert all(e.id > last_id for e in second.events if e.id is not None)
    assert seen_text + second.text() == ANSWER
    # The model was asked once: the reconnect did not start anything new.
    assert len(service.anthropic.message_requests) == 1


async def test_reconnect_after_the_run_ended_replays_its_end(service, alice):
    held = await start_held_turn(alice, service.anthropic, ANSWER, message="tell me")
    sid, first = held.sid, held.stream
    cursor = first.last_id + 1
    first.drop()
    service.anthropic.release()
    # finished while nobody listened
    await eventually(lambda: last_answer(alice, sid), lambda c: c == ANSWER, what="the answer to be stored")
    again = await alice.open_events(sid, cursor=cursor)
    await again.until_type("finish")
    await again.close()
    assert first.text() + again.text() == ANSWER


async def test_dropped_stream_does_not_cancel_the_run(service, alice):
    held = await start_held_turn(alice, service.anthropic, ANSWER, message="tell me")
    sid = held.sid
    held.stream.drop()
    await asyncio.sleep(0.2)
    service.anthropic.release()
    await eventually(lambda: last_answer(alice, sid), lambda c: c == ANSWER, what="the answer to be stored")
    rec = service.anthropic.message_requests[0]
    assert rec.extra.get("completed") and not rec.extra.get("client_disconnected")


async def test_history_only_replays_and_ends(service, alice):
    sid = await alice.create_session()
    t1 = await alice.turn(sid, "first question")
    t2 = await alice.turn(sid, "please run `echo history`", tools=lambda tool, args: {
        "stdout": "history\n", "stderr": "", "exit_code": 0})
    hist = await alice.open_events(sid, cursor=0, history_only=True)
    await hist.read_to_end()  # ends by itself: no run is waited for
    await hist.close()
    assert hist.text() == t1.text + t2.text
    assert hist.types().count("finish") == 2
    live_ids = [e.id for e in t1.events + t2.events if e.id is not None]
    hist_ids = [e.id for e in hist.events if e.id is not None]
    assert set(live_ids) <= set(hist_ids)


async def test_history_only_from_a_cursor(service, alice):
    sid = await alice.create_session()
    t1 = await alice.turn(sid, "first")
    after_first = max(e.id for e in t1.events if e.id is not None) + 1
    t2 = await alice.turn(sid, "second")
    hist = await alice.open_events(sid, cursor=after_first, history_only=True)
    await hist.read_to_end()
    await hist.close()
    assert hist.text() == t2.text
    assert hist.types().count("finish") == 1


async def test_a_late_listener_gets_the_whole_run(service, alice):
    # The CLI POSTs the message before it opens the stream: nothing may be lost in between.
    sid = await alice.create_session()
    await alice.send(sid, "hello")
    await eventually(lambda: last_answer(alice, sid), what="an answer to be stored")
    stream = await alice.open_events(sid)
    await stream.until_type("finish")
    await stream.close()
    assert "start" in stream.types()
    assert stream.text() == (await alice.messages(sid)).body["messages"][-1]["content"]


async def test_heartbeats_keep_an_idle_stream_alive(service, alice):
    stream = (await start_held_turn(alice, service.anthropic, "slow answer", message="hello")).stream
    while True:  # the model is holding: the service must send `: ping` comments meanwhile
        ev = await stream.next(timeout=service.config.sse_ping_interval * 10)
        if ev is not None and ev.comment is not None and ev.data is None:
            break
    service.anthropic.release()
    await stream.until_type("finish")
    await stream.close()


async def test_a_reconnect_replayed_from_mysql_leaves_out_the_clis_own_tool_results(service, make_service, alice):
    """Another replica (nothing of the run in its memory) replays a finished run from MySQL: the result of the
    command the CLI ran is not sent to a live stream, the service's own text about it is."""
    sid = await alice.create_session()
    turn = await alice.turn(sid, "please run `echo from-the-cli`", tools=run_bash)
    first_id = min(e.id for e in turn.events if e.id is not None)
    other = await make_service(migrate=False)
    again = await other.cli(other.sentinels.alice_token).open_events(sid, cursor=first_id)
    await again.until_type("finish")
    await again.close()
    assert "execute-local" in again.types() and "tool-result" not in again.types()
    assert again.text() == turn.text


async def test_a_new_runs_stream_never_begins_with_the_cancelled_runs_end(service, alice):
    """The TUI after Esc-Esc: it keeps its cursor across runs, so it asks for the next run's events with a
    cursor that points into the run it cancelled (it stopped reading that stream when it cancelled)."""
    sid = await alice.create_session()
    first = await alice.turn(sid, "first question")  # the TUI's first stream has no cursor
    cursor = max(e.id for e in first.events if e.id is not None) + 1
    service.anthropic.script(Reply.held("the answer to be interrupted", hold_after=2))
    assert (await alice.send(sid, "second question")).status == 200
    second = await alice.open_events(sid, cursor=cursor)
    await second.until_type("text-delta")
    cursor = second.last_id + 1  # inside the second run
    assert (await alice.cancel(sid)).status == 200  # Esc-Esc: cancel, and the TUI stops reading
    second.drop()

    service.anthropic.script(Reply.text("the third answer"))
    assert (await alice.send(sid, "third question")).status == 200
    third = await alice.open_events(sid, cursor=cursor)
    await third.until_type("finish")
    await third.close()
    parts = [p for p in third.parts() if p["type"] != "history_end"]
    assert parts[0]["type"] == "start" and parts[-1] == {**parts[-1], "type": "finish", "finishReason": "stop"}
    assert third.text() == "the third answer"
    assert not [p for p in parts if p.get("finishReason") == "cancelled"]


async def test_a_cursor_inside_the_latest_run_is_exact_after_it_ended(service, alice):
    sid = await alice.create_session()
    await alice.turn(sid, "first")
    turn = await alice.turn(sid, "second")
    ids = [e.id for e in turn.events if e.id is not None]
    again = await alice.open_events(sid, cursor=ids[1])
    await again.until_type("finish")
    await again.close()
    assert [e.id for e in again.events if e.id is not None] == ids[1:]


async def test_a_listener_far_behind_a_long_live_run_gets_every_event_once(service, alice):
    # Alternating thinking and text blocks: 2 x 150 events that the writer can never merge, far more than the
    # frames a hub holds in memory (events.HELD_FRAMES), so a listener that starts at the run's beginning
    # while it still streams reads the earlier events back from MySQL, then follows live.
    pairs = 150
    blocks = [b for i in range(pairs) for b in (Block("thinking", text=f"t{i}"), Block("text", text=f"w{i} "))]
    service.anthropic.script(Reply(blocks=blocks, hold_after=2 * pairs))
    sid = await alice.create_session()
    assert (await alice.send(sid, "think aloud")).status == 200
    first = await alice.open_events(sid)
    await first.until(lambda e: e.type == "text-delta" and e.data["delta"] == f"w{pairs - 1} ")
    late = await alice.open_events(sid)  # from the run's first event: nearly all of them no longer in memory
    await late.until(lambda e: e.type == "text-delta" and e.data["delta"] == f"w{pairs - 1} ")
    service.anthropic.release()
    for stream in (first, late):
        await stream.until_type("finish")
        await stream.close()
    first_ids = [e.id for e in first.events if e.id is not None]
    assert first_ids == list(range(first_ids[0], first_ids[0] + len(first_ids)))
    assert len(first_ids) > 2 * pairs
    assert [e.id for e in late.events if e.id is not None] == first_ids
    assert late.parts() == first.parts()
    assert late.text() == "".join(f"w{i} " for i in range(pairs))
    assert [p["delta"] for p in late.parts() if p["type"] == "reasoning"] == [f"t{i}" for i in range(pairs)]


async def test_a_replay_returns_every_character_as_streamed(service, alice):
    # The events' INSERT is written by queries.insert_events itself: quotes, backslashes, SQL and format
    # markers, control characters and characters outside the BMP come back from MySQL byte for byte.
    tricky = ["it's ", "\"quoted\" ", "back\\slash\\ ", "\\' OR '1'='1 ", "%s %d %% ", "tab\there ",
              "line\nbreak\r\n", "nul\x00byte ", "ctrl-z\x1a ", "ünïcödé ", "日本語 ", "emoji 🧬🚀 ", "\u2028end"]
    service.anthropic.script(Reply.text("".join(tricky), chunks=tricky))
    sid = await alice.create_session()
    live = await alice.turn(sid, "say something awkward")
    assert live.text == "".join(tricky)
    hist = await alice.open_events(sid, cursor=0, history_only=True)
    await hist.read_to_end()
    await hist.close()
    assert hist.text() == live.text
    assert [e.raw for e in hist.events if e.id is not None] == [e.raw for e in live.events if e.id is not None]
