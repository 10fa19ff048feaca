"""The runc runner turns a pod spec into the runtime config a kubelet's runtime would (no runc runs here:
the config.json it writes, from a hand-made pod and image)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.contract.test_localpod import app_container, manifest
from tests.support.containerpod import (ContainerPod, ContainerRefused, UnpackedImage, quantity,
                                        runtime_default_seccomp)

IMAGE_CONFIG = {"config": {"User": "101:101", "WorkingDir": "/app", "Cmd": ["python", "-m", "svc"],
                           "Env": ["PATH=/opt/venv/bin:/usr/bin", "HOME=/tmp"]}}


@pytest.fixture
def image(tmp_path: Path) -> UnpackedImage:
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\nagent:x:101:102::/tmp:/usr/sbin/nologin\n")
    return UnpackedImage(rootfs, IMAGE_CONFIG)


def pod(image: UnpackedImage, tmp_path: Path, pod_sc: dict | None = None, volumes: list | None = None,
        **container) -> ContainerPod:
    objs = manifest(app_container(**container))
    spec = objs[-1]["spec"]["template"]["spec"]
    spec["securityContext"] = pod_sc or {}
    spec["volumes"] = volumes or []
    return ContainerPod(objs, images={"example/app:1": image}, scratch=tmp_path / "scratch")


def spec_of(p: ContainerPod, image: UnpackedImage) -> dict:
    return p.runtime_spec(p.app, image.rootfs)


HARDENED = {"runAsUser": 101, "runAsNonRoot": True, "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


def test_the_chart_s_hardening_becomes_the_runtime_s(image, tmp_path) -> None:
    s = spec_of(pod(image, tmp_path, pod_sc={"fsGroup": 101}, securityContext=HARDENED), image)
    proc = s["process"]
    assert proc["user"] == {"uid": 101, "gid": 102, "additionalGids": [101]}  # gid from the image's passwd
    assert all(proc["capabilities"][k] == [] for k in ("bounding", "effective", "permitted"))
    assert proc["noNewPrivileges"] is True
    assert s["root"]["readonly"] is True
    assert s["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    assert (proc["args"], proc["cwd"]) == (["python", "-m", "svc"], "/app")  # the image's defaults
    assert "HOME=/tmp" in proc["env"] and "PATH=/opt/venv/bin:/usr/bin" in proc["env"]


def test_without_a_security_context_the_runtime_defaults_apply(image, tmp_path) -> None:
    s = spec_of(pod(image, tmp_path), image)
    assert s["process"]["user"]["uid"] == 101  # the image's USER
    assert "CAP_NET_RAW" in s["process"]["capabilities"]["effective"]
    assert s["process"]["noNewPrivileges"] is False  # allowPrivilegeEscalation defaults to true
    assert s["root"]["readonly"] is False


def test_capabilities_are_the_default_set_minus_drop_plus_add(image, tmp_path) -> None:
    sc = {"capabilities": {"drop": ["NET_RAW"], "add": ["NET_ADMIN"]}}
    caps = spec_of(pod(image, tmp_path, securityContext=sc), image)["process"]["capabilities"]["effective"]
    assert "CAP_NET_RAW" not in caps and "CAP_NET_ADMIN" in caps and "CAP_CHOWN" in caps


def test_run_as_non_root_refuses_uid_0(image, tmp_path) -> None:
    with pytest.raises(ContainerRefused, match="runAsNonRoot"):
        spec_of(pod(image, tmp_path, securityContext={"runAsUser": 0, "runAsNonRoot": True}), image)


def test_the_pod_s_security_context_fills_what_the_container_leaves_out(image, tmp_path) -> None:
    s = spec_of(pod(image, tmp_path, pod_sc={"runAsUser": 1000, "runAsGroup": 3000, "supplementalGroups": [4000]}),
                image)
    assert s["process"]["user"] == {"uid": 1000, "gid": 3000, "additionalGids": [4000]}


def test_an_unknown_image_is_an_error_not_a_guess(image, tmp_path) -> None:
    p = pod(image, tmp_path)
    p.app["image"] = "example/other:2"
    with pytest.raises(Exception, match="no image given"):
        spec_of(p, image)


def test_volumes_emptydir_as_tmpfs_and_others_refused(image, tmp_path) -> None:
    volumes = [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}, {"name": "data", "persistentVolumeClaim": {}}]
    p = pod(image, tmp_path, volumes=volumes, volumeMounts=[{"name": "tmp", "mountPath": "/tmp"}])
    [tmp] = [m for m in spec_of(p, image)["mounts"] if m["destination"] == "/tmp"]
    assert tmp["type"] == "tmpfs" and f"size={64 * 2**20}" in tmp["options"]
    p = pod(image, tmp_path, volumes=volumes, volumeMounts=[{"name": "data", "mountPath": "/data"}])
    with pytest.raises(ContainerRefused, match="data"):
        spec_of(p, image)


def test_a_memory_limit_becomes_the_cgroup_limit(image, tmp_path) -> None:
    s = spec_of(pod(image, tmp_path, resources={"limits": {"memory": "512Mi"}}), image)
    assert s["linux"]["resources"]["memory"] == {"limit": 512 * 2**20}


@pytest.mark.parametrize("q, n", [("100Mi", 100 * 2**20), ("1G", 10**9), ("512", 512), ("1.5Gi", 3 * 2**29)])
def test_quantities(q: str, n: int) -> None:
    assert quantity(q) == n


def test_the_default_seccomp_profile_is_resolved_for_x86_64_and_the_capabilities() -> None:
    none = runtime_default_seccomp([])
    names = {n for rule in none["syscalls"] if rule["action"] == "SCMP_ACT_ALLOW" for n in rule["names"]}
    assert "arch_prctl" in names and "s390_runtime_instr" not in names and "arm_fadvise64_64" not in names
    assert "chroot" not in names  # allowed only with CAP_SYS_CHROOT
    assert none["architectures"][0] == "SCMP_ARCH_X86_64"
    with_chroot = runtime_default_seccomp(["CAP_SYS_CHROOT"])
    assert "chroot" in {n for r in with_chroot["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" for n in r["names"]}
