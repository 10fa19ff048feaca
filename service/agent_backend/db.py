"""MySQL access through one aiomysql pool (the queries themselves are in queries.py).

A database outage surfaces as DatabaseUnavailable (answered 503 with a detail: errors.py) within
`connect_timeout`/`acquire_timeout` seconds at worst; after a failed connection attempt the pool
fails fast for `FAIL_FAST_S` seconds instead of making every request wait on a dead server. A pool
with no connection free in `busy_timeout` (all in use, or callers queued behind new connections being
opened on an overloaded event loop) surfaces as DatabaseBusy: not an outage, MySQL is not marked down
and readiness does not change; it has its own log line, at most every `BUSY_LOG_EVERY_S`. A database
that answers but was never migrated surfaces as SchemaMissing (a DatabaseUnavailable: 503 naming
./init.sh). Either is logged once when it starts (host:port, user and the reason; never the password),
and `Database.problem` keeps a short reason for readiness. Nothing is cached across an outage: the next
successful query simply resumes service.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from datetime import datetime, timedelta, timezone
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar

import aiomysql
import pymysql

from .config import DatabaseConfig
from .logs import log, strip_userinfo

logger = logging.getLogger("agent_backend.db")
T = TypeVar("T")
FAIL_FAST_S = 1.0
BUSY_LOG_EVERY_S = 10.0


class DatabaseUnavailable(Exception):
    """The database cannot be reached or did not answer in time."""

    from_callback = True  # raised from a streaming callback it is ours, not the model provider's (llm.py)


class DatabaseBusy(DatabaseUnavailable):
    """MySQL is fine, but no pooled connection came free in time: the service is overloaded, not down."""


class InFlightLost(DatabaseUnavailable):
    """The connection failed while a statement was in flight: it may or may not have been applied."""


class SchemaMissing(DatabaseUnavailable):
    """MySQL answers, but the tables (or the database) the migrations create are not there: ./init.sh has
    not run, or not to the end."""


SCHEMA_MISSING = "database schema missing: run ./init.sh (migrations)"


class RetryBudget:
    """Seconds that writes may spend retrying through an outage, shared by all the writes given it; the
    clock starts at the first failure."""

    def __init__(self, seconds: float):
        self.seconds, self._until = seconds, None

    def allows(self, delay: float) -> bool:
        if self._until is None:
            self._until = time.monotonic() + self.seconds
        return time.monotonic() + delay <= self._until


async def retrying(call: Callable[[], Awaitable[T]], budget: RetryBudget, *, idempotent: bool = False) -> T:
    """`await call()`, retried with backoff (0.1 s, doubling up to 1 s) while the database is unavailable
    and `budget` allows. A statement that may already have been applied (InFlightLost) is retried only
    when `idempotent`; a missing schema never."""
    delay = 0.1
    while True:
        try:
            return await call()
        except SchemaMissing:
            raise
        except DatabaseUnavailable as exc:
            if (isinstance(exc, InFlightLost) and not idempotent) or not budget.allows(delay):
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def utc_ago(seconds: float) -> datetime:
    """utcnow() minus `seconds`, as the naive UTC the DATETIME columns hold."""
    return utcnow() - timedelta(seconds=seconds)


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc).isoformat().replace("+00:00", "Z")


class Database:
    def __init__(self, cfg: DatabaseConfig):
        self.cfg = cfg
        self._pool: aiomysql.Pool | None = None
        self._down_until = 0.0
        self.healthy: bool | None = None  # None: not checked yet
        # Why it is not healthy, as readiness may tell anyone: no host, user or secret. None while healthy.
        self.problem: str | None = None
        self._problem_kind: str | None = None
        reserved = 2 if cfg.pool_max > 4 else 1
        self._sem = asyncio.Semaphore(cfg.pool_max - reserved)
        self._sem_priority = asyncio.Semaphore(reserved)
        # aiomysql's pool serves one caller at a time and opens a new connection while the others wait;
        # waiting here for that turn is queueing (busy), so acquire_timeout only times a caller's own turn.
        self._handout = asyncio.Lock()
        self._busy_logged_at: float | None = None
        self._busy_unlogged = 0  # busy answers since the last "database pool busy" line

    async def start(self) -> None:
        # minsize=0: creating the pool never connects, so the service starts while MySQL is down.
        self._pool = await aiomysql.create_pool(
            minsize=0, maxsize=self.cfg.pool_max, pool_recycle=3600,
            host=self.cfg.host, port=self.cfg.port, user=self.cfg.user, password=self.cfg.password,
            db=self.cfg.name, charset="utf8mb4", autocommit=True,
            connect_timeout=self.cfg.connect_timeout,
            init_command="SET time_zone='+00:00'")  # server-side defaults stamp UTC, like the Python side

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await self._pool.wait_closed()
            self._pool = None

    def _mark_down(self, exc: BaseException, *, connecting: bool, timeout: float | None = None) -> None:
        self._down_until = time.monotonic() + FAIL_FAST_S
        # The idle pooled connections are most likely dead too: drop them, so that recovery does not
        # cost one failed request (and one fail-fast second) per stale connection.
        free = getattr(self._pool, "_free", None)
        while free:
            with contextlib.suppress(Exception):
                free.popleft().close()
        message = "database unavailable: " + describe_failure(self.cfg, exc, connecting=connecting, timeout=timeout)
        if _code(exc) in _ACCESS_DENIED:
            self._set_problem("access denied", "database access denied: check AGENT_BACKEND_DB_USER and "
                              "AGENT_BACKEND_DB_PASSWORD", logging.ERROR, message)
        else:
            what = "cannot connect" if connecting else "connection lost"
            self._set_problem("unreachable", f"database unreachable: {what} ({_reason(exc, timeout, brief=True)})",
                              logging.WARNING, message)

    def _mark_schema_missing(self, exc: BaseException) -> None:
        self._set_problem("schema missing", SCHEMA_MISSING, logging.ERROR,
                          f"{SCHEMA_MISSING}: {describe_error(exc)}", database=self.cfg.name)

    def _set_problem(self, kind: str, public: str, level: int, message: str, **fields: Any) -> None:
        """Not healthy, because of `kind`: logged once when it starts (or its kind changes), not per request."""
        changed = self.healthy is not False or self._problem_kind != kind
        self.healthy, self.problem, self._problem_kind = False, public, kind
        if changed:
            log(logger, level, message, **fields)

    def _mark_up(self, *, checked: bool = False) -> None:
        """MySQL answered. Any query proves it reachable with the credentials; only the readiness check
        (`checked`) also proves the schema there, so only it clears a "schema missing" or "check failed"."""
        if self._problem_kind in ("schema missing", "check failed") and not checked:
            return
        if self.healthy is False:
            log(logger, logging.INFO, "database available again")
        self.healthy, self.problem, self._problem_kind = True, None, None

    async def check(self, want_version: int) -> None:
        """The readiness check (app.py runs it in the background): MySQL answers and the migrations have
        run up to `want_version` (this image's newest). Raises DatabaseUnavailable or SchemaMissing; either
        way `healthy` and `problem` are current."""
        try:
            async with self.connection() as conn:
                rows, _, _ = await self.run(conn, "SELECT MAX(version) FROM schema_migrations")
                have = rows[0][0] if rows else None
                if have is None or int(have) < want_version:
                    raise SchemaMissing(f"schema_migrations is at version {have}, this image needs {want_version}")
            self._mark_up(checked=True)
        except pymysql.MySQLError as exc:  # MySQL answers, but not to the check (e.g. SELECT denied)
            self._set_problem("check failed", f"database check failed (MySQL error {_code(exc)})", logging.ERROR,
                              f"database check failed: {describe_error(exc)}", database=self.cfg.name)
            raise DatabaseUnavailable("database check failed") from None

    @contextlib.asynccontextmanager
    async def connection(self, *, priority: bool = False) -> AsyncIterator[aiomysql.Connection]:
        """A pooled connection. Waiting for it (the pool is busy) is bounded by `busy_timeout` and never
        counts as an outage (DatabaseBusy); failing to connect or losing the connection does, and makes
        the next second's callers fail fast. `priority` callers (the event-log writer) have reserved slots."""
        if self._pool is None:
            raise DatabaseUnavailable("database pool is not started")
        if time.monotonic() < self._down_until:
            raise DatabaseUnavailable("database unavailable")
        sem = self._sem_priority if priority else self._sem
        await self._queue(sem)
        try:
            conn = await self._acquire()
            ok = False
            try:
                yield conn
                ok = True
            except SchemaMissing as exc:  # from check()
                self._mark_schema_missing(exc)
                raise
            except (pymysql.MySQLError, OSError, TimeoutError) as exc:
                if _code(exc) in _SCHEMA_ERRORS:  # the connection is fine
                    self._mark_schema_missing(exc)
                    raise SchemaMissing(SCHEMA_MISSING) from None
                conn.close()
                if not isinstance(exc, (pymysql.err.OperationalError, pymysql.err.InterfaceError, OSError,
                                        TimeoutError)) or (isinstance(exc, pymysql.err.OperationalError)
                                                           and not _is_connection_error(exc)):
                    raise  # e.g. a deadlock, lock wait timeout or duplicate key: the server is fine
                self._mark_down(exc, connecting=False, timeout=self.cfg.query_timeout)
                raise InFlightLost("database unavailable") from None
            except BaseException:
                conn.close()  # unknown state (cancelled mid-query, ...): never reuse it
                raise
            finally:
                if ok:
                    self._mark_up()
                self._pool.release(conn)
        finally:
            sem.release()

    async def _queue(self, sem: asyncio.Semaphore) -> None:
        """Wait for a slot of `sem`, then for the pool's turn, within `busy_timeout` for both; on return the
        caller holds both (`_acquire` gives the turn back). Raises DatabaseBusy, holding neither."""
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.cfg.busy_timeout):
                await sem.acquire()
                try:
                    await self._handout.acquire()
                except BaseException:
                    sem.release()
                    raise
        except TimeoutError:
            self._log_busy(time.monotonic() - started)
            raise DatabaseBusy("database busy") from None

    async def _acquire(self) -> aiomysql.Connection:
        """The pool's connection, a free one or a new one, for the caller whose turn it is. Nobody is ahead
        of it, so a timeout here means MySQL did not answer a connection attempt: an outage."""
        try:
            if time.monotonic() < self._down_until:
                raise DatabaseUnavailable("database unavailable")
            async with asyncio.timeout(self.cfg.acquire_timeout):
                return await self._pool.acquire()
        except (TimeoutError, OSError, pymysql.MySQLError, RuntimeError) as exc:
            if _code(exc) in _SCHEMA_ERRORS:  # unknown database: ./init.sh creates it
                self._mark_schema_missing(exc)
                raise SchemaMissing(SCHEMA_MISSING) from None
            self._mark_down(exc, connecting=True, timeout=self.cfg.acquire_timeout)
            raise DatabaseUnavailable("database unavailable") from None
        finally:
            self._handout.release()

    def _log_busy(self, waited: float) -> None:
        """One WARNING per BUSY_LOG_EVERY_S at most, counting the busy answers since the previous one."""
        self._busy_unlogged += 1
        now = time.monotonic()
        if self._busy_logged_at is not None and now - self._busy_logged_at < BUSY_LOG_EVERY_S:
            return
        pool = self._pool
        log(logger, logging.WARNING, "database pool busy", pool_max=self.cfg.pool_max, open=pool.size,
            in_use=pool.size - pool.freesize, waited_s=round(waited, 2), busy_answers=self._busy_unlogged)
        self._busy_logged_at, self._busy_unlogged = now, 0

    async def run(self, conn, sql: str, args: Any = None, *, many: bool = False):
        async def go():
            cur = await conn.cursor()
            try:
                if many:
                    await cur.executemany(sql, args)
                else:
                    await cur.execute(sql, args)
                rows = await cur.fetchall() if cur.description else None
                return rows, cur.rowcount, cur.lastrowid
            finally:
                await cur.close()
        async with asyncio.timeout(self.cfg.query_timeout):
            return await go()

    async def script(self, conn, sql: str, args: Any = None) -> list[list[tuple]]:
        """Several `;`-separated statements in one round trip; one row list per statement."""
        async with asyncio.timeout(self.cfg.query_timeout):
            cur = await conn.cursor()
            try:
                await cur.execute(sql, args)
                results = [list(await cur.fetchall()) if cur.description else []]
                while await cur.nextset():
                    results.append(list(await cur.fetchall()) if cur.description else [])
                return results
            finally:
                await cur.close()

    async def fetchall(self, sql: str, args: Any = None) -> list[tuple]:
        async with self.connection() as conn:
            rows, _, _ = await self.run(conn, sql, args)
            return list(rows or [])

    async def fetchone(self, sql: str, args: Any = None) -> tuple | None:
        rows = await self.fetchall(sql, args)
        return rows[0] if rows else None

    async def execute(self, sql: str, args: Any = None) -> tuple[int, int]:
        async with self.connection() as conn:
            _, rowcount, lastrowid = await self.run(conn, sql, args)
            return rowcount, lastrowid

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator["Tx"]:
        async with self.connection() as conn:
            async with asyncio.timeout(self.cfg.query_timeout):
                await conn.begin()
            tx = Tx(self, conn)
            try:
                yield tx
            except BaseException:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(self.cfg.query_timeout):
                        await conn.rollback()
                raise
            async with asyncio.timeout(self.cfg.query_timeout):
                await conn.commit()


class Tx:
    def __init__(self, db: Database, conn):
        self._db, self._conn = db, conn

    async def fetchall(self, sql: str, args: Any = None) -> list[tuple]:
        rows, _, _ = await self._db.run(self._conn, sql, args)
        return list(rows or [])

    async def fetchone(self, sql: str, args: Any = None) -> tuple | None:
        rows = await self.fetchall(sql, args)
        return rows[0] if rows else None

    async def execute(self, sql: str, args: Any = None) -> tuple[int, int]:
        _, rowcount, lastrowid = await self._db.run(self._conn, sql, args)
        return rowcount, lastrowid


_CONNECTION_ERRORS = {1040, 1053, 1152, 1158, 1159, 1160, 1161, 1927, 4031}


def _is_connection_error(exc: pymysql.err.OperationalError) -> bool:
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
    return code >= 2000 or code in _CONNECTION_ERRORS or code == 0


# Unknown database, table or column: the migrations (./init.sh) have not run, or not to the end.
_SCHEMA_ERRORS = {1049, 1054, 1146}
# Access denied for the user (to the server, to the database; 1698: no password login for it).
_ACCESS_DENIED = {1044, 1045, 1698}


def _code(exc: BaseException) -> int | None:
    if isinstance(exc, pymysql.MySQLError) and exc.args and isinstance(exc.args[0], int):
        return exc.args[0]
    return None


def _reason(exc: BaseException, timeout: float | None = None, *, brief: bool = False) -> str:
    """The low-level reason behind a failure: the OS error (`[Errno 111] Connection refused`, a DNS
    failure), `no answer within N s`, else MySQL's own message (with `brief`: its code only, as the
    message may name the host)."""
    for e in (exc, exc.__cause__, exc.__context__):
        if isinstance(e, TimeoutError):  # before OSError: TimeoutError is one
            return f"no answer within {timeout:g} s" if timeout else "timed out"
        if isinstance(e, OSError):
            if isinstance(e, socket.gaierror) or not e.errno or e.errno < 0:  # [Errno -2] Name or service not known
                if brief:  # str(e) may name addresses ("Multiple exceptions: ... ('10.0.0.1', 3306)")
                    return e.strerror or "connection failed"
                return str(e) or type(e).__name__
            # asyncio words a refusal "Connect call failed ('10.0.0.1', 3306)": say what the OS says.
            return f"{'' if brief else f'[Errno {e.errno}] '}{os.strerror(e.errno)}"
    code = _code(exc)
    if brief and code is not None:
        return f"MySQL error {code}"
    if isinstance(exc, pymysql.MySQLError) and len(exc.args) >= 2 and exc.args[1]:
        return str(exc.args[1])
    return str(exc) or type(exc).__name__


def describe_error(exc: BaseException, timeout: float | None = None) -> str:
    """`(code) message` of a MySQL error, with the reason underneath when the message lacks it (aiomysql's
    `Can't connect to MySQL server on 'host'` keeps the OS error only as the cause); else the reason."""
    if isinstance(exc, pymysql.MySQLError) and len(exc.args) >= 2:
        text = f"({exc.args[0]}) {exc.args[1]}"
        reason = _reason(exc, timeout)
        return text if reason in text else f"{text} ({reason})"
    return _reason(exc, timeout)


def describe_failure(db: DatabaseConfig, exc: BaseException, *, connecting: bool = True,
                     timeout: float | None = None) -> str:
    """`cannot connect to MySQL at host:port as 'user': <reason>` (or `lost the connection to ...`): the one
    wording of a database failure, for the service's log and ./init.sh alike. Never the password."""
    where = f"MySQL at {strip_userinfo(db.host)}:{db.port} as {db.user!r}"
    return f"{'cannot connect to' if connecting else 'lost the connection to'} {where}: {describe_error(exc, timeout)}"
