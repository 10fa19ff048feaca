"""The render()/lint()/notes() helper itself: the chart tests are only as good as it is."""
from __future__ import annotations

import subprocess

import pytest

from tests.support import helm as h
from tests.support import k8s, paths


class TestRender:
    def test_should_parse_a_fresh_copy_on_every_call(self):
        first = h.render(k8s.values())
        first.get("Deployment")["spec"]["replicas"] = 99
        first.clear()
        again = h.render(k8s.values())
        assert again.get("Deployment")["spec"].get("replicas") != 99

    def test_should_run_helm_once_per_distinct_input(self, monkeypatch):
        calls = []
        real_run = subprocess.run

        def counting_run(cmd, *a, **kw):
            calls.append(cmd)
            return real_run(cmd, *a, **kw)

        monkeypatch.setattr(h.subprocess, "run", counting_run)
        marker = {"podAnnotations": {"cache-probe": "one"}}
        h.render(k8s.values(marker))
        h.render(k8s.values(marker))
        h.render(k8s.values(marker), show_only="templates/deployment.yaml")
        assert len(calls) == 1
        h.render(k8s.values({"podAnnotations": {"cache-probe": "two"}}))
        assert len(calls) == 2

    def test_should_pin_release_namespace_and_kube_version(self, monkeypatch):
        calls = []
        real_run = subprocess.run
        monkeypatch.setattr(h.subprocess, "run", lambda cmd, *a, **kw: calls.append(cmd) or real_run(cmd, *a, **kw))
        h.render(k8s.values({"podAnnotations": {"pin-probe": "x"}}))
        cmd = calls[0]
        assert cmd[1:4] == ["template", h.RELEASE, str(paths.CHART)]
        assert cmd[cmd.index("--namespace") + 1] == h.NAMESPACE
        assert cmd[cmd.index("--kube-version") + 1] == h.KUBE_VERSION

    def test_should_filter_by_template(self):
        objs = h.render(k8s.values(), show_only="templates/deployment.yaml")
        assert [o["kind"] for o in objs] == ["Deployment"]
        with pytest.raises(AssertionError, match="no objects rendered"):
            h.render(k8s.values(), show_only="templates/ingress.yaml")

    def test_should_apply_files_then_values_then_set(self):
        objs = h.render({"logLevel": "ERROR"}, files=[h.TEST_VALUES / "required.yaml"],
                        set_={"environment": "staging"})
        data = objs.get("ConfigMap")["data"]
        assert (data["LOG_LEVEL"], data["ENVIRONMENT"]) == ("ERROR", "staging")

    def test_should_carry_helms_stderr(self):
        with pytest.raises(h.HelmError) as e:
            h.render({})
        assert "database.host" in e.value.stderr
        assert e.value.returncode != 0

    def test_should_reject_objects_kubernetes_would_reject(self):
        with pytest.raises(h.ManifestInvalid, match=r"Service/s \[k8s 1\.29\]"):
            h.render(k8s.values({"extraDeploy": [
                {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                 "spec": {"ports": [{"port": "not-a-number"}]}}]}))

    def test_should_validate_against_both_versions(self):
        assert h.VALIDATE_VERSIONS == ("1.29", "1.34")
        # autoscaling/v2beta2 left Kubernetes in 1.26: no schema for it in either version.
        with pytest.raises(h.ManifestInvalid, match="no schema"):
            h.validate_objects([{"apiVersion": "autoscaling/v2beta2", "kind": "HorizontalPodAutoscaler",
                                 "metadata": {"name": "x"}, "spec": {}}])


class TestHelmBinaries:
    def test_should_fail_hard_when_a_binary_is_missing(self, monkeypatch, tmp_path):
        monkeypatch.setitem(paths.HELM_BINARIES, "helm4", tmp_path / "no-helm")
        with pytest.raises(RuntimeError, match="run ci/setup.sh"):
            h.render(k8s.values({"podAnnotations": {"missing-binary-probe": "x"}}))

    def test_should_keep_helm_homes_out_of_the_home_directory(self):
        env = h.helm_env("helm4")
        for var in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
            assert env[var].startswith(str(paths.HELM_HOME)), env[var]


class TestLintAndNotes:
    def test_should_lint_strictly(self, monkeypatch):
        calls = []
        real_run = subprocess.run
        monkeypatch.setattr(h.subprocess, "run", lambda cmd, *a, **kw: calls.append(cmd) or real_run(cmd, *a, **kw))
        out = h.lint(k8s.values({"podAnnotations": {"lint-probe": "x"}}))
        assert "0 chart(s) failed" in out
        assert "--strict" in calls[0]

    def test_should_return_the_install_notes(self):
        assert "/health" in h.notes(k8s.values())
