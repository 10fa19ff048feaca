"""Configuration errors: a missing or malformed variable, or a port that cannot be listened on, stops
start-up (exit 2) with one message naming it, and never prints a secret's value nor the password in a
URL (`user:password@`)."""
from __future__ import annotations

import asyncio
import json
import socket
import subprocess

import pytest

from agent_backend.config import REQUIRED_ENV_VARS, ConfigError, load_config
from tests.support import paths
from tests.support.service import ServiceProcess, base_process_env, run_migrations

# The env contract, written out here so that a name dropped from the code fails this module.
REQUIRED = ("AGENT_BACKEND_DB_HOST", "AGENT_BACKEND_DB_NAME", "AGENT_BACKEND_DB_USER", "ANTHROPIC_API_KEY",
            "ANTHROPIC_MODEL", "SEQERA_PLATFORM_API_URL")


def test_the_required_list_is_the_contract():
    assert set(REQUIRED_ENV_VARS) == set(REQUIRED)


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
    return subprocess.run([str(paths.PYTHON), "-m", "agent_backend"], env={**base_process_env(tmp_path), **env},
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


# A URL's userinfo, right or wrongly written: neither "urluser" nor "S3CRETurlpw" may be printed.
USERINFO_VALUES = {
    "SEQERA_PLATFORM_API_URL": "https//urluser:S3CRETurlpw@platform/api",
    "SEQERA_MCP_URL": "ftp://urluser:S3CRETurlpw@mcp.example.org/mcp",
    "AGENT_BACKEND_PUBLIC_URL": "urluser:S3CRETurlpw@agent.example.org",
    "LANGSMITH_ENDPOINT": "https:/urluser:S3CRET url pw@smith",
    "AGENT_BACKEND_PORT": "urluser:S3CRETurlpw@8002",
    "AGENT_BACKEND_DB_PORT": "mysql://urluser:S3CRETurlpw@db:3306",
    "LOG_LEVEL": "debug://urluser:S3CRETurlpw@x",
}


@pytest.mark.parametrize("name", list(USERINFO_VALUES))
def test_error_shows_a_malformed_value_without_its_userinfo(env, name):
    with pytest.raises(ConfigError) as err:
        load_config({**env, name: USERINFO_VALUES[name]})
    msg = str(err.value)
    assert name in msg
    assert "urluser" not in msg.lower() and "s3cret" not in msg.lower(), msg
    assert "@" in msg  # the rest of the value is still shown, to tell what is wrong with it


def test_service_start_up_never_prints_a_url_password(env, tmp_path):
    bad = _start({**env, "SEQERA_PLATFORM_API_URL": USERINFO_VALUES["SEQERA_PLATFORM_API_URL"]}, tmp_path)
    assert bad.returncode == 2 and "SEQERA_PLATFORM_API_URL" in bad.stderr
    good = ServiceProcess({**env, "SEQERA_MCP_URL": "http://urluser:S3CRETurlpw@127.0.0.1:9/mcp"}, tmp_path).start()
    assert good.stop(grace=60) == 0  # SIGTERM: a clean exit
    assert "agent-backend started" in good.log()
    for out in (bad.stdout + bad.stderr, good.log()):
        assert "urluser" not in out and "S3CRETurlpw" not in out, out


async def test_port_in_use_is_one_critical_line_and_exit_2(env, sentinels, tmp_path):
    with socket.create_server(("0.0.0.0", 0)) as taken:
        port = taken.getsockname()[1]
        proc = ServiceProcess({**env, "AGENT_BACKEND_PORT": str(port)}, tmp_path, migrate=False)
        try:
            code = await asyncio.to_thread(proc.start(wait=False).wait, 60)
        finally:
            proc.kill()
    log = proc.log()
    records = [json.loads(line) for line in log.splitlines() if line.strip()]  # every line JSON: no traceback
    assert code == 2, log
    assert [r["level"] for r in records] == ["CRITICAL"], log  # never "started" (nor "stopped") first
    assert str(port) in records[0]["msg"] and "address already in use" in records[0]["msg"].lower(), log
    sentinels.assert_absent(log, "the start-up log")
