"""Fixtures for the service tests: the stand-ins, a real MariaDB, and the real service wired to them.

Stand-ins are per test (cheap: a thread and a port); the MariaDB server is one per pytest-xdist worker
(session scope) and every test gets its own fresh database and user on it. Tests that stop the
database use `private_mariadb` (tests/conftest.py), a server of their own.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Iterator

import pytest

from tests.service.harness import Seqera, Sentinels, Service, service_env
from tests.support import paths
from tests.support.cli import Cli
from tests.support.mariadb import Credentials, MariaDB
from tests.support.service import ServiceProcess, migrate_now
from tests.support.standins.anthropic import AnthropicStandIn
from tests.support.standins.langsmith import LangSmithStandIn
from tests.support.standins.mcp import McpStandIn
from tests.support.standins.platform import PlatformStandIn


@pytest.fixture
def anthropic_standin() -> Iterator[AnthropicStandIn]:
    s = AnthropicStandIn().start()
    yield s
    s.stop()


@pytest.fixture
def langsmith_standin() -> Iterator[LangSmithStandIn]:
    s = LangSmithStandIn().start()
    yield s
    s.stop()


@pytest.fixture
def platform_standin() -> Iterator[PlatformStandIn]:
    s = PlatformStandIn().start()
    yield s
    s.stop()


@pytest.fixture
def mcp(platform_standin) -> Iterator[McpStandIn]:
    """Seqera MCP (the SDK's own server), checking tokens against the Platform stand-in."""
    s = McpStandIn(platform_standin).start()
    yield s
    s.stop()


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDB]:
    """One throwaway MariaDB per xdist worker; never stop it in a test (use private_mariadb)."""
    server = MariaDB().start()
    yield server
    server.destroy()


@pytest.fixture
def db(mariadb: MariaDB) -> Iterator[Credentials]:
    """A fresh, empty database and its own user (with a password) on the shared server."""
    creds = mariadb.create_database()
    yield creds
    if mariadb.running:
        mariadb.drop_database(creds)


# ---------------------------------------------------------------------------------------------------
# The service, wired to the stand-ins and a fresh database
# ---------------------------------------------------------------------------------------------------
@pytest.fixture
def sentinels(db: Credentials) -> Sentinels:
    """Recognisable secret values: none of them may ever appear in a log, trace or error message."""
    return Sentinels.make(db.password)


@pytest.fixture
def env(anthropic_standin, langsmith_standin, platform_standin, db, sentinels) -> dict[str, str]:
    """The service's environment (the chart's env contract plus the two base-URL overrides)."""
    platform_standin.add_user(sentinels.alice_token, "alice", orgs=[{"orgId": 42, "name": "acme"}])
    platform_standin.add_user(sentinels.bob_token, "bob")
    return service_env(anthropic=anthropic_standin, langsmith=langsmith_standin, platform=platform_standin,
                       db=db, sentinels=sentinels)


@pytest.fixture
async def make_service(env, anthropic_standin, langsmith_standin, platform_standin, db, sentinels
                       ) -> AsyncIterator[Callable[..., Awaitable[Service]]]:
    """`await make_service(env_overrides={...}, migrate=True, **config_overrides)` -> a running Service."""
    started: list[Service] = []

    async def factory(env_overrides: dict[str, str] | None = None, migrate: bool = True,
                      **config_overrides: Any) -> Service:
        e = {**env, **(env_overrides or {})}
        if migrate:
            await migrate_now(e)
        svc = await Service.start(e, config_overrides, anthropic=anthropic_standin,
                                  langsmith=langsmith_standin, platform=platform_standin, db=db,
                                  sentinels=sentinels)
        started.append(svc)
        return svc

    yield factory
    for svc in reversed(started):
        await svc.stop()


@pytest.fixture
async def service(make_service) -> Service:
    """The service with default test settings, its database migrated."""
    return await make_service()


@pytest.fixture
def alice(service: Service) -> Cli:
    return service.cli(service.sentinels.alice_token)


@pytest.fixture
def bob(service: Service) -> Cli:
    return service.cli(service.sentinels.bob_token)


@pytest.fixture
def service_process(env, tmp_path) -> Iterator[Callable[..., ServiceProcess]]:
    """`service_process(env_overrides)` -> `python -m agent_backend` as a subprocess (SIGKILLed at the end)."""
    procs: list[ServiceProcess] = []

    def factory(env_overrides: dict[str, str] | None = None, migrate: bool = True) -> ServiceProcess:
        p = ServiceProcess({**env, **(env_overrides or {})}, tmp_path, migrate=migrate)
        procs.append(p)
        p.start()
        return p

    yield factory
    for p in procs:
        p.kill()


# ---------------------------------------------------------------------------------------------------
# The real Seqera CLI
# ---------------------------------------------------------------------------------------------------
@pytest.fixture
def project(tmp_path) -> Path:
    p = tmp_path / "pipeline"
    p.mkdir()
    (p / "main.nf").write_text("workflow { println 'hello' }\n")
    return p


@pytest.fixture
def seqera(tmp_path, project, sentinels) -> Seqera:
    home = tmp_path / "home"
    home.mkdir()
    assert paths.SEQERA_CLI.exists(), f"{paths.SEQERA_CLI} missing: run ci/setup.sh"
    return Seqera(home, project, tmp_path / "cli-events.jsonl", sentinels.alice_token)
