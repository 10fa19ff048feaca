"""extraDeploy: extra objects (maps or YAML strings) rendered as templates with the release."""
from __future__ import annotations

import pytest

from tests.support import helm as h
from tests.support import k8s

NETPOL = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "agent-backend.names.fullname" . }}-ingress
spec:
  podSelector:
    matchLabels:
      app.kubernetes.io/instance: {{ .Release.Name }}
  policyTypes: ["Ingress"]
"""


class TestExtraDeploy:
    def test_should_render_nothing_extra_by_default(self):
        kinds = sorted(o["kind"] for o in h.render(k8s.values()))
        assert kinds == sorted(["ServiceAccount", "Secret", "ConfigMap", "Service", "Deployment"])

    def test_should_render_objects_given_as_maps_with_templates(self):
        objs = h.render(k8s.values({"extraDeploy": [{
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
            "metadata": {"name": "{{ .Release.Name }}-pull"},
            "stringData": {".dockerconfigjson": '{"auths": {}}'},
        }]}))
        secret = objs.get("Secret", f"{h.RELEASE}-pull")
        assert k8s.dockerconfig(secret) == {"auths": {}}

    def test_should_render_objects_given_as_template_strings(self):
        objs = h.render(k8s.values({"extraDeploy": [NETPOL]}))
        netpol = objs.get("NetworkPolicy")
        assert netpol["metadata"]["name"] == f"{h.RELEASE}-agent-backend-ingress"
        assert netpol["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/instance"] == h.RELEASE

    def test_should_render_several_objects(self):
        objs = h.render(k8s.values({"extraDeploy": [
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "first"}, "data": {"k": "v"}},
            NETPOL,
            {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "pdb"},
             "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {
                 "app.kubernetes.io/instance": "{{ .Release.Name }}"}}}},
        ]}))
        extra = [o for o in objs if o["metadata"]["name"] in
                 ("first", f"{h.RELEASE}-agent-backend-ingress", "pdb")]
        assert sorted(o["kind"] for o in extra) == ["ConfigMap", "NetworkPolicy", "PodDisruptionBudget"]
        assert objs.get("PodDisruptionBudget")["spec"]["selector"]["matchLabels"][
            "app.kubernetes.io/instance"] == h.RELEASE

    def test_should_fail_on_an_object_kubernetes_does_not_know(self):
        # render() treats a kind without a schema as a failure, so typos in extraDeploy surface.
        with pytest.raises(h.ManifestInvalid, match="no schema"):
            h.render(k8s.values({"extraDeploy": [
                {"apiVersion": "v1", "kind": "ConfigMapp", "metadata": {"name": "x"}}]}))

    def test_should_fail_on_an_invalid_field(self):
        with pytest.raises(h.ManifestInvalid, match="imagePullPolcy"):
            h.render(k8s.values({"extraDeploy": [{
                "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "c", "image": "busybox", "imagePullPolcy": "Always"}]}}]}))
