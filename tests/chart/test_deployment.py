"""The Deployment's pod: command/args, extra env, volumes, /tmp, resources, service account, and
extraOptionsSpec / extraOptionsTemplateSpec merged without breaking what the chart owns."""
from __future__ import annotations

import pytest

from tests.support import helm as h
from tests.support import k8s, paths


def spec(objs):
    return objs.get("Deployment")["spec"]


class TestAppContainer:
    def test_should_use_the_image_default_command(self):
        c = k8s.app_container(h.render(k8s.values()))
        assert "command" not in c and "args" not in c

    def test_should_override_command_and_args(self):
        c = k8s.app_container(h.render(k8s.values({"command": ["python", "-X", "dev"],
                                                   "args": ["-m", "agent_backend"]})))
        assert c["command"] == ["python", "-X", "dev"]
        assert c["args"] == ["-m", "agent_backend"]

    def test_should_expose_the_http_port(self):
        ports = k8s.app_container(h.render(k8s.values()))["ports"]
        assert [(p["name"], p["containerPort"], p.get("protocol", "TCP")) for p in ports] == [
            ("http", 8002, "TCP")]

    def test_should_apply_resources(self):
        resources = {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}}
        c = k8s.app_container(h.render(k8s.values({"resources": resources})))
        assert c["resources"] == resources


class TestExtraEnv:
    def test_should_append_extra_env_vars(self):
        objs = h.render(k8s.values({"extraEnvVars": [
            {"name": "TZ", "value": "UTC"},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}))
        env = k8s.env(k8s.app_container(objs))
        assert env["TZ"] == {"name": "TZ", "value": "UTC"}
        assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"

    def test_should_load_extra_configmaps_and_secrets(self):
        c = k8s.app_container(h.render(k8s.values({"extraEnvVarsCMs": ["cm-a", "cm-b"],
                                                   "extraEnvVarsSecrets": ["sec-a"]})))
        env_from = c.get("envFrom", [])
        assert {"configMapRef": {"name": "cm-a"}} in env_from
        assert {"configMapRef": {"name": "cm-b"}} in env_from
        assert {"secretRef": {"name": "sec-a"}} in env_from


class TestVolumes:
    def test_should_mount_a_writable_tmp(self):
        objs = h.render(k8s.values())
        mounts = {m["mountPath"]: m["name"] for m in k8s.app_container(objs).get("volumeMounts", [])}
        assert "/tmp" in mounts
        volumes = {v["name"]: v for v in k8s.pod(objs)["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]]

    def test_should_add_extra_volumes_and_mounts_as_templates(self):
        objs = h.render(k8s.values({
            "extraVolumes": [{"name": "cfg", "configMap": {"name": "{{ .Release.Name }}-extra"}}],
            "extraVolumeMounts": [{"name": "cfg", "mountPath": "/etc/{{ .Values.environment }}",
                                   "readOnly": True}],
        }))
        volumes = {v["name"]: v for v in k8s.pod(objs)["volumes"]}
        assert volumes["cfg"]["configMap"]["name"] == f"{h.RELEASE}-extra"
        mounts = {m["name"]: m for m in k8s.app_container(objs)["volumeMounts"]}
        assert mounts["cfg"]["mountPath"] == "/etc/production"
        assert "/tmp" in [m["mountPath"] for m in mounts.values()]


class TestServiceAccount:
    def test_should_create_and_use_a_service_account(self):
        objs = h.render(k8s.values())
        sa = objs.get("ServiceAccount")
        assert k8s.pod(objs)["serviceAccountName"] == sa["metadata"]["name"]
        assert sa["automountServiceAccountToken"] is False

    def test_should_use_an_existing_service_account_it_does_not_render(self):
        """As upstream 0.1.4: a name alone means a ServiceAccount made beforehand (IRSA, Workload Identity)."""
        objs = h.render(k8s.values({"serviceAccount": {"name": "agent-irsa",
                                                       "imagePullSecretNames": ["team-registry"]}}))
        assert not objs.of_kind("ServiceAccount")
        assert k8s.pod(objs)["serviceAccountName"] == "agent-irsa"
        assert {"name": "team-registry"} in k8s.pod(objs)["imagePullSecrets"]

    def test_should_create_one_named_after_the_release_without_a_name(self):
        for create in (False, True):
            objs = h.render(k8s.values({"serviceAccount": {"create": create}}))
            sa = objs.get("ServiceAccount")
            assert sa["metadata"]["name"] == objs.get("Deployment")["metadata"]["name"]
            assert k8s.pod(objs)["serviceAccountName"] == sa["metadata"]["name"]

    def test_should_apply_name_annotations_and_automount(self):
        objs = h.render(k8s.values({"serviceAccount": {
            "name": "agent-sa", "create": True,
            "annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/x"},
            "automountServiceAccountToken": False}}))
        sa = objs.get("ServiceAccount", "agent-sa")
        assert k8s.annotations(sa)["eks.amazonaws.com/role-arn"] == "arn:aws:iam::1:role/x"
        assert sa["automountServiceAccountToken"] is False
        assert k8s.pod(objs)["serviceAccountName"] == "agent-sa"
        assert k8s.pod(objs).get("automountServiceAccountToken", False) is False


class TestExtraOptionsSpec:
    def test_should_merge_replicas_and_strategy_as_templates(self):
        objs = h.render(k8s.values({"extraOptionsSpec": {
            "replicas": 3, "revisionHistoryLimit": 5,
            "strategy": {"type": '{{ if eq .Values.environment "production" }}RollingUpdate{{ end }}',
                         "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}}}))
        s = spec(objs)
        assert s["replicas"] == 3
        assert s["revisionHistoryLimit"] == 5
        assert s["strategy"]["type"] == "RollingUpdate"
        assert s["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
        assert s["selector"]["matchLabels"]["app.kubernetes.io/instance"] == h.RELEASE

    def test_should_merge_pod_options_as_templates(self):
        objs = h.render(k8s.values({"extraOptionsTemplateSpec": {
            "nodeSelector": {"pool": "{{ .Values.environment }}"},
            "tolerations": [{"key": "ai", "operator": "Exists", "effect": "NoSchedule"}],
            "priorityClassName": "high"}}))
        p = k8s.pod(objs)
        assert p["nodeSelector"] == {"pool": "production"}
        assert p["tolerations"][0]["key"] == "ai"
        assert p["priorityClassName"] == "high"
        # chart-owned fields survive
        assert k8s.app_container(objs)
        assert p["securityContext"]["fsGroup"] == 101

    def test_should_render_the_production_example(self):
        objs = h.render(files=[paths.VALUES_EXAMPLES / "production.yaml"], release="prod")
        s = spec(objs)
        assert s["replicas"] == 3
        terms = k8s.pod(objs)["affinity"]["podAntiAffinity"][
            "preferredDuringSchedulingIgnoredDuringExecution"]
        assert terms[0]["podAffinityTerm"]["labelSelector"]["matchLabels"][
            "app.kubernetes.io/instance"] == "prod"
        assert k8s.app_container(objs)["startupProbe"]["failureThreshold"] == 30
        assert k8s.app_container(objs)["readinessProbe"]["httpGet"]["path"] == "/health?ready=1"
        assert k8s.app_container(objs)["livenessProbe"]["httpGet"]["path"] == "/health"

    @pytest.mark.parametrize("owned", [{"selector": {"matchLabels": {"a": "b"}}},
                                       {"template": {"metadata": {"labels": {"a": "b"}}}}],
                             ids=["selector", "template"])
    def test_should_refuse_to_override_the_selector_or_template(self, owned):
        with pytest.raises(h.HelmError) as e:
            h.render(k8s.values({"extraOptionsSpec": owned}))
        assert "extraOptionsSpec" in e.value.stderr

    @pytest.mark.parametrize("owned", ["containers", "initContainers", "volumes", "imagePullSecrets"])
    def test_should_refuse_to_override_pod_fields_the_chart_owns(self, owned):
        with pytest.raises(h.HelmError) as e:
            h.render(k8s.values({"extraOptionsTemplateSpec": {owned: []}}))
        assert "extraOptionsTemplateSpec" in e.value.stderr
