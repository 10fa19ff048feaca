"""Fixtures shared by the test suites."""
from __future__ import annotations

from typing import Iterator

import pytest

from tests.support.mariadb import MariaDB


@pytest.fixture
def private_mariadb() -> Iterator[MariaDB]:
    """A real, throwaway MariaDB server for this test alone: stop(), kill() and start() it at will."""
    server = MariaDB().start()
    yield server
    server.destroy()
