"""Shared pieces of the chart <-> service contract tests: one values example and what it implies
(its render, the user's Secrets and ConfigMaps, the database it expects). The fixtures that use them
are in conftest.py.

The chart is rendered with the real helm through the one `render()` helper; the rendered containers
are run as local processes through `tests/support/localpod.py`.
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.support import k8s, paths
from tests.support.credentials import CREDENTIALS, at
from tests.support.helm import Rendered, render
from tests.support.localpod import LocalPod
from tests.support.mariadb import Credentials

# The chart's default for a domain key: '{{ printf "<prefix>.%s" .Values.global.platformExternalDomain }}'.
_DEFAULT_DOMAIN = re.compile(r'^\{\{\s*printf\s+"([a-z0-9-]+)\.%s"\s+\.Values\.global\.platformExternalDomain\s*\}\}$')


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

    def domain(self, key: str) -> str:
        """global.<key> as the chart evaluates it (its default template, or a literal host; "" stays "")."""
        value = self.values["global"][key]
        m = _DEFAULT_DOMAIN.match(value.strip())
        if m:
            return f"{m.group(1)}.{self.values['global']['platformExternalDomain']}"
        assert "{{" not in value, f"{self.id}: cannot evaluate global.{key}={value!r} here; use a literal host"
        return value.strip()

    @property
    def mcp_url(self) -> str | None:
        """SEQERA_MCP_URL as the values say: https://<mcpDomain>/mcp, or None with Seqera MCP off
        (global.mcpDomain empty), when the chart leaves the variable out."""
        domain = self.domain("mcpDomain")
        return f"https://{domain}/mcp" if domain else None

    def omitted_env_names(self) -> set[str]:
        """Variables of the env contract the chart leaves out for these values (SEQERA_MCP_URL with
        Seqera MCP off); the service must read them as optional."""
        return set() if self.mcp_url else {"SEQERA_MCP_URL"}

    def extra_env_names(self) -> set[str]:
        """Variables the user adds (extraEnvVars): not part of the chart's contract."""
        return {e["name"] for e in self.values.get("extraEnvVars") or []}

    def user_env_sources(self) -> tuple[set[str], set[str]]:
        """Names of the user's ConfigMaps / Secrets given as extraEnvVarsCMs / extraEnvVarsSecrets."""
        return set(self.values.get("extraEnvVarsCMs") or []), set(self.values.get("extraEnvVarsSecrets") or [])


def load_example(path: Path) -> Example:
    chart_values = yaml.safe_load((paths.CHART / "values.yaml").read_text()) or {}
    values = k8s.merge(chart_values, yaml.safe_load(path.read_text()) or {})
    objs = render(files=[path])
    refs = {}
    for c in CREDENTIALS:
        name = at(values, c.name_path)
        if name:
            refs[c.env] = (name, at(values, c.key_path) or c.env)
    return Example(path=path, values=values, objs=objs, user_credential_refs=refs)


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


def app_container_port(example: Example) -> int:
    """The app container's port named `http` (the contract's port name)."""
    app = LocalPod(example.objs).app
    ports = [p for p in app.get("ports") or [] if p.get("name") == "http"]
    assert len(ports) == 1, f"{example.id}: app container ports {app.get('ports')}"
    return int(ports[0]["containerPort"])
