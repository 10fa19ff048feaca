"""Mistakes in values stop helm before anything reaches a cluster, with a message naming the key.

The invalid cases are data: tests/chart/invalid/<case>.yaml is an overlay on
tests/chart/values/required.yaml that breaks one thing, and carries one or more
`# expect: <substring>` lines that must all appear in helm's error.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.support import helm as h
from tests.support import k8s, paths

REQUIRED = h.TEST_VALUES / "required.yaml"
CASES = sorted(h.INVALID_VALUES.glob("*.yaml"))
EXPECT = re.compile(r"^#\s*expect:\s*(.+?)\s*$", re.MULTILINE)


def expectations(case: Path) -> list[str]:
    return EXPECT.findall(case.read_text())


HELM4_MISSING = re.compile(r"at '(/?[^']*)': missing propert(?:y|ies) ((?:'[^']+'(?:, )?)+)")
HELM3_MISSING = re.compile(r"^- (\S+): (\S+) is required$", re.MULTILINE)


def dotted(section: str, *names: str) -> str:
    """'ingress', 'path' -> 'ingress.path'; the root section ('' or '(root)') adds nothing."""
    return ", ".join(f"{section}.{n}" if section not in ("", "(root)") else n for n in names)


def normalise(stderr: str) -> str:
    """helm 4 reports schema paths as JSON pointers ('/a/b/0'); helm 3 as dotted (a.b.0).
    Append the dotted form of every pointer so one expectation works for both. A required key
    that is missing (helm deletes a key set to null) is named by section and property
    (helm 4: "at '/ingress': missing property 'path'", helm 3: "ingress: path is required"):
    append its dotted path (ingress.path) too."""
    names = re.compile(r"'([^']+)'")
    stderr = HELM4_MISSING.sub(
        lambda m: f"{m[0]} ({dotted(m[1].removeprefix('/').replace('/', '.'), *names.findall(m[2]))})", stderr)
    stderr = HELM3_MISSING.sub(lambda m: f"{m[0]} ({dotted(m[1], m[2])})", stderr)
    return re.sub(r"'(/[^']*)'", lambda m: f"{m[0]} ({m[1][1:].replace('/', '.')})", stderr)


# Credentials in required.yaml and in the cases: an error message must never repeat them.
SECRETS_IN_BASE = ("db-password", "anthropic-key", "langchain-key", "sk-plain-text")


def assert_names_key(err: h.HelmError, case: Path):
    message = normalise(err.stderr + err.stdout)
    missing = [e for e in expectations(case) if e not in message]
    assert not missing, f"{case.name}: {missing} not in helm's message:\n{message}"
    leaked = [s for s in SECRETS_IN_BASE if s in message]
    assert not leaked, f"{case.name}: helm's message repeats a credential: {leaked}"


def case_id(case: Path) -> str:
    return case.stem


class TestInvalidValuesFiles:
    def test_should_have_cases_with_expectations(self):
        assert len(CASES) >= 30
        for case in CASES:
            assert expectations(case), f"{case.name} has no '# expect:' line"

    def test_should_start_from_a_valid_base(self, helm):
        h.render(files=[REQUIRED], helm=helm)

    @pytest.mark.parametrize("case", CASES, ids=case_id)
    def test_should_stop_helm_template_naming_the_key(self, case, helm):
        with pytest.raises(h.HelmError) as e:
            h.render(files=[REQUIRED, case], helm=helm)
        assert_names_key(e.value, case)

    @pytest.mark.parametrize("case", CASES, ids=case_id)
    def test_should_stop_helm_install(self, case):
        # a client-side dry-run install (helm 4 needs no cluster for it)
        with pytest.raises(h.HelmError) as e:
            h.notes(files=[REQUIRED, case])
        assert_names_key(e.value, case)

    @pytest.mark.parametrize("case", CASES, ids=case_id)
    def test_should_stop_helm_lint(self, case):
        with pytest.raises(h.HelmError) as e:
            h.lint(files=[REQUIRED, case])
        assert_names_key(e.value, case)


class TestRequirementChecks:
    """Cross-field rules (the schema cannot express them) live in one template and name the key."""

    def test_should_keep_checks_in_one_template(self):
        templates = [p for p in (paths.CHART / "templates").rglob("*") if p.is_file()]
        with_fail = [p.name for p in templates if re.search(r"\bfail\b", p.read_text())]
        assert len(with_fail) == 1, with_fail

    @pytest.mark.parametrize("service_type", ["NodePort", "LoadBalancer"])
    def test_should_accept_a_node_port_where_the_type_allows_it(self, service_type):
        objs = h.render(k8s.values({"service": {"type": service_type, "http": {"nodePort": 30080}}}))
        assert objs.get("Service")["spec"]["ports"][0]["nodePort"] == 30080

    def test_should_accept_tcp_and_udp_on_one_node_port(self):
        """Kubernetes keys node ports (and ports) on number and protocol, so DNS-style pairs are valid."""
        objs = h.render(k8s.values({"service": {"type": "NodePort", "extraServices": [
            {"name": "dns-tcp", "port": 53, "nodePort": 30053},
            {"name": "dns-udp", "port": 53, "protocol": "UDP", "nodePort": 30053}]}}))
        ports = {(p["nodePort"], p["protocol"]) for p in objs.get("Service")["spec"]["ports"] if "nodePort" in p}
        assert {(30053, "TCP"), (30053, "UDP")} <= ports

    def test_should_let_your_init_container_be_wait_for_mysql_when_the_chart_one_is_off(self):
        objs = h.render(k8s.values({
            "initContainerDependencies": {"waitForMySQL": {"enabled": False}},
            "initContainers": [{"name": "wait-for-mysql", "image": "registry.example.com/tools/wait-for-db:1.2"}]}))
        names = [c["name"] for c in k8s.pod(objs)["initContainers"]]
        assert names == ["wait-for-mysql", "db-migration"]

    @pytest.mark.parametrize("key", ["host", "name", "username"])
    def test_should_fail_on_null_database_settings(self, key):
        with pytest.raises(h.HelmError) as e:
            h.render(k8s.values({"database": {key: None}}))
        assert f"database.{key}" in normalise(e.value.stderr)

    @pytest.mark.parametrize("helm_name", h.HELMS)
    def test_should_name_the_key_on_the_first_line_of_the_error(self, helm_name):
        """Where a terminal or CI log shows one line, it is the actionable one."""
        with pytest.raises(h.HelmError) as e:
            h.render(k8s.values({"database": {"host": ""}}), helm=helm_name)
        first = e.value.stderr.strip().splitlines()[0]
        assert first.startswith("Error:") and "set database.host" in first, e.value.stderr

    @pytest.mark.parametrize("mcp_domain", ["", "{{ if false }}mcp.example.com{{ end }}"],
                             ids=["empty", "template-renders-empty"])
    def test_should_accept_an_empty_mcp_domain_as_seqera_mcp_off(self, mcp_domain, helm):
        values = k8s.values({"global": {"mcpDomain": mcp_domain}})
        objs = h.render(values, helm=helm)
        assert "SEQERA_MCP_URL" not in objs.get("ConfigMap")["data"]
        assert "0 chart(s) failed" in h.lint(values, helm=helm)

    @pytest.mark.parametrize("host", ["mysql", "mysql.db.svc.cluster.local.", "10.0.0.5", "fd00::5",
                                      "::ffff:10.0.0.5", "my_db.internal"])
    def test_should_accept_a_host_name_or_ip_address_as_database_host(self, host):
        objs = h.render(k8s.values({"database": {"host": host}}))
        assert objs.get("ConfigMap")["data"]["AGENT_BACKEND_DB_HOST"] == host

    @pytest.mark.parametrize("host", ["[fd00::5]:3306", "mysql.db.svc/agent_backend", "agent@mysql",
                                      "tcp://mysql", "mysql db"])
    def test_should_refuse_a_database_host_that_is_not_a_bare_host(self, host):
        with pytest.raises(h.HelmError) as e:
            h.render(k8s.values({"database": {"host": host}}))
        assert "database.host must be a bare host name" in e.value.stderr

    def test_should_report_nothing_for_the_required_values(self):
        assert "0 chart(s) failed" in h.lint(files=[REQUIRED])


def documented_keys(schema: dict, values: dict, prefix: str = ""):
    """(key, default) for every key of values.yaml down to the depth the values table documents it
    (a section's children, not the inside of an object documented as one row, like resources)."""
    for key, default in values.items():
        node = schema["properties"][key]
        yield prefix + key, default
        if isinstance(default, dict) and "properties" in node and not node.get("x-doc-leaf"):
            yield from documented_keys(node, default, f"{prefix}{key}.")


SOURCE_SCHEMA = yaml.safe_load((paths.ROOT / "schema" / "values.schema.yaml").read_text())
CHART_VALUES = yaml.safe_load((paths.CHART / "values.yaml").read_text())
KEYS = dict(documented_keys(SOURCE_SCHEMA, CHART_VALUES))
SECTIONS = sorted(k for k, default in KEYS.items() if isinstance(default, dict))
LEAVES = sorted(k for k, default in KEYS.items() if default is not None and not isinstance(default, dict))
GO_ERRORS = ("nil pointer", "executing", "error calling", "wrong type")


def set_null(*keys: str) -> dict:
    """Values that set each dotted key to null (helm deletes such a key before anything else)."""
    out: dict = {}
    for key in keys:
        *parents, last = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = None
    return out


class TestNullValues:
    """A key set to null (`podSecurityContext: null`, `--set ingress.path=null`) is refused by name
    before any template runs: never a nil pointer in a template or an error inside NOTES."""

    def test_should_know_the_sections_and_leaves(self):
        assert {"podSecurityContext", "startupProbe.httpGet", "initContainerDependencies.waitForMySQL.image",
                "ingress", "service.http", "global"} <= set(SECTIONS)
        assert {"ingress.path", "image.tag", "database.host"} <= set(LEAVES)

    @pytest.mark.parametrize("key", SECTIONS)
    def test_should_refuse_a_null_section_naming_it(self, key, helm):
        # the Ingress on, so that its keys are used
        values = k8s.merge(k8s.values({"ingress": {"enabled": True}}), set_null(key))
        with pytest.raises(h.HelmError) as e:
            h.render(values, helm=helm)
        message = normalise(e.value.stderr)
        assert key in message and not any(g in message for g in GO_ERRORS), message

    def test_should_refuse_every_null_leaf_naming_each(self, helm):
        with pytest.raises(h.HelmError) as e:
            h.render(k8s.merge(k8s.values({"ingress": {"enabled": True}}), set_null(*LEAVES)), helm=helm)
        message = normalise(e.value.stderr)
        assert not any(g in message for g in GO_ERRORS), message
        assert not [k for k in LEAVES if k not in message], message

    @pytest.mark.parametrize("key", ["ingress.path", "podSecurityContext"])
    def test_should_refuse_a_null_set_on_the_command_line(self, key, helm):
        with pytest.raises(h.HelmError) as e:
            h.render(k8s.values({"ingress": {"enabled": True}}), helm=helm, set_=[f"{key}=null"])
        assert key in normalise(e.value.stderr), e.value.stderr

    def test_should_keep_null_as_the_way_to_drop_a_default_resource(self):
        """Inside an object documented as one row (resources), null still removes a default key."""
        objs = h.render(k8s.values(set_null("dbMigrationInitContainer.resources.requests")))
        assert "requests" not in k8s.migration_container(objs)["resources"]


class TestReleaseName:
    """Every object is named after the release, and a Service name must be a DNS label. A release name
    that cannot give one (a dot, a leading digit) is refused rather than rewritten: a sanitised name
    would differ from the release name a user types into kubectl, and two releases (`a.b`, `a-b`)
    would claim the same objects. fullnameOverride is the way to keep such a release name."""

    @pytest.mark.parametrize("release", ["agent.prod", "1st"])
    def test_should_refuse_a_release_name_that_cannot_name_a_service(self, release, helm):
        with pytest.raises(h.HelmError) as e:
            h.render(k8s.values(), release=release, helm=helm)
        assert f'the release name "{release}"' in e.value.stderr and "fullnameOverride" in e.value.stderr

    def test_should_stop_helm_install_too(self):
        with pytest.raises(h.HelmError) as e:
            h.notes(k8s.values(), release="agent.prod")
        assert "fullnameOverride" in e.value.stderr

    def test_should_accept_such_a_release_name_with_fullname_override(self, helm):
        objs = h.render(k8s.values({"fullnameOverride": "agent-prod"}), release="agent.prod", helm=helm)
        service = objs.get("Service")
        assert service["metadata"]["name"] == "agent-prod"
        assert service["spec"]["selector"]["app.kubernetes.io/instance"] == "agent.prod"
