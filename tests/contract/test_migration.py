"""The rendered migration init container (`./init.sh` in the image's working directory), run from the
image under runc exactly as rendered, with the pod's environment and securityContext, against a real,
empty MariaDB database."""
from __future__ import annotations

from typing import Any

from tests.contract.examples import Deployed, Example
from tests.support.mariadb import Credentials


def schema(creds: Credentials) -> dict[str, Any]:
    """Every table's definition and every row of the tables that record migrations."""
    conn = creds.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW TABLES")
            tables = sorted(r[0] for r in cur.fetchall())
            out: dict[str, Any] = {}
            for t in tables:
                cur.execute(f"SHOW CREATE TABLE `{t}`")
                ddl = cur.fetchone()[1]
                cur.execute(f"SELECT COUNT(*) FROM `{t}`")
                count = cur.fetchone()[0]
                rows = None
                if "migration" in t.lower():
                    cur.execute(f"SELECT * FROM `{t}`")
                    rows = sorted(map(repr, cur.fetchall()))
                out[t] = (ddl, count, rows)
            return out
    finally:
        conn.close()


def test_migrates_an_empty_database_and_a_second_run_changes_nothing(example: Example, deploy) -> None:
    d: Deployed = deploy(example)
    pod = d.pod
    assert schema(d.creds) == {}, "the database is not empty before the migration"

    first = pod.run(pod.migration, timeout=120)
    assert first.returncode == 0, first.stdout + first.stderr
    after_first = schema(d.creds)
    assert after_first, "the migration command exited 0 but created no tables"
    assert any("migration" in t.lower() for t in after_first), f"no migrations table among {sorted(after_first)}"

    second = pod.run(pod.migration, timeout=120)
    assert second.returncode == 0, second.stdout + second.stderr
    assert schema(d.creds) == after_first, "running the migrations again changed the database"


def test_fails_with_a_clear_message_when_the_database_is_unreachable(example: Example, deploy, private_mariadb) -> None:
    d: Deployed = deploy(example)
    private_mariadb.stop()
    result = d.pod.run(d.pod.migration, timeout=120)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert d.creds.password not in out
    assert "AGENT_BACKEND_DB" in out or "database" in out.lower() or "mysql" in out.lower(), out
