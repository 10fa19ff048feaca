"""values.schema.json: draft-07, closed objects except free-form maps by design, typed and
described leaves, enums, patterns and ranges where the domain has them."""
from __future__ import annotations

import fnmatch
import importlib.resources
import json
import re

import jsonschema
import pytest
import yaml

from tests.support import helm as h
from tests.support import paths

SCHEMA = json.loads((paths.CHART / "values.schema.json").read_text())

# Objects that are open by design (glob patterns over dotted paths; [] = list items).
FREE_FORM = [
    "global",                                  # shared with a parent chart's globals
    "service.extraOptions",  # a Kubernetes spec fragment
    "initContainers[]", "extraVolumes[]", "extraVolumeMounts[]", "extraDeploy[]",  # Kubernetes objects
    "extraEnvVars[].valueFrom", "ingress.defaultBackend",
    "autoscaling.behavior", "networkPolicy.egress.extra[]",  # Kubernetes spec fragments
    "*.seLinuxOptions", "*.windowsOptions", "*.appArmorProfile", "*.sysctls[]", "*.claims[]",
]
# Maps whose values must be strings (labels and annotations).
STRING_MAPS = [
    "podLabels", "podAnnotations", "commonLabels", "commonAnnotations", "secretLabels",
    "secretAnnotations", "configMapLabels", "configMapAnnotations", "serviceAccount.annotations",
    "ingress.annotations", "ingress.extraLabels",
]


def nodes(node=SCHEMA, path=""):
    """(dotted path, schema node) for every schema node reachable through properties/items."""
    yield path, node
    for key, child in node.get("properties", {}).items():
        yield from nodes(child, f"{path}.{key}" if path else key)
    if isinstance(node.get("items"), dict):
        yield from nodes(node["items"], f"{path}[]")
    for key in ("oneOf", "anyOf", "allOf"):
        for sub in node.get(key, []):
            yield from nodes(sub, path)


def at(path: str) -> dict:
    found = [n for p, n in nodes() if p == path and ("type" in n or "properties" in n)]
    assert found, f"no schema node for {path}"
    return found[0]


def types(node) -> list:
    t = node.get("type")
    return t if isinstance(t, list) else [t]


class TestSchemaShape:
    def test_should_be_a_valid_draft_07_schema(self):
        assert SCHEMA["$schema"] == "http://json-schema.org/draft-07/schema#"
        jsonschema.Draft7Validator.check_schema(SCHEMA)

    def test_should_close_every_object_that_is_not_free_form_by_design(self):
        open_objects = [p or "<root>" for p, n in nodes()
                        if "object" in types(n) and n.get("additionalProperties") is not False
                        and not isinstance(n.get("additionalProperties"), dict)
                        and not any(fnmatch.fnmatchcase(p, pattern) for pattern in FREE_FORM)]
        assert not open_objects, open_objects

    @pytest.mark.parametrize("path", STRING_MAPS)
    def test_should_only_accept_string_values_in_label_and_annotation_maps(self, path):
        assert at(path)["additionalProperties"] == {"type": "string"}

    def test_should_type_and_describe_every_property(self):
        missing = [p for p, n in nodes() if p and not p.endswith("[]") and "[]" not in p
                   and ("description" not in n or ("type" not in n and "oneOf" not in n))]
        assert not missing, missing

    def test_should_accept_the_charts_own_defaults(self):
        values = yaml.safe_load((paths.CHART / "values.yaml").read_text())
        jsonschema.Draft7Validator(SCHEMA).validate(values)


class TestDomainRules:
    @pytest.mark.parametrize("path", ["image.pullPolicy",
                                      "initContainerDependencies.waitForMySQL.image.pullPolicy"])
    def test_should_enumerate_pull_policies(self, path):
        assert set(at(path)["enum"]) == {"Always", "IfNotPresent", "Never"}

    def test_should_enumerate_service_types(self):
        assert set(at("service.type")["enum"]) == {"ClusterIP", "NodePort", "LoadBalancer"}

    def test_should_enumerate_log_levels(self):
        assert {"DEBUG", "INFO", "WARNING", "ERROR"} <= set(at("logLevel")["enum"])

    def test_should_enumerate_path_types(self):
        assert set(at("ingress.defaultPathType")["enum"]) == {"Exact", "Prefix", "ImplementationSpecific"}

    @pytest.mark.parametrize("path", ["image.digest", "initContainerDependencies.waitForMySQL.image.digest"])
    @pytest.mark.parametrize("value,ok", [
        ("", True), ("sha256:" + "0a" * 32, True), ("sha256:abc", False), ("sha256:" + "0A" * 32, False),
        ("md5:" + "0" * 32, False), ("sha256:" + "0" * 65, False)])
    def test_should_constrain_digests(self, path, value, ok):
        validator = jsonschema.Draft7Validator(at(path))
        assert validator.is_valid(value) is ok

    @pytest.mark.parametrize("path,low,high", [
        ("service.http.port", 1, 65535), ("service.http.targetPort", 1, 65535),
        ("database.port", 1, 65535), ("service.http.nodePort", 30000, 32767)])
    def test_should_constrain_port_ranges(self, path, low, high):
        validator = jsonschema.Draft7Validator(at(path))
        assert validator.is_valid(low) and validator.is_valid(high)
        assert not validator.is_valid(low - 1) and not validator.is_valid(high + 1)

    def test_should_allow_an_unset_node_port(self):
        assert jsonschema.Draft7Validator(at("service.http.nodePort")).is_valid(None)


def kubernetes_fields(definition: str, version: str = h.KUBE_VERSION) -> set[str]:
    """The fields of a Kubernetes type in the schema kubernetes-validate bundles for `version`."""
    path = (importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema"
            / f"v{version}-local-strict" / "_definitions.json")
    return set(json.loads(path.read_text())["$defs"][definition]["properties"])


RESOURCES = ["resources", "dbMigrationInitContainer.resources",
             "initContainerDependencies.waitForMySQL.resources"]


class TestKubernetesRules:
    @pytest.mark.parametrize("path,definition", [
        ("extraOptionsSpec", "io.k8s.api.apps.v1.DeploymentSpec"),
        ("extraOptionsTemplateSpec", "io.k8s.api.core.v1.PodSpec")])
    def test_should_admit_exactly_the_fields_of_the_kubernetes_version_the_chart_targets(self, path, definition):
        """A typo (`replica`) ran one replica: the keys are the Kubernetes type's fields, and this fails
        when the list in schema/values.schema.yaml drifts from the Kubernetes schema (new or gone fields)."""
        node = at(path)
        assert node["additionalProperties"] is False
        (pattern,) = node["patternProperties"]
        listed = re.fullmatch(r"\^\(([A-Za-z|]+)\)\$", pattern)
        assert listed, pattern
        assert set(listed[1].split("|")) == kubernetes_fields(definition)

    @pytest.mark.parametrize("path", RESOURCES)
    @pytest.mark.parametrize("value,ok", [
        ("100Mi", True), ("1Gi", True), ("1G", True), ("500m", True), ("0.5", True), (".5", True),
        ("2.", True), ("1e3", True), ("1E-3", True), ("+1", True), (2, True), (0.25, True), (0, True),
        ("1GB", False), ("1 Gi", False), ("1mi", False), ("Mi", False), ("", False), ("1.2.3", False),
        ("-1", False), (-1, False), ("0x10", False), ("1e", False)])
    def test_should_only_accept_kubernetes_quantities(self, path, value, ok):
        for bound in ("limits", "requests"):
            validator = jsonschema.Draft7Validator(at(f"{path}.{bound}")["additionalProperties"])
            assert validator.is_valid(value) is ok, (bound, value)

    @pytest.mark.parametrize("path,good,bad", [
        ("nameOverride", ["", "ai", "1ai", "agent-backend"], ["Ai", "a.b", "a_b", "-a", "a-"]),
        ("fullnameOverride", ["", "agent", "a-1"], ["1a", "a.b", "A", "a-", "a_b"]),
        ("serviceAccount.name", ["", "agent-sa", "sa.v1", "1sa"], ["Agent", "a_b", "a..b", "-a", "a b"])])
    def test_should_only_accept_names_kubernetes_accepts(self, path, good, bad):
        validator = jsonschema.Draft7Validator(at(path))
        assert [v for v in good if not validator.is_valid(v)] == []
        assert [v for v in bad if validator.is_valid(v)] == []
