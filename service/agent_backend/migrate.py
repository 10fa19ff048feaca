"""Versioned SQL migrations: `python -m agent_backend.migrate` (what ./init.sh runs).

Files `NNNN_name.sql` in agent_backend/migrations/ are applied in version order, each recorded in
`schema_migrations` (version, name, sha256, applied_at). Running again applies nothing. A MySQL named
lock (GET_LOCK) serialises concurrent runners, so several replicas' init containers can start
together. Exit codes: 0 success, 1 a migration failed, 2 configuration or connection problem,
3 the lock could not be taken in time. Messages go to stderr as JSON lines and never contain the
password.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import logging
import re
import sys
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

import pymysql

from .config import ConfigError, DatabaseConfig, load_db_config, load_log_level
from .db import describe_error, describe_failure
from .logs import log, setup_logging

LOCK_NAME = "agent_backend.migrations"
LOCK_TIMEOUT_S = 120
_FILE_RE = re.compile(r"^(\d{4})_([A-Za-z0-9_\-]+)\.sql$")
logger = logging.getLogger("agent_backend.migrate")


class MigrationError(Exception):
    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


@dataclasses.dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def statements(self) -> list[str]:
        """Split on `;` at the end of a line; `--` comment lines are dropped."""
        out, current = [], []
        for line in self.sql.splitlines():
            if line.strip().startswith("--") and not current:
                continue
            current.append(line)
            if line.rstrip().endswith(";"):
                stmt = "\n".join(current).strip().rstrip(";").strip()
                if stmt:
                    out.append(stmt)
                current = []
        tail = "\n".join(current).strip()
        if tail and not all(l.strip().startswith("--") or not l.strip() for l in current):
            out.append(tail)
        return out


def discover(directory: Path | None = None) -> list[Migration]:
    if directory is None:
        files = [(p.name, p.read_text(encoding="utf-8"))
                 for p in resources.files("agent_backend").joinpath("migrations").iterdir()
                 if p.name.endswith(".sql")]
    else:
        files = [(p.name, p.read_text(encoding="utf-8")) for p in directory.iterdir() if p.suffix == ".sql"]
    found: dict[int, Migration] = {}
    for fname, text in files:
        m = _FILE_RE.match(fname)
        if not m:
            raise MigrationError(f"migration file name {fname!r} does not match NNNN_name.sql", 2)
        version = int(m.group(1))
        if version in found:
            raise MigrationError(f"two migrations share version {version:04d}", 2)
        found[version] = Migration(version, fname, text)
    return [found[v] for v in sorted(found)]


def _connect(db: DatabaseConfig, database: str | None):
    return pymysql.connect(host=db.host, port=db.port, user=db.user, password=db.password,
                           database=database, connect_timeout=int(max(1, db.connect_timeout)),
                           read_timeout=600, write_timeout=600, charset="utf8mb4", autocommit=True)


def connect(db: DatabaseConfig):
    try:
        return _connect(db, db.name)
    except pymysql.MySQLError as exc:
        if isinstance(exc, pymysql.err.OperationalError) and exc.args and exc.args[0] == 1049:
            # unknown database: create it if we may
            try:
                conn = _connect(db, None)
                with conn.cursor() as cur:
                    cur.execute(f"CREATE DATABASE IF NOT EXISTS `{db.name.replace('`', '``')}` "
                                "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
                conn.select_db(db.name)
                log(logger, logging.INFO, "created database", database=db.name)
                return conn
            except pymysql.MySQLError as exc2:
                raise MigrationError(f"database {db.name!r} does not exist and could not be created: "
                                     f"{describe_error(exc2)}", 2) from None
        raise MigrationError(describe_failure(db, exc), 2) from None


def migrate(db: DatabaseConfig, migrations: list[Migration]) -> list[int]:
    """Apply pending migrations; returns the versions applied now."""
    conn = connect(db)
    applied_now: list[int] = []
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT GET_LOCK(%s, %s)", (LOCK_NAME, LOCK_TIMEOUT_S))
            (got,) = cur.fetchone()
            if got != 1:
                raise MigrationError(f"could not take the migration lock {LOCK_NAME!r} within "
                                     f"{LOCK_TIMEOUT_S}s (another migration still running?)", 3)
            try:
                cur.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " version INT NOT NULL PRIMARY KEY, name VARCHAR(255) NOT NULL,"
                    " checksum CHAR(64) NOT NULL, applied_at DATETIME(6) NOT NULL"
                    ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin")
                cur.execute("SELECT version, name, checksum FROM schema_migrations")
                done = {row[0]: (row[1], row[2]) for row in cur.fetchall()}
                for mig in migrations:
                    if mig.version in done:
                        if done[mig.version][1] != mig.checksum:
                            log(logger, logging.WARNING, "applied migration differs from its file",
                                version=mig.version, file=mig.name)
                        continue
                    for i, stmt in enumerate(mig.statements(), 1):
                        try:
                            cur.execute(stmt)
                        except pymysql.MySQLError as exc:
                            raise MigrationError(f"migration {mig.name} failed at statement {i}: "
                                                 f"{describe_error(exc)}; nothing after it was applied and "
                                                 f"{mig.name} is not recorded", 1) from None
                    cur.execute("INSERT INTO schema_migrations (version, name, checksum, applied_at) "
                                "VALUES (%s, %s, %s, %s)",
                                (mig.version, mig.name, mig.checksum, datetime.now(timezone.utc).replace(tzinfo=None)))
                    applied_now.append(mig.version)
                    log(logger, logging.INFO, "applied migration", version=mig.version, file=mig.name)
            finally:
                try:
                    cur.execute("SELECT RELEASE_LOCK(%s)", (LOCK_NAME,))
                except pymysql.MySQLError:
                    pass
    except pymysql.MySQLError as exc:
        raise MigrationError(f"lost the database connection during migration: {describe_error(exc)}", 2) from None
    finally:
        conn.close()
    return applied_now


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent_backend.migrate",
                                     description="Apply the agent-backend database migrations.")
    parser.add_argument("--migrations-dir", type=Path, default=None,
                        help="directory of NNNN_name.sql files (default: the packaged migrations)")
    args = parser.parse_args(argv)
    setup_logging("INFO")  # until LOG_LEVEL is validated, so that a bad one is reported too
    try:
        setup_logging(load_log_level())
        db = load_db_config()
        migrations = discover(args.migrations_dir)
        applied = migrate(db, migrations)
    except ConfigError as exc:
        log(logger, logging.ERROR, f"migration aborted: {exc}")
        return 2
    except MigrationError as exc:
        log(logger, logging.ERROR, f"migration aborted: {exc}")
        return exc.exit_code
    latest = migrations[-1].version if migrations else 0
    log(logger, logging.INFO, "database schema is up to date", applied=applied, schema_version=latest,
        database=db.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
