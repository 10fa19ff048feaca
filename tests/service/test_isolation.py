"""A user sees only their own sessions: another user's session id answers 404, like an unknown one."""
from __future__ import annotations

import pytest

from tests.support.standins.anthropic import Reply


@pytest.fixture
async def alices_session(service, alice):
    sid = await alice.create_session(cwd="/home/alice/secret-project")
    await alice.turn(sid, "alice's private question")
    return sid


async def test_other_user_gets_404_everywhere(service, alice, bob, alices_session):
    sid = alices_session
    calls = [
        bob.messages(sid),
        bob.send(sid, "let me in"),
        bob.cancel(sid),
        bob.tool_result(sid, "any-request"),
        bob.expire(sid),
    ]
    for call in calls:
        r = await call
        assert r.status == 404, r.text
        assert "alice" not in r.text
    r = await bob.get(f"/v1/cli/sessions/{sid}/events?cursor=0&history_only=true")
    assert r.status == 404
    r = await bob.get(f"/v1/cli/sessions/{sid}/events")
    assert r.status == 404
    # Nothing bob did changed alice's session.
    history = (await alice.messages(sid)).body["messages"]
    assert [m["role"] for m in history] == ["user", "assistant"]
    listed = (await alice.list_sessions(limit=10, cwd="/home/alice/secret-project")).body["sessions"]
    assert listed[0]["session_id"] == sid and listed[0]["expired_at"] is None
    assert len(service.anthropic.message_requests) == 1


async def test_other_users_sessions_are_not_listed(service, alice, bob, alices_session):
    await alice.expire(alices_session)
    for query in ({}, {"limit": 20, "status": "expired"}, {"cwd": "/home/alice/secret-project"}):
        r = await bob.list_sessions(**query)
        assert r.status == 200
        assert r.body["sessions"] == []


async def test_other_users_session_looks_like_an_unknown_one(service, bob, alices_session):
    theirs = await bob.messages(alices_session)
    unknown = await bob.messages("11111111-1111-1111-1111-111111111111")
    assert theirs.status == unknown.status == 404
    assert theirs.body.keys() == unknown.body.keys()


async def test_other_user_cannot_touch_a_live_run(service, alice, bob):
    """While alice's run waits on a tool call, bob's tool result, message and cancel for her session are
    404s like for any unknown id (not a 409 that would reveal the session)."""
    service.anthropic.script(Reply.tool_use("execute_bash_local", {"command": "whoami"}), Reply.text("done"))
    sid = await alice.create_session()
    await alice.send(sid, "who am i")
    stream = await alice.open_events(sid)
    ev = await stream.until_type("execute-local")
    for call in (bob.tool_result(sid, ev.data["requestId"], stdout="mallory"), bob.send(sid, "let me in"),
                 bob.cancel(sid)):
        r = await call
        assert r.status == 404, r.text
    r = await alice.tool_result(sid, ev.data["requestId"], stdout="alice")
    assert r.status < 300
    await stream.until_type("finish")
    await stream.close()
    from tests.support.standins.anthropic import tool_result_text

    blocks = service.anthropic.message_requests[1].json["messages"][-1]["content"]
    assert "alice" in tool_result_text(blocks[0]) and "mallory" not in str(blocks)
