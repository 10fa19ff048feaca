"""Invariants that must hold for every values file (examples and test-only files alike).

Each invariant lives here only; the per-feature modules test what specific values change."""
from __future__ import annotations

import json

import yaml

from tests.support import helm as h
from tests.support import k8s, paths


def sensitive_values(values_file) -> list[str]:
    """The plain-text secrets a values file sets (database/API keys, registry passwords)."""
    v = yaml.safe_load(values_file.read_text()) or {}
    found = [k8s.dig(v, "database", "password"), v.get("anthropicApiKey"), v.get("langchainApiKey")]
    found += [c.get("password") for c in k8s.dig(v, "global", "imageCredentials", default=[]) or []]
    return [s for s in found if isinstance(s, str) and s]


def helm_values(values_file) -> dict:
    """The values helm sees: the chart's values.yaml with the file merged over it."""
    defaults = yaml.safe_load((paths.CHART / "values.yaml").read_text()) or {}
    return k8s.merge(defaults, yaml.safe_load(values_file.read_text()) or {})


def http_container_port(objs) -> dict:
    """The app container's port named `http` (app_container insists there is exactly one)."""
    (port,) = [p for p in k8s.app_container(objs)["ports"] if p["name"] == "http"]
    return port


class TestInvariants:
    def test_should_select_only_its_own_pods(self, values_file):
        objs = h.render(files=[values_file])
        dep = objs.get("Deployment")
        pod_labels = dep["spec"]["template"]["metadata"]["labels"]
        for selector in (dep["spec"]["selector"]["matchLabels"], objs.get("Service")["spec"]["selector"]):
            assert selector.items() <= pod_labels.items()
            assert selector["app.kubernetes.io/instance"] == h.RELEASE
            assert "app.kubernetes.io/name" in selector

    def test_should_send_the_service_port_to_the_containers_http_port(self, values_file):
        objs = h.render(files=[values_file])
        name = k8s.dig(helm_values(values_file), "service", "http", "name")
        (main,) = [p for p in objs.get("Service")["spec"]["ports"] if p["name"] == name]
        assert main["targetPort"] in ("http", http_container_port(objs)["containerPort"]), main

    def test_should_probe_the_health_route_on_the_http_port(self, values_file):
        objs = h.render(files=[values_file])
        container = k8s.app_container(objs)
        http = http_container_port(objs)
        for name in ("startupProbe", "readinessProbe", "livenessProbe"):
            if name in container:
                # the service's health route; readiness may add ?ready=1 (503 while MySQL is down)
                assert container[name]["httpGet"]["path"].split("?")[0] == "/health"
                assert container[name]["httpGet"]["port"] in ("http", http["containerPort"])

    def test_should_carry_both_checksums(self, values_file):
        ann = h.render(files=[values_file]).get("Deployment")["spec"]["template"]["metadata"]["annotations"]
        assert len(ann["checksum/config"]) == 64
        assert len(ann["checksum/secret"]) == 64
        assert ann["checksum/config"] != ann["checksum/secret"]

    def test_should_use_a_service_account_it_renders_or_the_existing_one_named(self, values_file):
        objs = h.render(files=[values_file])
        name = k8s.pod(objs)["serviceAccountName"]
        sa = helm_values(values_file)["serviceAccount"]
        if sa["name"] and not sa["create"]:  # an existing ServiceAccount (IRSA, Workload Identity)
            assert name == sa["name"] and not objs.of_kind("ServiceAccount")
        else:
            assert objs.get("ServiceAccount", name)

    def test_should_keep_plain_secrets_inside_secret_objects(self, values_file):
        objs = h.render(files=[values_file])
        secrets = sensitive_values(values_file)
        payload = "\n".join(k8s.secret_payload(s) for s in objs.of_kind("Secret"))
        for secret in secrets:
            assert secret in payload
            for obj in objs:
                text = json.dumps(obj["metadata"] if obj["kind"] == "Secret" else obj, ensure_ascii=False)
                assert secret not in text, k8s.ident(obj)

    def test_should_reference_every_credential_from_a_secret(self, values_file):
        objs = h.render(files=[values_file])
        env = k8s.resolved_env(k8s.app_container(objs), objs)
        for var in ("AGENT_BACKEND_DB_PASSWORD", "ANTHROPIC_API_KEY", "LANGCHAIN_API_KEY"):
            assert "secret" in env[var], var
