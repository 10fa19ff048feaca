"""A pool with no connection free is busy, not an outage: 503 with Retry-After and a detail that says when to
retry, its own log line, readiness unchanged, and service again as soon as connections come free. Callers
queued behind new connections being opened wait their turn instead of being answered "database
unavailable" (the defect seen at 500 streams, issue 13). A run whose events cannot be stored because the
pool stays busy, or whose own writes do, ends saying so."""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging

from agent_backend import errors, events
from agent_backend.config import load_db_config
from agent_backend.context import CTX

from tests.support.cli import eventually, start_held_turn

POOL_MAX = 3  # db.py: two slots for requests and one reserved for the event-log writer
BUSY_TIMEOUT = 0.5
MONITOR_PERIOD = 5.0  # app.py: the readiness check's interval while MySQL is healthy


def outage_lines(caplog) -> list[str]:
    return [m for m in (rec.getMessage() for rec in caplog.records)
            if m.startswith("database unavailable") or m.startswith("run failed")]


@contextlib.asynccontextmanager
async def every_connection_held(database, priorities: tuple[bool, ...] = (False, False, True)):
    """Connections of the service's own pool taken through Database.connection(), each having answered a
    query, until the block ends: by default every one (both request slots and the writer's reserved one);
    one per entry of `priorities` (True: a writer's slot)."""
    held, release = [], asyncio.Event()

    async def hold(priority: bool) -> None:
        async with database.connection(priority=priority) as conn:
            await database.run(conn, "SELECT 1")
            held.append(conn)
            await release.wait()

    tasks = [asyncio.create_task(hold(priority)) for priority in priorities]
    try:
        await eventually(lambda: len(held) == len(tasks) or any(t.done() for t in tasks), what="the pool held")
        assert len(held) == len(tasks), [t.exception() for t in tasks if t.done()]
        yield
    finally:
        release.set()
        await asyncio.gather(*tasks)


async def test_a_held_pool_answers_busy_and_recovers(make_service, env, caplog):
    caplog.set_level(logging.INFO, logger="agent_backend")
    svc = await make_service(db=dataclasses.replace(load_db_config(env), pool_max=POOL_MAX,
                                                    busy_timeout=BUSY_TIMEOUT))
    alice, anon = svc.cli(svc.sentinels.alice_token), svc.cli(None)
    sid = await alice.create_session()
    await eventually(lambda: anon.get("/health?ready=1"), lambda r: r.status == 200, what="ready")

    async with every_connection_held(svc.app[CTX].db):
        for answer in (await alice.list_sessions(), await alice.messages(sid), await alice.send(sid, "hello?")):
            assert answer.status == 503, answer.text
            assert answer.detail == errors.BUSY_MESSAGE == "The service is busy; retry in 5 s."
            assert answer.headers.get("Retry-After") == "5"
        # Readiness keeps its last result while the pool is exhausted: its own check finds no free
        # connection either (at least once within a monitor period), which says nothing about MySQL.
        loop = asyncio.get_running_loop()
        until = loop.time() + MONITOR_PERIOD + 2 * BUSY_TIMEOUT  # a hang bound, not a timing check
        while loop.time() < until:
            ready = await anon.get("/health?ready=1")
            assert ready.status == 200 and ready.body["database"] == "ok", ready.body
            await asyncio.sleep(0.2)

    busy = [rec for rec in caplog.records if rec.getMessage() == "database pool busy"]
    assert busy and busy[0].levelno == logging.WARNING
    assert {k: busy[0].fields[k] for k in ("pool_max", "open", "in_use")} == {"pool_max": 3, "open": 3, "in_use": 3}
    assert busy[0].fields["waited_s"] >= BUSY_TIMEOUT
    assert outage_lines(caplog) == []
    svc.sentinels.assert_absent(caplog.text, "the service log")

    await eventually(lambda: alice.list_sessions(), lambda r: r.status == 200, what="service after the pool is free")
    assert svc.anthropic.message_requests == []  # the refused message started no run
    assert (await alice.messages(sid)).body["messages"] == []  # nor was it stored
    assert (await alice.turn(sid, "and now?")).terminal["type"] == "finish"


async def test_callers_queued_behind_new_connections_are_served_not_told_the_database_is_down(
        make_service, private_mariadb, caplog):
    """aiomysql opens connections one at a time while the other callers wait. With slow connection set-ups
    (as on an overloaded event loop; here MySQL's init_connect) and callers that keep their connections, the
    later ones wait past acquire_timeout (2 s) for their turn: that is queueing, within busy_timeout, not a
    database that does not answer."""
    caplog.set_level(logging.INFO, logger="agent_backend")
    creds = private_mariadb.create_database()
    svc = await make_service(env_overrides=creds.env())
    alice, database = svc.cli(svc.sentinels.alice_token), svc.app[CTX].db
    assert (await alice.list_sessions()).status == 200
    with contextlib.closing(private_mariadb.root()) as root, root.cursor() as cur:
        cur.execute("SET GLOBAL init_connect='DO SLEEP(0.8)'")  # every new connection of the service's user

    async def keep_one() -> None:  # a caller that keeps its connection: the next caller needs a new one
        async with database.connection() as conn:
            await database.run(conn, "SELECT SLEEP(3)")

    # A few connections were open already; the rest, at least six, are opened one after the other.
    holders = [asyncio.create_task(keep_one()) for _ in range(8)]
    answer = await alice.list_sessions()
    failures = [r for r in await asyncio.gather(*holders, return_exceptions=True) if r is not None]
    assert answer.status == 200 and failures == [], (answer.text, failures)
    assert outage_lines(caplog) == []


async def test_a_run_whose_events_find_the_pool_busy_ends_saying_busy_not_lost(make_service, env, caplog):
    """The event writer's reserved connection held too (past busy_timeout, then db_write_retry): the live
    stream ends with an error part that says the service is busy, the log calls it busy, not an outage, and
    the next turn works once connections are free."""
    caplog.set_level(logging.INFO, logger="agent_backend")
    svc = await make_service(db=dataclasses.replace(load_db_config(env), pool_max=POOL_MAX,
                                                    busy_timeout=BUSY_TIMEOUT), db_write_retry=1.0)
    alice = svc.cli(svc.sentinels.alice_token)
    held = await start_held_turn(alice, svc.anthropic, "one two three four five six", message="count")
    async with every_connection_held(svc.app[CTX].db):
        svc.anthropic.release()  # the rest of the answer arrives while no connection is free
        last = await held.stream.until_type("error")
    assert last.id is None and last.data["error"] == events.DATABASE_BUSY_PART["error"]
    assert last.data["error"] == "The service is busy; the answer could not be stored. Please retry in 5 s."
    assert "finish" not in held.stream.types()
    await held.stream.close()
    failed = [rec for rec in caplog.records if rec.getMessage() == "event log write failed; failing the run"]
    assert failed and failed[0].fields["error"] == "DatabaseBusy" and failed[0].levelno == logging.WARNING
    assert not [m for m in outage_lines(caplog) if "unavailable" in m]
    assert (await alice.turn(held.sid, "again?")).terminal["type"] == "finish"


async def test_a_run_that_finds_the_pool_busy_for_its_own_writes_ends_with_the_busy_part(make_service, env,
                                                                                        caplog):
    """The request connections held, the event writer's reserved one free: the run's own writes (usage, its
    message) wait past busy_timeout, then db_write_retry; its stream ends with the busy error part, stored
    (it has an id: the writer could store it) and replayed as such, and the log calls it busy."""
    caplog.set_level(logging.INFO, logger="agent_backend")
    svc = await make_service(db=dataclasses.replace(load_db_config(env), pool_max=POOL_MAX,
                                                    busy_timeout=BUSY_TIMEOUT), db_write_retry=1.0)
    alice = svc.cli(svc.sentinels.alice_token)
    held = await start_held_turn(alice, svc.anthropic, "one two three", message="count")
    async with every_connection_held(svc.app[CTX].db, priorities=(False, False)):  # the writer's slot free
        svc.anthropic.release()
        last = await held.stream.until_type("error", "finish")
    assert last.type == "error" and last.data["error"] == errors.BUSY_MESSAGE and last.id is not None
    await held.stream.close()
    assert [m for m in (r.getMessage() for r in caplog.records) if m == "run failed: database pool busy"]
    assert not [m for m in outage_lines(caplog) if "unavailable" in m]
    # Once connections are free the run's end is recorded, and the log's end is that busy part, once.
    turn = await alice.turn(held.sid, "again?")
    assert turn.terminal["type"] == "finish"
    hist = await alice.open_events(held.sid, cursor=0, history_only=True)
    await hist.read_to_end()
    await hist.close()
    errors_seen = [p for p in hist.parts() if p.get("type") == "error"]
    assert errors_seen == [last.data], errors_seen
