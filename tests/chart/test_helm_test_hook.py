"""The `helm test` hook (off by default: test_optional_objects.py): one Pod from the app image, annotated as a test hook, under
the restricted Pod Security Standard, calling /health and /health?ready=1 through the Service (its
URL built from the Service as rendered), never selected by the Service or the Deployment. Running its
command against the service is in tests/contract/test_helm_test_hook.py."""
from __future__ import annotations

from tests.support import helm as h
from tests.support import k8s


def on(extra=None):
    return k8s.values({"helmTest": {"enabled": True}}, extra or {})


def hook_pod(objs):
    pod = objs.get("Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    return pod


def env(pod) -> dict[str, str]:
    (container,) = pod["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"]}


class TestHelmTestPod:
    def test_should_be_a_test_hook_kept_only_when_it_fails(self):
        ann = hook_pod(h.render(on()))["metadata"]["annotations"]
        assert ann["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"

    def test_should_run_the_app_image_once(self):
        objs = h.render(on({"image": {"digest": "sha256:" + "a" * 64}}))
        pod = hook_pod(objs)
        (container,) = pod["spec"]["containers"]
        assert container["image"] == k8s.app_container(objs)["image"]
        assert container["command"][:2] == ["python", "-c"]
        assert pod["spec"]["restartPolicy"] == "Never"

    def test_should_call_the_service_by_its_name_and_port(self):
        objs = h.render(on({"service": {"http": {"port": 8080}}}))
        svc = objs.get("Service")
        url = env(hook_pod(objs))["AGENT_BACKEND_URL"]
        assert url == f"http://{svc['metadata']['name']}.{h.NAMESPACE}.svc:8080"

    def test_should_ask_both_health_routes(self):
        script = hook_pod(h.render(on()))["spec"]["containers"][0]["command"][2]
        assert '"/health", "/health?ready=1"' in script

    def test_should_wait_as_long_as_configured(self):
        assert env(hook_pod(h.render(on({"helmTest": {"timeoutSeconds": 15}}))))["AGENT_BACKEND_TEST_TIMEOUT"] == "15"

    def test_should_meet_the_restricted_pod_security_standard_itself(self):
        """test_security.py checks every pod; here: the test pod sets every field on its container."""
        pod = hook_pod(h.render(on()))
        sc = pod["spec"]["containers"][0]["securityContext"]
        assert sc == {"runAsNonRoot": True, "runAsUser": 101, "allowPrivilegeEscalation": False,
                      "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]},
                      "seccompProfile": {"type": "RuntimeDefault"}}
        assert pod["spec"]["automountServiceAccountToken"] is False

    def test_should_pull_with_the_pods_pull_secrets(self):
        objs = h.render(on({"image": {"pullSecrets": ["my-pull"]}}))
        assert hook_pod(objs)["spec"]["imagePullSecrets"] == k8s.pod(objs)["imagePullSecrets"]

    def test_should_not_be_selected_by_the_service_or_the_deployment(self):
        """Else the Service could send the test's own request to the test pod."""
        objs = h.render(on())
        labels = k8s.labels(hook_pod(objs))
        for selector in (objs.get("Service")["spec"]["selector"], objs.get("Deployment")["spec"]["selector"]["matchLabels"]):
            assert not selector.items() <= labels.items(), (selector, labels)
        assert labels["app.kubernetes.io/instance"] == h.RELEASE
        assert labels["app.kubernetes.io/component"] == "test"

    def test_should_carry_common_labels_and_annotations(self):
        pod = hook_pod(h.render(on({"commonLabels": {"team": "ai"}, "commonAnnotations": {"owner": "ops"}})))
        assert k8s.labels(pod)["team"] == "ai" and pod["metadata"]["annotations"]["owner"] == "ops"
