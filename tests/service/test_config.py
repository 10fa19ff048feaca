"""Configuration errors: a missing or malformed variable stops start-up with a message naming it, and
never prints a secret's value."""
from __future__ import annotations

import subprocess

import pytest

from agent_backend.config import REQUIRED_ENV_VARS, ConfigError, load_config
from tests.service.harness import PYTHON, base_process_env, run_migrations

MALFORMED = {
    "AGENT_BACKEND_PORT": ["http", "0", "70000", "80.5"],
    "AGENT_BACKEND_DB_PORT": ["mysql", "-1", "65536"],
    "LOG_LEVEL": ["LOUD"],
    "SEQERA_PLATFORM_API_URL": ["platform.example.org/api", "ftp://platform.example.org/api"],
    "SEQERA_PLATFORM_URL": ["not a url"],
    "SEQERA_MCP_URL": ["mcp.example.org"],
    "AGENT_BACKEND_PUBLIC_URL": ["://x"],
    "ANTHROPIC_BASE_URL": ["localhost:8900"],
    "LANGSMITH_ENDPOINT": ["smith"],
}


def _cases():
    for name, values in MALFORMED.items():
        for v in values:
            yield pytest.param(name, v, id=f"{name}={v}")


def test_full_environment_loads_into_one_typed_object(env, sentinels):
    cfg = load_config(env)
    assert cfg.db.port == int(env["AGENT_BACKEND_DB_PORT"])
    assert cfg.port == int(env["AGENT_BACKEND_PORT"])
    assert cfg.anthropic_model == env["ANTHROPIC_MODEL"]
    assert cfg.platform_api_url == env["SEQERA_PLATFORM_API_URL"]
    assert cfg.anthropic_base_url == env["ANTHROPIC_BASE_URL"]
    assert cfg.langsmith_endpoint == env["LANGSMITH_ENDPOINT"]
    sentinels.assert_absent(repr(cfg), "repr(Config)")
    sentinels.assert_absent(str(cfg), "str(Config)")


@pytest.mark.parametrize("name", REQUIRED_ENV_VARS)
@pytest.mark.parametrize("how", ["unset", "blank"])
def test_missing_variable_is_named(env, sentinels, name, how):
    e = dict(env)
    if how == "unset":
        del e[name]
    else:
        e[name] = "   "
    with pytest.raises(ConfigError) as err:
        load_config(e)
    assert name in str(err.value)
    sentinels.assert_absent(str(err.value), "the config error")


def test_only_the_required_variables_are_required(env):
    cfg = load_config({name: env[name] for name in REQUIRED_ENV_VARS})
    assert (cfg.port, cfg.db.port, cfg.log_level, cfg.tracing_enabled) == (8002, 3306, "INFO", False)


@pytest.mark.parametrize("name, value", list(_cases()))
def test_malformed_variable_is_named(env, sentinels, name, value):
    with pytest.raises(ConfigError) as err:
        load_config({**env, name: value})
    assert name in str(err.value)
    sentinels.assert_absent(str(err.value), "the config error")


def test_tracing_is_off_without_langchain_key(env):
    assert load_config(env).tracing_enabled
    assert not load_config({**env, "LANGCHAIN_API_KEY": ""}).tracing_enabled


def _start(env: dict[str, str], tmp_path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "agent_backend"], env={**base_process_env(tmp_path), **env},
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("name", ["ANTHROPIC_API_KEY", "AGENT_BACKEND_DB_HOST", "SEQERA_PLATFORM_API_URL"])
def test_service_refuses_to_start_without_variable(env, sentinels, tmp_path, name):
    e = dict(env)
    del e[name]
    r = _start(e, tmp_path)
    assert r.returncode != 0
    assert name in r.stderr + r.stdout
    sentinels.assert_absent(r.stdout + r.stderr, "start-up output")


@pytest.mark.parametrize("name, value", [("AGENT_BACKEND_PORT", "eighty"), ("LOG_LEVEL", "chatty"),
                                         ("SEQERA_PLATFORM_API_URL", "platform")])
def test_service_refuses_to_start_with_malformed_variable(env, sentinels, tmp_path, name, value):
    r = _start({**env, name: value}, tmp_path)
    assert r.returncode != 0
    assert name in r.stderr + r.stdout
    sentinels.assert_absent(r.stdout + r.stderr, "start-up output")
    # One clear message, not a Python traceback.
    assert "Traceback" not in r.stderr


def test_migration_runner_refuses_a_malformed_log_level(env, sentinels, tmp_path):
    r = run_migrations({**env, "LOG_LEVEL": "chatty"}, tmp_path)
    assert r.returncode == 2
    assert "LOG_LEVEL" in r.stderr and "'CHATTY'" in r.stderr
    sentinels.assert_absent(r.stdout + r.stderr, "migration output")
    assert "Traceback" not in r.stderr
