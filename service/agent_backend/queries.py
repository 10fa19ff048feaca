"""Every SQL statement the service runs (the migration runner's bookkeeping aside: migrate.py), and the
rows they return, as named tuples. Each query takes the Database (or a Tx) first; times are naive UTC
(db.utcnow). The pool, transactions and the outage logic are db.py's.
"""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Callable, Iterable, NamedTuple

from .codec import dumps
from .db import Database, Tx, utc_ago, utcnow
from .errors import RunConflict, SessionNotFound
from .usage import Usage

# A live run (of runs aliased `r`): running, and its owner heart-beat after the cutoff bound to %s.
LIVE_RUN = "r.status='running' AND r.heartbeat_at > %s"


def _marks(n: int) -> str:
    return ",".join(["%s"] * n)


# --- sessions ----------------------------------------------------------------------------------

class Session(NamedTuple):
    id: str
    user_id: str
    organization_id: str | None
    cwd: str
    title: str | None
    created_at: datetime
    last_used: datetime
    expired_at: datetime | None


SESSION_COLS = ", ".join(Session._fields)


async def create_session(db: Database, *, session_id: str, user_id: str, organization_id: str | None,
                         cwd: str, approval_mode: str | None, local_execution: bool, headless: bool,
                         directory_context: Any, instruction_context: Any) -> None:
    now = utcnow()
    await db.execute(
        "INSERT INTO sessions (id, user_id, organization_id, cwd, approval_mode, local_execution, headless,"
        " directory_context, instruction_context, created_at, last_used)"
        " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
        (session_id, user_id, organization_id, cwd, approval_mode, int(local_execution), int(headless),
         None if directory_context is None else dumps(directory_context),
         instruction_context, now, now))


async def get_session(db: Database, session_id: str, user_id: str) -> Session | None:
    row = await db.fetchone(f"SELECT {SESSION_COLS} FROM sessions WHERE id=%s AND user_id=%s",
                            (session_id, user_id))
    return Session(*row) if row else None


async def list_sessions(db: Database, user_id: str, *, limit: int, cwd: str | None,
                        status: str | None, stale_after_s: float) -> list[Session]:
    """A user's sessions, newest first. `status`: "expired" = resumable, without a live run (whether or not
    the CLI's expire ever arrived: a closed terminal sends none, a restart loses one); "active" = with one.
    A live run is LIVE_RUN with the cutoff `stale_after_s` ago, as in `active_run`."""
    sql = f"SELECT {SESSION_COLS} FROM sessions WHERE user_id=%s"
    args: list[Any] = [user_id]
    if cwd is not None:
        sql += " AND cwd=%s"
        args.append(cwd)
    if status in ("expired", "active"):
        sql += (f" AND {'NOT ' if status == 'expired' else ''}EXISTS (SELECT 1 FROM runs r WHERE"
                f" r.session_id=sessions.id AND {LIVE_RUN})")
        args.append(utc_ago(stale_after_s))
    sql += " ORDER BY last_used DESC, created_at DESC LIMIT %s"
    args.append(limit)
    return [Session(*r) for r in await db.fetchall(sql, args)]


async def expire_session(db: Database, session_id: str, user_id: str) -> None:
    await db.execute("UPDATE sessions SET expired_at=COALESCE(expired_at, %s) WHERE id=%s AND user_id=%s",
                     (utcnow(), session_id, user_id))


# --- messages ----------------------------------------------------------------------------------

class Message(NamedTuple):
    id: int
    run_id: str | None
    role: str
    content: list
    status: str
    created_at: datetime


async def add_message(db: Database | Tx, *, session_id: str, run_id: str | None, role: str,
                      content: list[dict], status: str) -> None:
    await db.execute(
        "INSERT INTO messages (session_id, run_id, role, content, status, created_at) VALUES (%s,%s,%s,%s,%s,%s)",
        (session_id, run_id, role, dumps(content), status, utcnow()))


async def list_messages(db: Database, session_id: str) -> list[Message]:
    rows = await db.fetchall(
        "SELECT id, run_id, role, content, status, created_at FROM messages WHERE session_id=%s ORDER BY id",
        (session_id,))
    return [Message(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5]) for r in rows]


# --- runs --------------------------------------------------------------------------------------

class TurnStart(NamedTuple):
    """What a run needs from its session, read while its start was stored."""
    local_execution: bool
    cwd: str
    directory_context: dict | None
    instruction_context: str | None
    first_seq: int      # the number of the run's first event, stored with its start (`first_event`)
    first_turn: bool    # no earlier message: the one just stored is the whole conversation


# What start_turn decides on, read under the session row's lock by one SELECT into user variables: session
# found, its live run ("id owner"), its last event number, whether it has earlier messages. Reset first:
# user variables live as long as the pooled connection, and a SELECT that finds no row leaves them as
# they were.
_TURN_VARS = ("@t_found", "@t_live", "@t_last", "@t_earlier")


async def start_turn(db: Database, *, session_id: str, user_id: str, run_id: str, owner: str, content: str,
                     client_run_id: str | None, mode: str | None, stale_after_s: float, running_here: bool,
                     first_event: tuple[str, str], seq_floor: int = 0) -> TurnStart:
    """A run's start in one transaction and one round trip (multi-statement): lock the session row
    (serialises runs of a session across replicas) while reading its live run, the last event number and
    whether it has earlier messages; then, unless that is a conflict, insert the run, the user's message and
    the run's first event (`first_event`: its type and JSON; numbered after the session's last stored event
    and at least `seq_floor`), touch the session, read its context and commit. A live run of this `owner`
    while none is `running_here` is one whose final update was lost: it is marked interrupted in the same
    transaction. Raises SessionNotFound (no such session of this user) or RunConflict (a live run); then
    nothing is written. The decision is the SQL's (@t_go), so no second round trip is needed."""
    now = utcnow()
    title = content.strip().splitlines()[0][:200] if content.strip() else None
    kind, data = first_event
    sql = (
        "START TRANSACTION;"
        " SET " + ", ".join(f"{v}=NULL" for v in _TURN_VARS) + ", @t_go=0;"
        " SELECT 1,"
        f" (SELECT CONCAT(r.id, ' ', r.owner) FROM runs r WHERE r.session_id=s.id AND {LIVE_RUN}"
        "   ORDER BY r.started_at DESC LIMIT 1),"
        " (SELECT COALESCE(MAX(e.seq), 0) FROM events e WHERE e.session_id=s.id),"
        " EXISTS(SELECT 1 FROM messages m WHERE m.session_id=s.id)"
        f" INTO {', '.join(_TURN_VARS)}"
        " FROM sessions s WHERE s.id=%s AND s.user_id=%s FOR UPDATE;"
        # it may start: no live run, or one of ours that no task of ours runs (`running_here` is the caller's)
        " SET @t_go = (@t_found = 1 AND %s AND (@t_live IS NULL OR SUBSTRING_INDEX(@t_live, ' ', -1) = %s));"
        " UPDATE runs SET status='interrupted', finished_at=%s"
        "  WHERE @t_go AND id=SUBSTRING_INDEX(@t_live, ' ', 1) AND status='running';"
        " INSERT INTO runs (id, session_id, user_id, client_run_id, status, mode, owner, heartbeat_at, started_at)"
        "  SELECT %s,%s,%s,%s,'running',%s,%s,%s,%s FROM DUAL WHERE @t_go;"
        " INSERT INTO messages (session_id, run_id, role, content, status, created_at)"
        "  SELECT %s,%s,'user',%s,'complete',%s FROM DUAL WHERE @t_go;"
        " INSERT INTO events (session_id, seq, run_id, type, data)"
        "  SELECT %s, GREATEST(@t_last + 1, %s), %s, %s, %s FROM DUAL WHERE @t_go;"
        " UPDATE sessions SET last_used=%s, expired_at=NULL, title=COALESCE(title, %s) WHERE @t_go AND id=%s;"
        " SELECT @t_go, GREATEST(@t_last + 1, %s), @t_earlier, s.local_execution, s.cwd, s.directory_context,"
        "  s.instruction_context FROM sessions s WHERE s.id=%s AND s.user_id=%s;"
        " COMMIT")
    args = [utc_ago(stale_after_s), session_id, user_id,
            not running_here, owner,
            now,
            run_id, session_id, user_id, client_run_id, mode, owner, now, now,
            session_id, run_id, dumps([{"type": "text", "text": content}]), now,
            session_id, seq_floor, run_id, kind, data,
            now, title, session_id,
            seq_floor, session_id, user_id]
    async with db.connection() as conn:
        *_, rows, _commit = await db.script(conn, sql, args)
    if not rows:
        raise SessionNotFound()
    go, first_seq, earlier, local_execution, cwd, directory_context, instruction_context = rows[0]
    if not int(go):
        raise RunConflict()
    return TurnStart(local_execution=bool(local_execution), cwd=cwd or "",
                     directory_context=json.loads(directory_context) if directory_context else None,
                     instruction_context=instruction_context, first_seq=int(first_seq), first_turn=not int(earlier))


class ActiveRun(NamedTuple):
    id: str
    owner: str


async def active_run(db: Database | Tx, session_id: str, stale_after_s: float) -> ActiveRun | None:
    """The running run of a session whose owner is still alive (heartbeat fresh), if any."""
    row = await db.fetchone(
        f"SELECT r.id, r.owner FROM runs r WHERE r.session_id=%s AND {LIVE_RUN}"
        " ORDER BY r.started_at DESC LIMIT 1",
        (session_id, utc_ago(stale_after_s)))
    return ActiveRun(*row) if row else None


async def finish_run(db: Database, run_id: str, *, status: str, finish_reason: str | None,
                     error: str | None, usage: Usage) -> None:
    await db.execute(
        "UPDATE runs SET status=%s, finish_reason=%s, error=%s, finished_at=%s, input_tokens=%s,"
        " output_tokens=%s, cache_read_tokens=%s, cache_creation_tokens=%s WHERE id=%s",
        (status, finish_reason, error, utcnow(), usage.input_tokens, usage.output_tokens,
         usage.cache_read_tokens, usage.cache_creation_tokens, run_id))


class LatestRun(NamedTuple):
    id: str
    status: str
    first_seq: int | None  # its first event's number; None before it stored any


async def latest_run(db: Database, session_id: str) -> LatestRun | None:
    """The session's most recent run."""
    row = await db.fetchone(
        "SELECT r.id, r.status, (SELECT MIN(e.seq) FROM events e WHERE e.session_id=r.session_id AND e.run_id=r.id)"
        " FROM runs r WHERE r.session_id=%s ORDER BY r.started_at DESC LIMIT 1", (session_id,))
    return LatestRun(*row) if row else None


# --- liveness: heartbeats, dead runs, requests for a run on another replica ----------------------

async def heartbeat_runs(db: Database, run_ids: Iterable[str]) -> None:
    ids = list(run_ids)
    if ids:
        await db.execute(f"UPDATE runs SET heartbeat_at=%s WHERE id IN ({_marks(len(ids))})", [utcnow(), *ids])


class DeadRun(NamedTuple):
    id: str
    session_id: str
    started_at: datetime


async def orphaned_runs(db: Database, owner: str, *, started_before: datetime, live: list[str]) -> list[DeadRun]:
    """Runs `owner` (this process) marked running that it no longer runs (not in `live`)."""
    sql = "SELECT id, session_id, started_at FROM runs WHERE status='running' AND owner=%s AND started_at < %s"
    args: list = [owner, started_before]
    if live:
        sql += f" AND id NOT IN ({_marks(len(live))})"
        args += live
    return [DeadRun(*r) for r in await db.fetchall(sql, args)]


async def stale_runs(db: Database, *, heartbeat_before: datetime) -> list[DeadRun]:
    """Runs marked running whose owner stopped heart-beating."""
    return [DeadRun(*r) for r in await db.fetchall(
        "SELECT id, session_id, started_at FROM runs WHERE status='running' AND heartbeat_at < %s",
        (heartbeat_before,))]


async def end_dead_run(db: Database, run: DeadRun, *, error_part: dict, reason: str) -> str | None:
    """Mark a run nobody executes any more as ended, in one transaction. When its terminal part reached the
    event log (only its final update was lost) it is marked as that part says; else it is marked interrupted
    (`reason`) and, unless a newer run of the session exists, `error_part` ends its event log so clients stop
    waiting. Returns the status it set: None when the run was no longer running (another replica's sweep,
or its own late update, won)."""
    async with db.transaction() as tx:
        # The session row lock orders this with start_turn on every replica: a newer run of the session
        # owns the next event numbers, and then nothing is appended for the dead one.
        newer, last = await tx.fetchone(
            "SELECT (SELECT COUNT(*) FROM runs r WHERE r.session_id=s.id AND r.started_at > %s),"
            " (SELECT COALESCE(MAX(e.seq), 0) FROM events e WHERE e.session_id=s.id)"
            " FROM sessions s WHERE s.id=%s FOR UPDATE", (run.started_at, run.session_id)) or (1, 0)
        state = await tx.fetchone(
            "SELECT r.status, (SELECT e.data FROM events e WHERE e.session_id=r.session_id AND e.run_id=r.id"
            " AND e.type IN ('finish','error') ORDER BY e.seq DESC LIMIT 1) FROM runs r WHERE r.id=%s FOR UPDATE",
            (run.id,))
        if state is None or state[0] != "running":
            return None
        if state[1] is not None:
            part = json.loads(state[1])
            status = ("error" if part.get("type") == "error" else
                      "cancelled" if part.get("finishReason") == "cancelled" else "completed")
            await tx.execute("UPDATE runs SET status=%s, finished_at=%s WHERE id=%s", (status, utcnow(), run.id))
            return status
        if int(newer) == 0:
            await tx.execute(
                "INSERT INTO events (session_id, seq, run_id, type, data, created_at) VALUES (%s,%s,%s,%s,%s,%s)",
                (run.session_id, int(last) + 1, run.id, "error", dumps(error_part), utcnow()))
        await tx.execute("UPDATE runs SET status='interrupted', finished_at=%s, error=%s "
                         "WHERE id=%s AND status='running'", (utcnow(), reason, run.id))
    return "interrupted"


class RunRequest(NamedTuple):
    run_id: str
    kind: str               # "cancel" or "tool_result"
    request_id: str | None
    payload: Any


async def add_run_request(db: Database, run_id: str, kind: str, request_id: str | None, payload: Any) -> None:
    await db.execute("INSERT INTO run_requests (run_id, kind, request_id, payload, created_at) VALUES (%s,%s,%s,%s,%s)",
                     (run_id, kind, request_id, None if payload is None else dumps(payload), utcnow()))


async def take_run_requests(db: Database, run_ids: list[str]) -> list[RunRequest]:
    """Requests addressed to these runs; removed once read."""
    rows = await db.fetchall(f"SELECT id, run_id, kind, request_id, payload FROM run_requests"
                             f" WHERE run_id IN ({_marks(len(run_ids))}) ORDER BY id", run_ids)
    if rows:
        await db.execute(f"DELETE FROM run_requests WHERE id IN ({_marks(len(rows))})", [r[0] for r in rows])
    return [RunRequest(r[1], r[2], r[3], json.loads(r[4]) if r[4] else None) for r in rows]


# --- the event log -----------------------------------------------------------------------------

class NewEvent(NamedTuple):
    session_id: str
    seq: int
    run_id: str
    type: str
    data: str


class StoredEvent(NamedTuple):
    seq: int
    type: str
    data: str  # the part's JSON, as stored and as sent


async def last_seq(db: Database | Tx, session_id: str) -> int:
    row = await db.fetchone("SELECT COALESCE(MAX(seq), 0) FROM events WHERE session_id=%s", (session_id,))
    return int(row[0]) if row else 0


async def insert_events(db: Database, rows: list[NewEvent]) -> None:
    """created_at is the column's default (migration 0003), which spares formatting a datetime per row.
    The VALUES list is written here with the connection's own string escaping (as the driver's would be,
    NO_BACKSLASH_ESCAPES included), without the driver's per-value dispatch and executemany's regex (under
    300 streams, py-spy: about 6% of the process's samples before, 2% after). Uses the writer's reserved
    pool slots."""
    async with db.connection(priority=True) as conn:
        q = conn.escape_string
        values = ",".join([f"('{q(r.session_id)}',{int(r.seq)},'{q(r.run_id)}','{q(r.type)}','{q(r.data)}')"
                           for r in rows])
        await db.run(conn, "INSERT INTO events (session_id, seq, run_id, type, data) VALUES " + values)


async def read_events(db: Database, session_id: str, after: int, limit: int) -> list[StoredEvent]:
    rows = await db.fetchall("SELECT seq, type, data FROM events WHERE session_id=%s AND seq > %s"
                             " ORDER BY seq LIMIT %s", (session_id, after, limit))
    return [StoredEvent(int(r[0]), r[1], r[2]) for r in rows]


# --- token usage -------------------------------------------------------------------------------

async def record_usage(db: Database, *, user_id: str, session_id: str, run_id: str, model: str,
                       usage: Usage) -> None:
    await db.execute(
        "INSERT INTO token_usage (user_id, session_id, run_id, model, input_tokens, output_tokens,"
        " cache_read_tokens, cache_creation_tokens, created_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)",
        (user_id, session_id, run_id, model, usage.input_tokens, usage.output_tokens,
         usage.cache_read_tokens, usage.cache_creation_tokens, utcnow()))


async def monthly_usage(db: Database, user_id: str) -> Usage:
    start = utcnow().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    row = await db.fetchone(
        "SELECT COALESCE(SUM(input_tokens),0), COALESCE(SUM(output_tokens),0), COALESCE(SUM(cache_read_tokens),0),"
        " COALESCE(SUM(cache_creation_tokens),0) FROM token_usage WHERE user_id=%s AND created_at >= %s",
        (user_id, start))
    return Usage.of(row or ())
