"""Run a rendered pod's containers from their OCI images under runc, the way a kubelet's runtime would.

LocalPod (tests/support/localpod.py) runs the containers as host processes; ContainerPod runs each one
from its image, with what the pod spec asks of the runtime, and keeps everything else (the environment
from ConfigMaps and Secrets, `$(VAR)` expansion, probes, overrides) from LocalPod:

    images = {pod.app_image: unpack(img.ref, dest)}      # rendered reference -> unpacked OCI image (or pull())
    pod = ContainerPod(objs, images=images, overrides=..., ports={8002: free}, scratch=tmp_path)
    pod.run(pod.migration, timeout=120); proc = pod.spawn(pod.app); pod.wait_ready(pod.app, proc)

What each container gets (from the rendered spec, falling back to the pod's securityContext, then to the
image config, as the kubelet does):
- the image's root filesystem, read-only with `readOnlyRootFilesystem`; the image's Env under the pod's;
  `command`/`args` (else the image's Entrypoint/Cmd) and `workingDir` (else the image's WorkingDir);
- user `runAsUser` (else the image's User), group `runAsGroup` (else the user's group in the image's
  /etc/passwd), `fsGroup` and `supplementalGroups` as extra groups; `runAsNonRoot` refuses UID 0;
- capabilities: the runtime default set, minus `drop` (ALL), plus `add`; `allowPrivilegeEscalation:
  false` as no_new_privs; `seccompProfile: RuntimeDefault` as containers-common's default profile
  (/usr/share/containers/seccomp.json, the one CRI-O and Podman use), resolved for x86-64 and the
  container's capabilities;
- every emptyDir as a tmpfs (`sizeLimit` as its size), configMap and secret volumes as their files
  (rendered objects, or the user's given as existing_*), read-only, where the container mounts them;
  other kinds of volume are refused (none can be had here);
- `resources.limits.memory` as the cgroup memory limit;
- new PID, IPC, UTS and mount namespaces, the host's network (ports are mapped by the overrides, as
  for LocalPod), /etc/hosts and /etc/resolv.conf from the host, read-only.

The Secret values are in the bundle's config.json (in the scratch dir, mode 0700), as they are in the
runtime's state on a node; never on a command line.
"""
from __future__ import annotations

import functools
import itertools
import json
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any, Iterable, Mapping

from tests.support import image
from tests.support.localpod import ImageConfig, LocalPod, LocalPodError
from tests.support.registry import by_digest

SECCOMP_PROFILE = Path("/usr/share/containers/seccomp.json")
# What containerd and CRI-O give a container unless its securityContext says otherwise.
DEFAULT_CAPABILITIES = ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
                        "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
                        "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE")
# Paths every runtime hides or makes read-only in /proc and /sys (runc's and containerd's defaults).
MASKED_PATHS = ("/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
                "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware")
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
_QUANTITY = re.compile(r"^([0-9.]+)(Ki|Mi|Gi|Ti|k|M|G|T)?$")
_UNITS = {None: 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
          "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


class ContainerRefused(LocalPodError):
    """The runtime would refuse to start the container (runAsNonRoot with UID 0, an unknown volume...)."""


class UnpackedImage:
    """An OCI image unpacked for runc: its root filesystem and its config."""

    def __init__(self, rootfs: Path, config: Mapping[str, Any]) -> None:
        self.rootfs = rootfs
        self.config = ImageConfig.from_oci(config)

    def group_of(self, uid: int) -> int | None:
        """The primary group of `uid` in the image's /etc/passwd (None when the image does not know it)."""
        passwd = self.rootfs / "etc" / "passwd"
        for line in passwd.read_text().splitlines() if passwd.is_file() else []:
            parts = line.split(":")
            if len(parts) > 3 and parts[2] == str(uid):
                return int(parts[3])
        return None


def unpack(ref: str, dest: Path) -> UnpackedImage:
    """`umoci unpack` an OCI image (`oci:<layout>:<tag>`) into dest/ (rootfs/ and the image config)."""
    _, layout, tag = ref.split(":", 2)
    if not (dest / "rootfs").is_dir():
        shutil.rmtree(dest, ignore_errors=True)
        result = subprocess.run(["umoci", "unpack", "--image", f"{layout}:{tag}", str(dest)],
                                capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            raise LocalPodError(f"umoci unpack {ref} failed: {result.stderr}")
    return UnpackedImage(dest / "rootfs", image.Image.tagged(Path(layout), tag).config())


def pull(ref: str, dest: Path) -> UnpackedImage:
    """Pull `ref` (`registry/repository:tag[@digest]`, from a loopback test registry: plain HTTP) as a
    runtime would, into an OCI layout under dest/, and unpack it there."""
    layout = dest / "layout"
    dest.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["skopeo", "copy", "--src-tls-verify=false", f"docker://{by_digest(ref)}",
                             f"oci:{layout}:pulled"],
                            capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise LocalPodError(f"pulling {ref} failed: {result.stderr.strip()}")
    return unpack(f"oci:{layout}:pulled", dest / "bundle")


def quantity(value: str | int) -> int:
    """A Kubernetes quantity (`100Mi`, `1G`, `512`) in bytes."""
    m = _QUANTITY.match(str(value))
    if not m:
        raise LocalPodError(f"cannot read the quantity {value!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


@functools.lru_cache(maxsize=None)
def _seccomp_source() -> dict[str, Any]:
    if not SECCOMP_PROFILE.is_file():
        raise LocalPodError(f"{SECCOMP_PROFILE} is missing (Debian: golang-github-containers-common; ci/setup.sh)")
    return json.loads(SECCOMP_PROFILE.read_text())


def runtime_default_seccomp(capabilities: Iterable[str]) -> dict[str, Any]:
    """containers-common's default profile as an OCI `linux.seccomp`, for x86-64 and these capabilities
    (a rule `includes` a capability the container lacks, or `excludes` one it has, does not apply)."""
    src, caps = _seccomp_source(), set(capabilities)
    arches = next(a for a in src["archMap"] if a["architecture"] == "SCMP_ARCH_X86_64")

    def applies(rule: Mapping[str, Any]) -> bool:
        inc, exc = rule.get("includes") or {}, rule.get("excludes") or {}
        if inc.get("arches") and not {"amd64", "x32", "x86"} & set(inc["arches"]):
            return False
        if exc.get("arches") and "amd64" in exc["arches"]:
            return False
        if inc.get("caps") and not set(inc["caps"]) <= caps:
            return False
        return not (exc.get("caps") and set(exc["caps"]) & caps)

    syscalls = []
    for rule in src["syscalls"]:
        if applies(rule):
            out = {"names": rule["names"], "action": rule["action"]}
            if rule.get("args"):
                out["args"] = [{k: a[k] for k in ("index", "value", "valueTwo", "op")} for a in rule["args"]]
            if "errnoRet" in rule:
                out["errnoRet"] = rule["errnoRet"]
            syscalls.append(out)
    return {"defaultAction": src["defaultAction"], "defaultErrnoRet": src.get("defaultErrnoRet", 1),
            "architectures": [arches["architecture"], *arches.get("subArchitectures", [])], "syscalls": syscalls}


class ContainerPod(LocalPod):
    """A LocalPod whose containers run from their images under runc (see the module docstring)."""

    def __init__(self, objs: Iterable[Mapping[str, Any]], *, images: Mapping[str, UnpackedImage],
                 **kw: Any) -> None:
        super().__init__(objs, **kw)
        self.images = dict(images)
        self._ids = itertools.count()
        self._running: dict[int, str] = {}  # Popen pid -> runc container id

    # ---- the image -----------------------------------------------------------------------------
    def unpacked(self, container: Mapping[str, Any]) -> UnpackedImage:
        try:
            return self.images[container["image"]]
        except KeyError:
            raise LocalPodError(f"{container['name']}: no image given for {container['image']!r} "
                                f"(have {sorted(self.images)})") from None

    def image_for(self, container: Mapping[str, Any]) -> ImageConfig:
        return self.unpacked(container).config

    def process_env(self, container: Mapping[str, Any]) -> dict[str, str]:
        """The image's Env, then the pod's environment (later wins), as the runtime sets it."""
        env = dict(self.image_for(container).env)
        env["HOSTNAME"] = self.hostname
        env.update(self.resolve_env(container).values)
        return env

    def workdir(self, container: Mapping[str, Any]) -> str:  # type: ignore[override]
        return container.get("workingDir") or self.image_for(container).workdir

    def describe(self, container: Mapping[str, Any]) -> str:
        return f"{' '.join(self.argv(container))}   (in {container['image']}, {self.workdir(container)})"

    # ---- the runtime spec ----------------------------------------------------------------------
    def security(self, container: Mapping[str, Any]) -> dict[str, Any]:
        """The container's securityContext over the pod's (the fields both can set)."""
        pod_sc = self.spec.get("securityContext") or {}
        sc = dict(container.get("securityContext") or {})
        for key in ("runAsUser", "runAsGroup", "runAsNonRoot", "seccompProfile"):
            if key not in sc and key in pod_sc:
                sc[key] = pod_sc[key]
        return sc

    def user(self, container: Mapping[str, Any]) -> dict[str, Any]:
        sc, image = self.security(container), self.unpacked(container)
        image_user, _, image_group = image.config.user.partition(":")
        uid = sc.get("runAsUser", int(image_user) if image_user.isdigit() else 0)
        gid = sc.get("runAsGroup")
        if gid is None:
            gid = image.group_of(uid)
        if gid is None:
            gid = int(image_group) if image_group.isdigit() else 0
        if sc.get("runAsNonRoot") and uid == 0:
            raise ContainerRefused(f"{container['name']}: runAsNonRoot is set and the image runs as UID 0")
        pod_sc = self.spec.get("securityContext") or {}
        extra = [g for g in [pod_sc.get("fsGroup"), *(pod_sc.get("supplementalGroups") or [])] if g is not None]
        return {"uid": int(uid), "gid": int(gid), "additionalGids": sorted({int(g) for g in extra})}

    def capabilities(self, container: Mapping[str, Any]) -> list[str]:
        caps = (self.security(container).get("capabilities") or {})
        drop = {f"CAP_{c.upper()}" for c in caps.get("drop") or []}
        have = set() if "CAP_ALL" in drop else set(DEFAULT_CAPABILITIES) - drop
        return sorted(have | {f"CAP_{c.upper()}" for c in caps.get("add") or []})

    def mounts(self, container: Mapping[str, Any]) -> list[dict[str, Any]]:
        volumes = {v["name"]: v for v in self.spec.get("volumes") or []}
        out = [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            *({"destination": p, "type": "bind", "source": p, "options": ["rbind", "ro"]}
              for p in ("/etc/hosts", "/etc/resolv.conf") if os.path.exists(p)),
        ]
        for m in container.get("volumeMounts") or []:
            vol = volumes.get(m["name"])
            ro = ["ro"] if m.get("readOnly") else []
            if vol is not None and "emptyDir" in vol:
                options = ["nosuid", "nodev", "mode=1777", *ro]
                if (vol["emptyDir"] or {}).get("sizeLimit"):
                    options.append(f"size={quantity(vol['emptyDir']['sizeLimit'])}")
                out.append({"destination": m["mountPath"], "type": "tmpfs", "source": "tmpfs", "options": options})
            elif vol is not None and ("configMap" in vol or "secret" in vol):
                source = self.projected(vol)
                out.append({"destination": m["mountPath"], "type": "bind", "source": str(source),
                            "options": ["rbind", "ro", "nosuid", "nodev"]})
            else:
                raise ContainerRefused(f"{container['name']}: volume {m['name']!r} is not an emptyDir, configMap "
                                       f"or secret; no other kind can be had here")
        return out

    def projected(self, volume: Mapping[str, Any]) -> Path:
        """A configMap or secret volume's files, as the kubelet writes them: every key (or the `items`),
        with `defaultMode` (0644) or the item's mode, group `fsGroup`. Returns their directory."""
        kind, ref = ("ConfigMap", volume["configMap"]) if "configMap" in volume else ("Secret", volume["secret"])
        name = ref.get("name") if kind == "ConfigMap" else ref.get("secretName")
        data = self._ref_data(kind, name)
        if data is None and not ref.get("optional"):
            raise ContainerRefused(f"volume {volume['name']!r}: {kind} {name!r} does not exist")
        data = data or {}
        items = ref.get("items") or [{"key": k, "path": k} for k in sorted(data)]
        group = (self.spec.get("securityContext") or {}).get("fsGroup")
        out = self.scratch / "projected" / volume["name"]
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        os.chmod(out, 0o755)
        for item in items:
            if item["key"] not in data:
                raise ContainerRefused(f"volume {volume['name']!r}: {kind} {name!r} has no key {item['key']!r}")
            path = out / item["path"]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(data[item["key"]])
            os.chmod(path, int(item.get("mode", ref.get("defaultMode", 0o644))))
            if group is not None:
                os.chown(path, 0, int(group))
        return out

    def runtime_spec(self, container: Mapping[str, Any], rootfs: Path) -> dict[str, Any]:
        """The OCI runtime config (config.json) a kubelet's runtime would hand runc for this container."""
        sc = self.security(container)
        caps = self.capabilities(container)
        linux: dict[str, Any] = {
            "namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount")],
            "maskedPaths": list(MASKED_PATHS), "readonlyPaths": list(READONLY_PATHS),
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
        }
        limit = ((container.get("resources") or {}).get("limits") or {}).get("memory")
        if limit:
            linux["resources"]["memory"] = {"limit": quantity(limit)}
        profile = (sc.get("seccompProfile") or {}).get("type", "RuntimeDefault")
        if profile == "RuntimeDefault":
            linux["seccomp"] = runtime_default_seccomp(caps)
        elif profile != "Unconfined":
            raise ContainerRefused(f"{container['name']}: seccompProfile {profile} cannot be had here")
        env = self.process_env(container)
        return {
            "ociVersion": "1.0.2",
            "process": {
                "terminal": False, "user": self.user(container), "args": self.argv(container),
                "env": [f"{k}={v}" for k, v in env.items()], "cwd": self.workdir(container),
                "capabilities": {k: caps for k in ("bounding", "effective", "permitted")},
                "noNewPrivileges": sc.get("allowPrivilegeEscalation", True) is False,
            },
            "root": {"path": str(rootfs), "readonly": bool(sc.get("readOnlyRootFilesystem"))},
            "hostname": env["HOSTNAME"],
            "mounts": self.mounts(container),
            "linux": linux,
        }

    # ---- processes -----------------------------------------------------------------------------
    @property
    def runc_root(self) -> Path:
        root = self.scratch / "runc"
        root.mkdir(mode=0o700, exist_ok=True)
        return root

    def spawn(self, container: Mapping[str, Any], *, stdout: Any = None, stderr: Any = None,
              stdin: Any = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
        """`runc run` the container in the foreground (runc passes signals on); `stop()` ends it."""
        n = next(self._ids)
        bundle = self.scratch / "bundles" / f"{container['name']}-{n}"
        bundle.mkdir(parents=True, mode=0o700)
        rootfs = self.unpacked(container).rootfs
        if not self.security(container).get("readOnlyRootFilesystem"):
            rootfs = bundle / "rootfs"  # a writable root is the container's own copy
            shutil.copytree(self.unpacked(container).rootfs, rootfs, symlinks=True)
        (bundle / "config.json").write_text(json.dumps(self.runtime_spec(container, rootfs)))
        os.chmod(bundle / "config.json", 0o600)
        cid = f"{container['name']}-{uuid.uuid4().hex[:12]}"
        proc = subprocess.Popen(["runc", "--root", str(self.runc_root), "run", "--bundle", str(bundle), cid],
                                stdin=stdin, stdout=stdout, stderr=stderr, start_new_session=True)
        self._procs.append(proc)
        self._running[proc.pid] = cid
        return proc

    def container_pid(self, proc: subprocess.Popen[bytes]) -> int:
        """The host PID of the container's process (its PID 1), from `runc state`."""
        cid = self._running[proc.pid]
        result = subprocess.run(["runc", "--root", str(self.runc_root), "state", cid], capture_output=True,
                                text=True, timeout=60)
        if result.returncode != 0:
            raise LocalPodError(f"runc state {cid}: {result.stderr.strip()}")
        return int(json.loads(result.stdout)["pid"])

    def stop(self, proc: subprocess.Popen[bytes], grace: float = 20.0) -> int:
        """SIGTERM (runc hands it to the container's PID 1), SIGKILL after `grace`; then the container's
        runtime state is deleted."""
        rc = super().stop(proc, grace)
        self._delete(proc)
        return rc

    def run(self, container: Mapping[str, Any], timeout: float | None = None,
            ) -> subprocess.CompletedProcess[str]:
        try:
            return super().run(container, timeout)
        finally:
            for pid in list(self._running):
                if not any(p.pid == pid for p in self._procs):
                    self._delete_id(self._running.pop(pid))

    def _delete(self, proc: subprocess.Popen[bytes]) -> None:
        cid = self._running.pop(proc.pid, None)
        if cid is not None:
            self._delete_id(cid)

    def _delete_id(self, cid: str) -> None:
        subprocess.run(["runc", "--root", str(self.runc_root), "delete", "--force", cid],
                       capture_output=True, timeout=60)
