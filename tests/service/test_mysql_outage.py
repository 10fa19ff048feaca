"""MySQL down: routes that need it answer 503 at once (no hang), /health stays up, the service recovers
by itself when the database returns, and nothing it acknowledged is lost."""
from __future__ import annotations

import asyncio
import json

import pytest

from tests.service.cli import eventually, start_held_turn


@pytest.fixture
async def outage_service(make_service, private_mariadb):
    creds = private_mariadb.create_database()
    svc = await make_service(env_overrides=creds.env(), stale_run_after=2.0)
    svc.mariadb, svc.db = private_mariadb, creds
    return svc


async def wait_status(call, status):
    """Repeat `call()` until it answers `status`; that answer."""
    return await eventually(call, lambda r: r.status == status, what=f"HTTP {status}", interval=0.1)


@pytest.mark.parametrize("how", ["stop", "kill"])
async def test_outage_503_then_recovery(outage_service, how):
    svc = outage_service
    alice = svc.cli(svc.sentinels.alice_token)
    sid = await alice.create_session(cwd="/work/outage")
    before = await alice.turn(sid, "remember SENTINEL-DURABLE")
    assert before.terminal["type"] == "finish"

    svc.mariadb.stop() if how == "stop" else svc.mariadb.kill()
    checks = [
        lambda: alice.list_sessions(limit=10),
        lambda: alice.messages(sid),
        lambda: alice.post("/v1/cli/sessions", {"cwd": "/x", "approval_mode": "auto", "local_execution": True,
                                                "headless": True, "directory_context": {"cwd": "/x"}}),
        lambda: alice.send(sid, "are you there?"),
        lambda: alice.get("/v1/cli/credits"),
    ]
    for check in checks:
        r = await check()  # the client gives up after WAIT seconds: a hang fails here
        assert r.status == 503, r.text
        assert r.detail
        svc.sentinels.assert_absent(r.text, "a 503 answer")
    health = await svc.cli(None).get("/health")
    assert health.status == 200  # liveness never fails because MySQL is down

    svc.mariadb.start()
    r = await wait_status(lambda: alice.messages(sid), 200)
    msgs = r.body["messages"]
    assert "SENTINEL-DURABLE" in msgs[0]["content"] and msgs[1]["content"] == before.text
    assert len(msgs) == 2  # the refused message was not half-stored
    turn = await alice.turn(sid, "and now?")
    assert turn.terminal["type"] == "finish"


async def test_503_on_send_means_not_stored(outage_service):
    svc = outage_service
    alice = svc.cli(svc.sentinels.alice_token)
    sid = await alice.create_session()
    svc.mariadb.stop()
    r = await alice.send(sid, "lost?")
    assert r.status == 503
    assert svc.anthropic.message_requests == []  # no run started on an unacknowledged message
    svc.mariadb.start()
    r = await wait_status(lambda: alice.messages(sid), 200)
    assert r.body["messages"] == []


async def test_service_starts_while_database_is_down(make_service, private_mariadb, sentinels):
    creds = private_mariadb.create_database()
    from tests.service.harness import migrate_now

    await migrate_now({**creds.env()})
    private_mariadb.stop()
    svc = await make_service(env_overrides=creds.env(), migrate=False)
    alice = svc.cli(sentinels.alice_token)
    assert (await svc.cli(None).get("/health")).status == 200
    assert (await alice.list_sessions()).status == 503
    private_mariadb.start()
    await wait_status(lambda: alice.list_sessions(), 200)


async def test_database_lost_during_a_run(outage_service):
    svc = outage_service
    alice = svc.cli(svc.sentinels.alice_token)
    held = await start_held_turn(alice, svc.anthropic, "words before the outage and after")
    sid, stream = held.sid, held.stream
    svc.mariadb.kill()
    svc.anthropic.release()
    end = await stream.until(lambda e: e.type in ("finish", "error"))  # the stream ends; it does not hang
    await stream.close()
    assert end.type in ("finish", "error")
    svc.mariadb.start()
    r = await wait_status(lambda: alice.messages(sid), 200)
    assert r.body["messages"][0]["content"] == "go"  # acknowledged before the outage: kept
    # The run's final update was lost with the database: once the service notices, the run is marked
    # interrupted and its event log ends with an error part, so a later replay does not wait forever.
    run_id = held.sent.body["run_id"]

    def ended() -> tuple | None:
        with svc.db.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT r.status, (SELECT e.data FROM events e WHERE e.run_id=r.id ORDER BY e.seq DESC LIMIT 1)"
                        " FROM runs r WHERE r.id=%s", (run_id,))
            return cur.fetchone()
    status, last = await eventually(lambda: asyncio.to_thread(ended), lambda row: row and row[0] != "running",
                                    what="the lost run to be ended", interval=0.2)
    assert status == "interrupted" and json.loads(last)["type"] == "error", (status, last)
    turn = await alice.turn(sid, "back again")
    assert turn.terminal["type"] == "finish"


async def test_readiness_reflects_the_database(outage_service):
    svc = outage_service
    anon = svc.cli(None)
    alice = svc.cli(svc.sentinels.alice_token)
    await alice.list_sessions()  # touch the database once
    assert (await wait_status(lambda: anon.get("/health?ready=1"), 200)).status == 200
    svc.mariadb.stop()
    await alice.list_sessions()  # the first failed query is noticed at once
    r = await wait_status(lambda: anon.get("/health?ready=1"), 503)
    assert "database" in r.text
    assert (await anon.get("/health")).status == 200  # liveness stays up
    svc.mariadb.start()
    await wait_status(lambda: anon.get("/health?ready=1"), 200)
