"""The real service in this process, wired to the stand-ins, and the real Seqera CLI, for the service tests.

`Service`: `agent_backend.app.create_app(config)` served by aiohttp's TestServer on a real 127.0.0.1
port, config from `load_config(env)` (the same env a pod gets) with a few tunables shortened for tests
(backoff, heartbeat). `service_env()` is that env with the stand-ins' URLs and `Sentinels`' secrets.
`Seqera` runs the real CLI offline against a service URL. The service as a subprocess (`python -m
agent_backend`, for exit codes, signals and its log) is `tests/support/service.py`'s ServiceProcess.
"""
from __future__ import annotations

import asyncio
import dataclasses
import secrets
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from tests.support import paths
from tests.support.cli import Cli
from tests.support.mariadb import Credentials
from tests.support.service import standin_env
from tests.support.standins import free_port
from tests.support.standins.anthropic import AnthropicStandIn
from tests.support.standins.langsmith import LangSmithStandIn
from tests.support.standins.platform import PlatformStandIn

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


def service_env(*, anthropic: AnthropicStandIn, langsmith: LangSmithStandIn, platform: PlatformStandIn,
                db: Credentials, sentinels: Sentinels, port: int | None = None) -> dict[str, str]:
    anthropic.api_key = sentinels.anthropic_key  # the stand-in answers 401 to any other key
    return standin_env(db=db, port=port or free_port(), anthropic_url=anthropic.url,
                       anthropic_key=sentinels.anthropic_key, langsmith_url=langsmith.url,
                       langchain_key=sentinels.langchain_key, platform_url=platform.url,
                       platform_api_url=platform.api_url)


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
