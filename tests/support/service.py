"""The service as the image runs it, for the service tests and the benchmark: its environment wired to
local upstreams, its migrations, and `python -m agent_backend` as a child process.

    env = standin_env(db=creds, port=free_port(), anthropic_url=..., ...)   # the chart's env contract
    run_migrations(env, home)                   # ./init.sh, as the chart's init container runs it
    await migrate_now(env)                      # the same migrations in-process (fast, for fixtures)
    svc = ServiceProcess(env, workdir).start()  # migrates, starts, polls GET /health until 200
    svc.url, svc.log()                          # http://127.0.0.1:<port>, its log (stdout and stderr)
    svc.stop()                                  # SIGTERM, drain, exit status (SIGKILL after the grace)
    svc.kill()                                  # SIGKILL, no drain (a test's teardown)

Subprocesses get `base_process_env(home)`: nothing inherited that could reach the network.
"""
from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path

from tests.support import paths
from tests.support.mariadb import Credentials
from tests.support.proc import NotReady, die_with_parent, stop_process, wait_http_ok

MODEL = "claude-standin-test-model"


def standin_env(*, db: Credentials, port: int, anthropic_url: str, anthropic_key: str, langsmith_url: str,
                langchain_key: str, platform_url: str, platform_api_url: str) -> dict[str, str]:
    """The service's environment with every upstream on 127.0.0.1 (the stand-ins' URLs) and test settings;
    ci/bench.py starts from it too and overrides what production sets differently."""
    return {
        "AGENT_BACKEND_PORT": str(port),
        **db.env(),
        "ANTHROPIC_API_KEY": anthropic_key,
        "ANTHROPIC_MODEL": MODEL,
        "ANTHROPIC_BASE_URL": anthropic_url,
        "LANGCHAIN_API_KEY": langchain_key,
        "LANGSMITH_ENDPOINT": langsmith_url,
        "ENVIRONMENT": "test",
        "LOG_LEVEL": "DEBUG",
        "SEQERA_PLATFORM_URL": platform_url,
        "SEQERA_PLATFORM_API_URL": platform_api_url,
        "SEQERA_MCP_URL": "http://127.0.0.1:9/mcp",
        "AGENT_BACKEND_PUBLIC_URL": "http://agent-backend.test.invalid",
    }


def base_process_env(home: Path) -> dict[str, str]:
    """A clean environment for subprocesses: nothing inherited that could reach the network."""
    return {
        "PATH": f"{paths.VENV_BIN}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
    }


def run_migrations(env: dict[str, str], home: Path, *args: str, cwd: Path | None = None,
                   timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`./init.sh` from the service directory (what the chart's init container runs)."""
    return subprocess.run(["./init.sh", *args], cwd=cwd or paths.SERVICE, env={**base_process_env(home), **env},
                          capture_output=True, text=True, timeout=timeout)


async def migrate_now(env: dict[str, str]) -> None:
    """Apply the migrations in-process (fast path for fixtures; test_migrations runs ./init.sh)."""
    from agent_backend import config as cfg
    from agent_backend import migrate

    db = cfg.load_db_config(env)
    await asyncio.to_thread(migrate.migrate, db, migrate.discover())


class ServiceFailed(AssertionError):
    """The service process could not be started: its migrations failed, or it never answered."""


class ServiceProcess:
    """`python -m agent_backend` (the image's default command) as a child process, in a session of its
    own and sent SIGTERM if the thread that started it ends; stdout and stderr go to `log_path`.
    `workdir` is its working directory and HOME."""

    def __init__(self, env: dict[str, str], workdir: Path, migrate: bool = True) -> None:
        self.env = dict(env)
        self.workdir = Path(workdir)
        self.migrate = migrate
        self.port = int(env.get("AGENT_BACKEND_PORT") or 8002)
        self.log_path = self.workdir / f"service-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._logf = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def full_env(self) -> dict[str, str]:
        return {**base_process_env(self.workdir), **self.env}

    def start(self, wait: bool = True) -> "ServiceProcess":
        """Migrate (unless `migrate=False`), start, and with `wait` poll until GET /health answers 200."""
        if self.migrate:
            r = run_migrations(self.env, self.workdir)
            if r.returncode != 0:
                raise ServiceFailed(f"migrations failed ({r.returncode}):\n{r.stderr}")
        self._close_log()
        self._logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen([str(paths.PYTHON), "-m", "agent_backend"], cwd=self.workdir,
                                     env=self.full_env(), stdin=subprocess.DEVNULL, stdout=self._logf,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=die_with_parent)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 120.0, path: str = "/health") -> None:
        """Poll GET `path` until it answers 200 (`/health?ready=1`: until MySQL answers and is migrated).
        `timeout` is a hang bound for a loaded machine (a start took over 30 s there), not a speed check."""
        assert self.proc is not None
        try:
            wait_http_ok(self.url + path, self.proc, timeout)
        except NotReady as e:
            raise ServiceFailed(f"service {e}:\n{self.log()}") from None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def send_signal(self, sig: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self, grace: float = 30.0) -> int | None:
        """SIGTERM (the service drains its streams), SIGKILL after `grace` seconds; its exit status."""
        code = stop_process(self.proc, grace) if self.proc is not None else None
        self._close_log()
        return code

    def kill(self) -> None:
        """SIGKILL: no drain (a test's teardown)."""
        if self.proc is not None:
            stop_process(self.proc, sig=signal.SIGKILL)
        self._close_log()

    def _close_log(self) -> None:
        if self._logf is not None:
            self._logf.close()
            self._logf = None
