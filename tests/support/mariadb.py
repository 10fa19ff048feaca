"""A throwaway MariaDB server for tests, the demo and the benchmark.

    db = MariaDB().start()                  # temp dir under /tmp, free port on 127.0.0.1
    creds = db.create_database()            # fresh database + user with a password
    creds.env()                             # {"AGENT_BACKEND_DB_HOST": "127.0.0.1", ..._PORT/_NAME/_USER/_PASSWORD}
    db.stop(); db.start()                   # same port and datadir: data survives (outage tests)
    db.kill()                               # SIGKILL, no clean shutdown
    db.destroy()                            # stop and delete the temp dir

Uses the binaries on the machine (`mariadb-install-db`, `mariadbd`; ci/setup.sh installs them). The
system tables are installed once per machine (and mariadbd build) into a template datadir in the temp
dir and copied for every server, so a further server starts in about a second. Each server has its own
port and directory, so pytest-xdist workers never share one. Root connects only through the server's
unix socket; the service connects over TCP with the user and password of `create_database()`.

A server is tied to the thread that started it (Linux PR_SET_PDEATHSIG): when that thread or process
ends, mariadbd gets SIGTERM, so a killed test run leaves no server behind. Start servers from a
long-lived thread (the main thread), not from a short-lived worker thread.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pymysql

from tests.support.proc import die_with_parent, stop_process
from tests.support.standins._server import free_port

_template_lock = threading.Lock()
_template_dir: Path | None = None


def _binary(name: str) -> str:
    for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError(f"{name} not found: run ci/setup.sh (it installs mariadb-server)")


def _user_args() -> list[str]:
    return ["--user=root"] if os.geteuid() == 0 else []


def _template() -> Path:
    """A datadir with the system tables installed: made once per machine and mariadbd build, under a
    file lock so that parallel pytest-xdist workers never run mariadb-install-db at the same time."""
    global _template_dir
    with _template_lock:
        if _template_dir is not None and (_template_dir.parent / "ready").exists():
            return _template_dir
        version = subprocess.run([_binary("mariadbd"), "--version"], capture_output=True, text=True).stdout
        tag = hashlib.sha256(f"{version}{os.geteuid()}".encode()).hexdigest()[:12]
        base = Path(tempfile.gettempdir()) / f"agent-backend-mariadb-template-{tag}"
        base.mkdir(exist_ok=True)
        with open(base / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                data = base / "data"
                if not (base / "ready").exists():
                    shutil.rmtree(data, ignore_errors=True)
                    tmp = base / "tmp"
                    tmp.mkdir(exist_ok=True)
                    proc = subprocess.run(
                        [_binary("mariadb-install-db"), "--no-defaults", f"--datadir={data}", *_user_args(),
                         "--auth-root-authentication-method=normal", "--skip-test-db", f"--tmpdir={tmp}"],
                        capture_output=True, text=True, env={**os.environ, "TMPDIR": str(tmp)},
                    )
                    if proc.returncode != 0:
                        raise RuntimeError(f"mariadb-install-db failed:\n{proc.stdout}\n{proc.stderr}")
                    (base / "ready").write_text(version)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        _template_dir = data
        return data


@dataclass(frozen=True)
class Credentials:
    host: str
    port: int
    name: str
    user: str
    password: str

    def env(self) -> dict[str, str]:
        """The service's DB environment variables (the chart's env contract)."""
        return {
            "AGENT_BACKEND_DB_HOST": self.host,
            "AGENT_BACKEND_DB_PORT": str(self.port),
            "AGENT_BACKEND_DB_NAME": self.name,
            "AGENT_BACKEND_DB_USER": self.user,
            "AGENT_BACKEND_DB_PASSWORD": self.password,
        }

    def connect(self, **kw: object) -> pymysql.connections.Connection:
        """A pymysql connection as this user (autocommit unless `autocommit=False` is passed)."""
        kw.setdefault("autocommit", True)
        return pymysql.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                               database=self.name, **kw)  # type: ignore[arg-type]


class MariaDB:
    def __init__(self, port: int = 0, basedir: str | os.PathLike[str] | None = None) -> None:
        self._fixed_port = bool(port)
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.basedir = Path(basedir) if basedir else Path(tempfile.mkdtemp(prefix="mariadb-"))
        self.datadir = self.basedir / "data"
        self.socket = self.basedir / "s.sock"
        self.log = self.basedir / "mariadbd.log"
        self.tmpdir = self.basedir / "tmp"
        self._proc: subprocess.Popen[bytes] | None = None
        self._counter = 0

    # ---- lifecycle --------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 60.0) -> "MariaDB":
        if self.running:
            return self
        if not (self.datadir / "mysql").is_dir():
            shutil.copytree(_template(), self.datadir, dirs_exist_ok=True)
        self.tmpdir.mkdir(parents=True, exist_ok=True)
        for attempt in range(5):
            if self._launch(timeout):
                return self
            if self._fixed_port:
                break
            self.port = free_port()  # someone took the port between choosing and binding: retry
        raise RuntimeError(f"mariadbd did not start on port {self.port}; log:\n{self._log_tail()}")

    def _launch(self, timeout: float) -> bool:
        with open(self.log, "ab") as logf:
            self._proc = subprocess.Popen(
                [_binary("mariadbd"), "--no-defaults", f"--datadir={self.datadir}", f"--socket={self.socket}",
                 f"--port={self.port}", "--bind-address=127.0.0.1", f"--tmpdir={self.tmpdir}", *_user_args(), "--skip-log-bin",
                 "--innodb-buffer-pool-size=64M", "--max-connections=1000", f"--pid-file={self.basedir}/pid",
                 "--skip-name-resolve", "--innodb-flush-log-at-trx-commit=2"],
                stdout=logf, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._proc = None
                return False
            if self._accepting():
                return True
            time.sleep(0.05)
        self.kill()
        return False

    def _accepting(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                pass
            conn = self.root()
            conn.close()
            return True
        except (OSError, pymysql.MySQLError):
            return False

    def stop(self, timeout: float = 30.0) -> None:
        """Clean shutdown; the datadir stays, `start()` brings the same server back on the same port."""
        if not self.running:
            self._proc = None
            return
        assert self._proc is not None
        try:
            conn = self.root()
            with conn.cursor() as cur:
                cur.execute("SHUTDOWN")
            conn.close()
            sig = None  # SHUTDOWN has asked it to stop
        except pymysql.MySQLError:
            sig = signal.SIGTERM
        stop_process(self._proc, timeout, sig=sig)
        self._proc = None

    def kill(self) -> None:
        """SIGKILL the server (a crash, not a shutdown)."""
        if self._proc is not None:
            stop_process(self._proc, sig=signal.SIGKILL, group=True)
        self._proc = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.basedir, ignore_errors=True)

    def __enter__(self) -> "MariaDB":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    # ---- use --------------------------------------------------------------------------------------
    def root(self, database: str | None = None) -> pymysql.connections.Connection:
        """A root connection over the unix socket (autocommit)."""
        return pymysql.connect(unix_socket=str(self.socket), user="root", database=database,
                               autocommit=True, connect_timeout=5)

    def create_database(self, name: str | None = None, user: str | None = None,
                        password: str | None = None) -> Credentials:
        """A new empty database and a user with a random password and all privileges on it."""
        self._counter += 1
        suffix = f"{os.getpid()}_{self._counter}_{secrets.token_hex(3)}"
        name = name or f"agent_{suffix}"
        user = user or f"u_{secrets.token_hex(6)}"
        password = password or "pw-" + secrets.token_urlsafe(12)
        conn = self.root()
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
                cur.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (user, password))
                cur.execute(f"GRANT ALL PRIVILEGES ON `{name}`.* TO %s@'%%'", (user,))
        finally:
            conn.close()
        return Credentials(self.host, self.port, name, user, password)

    def drop_database(self, creds: Credentials) -> None:
        conn = self.root()
        try:
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{creds.name}`")
                cur.execute("DROP USER IF EXISTS %s@'%%'", (creds.user,))
        finally:
            conn.close()

    def _log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="Run a throwaway MariaDB until Ctrl-C.")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    def _interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM cleans up like Ctrl-C
    with MariaDB(port=args.port) as db:
        c = db.create_database()
        print(" ".join(f"{k}={v}" for k, v in c.env().items()), flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
