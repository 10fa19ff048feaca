"""The chart's credentials, once for every test: for each, the env var the containers read it from
and the values paths of its plain-text value and of the user's existing Secret (name and key).

The chart's own table is `agent-backend.secrets.credentials` (charts/agent-backend/templates/_secrets.tpl);
tests/chart/test_secrets.py checks that the two agree and that the env vars are the service's SECRET_VARS.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from tests.support import k8s


@dataclass(frozen=True)
class Credential:
    id: str          # short name for test ids and test Secret names: "database", "anthropic", ...
    env: str         # the env var; also its key in the chart Secret and the existing Secret's default key
    value_path: str  # dotted values path of the plain-text value
    name_path: str   # dotted values path of the existing Secret's name
    key_path: str    # dotted values path of the key in that Secret


CREDENTIALS: tuple[Credential, ...] = (
    Credential("database", "AGENT_BACKEND_DB_PASSWORD", "database.password",
               "database.existingSecretName", "database.existingSecretKey"),
    Credential("anthropic", "ANTHROPIC_API_KEY", "anthropicApiKey",
               "anthropicApiKeyExistingSecretName", "anthropicApiKeyExistingSecretKey"),
    Credential("langchain", "LANGCHAIN_API_KEY", "langchainApiKey",
               "langchainApiKeyExistingSecretName", "langchainApiKeyExistingSecretKey"),
)


def at(values: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted values path ("database.password"); None when a step is missing."""
    return k8s.dig(values, *path.split("."))
