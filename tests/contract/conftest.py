"""Fixtures of the contract tests (the helpers they use are in tests/contract/examples.py).

`example` parametrizes a test over `values-examples/*.yaml` (globbed: a new example is covered the
moment it lands); `private_mariadb` (tests/conftest.py) is a real, throwaway MariaDB of the test's own;
`deploy` creates the database an example's values describe and gives its pod, ready to run locally.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.contract.examples import (Deployed, Example, app_container_port, database_settings,
                                     load_example, user_objects)
from tests.support import paths
from tests.support.localpod import LocalPod
from tests.support.mariadb import MariaDB
from tests.support.standins._server import free_port

EXAMPLES = sorted(paths.VALUES_EXAMPLES.glob("*.yaml"))


@pytest.fixture(params=[pytest.param(p, id=p.stem) for p in EXAMPLES])
def example(request: pytest.FixtureRequest) -> Example:
    return load_example(request.param)


@pytest.fixture
def deploy(private_mariadb: MariaDB, tmp_path: Path):
    """deploy(example, **extra_overrides) -> Deployed: database created as the values say, the
    pod's processes pointed at it (and at any stand-ins given in extra_overrides)."""
    pods: list[LocalPod] = []

    def _deploy(example: Example, **extra: str) -> Deployed:
        name, user, password = database_settings(example)
        creds = private_mariadb.create_database(name=name, user=user, password=password)
        existing_secrets, existing_cms = user_objects(example, password)
        probe_port = app_container_port(example)
        app_port = free_port()
        overrides = {
            "AGENT_BACKEND_DB_HOST": private_mariadb.host,
            "AGENT_BACKEND_DB_PORT": str(private_mariadb.port),
            "AGENT_BACKEND_PORT": str(app_port),
            **extra,
        }
        scratch = tmp_path / f"pod-{len(pods)}"
        pod = LocalPod(example.objs, overrides=overrides, existing_secrets=existing_secrets,
                       existing_configmaps=existing_cms, ports={probe_port: app_port}, scratch=scratch)
        pods.append(pod)
        return Deployed(example, pod, creds, app_port, overrides)

    yield _deploy
    for pod in pods:
        pod.close()
