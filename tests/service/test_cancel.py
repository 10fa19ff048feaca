"""An explicit cancel, or an expire of a session with a live run (all the headless CLI sends on Ctrl-C),
stops the upstream request, ends the stream and stores the partial answer; the session is free at once."""
from __future__ import annotations

import asyncio

from tests.support.cli import TERMINAL, eventually, start_held_turn
from tests.support.standins.anthropic import Reply


def assistant_rows(db, sid):
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT status, content FROM messages WHERE session_id=%s AND role='assistant' ORDER BY id",
                    (sid,))
        return list(cur.fetchall())


async def test_cancel_stops_the_model_and_keeps_the_partial_answer(service, alice):
    held = await start_held_turn(alice, service.anthropic, "partial-answer-words that never finish", hold_after=2,
                                 message="write me an essay")
    sid, stream = held.sid, held.stream
    assert await asyncio.to_thread(service.anthropic.wait_held)

    r = await alice.cancel(sid)
    assert r.status < 300, r.text
    end = await stream.until(lambda e: e.type in TERMINAL)
    await stream.close()
    assert end.type in TERMINAL

    # The upstream request was stopped, not left running.
    rec = service.anthropic.message_requests[0]
    await eventually(lambda: rec.extra.get("client_disconnected"), what="the model request to be closed")
    assert not rec.extra.get("completed")

    # The partial answer is stored and shown in the history.
    msgs = (await alice.messages(sid)).body["messages"]
    assert msgs[-1]["role"] == "assistant"
    assert msgs[-1]["content"].startswith("partial-answer-words")
    assert msgs[-1]["content"] != "partial-answer-words that never finish"


async def test_cancelled_answer_is_stored_with_its_status(service, alice):
    sid = await alice.create_session()
    await alice.turn(sid, "a normal turn")
    stream = (await start_held_turn(alice, service.anthropic, "cut short here", message="another", sid=sid)).stream
    await alice.cancel(sid)
    await stream.until(lambda e: e.type in TERMINAL)
    await stream.close()
    rows = assistant_rows(service.db, sid)
    assert len(rows) == 2
    (done_status, _), (cut_status, cut_content) = rows
    assert cut_status != done_status
    assert "cut" in cut_content


async def test_after_a_cancel_the_session_goes_on(service, alice):
    held = await start_held_turn(alice, service.anthropic, "stop me", message="first")
    sid, stream = held.sid, held.stream
    await alice.cancel(sid)
    await stream.until(lambda e: e.type in TERMINAL)
    await stream.close()
    turn = await alice.turn(sid, "second")
    assert turn.terminal["type"] == "finish"
    # The model sees the conversation so far, the cancelled partial answer included or not,
    # but always the earlier user message and the new one.
    texts = str(service.anthropic.message_requests[-1].json["messages"])
    assert "first" in texts and "second" in texts


async def test_cancel_while_waiting_for_a_tool_result(service, alice):
    service.anthropic.script(Reply.tool_use("execute_bash_local", {"command": "sleep 1000"}))
    sid = await alice.create_session()
    await alice.send(sid, "run a long thing")
    stream = await alice.open_events(sid)
    await stream.until_type("execute-local")
    r = await alice.cancel(sid)
    assert r.status < 300
    await stream.until(lambda e: e.type in TERMINAL)
    await stream.close()
    turn = await alice.turn(sid, "next")  # the session is free again
    assert turn.terminal["type"] == "finish"


async def test_cancel_with_nothing_running_is_harmless(service, alice):
    sid = await alice.create_session()
    r = await alice.cancel(sid)
    assert r.status < 500
    turn = await alice.turn(sid, "hello")
    assert turn.terminal["type"] == "finish"


async def test_cancelling_twice_stores_the_partial_answer_once(service, alice):
    """Ctrl-C twice: the second cancel, landing while the first one's partial answer is being stored,
    must not interrupt that (the answer would be lost and the stream never end)."""
    held = await start_held_turn(alice, service.anthropic, "twice-cancelled words")
    sid, stream = held.sid, held.stream
    lock = service.db.connect()
    watcher = service.db.connect()
    try:
        with lock.cursor() as cur:
            cur.execute("LOCK TABLES messages WRITE")  # holds the partial answer's INSERT
        assert (await alice.cancel(sid)).status < 300
        await eventually(lambda: waiting(watcher, f"INSERT INTO messages%{sid}%cancelled%"),
                         what="the partial answer's INSERT to wait on the lock", timeout=4)
        assert (await alice.cancel(sid)).status < 300
    finally:
        with lock.cursor() as cur:
            cur.execute("UNLOCK TABLES")
        lock.close()
        watcher.close()
    end = await stream.until(lambda e: e.type in TERMINAL)
    await stream.close()
    assert end.type == "finish" and end.data["finishReason"] == "cancelled"
    assert [status for status, _ in assistant_rows(service.db, sid)] == ["cancelled"]
    assert (await alice.turn(sid, "next")).terminal["type"] == "finish"


def waiting(conn, pattern: str) -> bool:
    """Whether a statement matching the LIKE `pattern` is running (here: waiting on a lock the test holds)."""
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE %s", (pattern,))
        return cur.fetchone()[0] > 0


async def test_a_cancel_during_the_final_bookkeeping_is_ignored(service, alice):
    """A cancel that lands after the answer is complete, while the run records its end in MySQL, neither
    loses the terminal part nor leaves the session busy (409)."""
    held = await start_held_turn(alice, service.anthropic, "complete answer")
    sid, stream, run_id = held.sid, held.stream, held.sent.body["run_id"]
    # A shared lock on the run's row lets the answer be stored but holds the run's final UPDATE.
    lock = service.db.connect(autocommit=False)
    watcher = service.db.connect()
    try:
        with lock.cursor() as cur:
            cur.execute("SELECT id FROM runs WHERE id=%s LOCK IN SHARE MODE", (run_id,))
        service.anthropic.release()
        await eventually(lambda: waiting(watcher, f"UPDATE runs SET status='completed'%{run_id}%"),
                         what="the run's final UPDATE to wait on the lock", timeout=4)
        assert (await alice.cancel(sid)).status < 300
    finally:
        lock.commit()
        lock.close()
        watcher.close()
    end = await stream.until(lambda e: e.type in TERMINAL)
    await stream.close()
    assert end.type == "finish" and end.data["finishReason"] != "cancelled"
    assert [status for status, _ in assistant_rows(service.db, sid)] == ["complete"]
    assert (await alice.turn(sid, "next")).terminal["type"] == "finish"


async def test_expire_during_an_answer_cancels_the_run(service, alice):
    """Headless Ctrl-C: the CLI sends only POST .../expire, then `seqera ai -c` sends the next message."""
    held = await start_held_turn(alice, service.anthropic, "an answer cut short by ctrl-c", message="first")
    sid, stream = held.sid, held.stream
    r = await alice.expire(sid)
    assert r.status == 200 and r.body["cancelled_run_id"] == held.sent.body["run_id"]
    # The run is over by the time expire answers: the next message is accepted, not 409.
    nxt = await alice.send(sid, "second")
    assert nxt.status == 200, nxt.text
    end = await stream.until(lambda e: e.type in TERMINAL)
    await stream.close()
    assert end.type == "finish" and end.data["finishReason"] == "cancelled"
    assert [status for status, _ in assistant_rows(service.db, sid)][:1] == ["cancelled"]
    rec = service.anthropic.message_requests[0]
    await eventually(lambda: rec.extra.get("client_disconnected"), what="the model request to be closed")


async def test_expire_while_waiting_for_a_tool_result_frees_the_session(service, alice):
    service.anthropic.script(Reply.tool_use("execute_bash_local", {"command": "sleep 1000"}))
    sid = await alice.create_session(cwd="/work/ctrl-c")
    await alice.send(sid, "run a long thing")
    stream = await alice.open_events(sid)
    await stream.until_type("execute-local")
    assert (await alice.expire(sid)).status == 200
    end = await stream.until(lambda e: e.type in TERMINAL)
    await stream.close()
    assert end.data.get("finishReason") == "cancelled"
    r = await alice.list_sessions(limit=10, cwd="/work/ctrl-c", status="expired")  # what `-c` asks
    assert [s["session_id"] for s in r.body["sessions"]] == [sid]
    assert (await alice.turn(sid, "next")).terminal["type"] == "finish"


async def test_expire_without_a_live_run_cancels_nothing(service, alice):
    sid = await alice.create_session()
    turn = await alice.turn(sid, "hello")
    r = await alice.expire(sid)
    assert r.status == 200 and r.body["cancelled_run_id"] is None
    assert turn.terminal["finishReason"] == "stop"
    assert [status for status, _ in assistant_rows(service.db, sid)] == ["complete"]
