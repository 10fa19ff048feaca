"""MySQL down or not migrated: routes that need it answer 503 at once (no hang) with a detail that says
why, the log says it once (host:port, user and the reason; never a password), readiness names the reason,
/health stays up, the service recovers by itself when the database returns, and nothing it acknowledged
is lost."""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import uuid

import aiohttp
import pytest

from tests.support.cli import Cli, eventually, start_held_turn
from tests.support.service import run_migrations
from tests.support.standins import free_port


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
    from tests.support.service import migrate_now

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


async def test_a_blip_as_the_answer_ends_loses_nothing(make_service, private_mariadb):
    """MySQL restarts while the answer is being stored: the run's writes wait for it (within
    db_write_retry) instead of failing, so the answer ends normally and is in the history."""
    creds = private_mariadb.create_database()
    svc = await make_service(env_overrides=creds.env(), db_write_retry=30.0)
    alice = svc.cli(svc.sentinels.alice_token)
    held = await start_held_turn(alice, svc.anthropic, "an answer that survives the blip")
    private_mariadb.stop()
    svc.anthropic.release()
    await asyncio.sleep(0.5)  # the run reaches its writes while the server is down
    private_mariadb.start()
    end = await held.stream.until(lambda e: e.type in ("finish", "error"))
    await held.stream.close()
    assert end.type == "finish", end.data
    history = (await alice.messages(held.sid)).body["messages"]
    assert [m["role"] for m in history] == ["user", "assistant"]
    assert history[-1]["content"] == "an answer that survives the blip" and history[-1]["status"] == "complete"


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


async def test_unmigrated_database_answers_503_naming_init_sh_until_migrated(service_process, sentinels, tmp_path):
    proc = service_process(migrate=False)  # the real process, for its real log
    async with aiohttp.ClientSession() as http:
        alice, anon = Cli(http, proc.url, sentinels.alice_token), Cli(http, proc.url, None)
        for _ in range(20):  # load: each answer is a clear 503, none a 500 with a traceback in the log
            for r in (await alice.list_sessions(), await alice.get("/v1/cli/credits"),
                      await alice.post("/v1/cli/sessions", {"cwd": "/x", "directory_context": {"cwd": "/x"}}),
                      await alice.send(str(uuid.uuid4()), "are you there?")):
                assert r.status == 503, r.text
                assert "schema is missing" in r.detail and "./init.sh" in r.detail, r.detail
                assert r.headers.get("Retry-After")
        ready = await eventually(lambda: anon.get("/health?ready=1"), lambda r: "init.sh" in r.text,
                                 what="readiness to name the missing schema")
        assert ready.status == 503 and "schema missing" in ready.body["detail"], ready.body

        log = proc.log()
        trouble = [json.loads(line) for line in log.splitlines() if '"level": "ERROR"' in line
                   or '"level": "CRITICAL"' in line]
        assert len(trouble) == 1 and "./init.sh" in trouble[0]["msg"], trouble  # said once, not per request
        assert "Traceback" not in log

        r = run_migrations(proc.env, tmp_path)
        assert r.returncode == 0, r.stderr
        await eventually(lambda: alice.list_sessions(), lambda r: r.status == 200, what="service after ./init.sh")
        await eventually(lambda: anon.get("/health?ready=1"), lambda r: r.status == 200, what="ready after ./init.sh")
        sid = await alice.create_session()
        assert (await alice.turn(sid, "hello after the migrations")).terminal["type"] == "finish"
    sentinels.assert_absent(proc.log(), "the service log")


async def test_readiness_stays_down_while_the_schema_is_behind_despite_traffic(outage_service):
    """Queries that work do not prove the migrations ran: only the readiness check clears that."""
    svc = outage_service
    anon, alice = svc.cli(None), svc.cli(svc.sentinels.alice_token)
    await wait_status(lambda: anon.get("/health?ready=1"), 200)
    with svc.db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version")
        applied = cur.fetchall()
        cur.execute("DELETE FROM schema_migrations WHERE version=%s", (applied[-1][0],))  # as if init.sh stopped
    r = await wait_status(lambda: anon.get("/health?ready=1"), 503)
    assert "schema missing" in r.body["detail"]
    for _ in range(15):  # other tables answer meanwhile; readiness must not flap back to 200
        await alice.list_sessions()
        assert (await anon.get("/health?ready=1")).status == 503
        await asyncio.sleep(0.1)
    with svc.db.connect() as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (%s,%s,%s,%s)",
                    applied[-1])
    await wait_status(lambda: anon.get("/health?ready=1"), 200)


async def test_a_lost_final_update_of_a_finished_run_adds_no_error(outage_service):
    """The run's final UPDATE is lost (held on a row lock, then killed), but its finish part reached the
    event log: the sweep then marks it completed and appends nothing (no spurious error after a good answer)."""
    svc = outage_service
    alice = svc.cli(svc.sentinels.alice_token)
    held = await start_held_turn(alice, svc.anthropic, "a good answer")
    run_id = held.sent.body["run_id"]
    lock = svc.db.connect(autocommit=False)
    try:
        with lock.cursor() as cur:
            cur.execute("SELECT id FROM runs WHERE id=%s FOR UPDATE", (run_id,))
        svc.anthropic.release()

        def final_update() -> int | None:
            with svc.db.connect() as conn, conn.cursor() as cur:
                cur.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE %s",
                            (f"UPDATE runs SET status='completed'%{run_id}%",))
                row = cur.fetchone()
                return row[0] if row else None
        thread = await eventually(lambda: asyncio.to_thread(final_update), what="the final UPDATE to wait", interval=0.1)
        with svc.db.connect() as conn, conn.cursor() as cur:
            cur.execute(f"KILL QUERY {int(thread)}")
        end = await held.stream.until(lambda e: e.type in ("finish", "error"))
        assert end.type == "finish"
    finally:
        lock.commit()
        lock.close()
    await held.stream.close()

    def state() -> tuple:
        with svc.db.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT status FROM runs WHERE id=%s", (run_id,))
            status = cur.fetchone()[0]
            cur.execute("SELECT type FROM events WHERE run_id=%s ORDER BY seq", (run_id,))
            return status, [t for (t,) in cur.fetchall()]
    status, types = await eventually(lambda: asyncio.to_thread(state), lambda st: st[0] != "running",
                                     what="the run to be marked", interval=0.2)
    assert status == "completed" and types[-1] == "finish" and "error" not in types, (status, types)


@contextlib.contextmanager
def _unresponsive_server():
    """A TCP port that accepts connections (the kernel's backlog) and never says a word: a hung MySQL."""
    with socket.create_server(("127.0.0.1", 0), backlog=64) as sock:
        yield sock.getsockname()[1]


# trouble -> (env overrides, given a port that never answers; what the log line says after "as 'user': ";
#             what readiness says)
TROUBLE = {
    "refused": (lambda hung: {"AGENT_BACKEND_DB_PORT": str(free_port())},
                "([Errno 111] Connection refused)", "cannot connect (Connection refused)"),
    "unknown host": (lambda hung: {"AGENT_BACKEND_DB_HOST": "no-such-host.invalid"}, "[Errno -", "cannot connect ("),
    "no answer": (lambda hung: {"AGENT_BACKEND_DB_HOST": "127.0.0.1", "AGENT_BACKEND_DB_PORT": str(hung)},
                  "no answer within 2 s", "cannot connect (no answer within 2 s)"),
    "wrong password": (lambda hung: {"AGENT_BACKEND_DB_PASSWORD": "wrong-SENTINEL-password"},
                       "(1045) Access denied for user", "access denied"),
}


@pytest.mark.parametrize("trouble", list(TROUBLE))
async def test_unavailable_database_is_logged_once_with_host_port_user_and_reason(make_service, env, sentinels,
                                                                                   caplog, trouble):
    overrides, logged, readiness = TROUBLE[trouble]
    caplog.set_level(logging.INFO, logger="agent_backend")
    with _unresponsive_server() as hung:
        e = {**env, **overrides(hung)}
        svc = await make_service(env_overrides=e, migrate=False)
        alice, anon = svc.cli(sentinels.alice_token), svc.cli(None)
        for _ in range(3):
            r = await alice.list_sessions()
            assert r.status == 503 and "database is unavailable" in r.detail, r.text
        ready = await eventually(lambda: anon.get("/health?ready=1"), lambda r: readiness in r.text,
                                 what=f"readiness to say {readiness!r}")
        assert ready.status == 503
        assert e["AGENT_BACKEND_DB_HOST"] not in ready.text  # an open route: the reason, not where MySQL is

    lines = [rec.getMessage() for rec in caplog.records if rec.getMessage().startswith("database unavailable")]
    assert len(lines) == 1, lines
    where = f"cannot connect to MySQL at {e['AGENT_BACKEND_DB_HOST']}:{e['AGENT_BACKEND_DB_PORT']} as " \
            f"{e['AGENT_BACKEND_DB_USER']!r}: "
    assert lines[0].startswith(f"database unavailable: {where}"), lines[0]
    assert logged in lines[0].removeprefix(f"database unavailable: {where}"), lines[0]
    sentinels.assert_absent(lines[0] + ready.text, "the database failure", also={"wrong": "wrong-SENTINEL"})


async def test_a_replay_mysql_cannot_serve_is_a_503_before_the_stream_starts(outage_service, make_service):
    svc = outage_service
    alice = svc.cli(svc.sentinels.alice_token)
    sid = await alice.create_session()
    await alice.turn(sid, "something to replay")
    # Another replica (or this one after a restart): nothing of the session's runs in its memory.
    other = await make_service(env_overrides=svc.db.env(), migrate=False)
    replica = other.cli(svc.sentinels.alice_token)
    svc.mariadb.stop()
    for cli, kw in ((alice, {"cursor": 0, "history_only": True}), (replica, {"cursor": 1}), (replica, {})):
        stream = await cli.open_events(sid, expect=503, **kw)  # never a 200 with an empty or gappy body
        assert stream.resp.headers.get("Retry-After"), kw
        await stream.close()
    r = await alice.get(f"/v1/cli/sessions/{sid}/events?cursor=0&history_only=true")
    assert r.status == 503 and "database" in r.detail.lower()
    svc.mariadb.start()
    r = await wait_status(lambda: alice.get(f"/v1/cli/sessions/{sid}/events?cursor=0&history_only=true"), 200)
    assert r.text.count('"type":"finish"') == 1 and r.text.endswith("event: done\ndata: {}\n\n")


async def test_a_live_stream_with_an_old_cursor_needs_no_mysql_for_the_run_in_memory(outage_service):
    """`cursor=1` while the session's second run streams and MySQL is down: the stream starts at that run's
    first event (a live stream never carries earlier runs' events) and skips none of its ids."""
    svc = outage_service
    alice = svc.cli(svc.sentinels.alice_token)
    sid = await alice.create_session()
    first = await alice.turn(sid, "first")
    held = await start_held_turn(alice, svc.anthropic, "the second answer goes on", message="second", sid=sid)
    ids = [e.id for e in held.stream.events if e.id is not None]
    svc.mariadb.stop()
    again = await alice.open_events(sid, cursor=1)
    await again.until_type("text-delta")
    assert again.parts()[1]["type"] == "start"  # after the id-less history_end
    assert [e.id for e in again.events if e.id is not None] == ids
    assert min(ids) > max(e.id for e in first.events if e.id is not None)
    await again.close()
    svc.mariadb.start()
    svc.anthropic.release()
    await held.stream.until(lambda e: e.type in ("finish", "error"))
    await held.stream.close()


PAGE_EVENTS = 500  # agent_backend.events.PAGE: events per replay query
BIG_DELTA = "x" * 40_000  # 500 of them (20 MB) cannot sit in socket buffers: the service is still writing them


@pytest.mark.parametrize("how", ["history_only", "live_from_another_replica"])
async def test_an_outage_mid_replay_ends_the_stream_with_an_error_part(outage_service, make_service, how):
    from agent_backend import events

    assert events.PAGE == PAGE_EVENTS
    svc = outage_service
    alice = svc.cli(svc.sentinels.alice_token)
    sid = await alice.create_session()
    run_id = str(uuid.uuid4())
    data = json.dumps({"type": "text-delta", "delta": BIG_DELTA})

    def store_two_pages() -> None:  # the events of a long run, as the event writer stores them
        with svc.db.connect() as conn, conn.cursor() as cur:
            for start in range(1, 2 * PAGE_EVENTS + 1, 100):
                cur.executemany("INSERT INTO events (session_id, seq, run_id, type, data) VALUES (%s,%s,%s,%s,%s)",
                                [(sid, seq, run_id, "text-delta", data) for seq in range(start, start + 100)])
    await asyncio.to_thread(store_two_pages)
    if how == "history_only":
        stream = await alice.open_events(sid, cursor=0, history_only=True)
    else:
        other = await make_service(env_overrides=svc.db.env(), migrate=False)
        stream = await other.cli(svc.sentinels.alice_token).open_events(sid, cursor=1)
    # The first page was read before the answer started; the service is writing it while this test reads
    # nothing. Now the database goes away, before the second page can be read.
    svc.mariadb.kill()
    await stream.read_to_end()
    await stream.close()
    ids = [e.id for e in stream.events if e.id is not None]
    assert ids == list(range(1, PAGE_EVENTS + 1))  # contiguous: nothing skipped
    last = stream.parts()[-1]
    assert last["type"] == "error" and "database" in last["error"]
    assert not [e for e in stream.events if e.event == "done"]  # never presented as the whole history
    svc.mariadb.start()
