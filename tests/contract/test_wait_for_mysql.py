"""The rendered wait-for-MySQL init container, run exactly as rendered (its own shell command line) with
the pod's environment and securityContext under runc, from the tests' stand-in for `mysql:9` (which cannot
be fetched here: Debian's MariaDB `mysql` client, bash and coreutils; ci/image.py's mysql-client recipe),
against a real MariaDB server."""
from __future__ import annotations

import queue
import subprocess
import threading

import pytest

from tests.contract.examples import Deployed, Example
from tests.support.mariadb import MariaDB

# Generous bounds so a broken script fails the test instead of hanging it; never asserted on.
DEADLINE = 120


def has_wait_container(example: Example) -> bool:
    from tests.support.localpod import LocalPod, LocalPodError
    try:
        LocalPod(example.objs).wait_for_mysql
        return True
    except LocalPodError:
        return False


@pytest.fixture
def deployed(example: Example, deploy) -> Deployed:
    assert has_wait_container(example), (
        f"{example.id}: no wait-for-MySQL init container rendered (the chart enables it by default)")
    return deploy(example)


def _lines(proc: subprocess.Popen[bytes]) -> "queue.Queue[str | None]":
    """The process's merged output, line by line, read in a thread (None at EOF)."""
    q: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            q.put(raw.decode(errors="replace"))
        q.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return q


def test_exits_0_once_the_database_answers(deployed: Deployed) -> None:
    pod = deployed.pod
    result = pod.run(pod.wait_for_mysql, timeout=DEADLINE)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "ready" in out.lower(), f"no progress message: {out!r}"


def test_waits_while_the_database_is_down_then_exits_0(deployed: Deployed, private_mariadb: MariaDB) -> None:
    pod = deployed.pod
    private_mariadb.stop()
    proc = pod.spawn(pod.wait_for_mysql, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines = _lines(proc)
    seen = []
    try:
        # It must report that it is waiting, and still be running after saying so.
        first = lines.get(timeout=DEADLINE)
        assert first is not None, f"exited ({proc.wait()}) without a word while the database was down"
        seen.append(first)
        assert proc.poll() is None, f"gave up while the database was down: {seen}"
        private_mariadb.start()
        rc = proc.wait(timeout=DEADLINE)
    finally:
        if proc.poll() is None:
            pod.stop(proc)
    while (line := lines.get(timeout=10)) is not None:
        seen.append(line)
    out = "".join(seen)
    assert rc == 0, out
    assert "ready" in seen[-1].lower(), out


def test_fails_fast_and_clearly_on_a_wrong_password(deployed: Deployed, private_mariadb: MariaDB) -> None:
    pod = deployed.pod
    creds = deployed.creds
    conn = private_mariadb.root()
    with conn.cursor() as cur:  # the database now wants another password than the Secret holds
        cur.execute("ALTER USER %s@'%%' IDENTIFIED BY %s", (creds.user, "a-different-password"))
    conn.close()
    try:
        result = pod.run(pod.wait_for_mysql, timeout=DEADLINE)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"still retrying after {DEADLINE}s on a wrong password: an authentication error "
                    f"must fail, only connection errors are worth waiting for. Output: {e.stdout!r}")
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert creds.password not in out, "the password appears in the output"
    assert any(w in out.lower() for w in ("credential", "access denied", "password")), (
        f"the failure does not say the credentials were rejected: {out!r}")


def test_a_missing_database_is_left_to_the_migration(deployed: Deployed, private_mariadb: MariaDB) -> None:
    """The server answers and takes the credentials, but the database does not exist yet: waiting cannot
    help and the migration that runs next creates it, so the script says so and exits 0."""
    pod, creds = deployed.pod, deployed.creds
    conn = private_mariadb.root()
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE `{creds.name}`")
    conn.close()
    result = pod.run(pod.wait_for_mysql, timeout=DEADLINE)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "does not exist yet" in out and "db-migration" in out, out
    migrated = pod.run(pod.migration, timeout=DEADLINE)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert pod.run(pod.wait_for_mysql, timeout=DEADLINE).returncode == 0
