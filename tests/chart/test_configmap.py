"""The ConfigMap and the env contract with the service (the chart README's "Environment contract")."""
from __future__ import annotations

import pytest

from tests.support import helm as h
from tests.support import k8s, paths

CONFIG_KEYS = {
    "AGENT_BACKEND_PORT", "AGENT_BACKEND_DB_HOST", "AGENT_BACKEND_DB_PORT", "AGENT_BACKEND_DB_NAME",
    "AGENT_BACKEND_DB_USER", "ANTHROPIC_MODEL", "ENVIRONMENT", "LOG_LEVEL", "SEQERA_PLATFORM_URL",
    "SEQERA_PLATFORM_API_URL", "SEQERA_MCP_URL", "AGENT_BACKEND_PUBLIC_URL",
}
SECRET_KEYS = {"AGENT_BACKEND_DB_PASSWORD", "ANTHROPIC_API_KEY", "LANGCHAIN_API_KEY"}
MCP_OFF_BY_TEMPLATE = h.TEST_VALUES / "mcp-off-by-template.yaml"


def configmap(objs):
    return objs.get("ConfigMap")


class TestConfigMapContents:
    def test_should_hold_exactly_the_contract_keys(self):
        assert set(configmap(h.render(k8s.values()))["data"]) == CONFIG_KEYS

    def test_should_render_the_documented_defaults(self):
        data = configmap(h.render(k8s.values()))["data"]
        assert data == {
            "AGENT_BACKEND_PORT": "8002",
            "AGENT_BACKEND_DB_HOST": "mysql.db.svc",
            "AGENT_BACKEND_DB_PORT": "3306",
            "AGENT_BACKEND_DB_NAME": "agent_backend",
            "AGENT_BACKEND_DB_USER": "agent",
            "ANTHROPIC_MODEL": "claude-sonnet-4-20250514",
            "ENVIRONMENT": "production",
            "LOG_LEVEL": "INFO",
            "SEQERA_PLATFORM_URL": "https://example.com",
            "SEQERA_PLATFORM_API_URL": "https://example.com/api",
            "SEQERA_MCP_URL": "https://mcp.example.com/mcp",
            "AGENT_BACKEND_PUBLIC_URL": "https://ai.example.com",
        }

    def test_should_follow_the_values(self):
        data = configmap(h.render(k8s.values({
            "global": {"platformExternalDomain": "tower.acme.io",
                       "mcpDomain": "{{ printf \"tools.%s\" .Values.global.platformExternalDomain }}",
                       "agentBackendDomain": "agents.acme.io"},
            "database": {"port": 3307},
            "service": {"http": {"targetPort": 9000}},
            "anthropicModel": "claude-test", "environment": "development", "logLevel": "DEBUG",
        })))["data"]
        assert data["SEQERA_PLATFORM_URL"] == "https://tower.acme.io"
        assert data["SEQERA_PLATFORM_API_URL"] == "https://tower.acme.io/api"
        assert data["SEQERA_MCP_URL"] == "https://tools.tower.acme.io/mcp"
        assert data["AGENT_BACKEND_PUBLIC_URL"] == "https://agents.acme.io"
        assert data["AGENT_BACKEND_DB_PORT"] == "3307"
        assert data["AGENT_BACKEND_PORT"] == "9000"
        assert (data["ANTHROPIC_MODEL"], data["ENVIRONMENT"], data["LOG_LEVEL"]) == (
            "claude-test", "development", "DEBUG")

    def test_should_hold_no_sensitive_keys(self):
        assert not set(configmap(h.render(k8s.values()))["data"]) & SECRET_KEYS


class TestAppContainerEnv:
    def test_should_see_every_contract_variable(self):
        objs = h.render(k8s.values())
        env = k8s.resolved_env(k8s.app_container(objs), objs)
        assert CONFIG_KEYS | SECRET_KEYS <= set(env)
        data = configmap(objs)["data"]
        for key in CONFIG_KEYS:
            assert env[key].get("value") == data[key], key
        for key in SECRET_KEYS:
            assert "secret" in env[key], key

    def test_should_listen_where_the_service_sends_traffic(self):
        objs = h.render(k8s.values())
        env = k8s.resolved_env(k8s.app_container(objs), objs)
        http = [p for p in k8s.app_container(objs)["ports"] if p["name"] == "http"][0]
        assert env["AGENT_BACKEND_PORT"]["value"] == str(http["containerPort"]) == "8002"

    def test_should_not_set_service_only_overrides(self):
        objs = h.render(k8s.values())
        env = k8s.resolved_env(k8s.app_container(objs), objs)
        assert "ANTHROPIC_BASE_URL" not in env
        assert "LANGSMITH_ENDPOINT" not in env


class TestSeqeraMcpSwitch:
    """An empty global.mcpDomain turns Seqera MCP off: SEQERA_MCP_URL is then not set at all."""

    OFF = {
        "empty": {"values": k8s.values({"global": {"mcpDomain": ""}})},
        "template-renders-empty": {"files": [MCP_OFF_BY_TEMPLATE]},
        "example": {"files": [paths.VALUES_EXAMPLES / "mcp-off.yaml"]},
    }

    @pytest.mark.parametrize("case", OFF)
    def test_should_leave_the_mcp_url_out_when_off(self, case):
        objs = h.render(**self.OFF[case])
        assert set(configmap(objs)["data"]) == CONFIG_KEYS - {"SEQERA_MCP_URL"}
        assert "SEQERA_MCP_URL" not in k8s.resolved_env(k8s.app_container(objs), objs)

    def test_should_set_the_mcp_url_when_the_template_renders_a_host(self):
        objs = h.render({"global": {"mcpEnabled": True}}, files=[MCP_OFF_BY_TEMPLATE])
        assert configmap(objs)["data"]["SEQERA_MCP_URL"] == "https://mcp.example.com/mcp"
