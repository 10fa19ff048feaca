"""Fixtures for the service tests: the stand-ins, a real MariaDB, and the real service wired to them.

Stand-ins are per test (cheap: a thread and a port); the MariaDB server is one per pytest-xdist worker
(session scope) and every test gets its own fresh database and user on it. Tests that stop the
database use `private_mariadb`, a server of their own.
"""
from __future__ import annotations

from typing import Iterator

import pytest

from tests.support.mariadb import Credentials, MariaDB
from tests.support.standins.anthropic import AnthropicStandIn
from tests.support.standins.langsmith import LangSmithStandIn
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


@pytest.fixture
def private_mariadb() -> Iterator[MariaDB]:
    """A MariaDB server for this test alone: stop(), kill() and start() it at will."""
    server = MariaDB().start()
    yield server
    server.destroy()
