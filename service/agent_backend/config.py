"""Configuration: read once from the environment into a frozen, typed object.

Required (non-empty): the names in REQUIRED_ENV_VARS, the one list _get() enforces.
Optional (default): AGENT_BACKEND_PORT (8002), AGENT_BACKEND_DB_PORT (3306),
AGENT_BACKEND_DB_PASSWORD (empty), ENVIRONMENT ("production"), LOG_LEVEL ("INFO"),
SEQERA_PLATFORM_URL (the API URL without a trailing "/api"), SEQERA_MCP_URL (none),
AGENT_BACKEND_PUBLIC_URL (none), LANGCHAIN_API_KEY (empty: tracing off),
ANTHROPIC_BASE_URL (the SDK's default), LANGSMITH_ENDPOINT (https://api.smith.langchain.com).

Errors name the variable and never echo the value of a secret; other values are echoed with any
URL userinfo (`user:password@`) hidden.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Mapping
from urllib.parse import urlsplit

from . import __version__
from .logs import strip_userinfo

# The chart's env contract (ConfigMap + Secret): every one of these is read by load_config().
CHART_ENV_VARS: tuple[str, ...] = (
    "AGENT_BACKEND_PORT", "AGENT_BACKEND_DB_HOST", "AGENT_BACKEND_DB_PORT", "AGENT_BACKEND_DB_NAME",
    "AGENT_BACKEND_DB_USER", "AGENT_BACKEND_DB_PASSWORD", "ANTHROPIC_API_KEY", "ANTHROPIC_MODEL",
    "LANGCHAIN_API_KEY", "ENVIRONMENT", "LOG_LEVEL", "SEQERA_PLATFORM_URL", "SEQERA_PLATFORM_API_URL",
    "SEQERA_MCP_URL", "AGENT_BACKEND_PUBLIC_URL",
)
# Service-only optional overrides (never set by the chart).
OVERRIDE_ENV_VARS: tuple[str, ...] = ("ANTHROPIC_BASE_URL", "LANGSMITH_ENDPOINT")
ENV_VARS: tuple[str, ...] = CHART_ENV_VARS + OVERRIDE_ENV_VARS
# Start-up fails when one of these is unset or empty (_get() looks the rule up here).
REQUIRED_ENV_VARS: tuple[str, ...] = (
    "AGENT_BACKEND_DB_HOST", "AGENT_BACKEND_DB_NAME", "AGENT_BACKEND_DB_USER", "ANTHROPIC_API_KEY",
    "ANTHROPIC_MODEL", "SEQERA_PLATFORM_API_URL",
)
SECRET_VARS = frozenset({"AGENT_BACKEND_DB_PASSWORD", "ANTHROPIC_API_KEY", "LANGCHAIN_API_KEY"})
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEFAULT_LANGSMITH_ENDPOINT = "https://api.smith.langchain.com"


class ConfigError(Exception):
    """A missing or malformed environment variable. The message names it, never a secret value."""


@dataclasses.dataclass(frozen=True)
class DatabaseConfig:
    host: str
    port: int
    name: str
    user: str
    password: str = dataclasses.field(repr=False)
    connect_timeout: float = 3.0      # seconds to open one TCP connection
    acquire_timeout: float = 2.0      # seconds for the pool to hand over a connection (opening one if needed)
    busy_timeout: float = 10.0        # seconds to wait for a pooled connection to come free (then 503 busy)
    query_timeout: float = 5.0        # seconds for one query before the connection is dropped
    pool_max: int = 32

    def __repr__(self) -> str:  # never show the password
        return f"DatabaseConfig(host={self.host!r}, port={self.port}, name={self.name!r}, user={self.user!r})"


@dataclasses.dataclass(frozen=True)
class Config:
    port: int
    db: DatabaseConfig
    anthropic_api_key: str = dataclasses.field(repr=False)
    anthropic_model: str
    anthropic_base_url: str | None
    langchain_api_key: str = dataclasses.field(repr=False)
    langsmith_endpoint: str
    environment: str
    log_level: str
    platform_url: str
    platform_api_url: str
    mcp_url: str | None
    public_url: str | None
    # Tunables (no environment variables of their own; tests construct Config directly).
    version: str = __version__
    max_body_bytes: int = 1024 * 1024
    auth_cache_ttl: float = 60.0
    auth_timeout: float = 5.0
    tool_result_timeout: float = 300.0
    shutdown_grace: float = 20.0
    heartbeat_interval: float = 15.0   # SSE `: ping` comments and the runs' liveness mark in MySQL
    sse_ping_interval: float | None = None  # None: the same as heartbeat_interval
    stale_run_after: float = 30.0      # a run with no heartbeat for this long (and 4 intervals) is ended
    db_write_retry: float = 5.0        # seconds a run's writes (events, messages, usage) retry through an outage
    max_tokens: int = 8192
    max_steps: int = 25                # model calls per run (tool loop bound)
    llm_retries: int = 3               # extra attempts before the first byte
    llm_backoff: float = 0.5           # first backoff in seconds, doubled each retry
    llm_timeout: float = 600.0
    monthly_token_limit: int = 0       # 0 = no limit; otherwise 429 once input+output reach it
    mcp_connect_timeout: float = 5.0   # Seqera MCP: connect and initialize
    mcp_list_timeout: float = 10.0     # tools/list, every page
    mcp_call_timeout: float = 120.0    # one tools/call
    mcp_tools_ttl: float = 60.0        # a token's tool list is reused this long
    mcp_connections_per_run: int = 2   # a run's first connection and one reconnect
    mcp_retry_after: float = 15.0      # after an outage, runs go without MCP this long before trying again

    @property
    def tracing_enabled(self) -> bool:
        return bool(self.langchain_api_key)

    def __repr__(self) -> str:
        shown = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.repr}
        return "Config(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"


class _Env:
    """The environment as load_config() may see it: only names listed in ENV_VARS can be read."""

    def __init__(self, env: Mapping[str, str]):
        self._env = env

    def get(self, name: str, default: str | None = None) -> str | None:
        if name not in ENV_VARS:
            raise AssertionError(f"{name} is not declared in agent_backend.config.ENV_VARS")
        return self._env.get(name, default)


def _shown(name: str, raw: str) -> str:
    """A variable's value as an error may print it: a secret never, anything else without userinfo."""
    return "<redacted>" if name in SECRET_VARS else repr(strip_userinfo(raw))


def _get(env: _Env, name: str, default: str | None = None) -> str | None:
    value = env.get(name)
    if value is None or value.strip() == "":
        if name in REQUIRED_ENV_VARS:
            raise ConfigError(f"{name} is required but not set")
        return default
    return value.strip()


def _port(env: _Env, name: str, default: int) -> int:
    raw = _get(env, name)
    if raw is None:
        return default
    try:
        port = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer port number, got {_shown(name, raw)}") from None
    if not 1 <= port <= 65535:
        raise ConfigError(f"{name} must be between 1 and 65535, got {port}")
    return port


def _url(env: _Env, name: str, default: str | None = None) -> str | None:
    raw = _get(env, name, default)
    if raw is None:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{name} must be an http(s) URL, got {_shown(name, raw)}")
    return raw.rstrip("/")


def load_db_config(env: Mapping[str, str] | None = None) -> DatabaseConfig:
    """The database settings only (what the migration runner needs)."""
    env = _Env(os.environ if env is None else env)
    return DatabaseConfig(
        host=_get(env, "AGENT_BACKEND_DB_HOST"),
        port=_port(env, "AGENT_BACKEND_DB_PORT", 3306),
        name=_get(env, "AGENT_BACKEND_DB_NAME"),
        user=_get(env, "AGENT_BACKEND_DB_USER"),
        # A password may legitimately be empty (development servers); never stripped.
        password=env.get("AGENT_BACKEND_DB_PASSWORD", ""),
    )


def load_log_level(env: Mapping[str, str] | None = None) -> str:
    """LOG_LEVEL, upper-cased and checked against LOG_LEVELS (the service and the migration runner)."""
    log_level = (_get(_Env(os.environ if env is None else env), "LOG_LEVEL", "INFO") or "INFO").upper()
    if log_level not in LOG_LEVELS:
        raise ConfigError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {_shown('LOG_LEVEL', log_level)}")
    return log_level


def load_config(env: Mapping[str, str] | None = None) -> Config:
    """Everything the service needs, validated. Raises ConfigError naming the first bad variable."""
    raw = os.environ if env is None else env
    env = _Env(raw)
    db = load_db_config(raw)
    log_level = load_log_level(raw)
    api_url = _url(env, "SEQERA_PLATFORM_API_URL")
    default_platform = api_url[: -len("/api")] if api_url.endswith("/api") else api_url
    return Config(
        port=_port(env, "AGENT_BACKEND_PORT", 8002),
        db=db,
        anthropic_api_key=_get(env, "ANTHROPIC_API_KEY"),
        anthropic_model=_get(env, "ANTHROPIC_MODEL"),
        anthropic_base_url=_url(env, "ANTHROPIC_BASE_URL"),
        langchain_api_key=env.get("LANGCHAIN_API_KEY", "").strip(),
        langsmith_endpoint=_url(env, "LANGSMITH_ENDPOINT", DEFAULT_LANGSMITH_ENDPOINT),
        environment=_get(env, "ENVIRONMENT", "production"),
        log_level=log_level,
        platform_url=_url(env, "SEQERA_PLATFORM_URL", default_platform),
        platform_api_url=api_url,
        mcp_url=_url(env, "SEQERA_MCP_URL"),
        public_url=_url(env, "AGENT_BACKEND_PUBLIC_URL"),
    )
