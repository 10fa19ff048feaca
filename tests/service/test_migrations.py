"""`./init.sh` (the chart's init container command): fresh, re-run, concurrent, broken, unreachable."""
from __future__ import annotations

import concurrent.futures
import hashlib
import shutil
from importlib import resources

import pytest

from tests.support.service import run_migrations
from tests.support.standins import free_port

EXPECTED_TABLES = {"sessions", "messages", "runs", "events", "token_usage"}


def packaged_migrations() -> dict[int, tuple[str, str]]:
    out = {}
    for p in resources.files("agent_backend").joinpath("migrations").iterdir():
        if p.name.endswith(".sql"):
            text = p.read_text(encoding="utf-8")
            out[int(p.name[:4])] = (p.name, hashlib.sha256(text.encode()).hexdigest())
    return out


def schema_snapshot(db) -> dict[str, str]:
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("SHOW TABLES")
        tables = sorted(r[0] for r in cur.fetchall())
        snap = {}
        for t in tables:
            cur.execute(f"SHOW CREATE TABLE `{t}`")
            ddl = cur.fetchone()[1]
            snap[t] = " ".join(line for line in ddl.splitlines() if "AUTO_INCREMENT=" not in line)
        return snap


def recorded(db) -> list[tuple]:
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT * FROM schema_migrations ORDER BY version")
        return list(cur.fetchall())


def test_fresh_database_gets_every_migration(db, tmp_path):
    r = run_migrations(db.env(), tmp_path)
    assert r.returncode == 0, r.stderr
    tables = set(schema_snapshot(db))
    assert EXPECTED_TABLES <= tables
    rows = recorded(db)
    files = packaged_migrations()
    assert [row[0] for row in rows] == sorted(files)
    for row in rows:
        assert files[row[0]][1] in row, f"checksum of migration {row[0]} not recorded"


def test_rerun_changes_nothing(db, tmp_path):
    assert run_migrations(db.env(), tmp_path).returncode == 0
    before_schema, before_rows = schema_snapshot(db), recorded(db)
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO sessions (id, user_id, cwd, created_at, last_used) "
                    "VALUES ('00000000-0000-0000-0000-000000000001', 'u1', '/x', NOW(6), NOW(6))")
    r = run_migrations(db.env(), tmp_path)
    assert r.returncode == 0, r.stderr
    assert schema_snapshot(db) == before_schema
    assert recorded(db) == before_rows  # same rows, same applied_at: nothing was re-applied
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM sessions")
        assert cur.fetchone()[0] == 1


def test_concurrent_runs_apply_each_migration_once(db, tmp_path):
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda i: run_migrations(db.env(), tmp_path), range(6)))
    for r in results:
        assert r.returncode == 0, r.stderr
    rows = recorded(db)
    assert [row[0] for row in rows] == sorted(packaged_migrations())
    assert EXPECTED_TABLES <= set(schema_snapshot(db))


def test_broken_migration_fails_clearly_and_is_not_recorded(db, tmp_path):
    mdir = tmp_path / "migrations"
    shutil.copytree(resources.files("agent_backend").joinpath("migrations"), mdir,
                    ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    (mdir / "9001_broken.sql").write_text("CREATE TABLE broken_ok (id INT);\nALTER TABLE no_such_table ADD x INT;\n")
    r = run_migrations(db.env(), tmp_path, "--migrations-dir", str(mdir))
    assert r.returncode != 0
    assert "9001_broken" in r.stderr
    assert "no_such_table" in r.stderr  # the database's own reason is passed on
    assert db.password not in r.stderr + r.stdout
    versions = [row[0] for row in recorded(db)]
    assert 9001 not in versions
    assert versions == sorted(packaged_migrations())  # everything before it was applied
    # Fixing the file and re-running completes the job.
    (mdir / "9001_broken.sql").write_text("CREATE TABLE IF NOT EXISTS broken_ok (id INT);\n")
    r = run_migrations(db.env(), tmp_path, "--migrations-dir", str(mdir))
    assert r.returncode == 0, r.stderr
    assert 9001 in [row[0] for row in recorded(db)]


def test_unreachable_database_fails_clearly(db, tmp_path):
    env = {**db.env(), "AGENT_BACKEND_DB_PORT": str(free_port())}
    r = run_migrations(env, tmp_path, timeout=60)
    assert r.returncode != 0
    out = r.stderr + r.stdout
    assert env["AGENT_BACKEND_DB_PORT"] in out and "127.0.0.1" in out
    assert db.password not in out
    assert "Traceback" not in out


def test_wrong_password_fails_without_printing_it(db, tmp_path):
    wrong = "wrong-pass-SENTINEL-" + db.password[::-1]
    r = run_migrations({**db.env(), "AGENT_BACKEND_DB_PASSWORD": wrong}, tmp_path)
    assert r.returncode != 0
    out = r.stderr + r.stdout
    assert db.user in out  # names who tried
    assert wrong not in out and db.password not in out
    assert "Traceback" not in out


@pytest.mark.parametrize("name", ["AGENT_BACKEND_DB_HOST", "AGENT_BACKEND_DB_NAME", "AGENT_BACKEND_DB_USER"])
def test_missing_db_setting_is_named(db, tmp_path, name):
    env = dict(db.env())
    del env[name]
    r = run_migrations(env, tmp_path)
    assert r.returncode != 0
    assert name in r.stderr + r.stdout
    assert db.password not in r.stderr + r.stdout


def test_stopped_server_fails_clearly(private_mariadb, tmp_path):
    creds = private_mariadb.create_database()
    private_mariadb.stop()
    r = run_migrations(creds.env(), tmp_path, timeout=60)
    assert r.returncode != 0
    assert "connect" in (r.stderr + r.stdout).lower()
    private_mariadb.start()
    r = run_migrations(creds.env(), tmp_path)
    assert r.returncode == 0, r.stderr
