"""Security invariants over every values file: every container of every rendered pod meets the
Kubernetes "restricted" Pod Security Standard, plus a read-only root filesystem."""
from __future__ import annotations

import pytest

from tests.support import helm as h
from tests.support import k8s

# Volume types the restricted standard allows.
ALLOWED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                   "persistentVolumeClaim", "projected", "secret"}
ALLOWED_ADD_CAPS = {"NET_BIND_SERVICE"}


def violations(obj) -> list[str]:
    """Restricted-PSS violations of one pod-bearing object (empty list = compliant)."""
    spec = k8s.pod_spec(obj)
    problems: list[str] = []
    psc = spec.get("securityContext") or {}
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(flag):
            problems.append(f"pod {flag}")
    for v in spec.get("volumes", []):
        kinds = set(v) - {"name"}
        if not kinds <= ALLOWED_VOLUMES:
            problems.append(f"volume {v['name']}: {kinds - ALLOWED_VOLUMES}")
    if psc.get("runAsUser") == 0:
        problems.append("pod runAsUser 0")
    pod_seccomp = (psc.get("seccompProfile") or {}).get("type")
    if pod_seccomp not in (None, "RuntimeDefault", "Localhost"):
        problems.append(f"pod seccomp {pod_seccomp}")
    for c in k8s.all_containers(spec):
        name = c["name"]
        sc = c.get("securityContext") or {}
        if sc.get("privileged"):
            problems.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            problems.append(f"{name}: capabilities do not drop ALL")
        if set(caps.get("add") or []) - ALLOWED_ADD_CAPS:
            problems.append(f"{name}: adds capabilities {caps['add']}")
        non_root = sc.get("runAsNonRoot", psc.get("runAsNonRoot"))
        if non_root is not True:
            problems.append(f"{name}: runAsNonRoot not true")
        if sc.get("runAsUser", psc.get("runAsUser")) == 0:
            problems.append(f"{name}: runAsUser 0")
        seccomp = (sc.get("seccompProfile") or {}).get("type") or pod_seccomp
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile {seccomp}")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{name}: readOnlyRootFilesystem not true")
        for p in c.get("ports", []):
            if p.get("hostPort"):
                problems.append(f"{name}: hostPort {p['hostPort']}")
        for key in ("procMount",):
            if sc.get(key) not in (None, "Default"):
                problems.append(f"{name}: {key} {sc[key]}")
    return problems


def pods(objs):
    return [o for o in objs if k8s.pod_spec(o) is not None]


class TestRestrictedPodSecurity:
    def test_should_hold_for_every_values_file(self, values_file):
        objs = h.render(files=[values_file])
        assert pods(objs)
        for obj in pods(objs):
            assert not violations(obj), (k8s.ident(obj), violations(obj))

    def test_should_set_every_field_on_every_container_itself(self):
        # Each container carries the full context, not relying on pod-level defaults.
        objs = h.render(k8s.values({"startupProbe": {"enabled": True}}))
        spec = k8s.pod(objs)
        for c in k8s.all_containers(spec):
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True, c["name"]
            assert sc["readOnlyRootFilesystem"] is True, c["name"]
            assert sc["allowPrivilegeEscalation"] is False, c["name"]
            assert sc["capabilities"]["drop"] == ["ALL"], c["name"]
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, c["name"]
            assert sc["runAsUser"] == 101, c["name"]

    def test_should_use_the_documented_pod_security_context(self):
        objs = h.render(k8s.values())
        psc = k8s.pod(objs)["securityContext"]
        assert psc["fsGroup"] == 101
        assert psc.get("runAsNonRoot", True) is True

    def test_should_detect_a_violation(self):
        # The checker itself can fail: a privileged, root container is caught.
        bad = {"kind": "Pod", "spec": {"containers": [{"name": "x", "securityContext": {
            "privileged": True, "runAsUser": 0}}]}}
        assert len(violations(bad)) >= 5


class TestSecurityToggles:
    def test_should_drop_the_pod_context_when_disabled(self):
        objs = h.render(k8s.values({"podSecurityContext": {"enabled": False}}))
        psc = k8s.pod(objs).get("securityContext") or {}
        assert "fsGroup" not in psc
        assert "enabled" not in psc

    def test_should_drop_the_app_container_context_when_disabled(self):
        objs = h.render(k8s.values({"containerSecurityContext": {"enabled": False}}))
        assert not k8s.app_container(objs).get("securityContext")

    def test_should_not_leak_the_enabled_flag(self):
        objs = h.render(k8s.values())
        spec = k8s.pod(objs)
        assert "enabled" not in spec["securityContext"]
        assert "enabled" not in k8s.app_container(objs)["securityContext"]

    @pytest.mark.parametrize("section", ["containerSecurityContext", "podSecurityContext"])
    def test_should_pass_through_changed_values(self, section):
        objs = h.render(k8s.values({section: {"runAsUser": 2000} if section.startswith("container")
                                   else {"fsGroup": 2000}}))
        if section == "containerSecurityContext":
            assert k8s.app_container(objs)["securityContext"]["runAsUser"] == 2000
        else:
            assert k8s.pod(objs)["securityContext"]["fsGroup"] == 2000


class TestServiceAccountToken:
    """The service never calls the Kubernetes API, so no pod mounts a ServiceAccount token by default."""

    def test_should_not_mount_the_token_by_default(self):
        objs = h.render(k8s.values())
        assert k8s.pod(objs)["automountServiceAccountToken"] is False
        assert objs.get("ServiceAccount")["automountServiceAccountToken"] is False

    def test_should_mount_it_when_asked(self):
        objs = h.render(k8s.values({"serviceAccount": {"automountServiceAccountToken": True}}))
        assert k8s.pod(objs)["automountServiceAccountToken"] is True
        assert objs.get("ServiceAccount")["automountServiceAccountToken"] is True
