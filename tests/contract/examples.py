"""Shared pieces of the chart <-> service contract tests (fixtures are re-exported by conftest.py).

Every test here is parametrized over `values-examples/*.yaml` (globbed: a new example is covered the
moment it lands). The chart is rendered with the real helm through the one `render()` helper; the
rendered containers are run as local processes through `tests/support/localpod.py`; the database is
a real, throwaway MariaDB (`tests/support/mariadb.py`), one per test, configured as the values say.
"""
from __future__ import annotations

import copy
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from tests.support import paths
from tests.support.helm import Rendered, render
from tests.support.localpod import LocalPod
from tests.support.mariadb import Credentials, MariaDB
from tests.support.standins._server import free_port

EXAMPLES = sorted(paths.VALUES_EXAMPLES.glob("*.yaml"))

# The chart's three credentials: env var -> (plain value key, existing Secret name key, existing key key)
CREDENTIALS = {
    "AGENT_BACKEND_DB_PASSWORD": (("database", "password"), ("database", "existingSecretName"),
                                  ("database", "existingSecretKey")),
    "ANTHROPIC_API_KEY": (("anthropicApiKey",), ("anthropicApiKeyExistingSecretName",),
                          ("anthropicApiKeyExistingSecretKey",)),
    "LANGCHAIN_API_KEY": (("langchainApiKey",), ("langchainApiKeyExistingSecretName",),
                          ("langchainApiKeyExistingSecretKey",)),
}


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _dig(d: Any, path: tuple[str, ...]) -> Any:
    for p in path:
        if not isinstance(d, dict):
            return None
        d = d.get(p)
    return d


@dataclass
class Example:
    """One values example: its file, the values helm sees (chart defaults + file), its render."""

    path: Path
    values: dict[str, Any]
    objs: Rendered
    # env var -> (Secret name, key) for credentials the user keeps in their own Secrets
    user_credential_refs: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.path.stem

    @property
    def chart_secret_names(self) -> set[str]:
        return {o["metadata"]["name"] for o in self.objs.of_kind("Secret")}

    def extra_env_names(self) -> set[str]:
        """Variables the user adds (extraEnvVars): not part of the chart's contract."""
        return {e["name"] for e in self.values.get("extraEnvVars") or []}

    def user_env_sources(self) -> tuple[set[str], set[str]]:
        """Names of the user's ConfigMaps / Secrets given as extraEnvVarsCMs / extraEnvVarsSecrets."""
        return set(self.values.get("extraEnvVarsCMs") or []), set(self.values.get("extraEnvVarsSecrets") or [])


def load_example(path: Path) -> Example:
    chart_values = yaml.safe_load((paths.CHART / "values.yaml").read_text()) or {}
    values = _merge(chart_values, yaml.safe_load(path.read_text()) or {})
    objs = render(files=[path])
    refs = {}
    for var, (_plain, name_key, key_key) in CREDENTIALS.items():
        name = _dig(values, name_key)
        if name:
            refs[var] = (name, _dig(values, key_key) or var)
    return Example(path=path, values=values, objs=objs, user_credential_refs=refs)


def example_params() -> list[Any]:
    return [pytest.param(p, id=p.stem) for p in EXAMPLES]


@pytest.fixture(params=example_params())
def example(request: pytest.FixtureRequest) -> Example:
    return load_example(request.param)


@pytest.fixture
def server() -> Iterator[MariaDB]:
    """A MariaDB of this test's own (tests stop and start it at will)."""
    db = MariaDB().start()
    yield db
    db.destroy()


@dataclass
class Deployed:
    """An example's pod, ready to run locally against a database configured as its values say."""

    example: Example
    pod: LocalPod
    creds: Credentials
    app_port: int
    overrides: dict[str, str]


def database_settings(example: Example) -> tuple[str, str, str]:
    """(name, user, password) as the values say; a generated password when it lives in a user Secret."""
    db = example.values["database"]
    password = db.get("password") or ("pw-" + secrets.token_urlsafe(12))
    return db["name"], db["username"], password


def user_objects(example: Example, db_password: str) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]:
    """Stand-ins for the Secrets/ConfigMaps the user would have created in the namespace."""
    existing_secrets: dict[str, dict[str, str]] = {}
    existing_cms: dict[str, dict[str, str]] = {}
    generated = {"AGENT_BACKEND_DB_PASSWORD": db_password, "ANTHROPIC_API_KEY": "sk-ant-contract-test",
                 "LANGCHAIN_API_KEY": "lsv2-contract-test"}
    for var, (name, key) in example.user_credential_refs.items():
        existing_secrets.setdefault(name, {})[key] = generated[var]
    cms, secs = example.user_env_sources()
    for name in cms:
        existing_cms.setdefault(name, {})
    for name in secs:
        existing_secrets.setdefault(name, {})
    return existing_secrets, existing_cms


@pytest.fixture
def deploy(server: MariaDB, tmp_path: Path):
    """deploy(example, **extra_overrides) -> Deployed: database created as the values say, the
    pod's processes pointed at it (and at any stand-ins given in extra_overrides)."""
    pods: list[LocalPod] = []

    def _deploy(example: Example, **extra: str) -> Deployed:
        name, user, password = database_settings(example)
        creds = server.create_database(name=name, user=user, password=password)
        existing_secrets, existing_cms = user_objects(example, password)
        probe_port = app_container_port(example)
        app_port = free_port()
        overrides = {
            "AGENT_BACKEND_DB_HOST": server.host,
            "AGENT_BACKEND_DB_PORT": str(server.port),
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


def app_container_port(example: Example) -> int:
    """The app container's port named `http` (the contract's port name)."""
    app = LocalPod(example.objs).app
    ports = [p for p in app.get("ports") or [] if p.get("name") == "http"]
    assert len(ports) == 1, f"{example.id}: app container ports {app.get('ports')}"
    return int(ports[0]["containerPort"])
