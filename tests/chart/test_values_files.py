"""Every values file (values-examples/ and tests/chart/values/) renders, lints and validates."""
from __future__ import annotations

import subprocess

import pytest
import yaml

from tests.support.helm import TEST_VALUES, values_files
from tests.support import helm as h
from tests.support import k8s, paths

EXPECTED_EXAMPLES = {
    "minimal.yaml", "existing-secrets.yaml", "private-registry.yaml", "aws-alb-ingress.yaml",
    "nginx-ingress-tls.yaml", "production.yaml", "mcp-off.yaml",
}


class TestPinnedHelm:
    @pytest.mark.parametrize("name,version", [("helm4", "v4.1.4"), ("helm3", "v3.18.0")])
    def test_should_run_the_pinned_helm_versions(self, name, version):
        binary = h.helm_binary(name)
        out = subprocess.run([str(binary), "version", "--short"], capture_output=True, text=True,
                             env=h.helm_env(name), check=True).stdout
        assert out.startswith(version + "+"), out


class TestValuesFiles:
    def test_should_ship_every_documented_example(self):
        names = {p.name for p in paths.VALUES_EXAMPLES.glob("*.yaml")}
        assert EXPECTED_EXAMPLES <= names

    def test_should_comment_examples_for_humans(self):
        for path in paths.VALUES_EXAMPLES.glob("*.yaml"):
            first = path.read_text().lstrip().splitlines()[0]
            assert first.startswith("#"), f"{path.name} should open with a comment saying what it is for"

    def test_should_render_on_both_helms_with_valid_objects(self, values_file, helm):
        objs = h.render(files=[values_file], helm=helm)  # validates against k8s 1.29 and 1.34
        kinds = {o["kind"] for o in objs}
        # (and a ServiceAccount unless the pod uses an existing one: test_invariants.py)
        assert {"Deployment", "Service", "ConfigMap"} <= kinds, kinds

    def test_should_pass_helm_lint_strict(self, values_file, helm):
        out = h.lint(files=[values_file], helm=helm)
        assert "0 chart(s) failed" in out, out

    def test_should_render_the_same_for_the_oldest_validated_kubernetes(self, values_file):
        old = h.render(files=[values_file], kube_version=h.VALIDATE_VERSIONS[0] + ".0")
        assert old == h.render(files=[values_file])

    def test_should_render_identically_on_both_helms(self, values_file):
        assert h.render(files=[values_file], helm="helm4") == h.render(files=[values_file], helm="helm3")


class TestMaximalLintFile:
    """tests/chart/values/lint-maximal.yaml sets every key the chart has (zero-to-jupyterhub style)."""

    @staticmethod
    def leaf_paths(node, prefix=()):
        if isinstance(node, dict) and node:
            for key, value in node.items():
                yield from TestMaximalLintFile.leaf_paths(value, prefix + (key,))
        else:
            yield ".".join(prefix)

    def test_should_set_every_key_of_values_yaml(self):
        chart_values = yaml.safe_load((paths.CHART / "values.yaml").read_text())
        maximal = yaml.safe_load((TEST_VALUES / "lint-maximal.yaml").read_text())
        missing = [p for p in self.leaf_paths(chart_values)
                   if k8s.dig(maximal, *p.split("."), default=KeyError) is KeyError]
        assert not missing, f"lint-maximal.yaml does not set: {missing}"

    def test_should_render_every_template_of_the_chart(self):
        objs = h.render(files=[TEST_VALUES / "lint-maximal.yaml"])
        sources = {o.source for o in objs}
        templates = {f"templates/{p.name}" for p in (paths.CHART / "templates").glob("*.yaml")}
        # validate.yaml only ever stops a render; it never produces an object.
        assert templates - {"templates/validate.yaml"} <= sources, templates - sources

    def test_should_be_among_the_rendered_values_files(self):
        assert TEST_VALUES / "lint-maximal.yaml" in values_files()
