"""Sessions: create, list (what `-c` looks for), expire, resume with the earlier turns."""
from __future__ import annotations

import asyncio
from datetime import datetime

from tests.support.cli import start_held_turn
from tests.support.standins.anthropic import DEFAULT_ANSWER


def parse_ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_list_is_newest_first_with_the_fields_the_cli_shows(service, alice):
    sids = []
    for i in range(3):
        sid = await alice.create_session(cwd="/work/proj-a")
        await alice.turn(sid, f"question number {i}")
        await alice.expire(sid)
        sids.append(sid)
    r = await alice.list_sessions(limit=10, cwd="/work/proj-a", status="expired")
    assert r.status == 200, r.text
    listed = r.body["sessions"]
    assert listed and listed[0]["session_id"] == sids[-1]
    assert [s["session_id"] for s in listed] == [s for s in reversed(sids)][:len(listed)]
    for s in listed:
        assert s["title"]
        for key in ("created_at", "last_used", "expired_at"):
            parse_ts(s[key])
    assert "question number 2" in listed[0]["title"]


async def test_list_filters_by_cwd_status_and_limit(service, alice):
    """`status=expired` means resumable: no live run, whether or not an expire arrived; `active`: a live run."""
    a = await alice.create_session(cwd="/work/a")
    b = await alice.create_session(cwd="/work/b")
    c = await alice.create_session(cwd="/work/a")  # never expired (a closed terminal, a lost expire)
    await alice.expire(a)
    await alice.expire(b)
    live = (await start_held_turn(alice, service.anthropic, "still answering", sid=await alice.create_session(
        cwd="/work/a"))).sid
    try:
        r = await alice.list_sessions(limit=10, cwd="/work/a", status="expired")  # the CLI's `-c` query
        assert [s["session_id"] for s in r.body["sessions"]] == [c]  # the newest there without a live run
        r = await alice.list_sessions(limit=20, status="expired")  # the TUI's session picker
        assert {s["session_id"] for s in r.body["sessions"]} == {a, b, c}
        r = await alice.list_sessions(limit=20, status="active")
        assert [s["session_id"] for s in r.body["sessions"]] == [live]
        r = await alice.list_sessions(limit=1)
        assert len(r.body["sessions"]) == 1
        r = await alice.list_sessions(limit=10, cwd="/work/a")
        assert {s["session_id"] for s in r.body["sessions"]} == {a, c, live}
    finally:
        service.anthropic.release()


async def test_continue_resumes_a_session_that_was_never_expired(service, alice):
    sid = await alice.create_session(cwd="/work/closed-terminal")
    await alice.turn(sid, "the terminal closed after this answer, so no expire was sent")
    r = await alice.list_sessions(limit=10, cwd="/work/closed-terminal", status="expired")
    assert [s["session_id"] for s in r.body["sessions"]] == [sid]
    assert r.body["sessions"][0]["expired_at"] is None


async def test_resume_sends_the_earlier_turns_to_the_model(service, alice):
    sid = await alice.create_session(cwd="/work/resume")
    await alice.turn(sid, "my favourite colour is SENTINEL-BLUE")
    await alice.expire(sid)
    # `-c`: list, pick, and send the next message to the expired session.
    r = await alice.list_sessions(limit=10, cwd="/work/resume", status="expired")
    [found] = r.body["sessions"]
    assert found["session_id"] == sid
    turn = await alice.turn(sid, "what is my favourite colour?")
    assert turn.terminal["type"] == "finish"
    messages = service.anthropic.message_requests[-1].json["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert "SENTINEL-BLUE" in str(messages[0]["content"])
    assert DEFAULT_ANSWER in str(messages[1]["content"])
    assert "favourite colour?" in str(messages[2]["content"])
    history = (await alice.messages(sid)).body["messages"]
    assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]


async def test_last_used_moves_with_activity(service, alice):
    old = await alice.create_session(cwd="/work/x")
    new = await alice.create_session(cwd="/work/x")
    await alice.expire(old)
    await alice.expire(new)
    await asyncio.sleep(0.01)
    await alice.turn(old, "I am back")  # using it again makes it the most recent one
    await alice.expire(old)
    r = await alice.list_sessions(limit=10, cwd="/work/x", status="expired")
    assert r.body["sessions"][0]["session_id"] == old


async def test_expire_unknown_session_is_404(service, alice):
    r = await alice.expire("00000000-0000-0000-0000-000000000000")
    assert r.status == 404


async def test_session_fields_are_kept(service, alice):
    sid = await alice.create_session(cwd="/work/ctx", instruction_context="AGENTS.md\nbe brief",
                                     organization_id="42")
    await alice.turn(sid, "hello")
    with service.db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT cwd, organization_id, instruction_context FROM sessions WHERE id=%s", (sid,))
        assert cur.fetchone() == ("/work/ctx", "42", "AGENTS.md\nbe brief")
    system = str(service.anthropic.message_requests[0].json.get("system"))
    assert "be brief" in system and "/work/ctx" in system
