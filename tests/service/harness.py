"""The real service wired to the stand-ins: in-process (`Service`) or as a subprocess (`ServiceProcess`).

In-process: `agent_backend.app.create_app(config)` served by aiohttp's TestServer on a real 127.0.0.1
port, config from `load_config(env)` (the same env a pod gets) with a few tunables shortened for tests
(backoff, heartbeat). Subprocess: `python -m agent_backend` exactly as the image runs it, for exit
codes, signals and the log stream on stderr.
"""
from __future__ import annotations

import asyncio
import dataclasses
import secrets
import signal
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from tests.service.cli import Cli
from tests.support import paths
from tests.support.mariadb import Credentials
from tests.support.proc import NotReady, wait_http_ok
from tests.support.standins import free_port
from tests.support.standins.anthropic import AnthropicStandIn
from tests.support.standins.langsmith import LangSmithStandIn
from tests.support.standins.platform import PlatformStandIn

MODEL = "claude-standin-test-model"
PYTHON = str(paths.PYTHON)  # the venv python that runs the service (tests/service/test_config.py imports it)

# Shortened for tests (these are Config fields without environment variables of their own).
SERVICE_TUNABLES: dict[str, Any] = {
    "llm_backoff": 0.01,
    "auth_timeout": 3.0,
    "heartbeat_interval": 1.0,
    "sse_ping_interval": 1.0,
    "shutdown_grace": 10.0,
    "tool_result_timeout": 60.0,
}


@dataclasses.dataclass(frozen=True)
class Sentinels:
    anthropic_key: str
    langchain_key: str
    alice_token: str
    bob_token: str
    db_password: str

    @classmethod
    def make(cls, db_password: str) -> "Sentinels":
        h = secrets.token_hex(6)
        return cls(
            anthropic_key=f"sk-ant-api03-SENTINELKEY{h}",
            langchain_key=f"lsv2_pt_SENTINELLS{h}",
            alice_token=f"ALICETOKEN{h}SENTINEL",
            bob_token=f"BOBTOKEN{h}SENTINEL",
            db_password=db_password,
        )

    def values(self) -> dict[str, str]:
        return dataclasses.asdict(self)

    def assert_absent(self, text: str | bytes, where: str, also: dict[str, str] | None = None) -> None:
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        found = [name for name, value in {**self.values(), **(also or {})}.items() if value and value in text]
        assert not found, f"secret value(s) {found} appear in {where}"


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


def service_env(*, anthropic: AnthropicStandIn, langsmith: LangSmithStandIn, platform: PlatformStandIn,
                db: Credentials, sentinels: Sentinels, port: int | None = None) -> dict[str, str]:
    anthropic.api_key = sentinels.anthropic_key  # the stand-in answers 401 to any other key
    return standin_env(db=db, port=port or free_port(), anthropic_url=anthropic.url,
                       anthropic_key=sentinels.anthropic_key, langsmith_url=langsmith.url,
                       langchain_key=sentinels.langchain_key, platform_url=platform.url,
                       platform_api_url=platform.api_url)


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


class Service:
    """The app running in this process on a real port, plus everything tests need around it."""

    def __init__(self) -> None:
        self.config: Any = None
        self.app: Any = None
        self.server: TestServer | None = None
        self.http: aiohttp.ClientSession | None = None
        self.env: dict[str, str] = {}

    @classmethod
    async def start(cls, env: dict[str, str], tunables: dict[str, Any], *, anthropic: AnthropicStandIn,
                    langsmith: LangSmithStandIn, platform: PlatformStandIn, db: Credentials,
                    sentinels: Sentinels) -> "Service":
        from agent_backend.app import create_app
        from agent_backend.config import Config, load_config

        self = cls()
        self.env, self.anthropic, self.langsmith, self.platform, self.db, self.sentinels = (
            env, anthropic, langsmith, platform, db, sentinels)
        known = {f.name for f in dataclasses.fields(Config)}
        merged = {k: v for k, v in SERVICE_TUNABLES.items() if k in known}
        merged.update(tunables)  # a test's own override must exist: dataclasses.replace raises otherwise
        self.config = dataclasses.replace(load_config(env), **merged)
        self.app = create_app(self.config)
        self.server = TestServer(self.app, host="127.0.0.1", port=free_port())
        await self.server.start_server()
        self.http = aiohttp.ClientSession()
        return self

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("")).rstrip("/")

    def cli(self, token: str | None) -> Cli:
        assert self.http is not None
        return Cli(self.http, self.url, token)

    async def stop(self) -> None:
        if self.http is not None:
            await self.http.close()
            self.http = None
        if self.server is not None:
            await self.server.close()
            self.server = None


class ServiceProcess:
    """`python -m agent_backend` (the image's default command) as a child process; log on stderr."""

    def __init__(self, env: dict[str, str], workdir: Path, migrate: bool = True) -> None:
        self.env = dict(env)
        self.workdir = Path(workdir)
        self.migrate = migrate
        self.port = int(env.get("AGENT_BACKEND_PORT") or 8002)
        self.log_path = self.workdir / f"service-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def full_env(self) -> dict[str, str]:
        return {**base_process_env(self.workdir), **self.env}

    def start(self, wait: bool = True) -> "ServiceProcess":
        if self.migrate:
            r = run_migrations(self.env, self.workdir)
            assert r.returncode == 0, f"migrations failed ({r.returncode}):\n{r.stderr}"
        self._logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen([PYTHON, "-m", "agent_backend"], cwd=self.workdir, env=self.full_env(),
                                     stdout=self._logf, stderr=subprocess.STDOUT)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        assert self.proc is not None
        try:
            wait_http_ok(self.url + "/health", self.proc, timeout)
        except NotReady as e:
            raise AssertionError(f"service {e}:\n{self.log()}") from None

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

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if getattr(self, "_logf", None) is not None:
            self._logf.close()
            self._logf = None


class Seqera:
    """The real CLI offline against a backend URL, in the project directory: `await seqera(url, *args)` runs
    it to the end; `seqera.start(url, *args)` returns the running process (for signals)."""

    def __init__(self, home: Path, project: Path, log_file: Path, token: str) -> None:
        self.home, self.project, self.log_file, self.token = home, project, log_file, token

    def env(self, url: str, token: str | None = None) -> dict[str, str]:
        return {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "SEQERA_AI_BACKEND_URL": url,
            "SEQERA_ACCESS_TOKEN": token or self.token,
            "SEQERA_NO_KEYCHAIN": "true",
            "SEQERA_LOG_FILE": str(self.log_file),
            "NO_COLOR": "1",
        }

    async def __call__(self, url: str, *args: str, token: str | None = None,
                       timeout: float = 120) -> subprocess.CompletedProcess:
        return await asyncio.to_thread(
            subprocess.run, [str(paths.SEQERA_CLI), *args], cwd=self.project, env=self.env(url, token),
            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def start(self, url: str, *args: str) -> subprocess.Popen:
        return subprocess.Popen([str(paths.SEQERA_CLI), *args], cwd=self.project, env=self.env(url),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
