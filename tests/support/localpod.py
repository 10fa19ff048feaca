"""Run the containers of a rendered pod as local processes, the way the Deployment runs them.

This is the ONE place that turns `helm template` output into processes on this machine, for the
contract tests (tests/contract/) and the demo (ci/demo.py):

    objs = render(files=[paths.VALUES_EXAMPLES / "quickstart.yaml"])      # tests/support/helm.py
    pod = LocalPod(objs, overrides={"AGENT_BACKEND_DB_HOST": "127.0.0.1", ...},
                   ports={8002: 18002}, scratch=tmp_path)
    pod.run(pod.wait_for_mysql, timeout=60)          # the rendered init containers, in order
    pod.run(pod.migration, timeout=60)
    proc = pod.spawn(pod.app)                          # the app container, as a subprocess
    url = pod.wait_ready(pod.app, proc)                # polls the rendered readinessProbe
    pod.stop(proc)

What it does, following Kubernetes' own rules:
- env: `envFrom` (ConfigMap / Secret refs, with `prefix`) first, then `env` in order (`value` with
  `$(VAR)` expansion, `configMapKeyRef`, `secretKeyRef`, `fieldRef`), later entries winning. ConfigMaps
  and Secrets are the rendered ones (Secret `data` base64-decoded, `stringData` too); Secrets and
  ConfigMaps the chart does not render come from `existing_secrets` / `existing_configmaps`, dicts
  standing in for what the user created in the namespace. A missing non-optional reference is an
  error, as it would be for the kubelet.
- argv: `command` + `args` with `$(VAR)` expansion. An empty `command` means the image's ENTRYPOINT
  and CMD, read from service/Dockerfile (parsed, never copied here). A `$(VAR)` that would put a
  Secret's value on a command line is refused (SecretOnArgv).
- the image: containers running the app image start in service/ (standing in for the image's
  WORKDIR, /app) and get the Dockerfile's ENV (paths in it under WORKDIR or an emptyDir mount such
  as /tmp are mapped to their local stand-ins); every container's PATH starts with .venv/bin, so
  `python` is the venv's. Other images (the wait-for-MySQL one) run in a scratch directory with the
  machine's tools (Debian's `mysql` client is MariaDB's).
- processes get only the pod's environment (plus PATH, HOME in the scratch dir, HOSTNAME), never
  this process's; secret values travel only in the environment, never on argv.
- overrides: the few values that must differ to run on one machine (DB host/port, Platform URL,
  Anthropic / LangSmith endpoints, the listening port) are given explicitly. An override replaces
  the ConfigMap key of that name (so every variable read from it follows) and is set as a variable
  on every container. `ports` maps container ports to the local ports the processes listen on.
"""
from __future__ import annotations

import base64
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from tests.support import paths
from tests.support.proc import stop_process

DOCKERFILE = paths.SERVICE / "Dockerfile"
IMAGE_ROOT = paths.SERVICE  # what the app image's WORKDIR holds
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class LocalPodError(Exception):
    """The rendered pod cannot be run as written (a missing reference, an unknown image default...)."""


class SecretOnArgv(LocalPodError):
    """A `$(VAR)` in command/args would put a Secret's value on a process command line."""


class NotReady(LocalPodError):
    """The readiness probe did not pass (the process exited, or the deadline passed)."""


# ---------------------------------------------------------------------------------------------------
# The image: service/Dockerfile's final stage (WORKDIR, ENV, ENTRYPOINT, CMD)
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImageConfig:
    workdir: str = "/"
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    user: str = ""

    @classmethod
    def from_oci(cls, config: Mapping[str, Any]) -> "ImageConfig":
        """From an OCI image config (its `config` object: WorkingDir, Entrypoint, Cmd, Env, User)."""
        c = config.get("config") or {}
        return cls(workdir=os.path.normpath(c.get("WorkingDir") or "/"), entrypoint=tuple(c.get("Entrypoint") or ()),
                   cmd=tuple(c.get("Cmd") or ()), env=tuple(tuple(e.split("=", 1)) for e in c.get("Env") or ()),
                   user=c.get("User") or "")

    def local_dir(self) -> Path:
        """The local directory standing in for WORKDIR (service/ holds what /app holds)."""
        return IMAGE_ROOT


def _dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: comments dropped, backslash continuations joined."""
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):
            continue  # comment lines inside a continued instruction are skipped by docker
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        if buf.strip():
            word, _, rest = buf.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
        buf = ""
    if buf.strip():
        word, _, rest = buf.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def _exec_or_shell(arg: str) -> tuple[str, ...]:
    """ENTRYPOINT/CMD argument: JSON exec form, or shell form (wrapped in /bin/sh -c like docker)."""
    if arg.startswith("["):
        try:
            value = json.loads(arg)
        except ValueError:
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
    return ("/bin/sh", "-c", arg)


def _env_pairs(arg: str) -> list[tuple[str, str]]:
    """ENV arguments: `K=V K2="V 2"` or the legacy `K V` form."""
    parts = shlex.split(arg)
    if parts and "=" not in parts[0]:
        return [(parts[0], arg.split(None, 1)[1] if len(arg.split(None, 1)) > 1 else "")]
    return [tuple(p.split("=", 1)) for p in parts if "=" in p]  # type: ignore[misc]


def image_config(dockerfile: Path = DOCKERFILE) -> ImageConfig:
    """WORKDIR, ENV, ENTRYPOINT and CMD of the Dockerfile's final stage."""
    if not dockerfile.is_file():
        raise LocalPodError(f"{dockerfile} does not exist: cannot know the image's default command")
    workdir, entrypoint, cmd, env = "/", (), (), []  # type: ignore[var-annotated]
    for word, arg in _dockerfile_instructions(dockerfile.read_text()):
        if word == "FROM":  # a new stage starts from scratch (base image defaults are unknown here)
            workdir, entrypoint, cmd, env = "/", (), (), []
        elif word == "WORKDIR":
            workdir = arg if arg.startswith("/") else os.path.join(workdir, arg)
        elif word == "ENV":
            env.extend(_env_pairs(arg))
        elif word == "ENTRYPOINT":
            entrypoint, cmd = _exec_or_shell(arg), ()  # docker resets CMD when ENTRYPOINT is set
        elif word == "CMD":
            cmd = _exec_or_shell(arg)
    return ImageConfig(workdir=os.path.normpath(workdir), entrypoint=tuple(entrypoint), cmd=tuple(cmd),
                       env=tuple(env))


# ---------------------------------------------------------------------------------------------------
# Kubernetes $(VAR) expansion (k8s.io/kubernetes third_party/forked/golang/expansion)
# ---------------------------------------------------------------------------------------------------
_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(s: str, env: Mapping[str, str], used: set[str] | None = None) -> str:
    """`$(NAME)` -> env[NAME] when defined (left as is otherwise); `$$` -> `$`."""
    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        if name in env:
            if used is not None:
                used.add(name)
            return env[name]
        return m.group(0)
    return _REF.sub(sub, s)


def _decoded(secret: Mapping[str, Any]) -> dict[str, str]:
    out = {k: base64.b64decode(v).decode("utf-8") for k, v in (secret.get("data") or {}).items()}
    out.update({k: str(v) for k, v in (secret.get("stringData") or {}).items()})
    return out


@dataclass
class Resolved:
    """A container's environment: values, and which variables hold Secret material."""

    values: dict[str, str] = field(default_factory=dict)
    secret_names: set[str] = field(default_factory=set)
    # name -> "ConfigMap/x:KEY", "Secret/y:KEY", "value", "fieldRef/<path>" or "override"
    sources: dict[str, str] = field(default_factory=dict)


# The two kinds a container reads variables from: (kind, envFrom field, valueFrom field, holds secrets).
_REF_KINDS = (("ConfigMap", "configMapRef", "configMapKeyRef", False),
              ("Secret", "secretRef", "secretKeyRef", True))


# ---------------------------------------------------------------------------------------------------
# The pod
# ---------------------------------------------------------------------------------------------------
class LocalPod:
    def __init__(self, objs: Iterable[Mapping[str, Any]], *, overrides: Mapping[str, str] | None = None,
                 existing_secrets: Mapping[str, Mapping[str, str]] | None = None,
                 existing_configmaps: Mapping[str, Mapping[str, str]] | None = None,
                 ports: Mapping[int, int] | None = None, scratch: str | os.PathLike[str] | None = None,
                 dockerfile: Path = DOCKERFILE) -> None:
        self.objs = list(objs)
        deployments = [o for o in self.objs if o.get("kind") == "Deployment"]
        if len(deployments) != 1:
            raise LocalPodError(f"expected one Deployment in the render, found {len(deployments)}")
        self.deployment = deployments[0]
        self.spec: dict[str, Any] = self.deployment["spec"]["template"]["spec"]
        self.overrides = dict(overrides or {})
        self.ports = dict(ports or {})
        self.existing_secrets = {k: dict(v) for k, v in (existing_secrets or {}).items()}
        self.existing_configmaps = {k: dict(v) for k, v in (existing_configmaps or {}).items()}
        self._dockerfile = dockerfile
        self._image: ImageConfig | None = None
        self._own_scratch = scratch is None
        self._scratch = Path(scratch) if scratch is not None else None
        self._procs: list[subprocess.Popen[bytes]] = []

    @property
    def scratch(self) -> Path:
        """Scratch space for processes (HOME, other images' working dirs); made on first use."""
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="localpod-"))
        self._scratch.mkdir(parents=True, exist_ok=True)
        return self._scratch

    @property
    def hostname(self) -> str:
        """The local pod's name (metadata.name, HOSTNAME): the Deployment's, with `-local`."""
        return f"{self.deployment['metadata']['name']}-local"

    @property
    def home(self) -> Path:
        home = self.scratch / "home"
        home.mkdir(exist_ok=True)
        return home

    # ---- objects -------------------------------------------------------------------------------
    def _find(self, kind: str, name: str) -> Mapping[str, Any] | None:
        found = [o for o in self.objs if o.get("kind") == kind and o["metadata"]["name"] == name]
        return found[0] if found else None

    def configmap_data(self, name: str) -> dict[str, str] | None:
        """A ConfigMap's data (rendered, else the user's existing one), with the overrides applied."""
        cm = self._find("ConfigMap", name)
        if cm is not None:
            data = {k: str(v) for k, v in (cm.get("data") or {}).items()}
        elif name in self.existing_configmaps:
            data = dict(self.existing_configmaps[name])
        else:
            return None
        for k in data:
            if k in self.overrides:
                data[k] = self.overrides[k]
        return data

    def secret_data(self, name: str) -> dict[str, str] | None:
        """A Secret's decoded data: the rendered chart Secret, else the user's existing one."""
        secret = self._find("Secret", name)
        if secret is not None:
            return _decoded(secret)
        if name in self.existing_secrets:
            return dict(self.existing_secrets[name])
        return None

    def _ref_data(self, kind: str, name: str) -> dict[str, str] | None:
        """configmap_data or secret_data, by kind ("ConfigMap" / "Secret")."""
        return self.configmap_data(name) if kind == "ConfigMap" else self.secret_data(name)

    @property
    def image(self) -> ImageConfig:
        if self._image is None:
            self._image = image_config(self._dockerfile)
        return self._image

    def image_for(self, container: Mapping[str, Any]) -> ImageConfig | None:
        """The defaults of the container's image: service/Dockerfile's for the app image, else unknown."""
        return self.image if self.runs_app_image(container) else None

    # ---- containers ----------------------------------------------------------------------------
    @property
    def init_containers(self) -> list[dict[str, Any]]:
        return list(self.spec.get("initContainers") or [])

    @property
    def app(self) -> dict[str, Any]:
        """The app container: the pod's (first) regular container."""
        return self.spec["containers"][0]

    @property
    def app_image(self) -> str:
        return self.app["image"]

    def runs_app_image(self, container: Mapping[str, Any]) -> bool:
        return container.get("image") == self.app_image

    @property
    def migration(self) -> dict[str, Any]:
        """The DB migration init container: the init container that runs the app image."""
        found = [c for c in self.init_containers if self.runs_app_image(c)]
        if len(found) != 1:
            raise LocalPodError(f"expected one init container running the app image, found "
                                f"{[c['name'] for c in found]}")
        return found[0]

    @property
    def wait_for_mysql(self) -> dict[str, Any]:
        """The wait-for-MySQL init container: the init container running a `mysql` image."""
        found = [c for c in self.init_containers
                 if "mysql" in c["image"].split("@")[0].rsplit("/", 1)[-1].split(":")[0]]
        if len(found) != 1:
            raise LocalPodError(f"expected one init container running a mysql image, found "
                                f"{[c['name'] for c in found]}")
        return found[0]

    def container(self, name: str) -> dict[str, Any]:
        for c in [*self.init_containers, *self.spec["containers"]]:
            if c["name"] == name:
                return c
        raise LocalPodError(f"no container named {name!r}")

    # ---- environment ---------------------------------------------------------------------------
    def _field_ref(self, path: str, container: Mapping[str, Any]) -> str:
        meta = self.deployment["spec"]["template"].get("metadata") or {}
        name = self.hostname
        values = {
            "metadata.name": name,
            "metadata.namespace": self.deployment["metadata"].get("namespace", "default"),
            "metadata.uid": "00000000-0000-0000-0000-000000000000",
            "spec.nodeName": "localhost",
            "spec.serviceAccountName": self.spec.get("serviceAccountName", "default"),
            "status.hostIP": "127.0.0.1",
            "status.podIP": "127.0.0.1",
            "status.podIPs": "127.0.0.1",
            "status.hostIPs": "127.0.0.1",
        }
        m = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
        if m:
            return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
        if path not in values:
            raise LocalPodError(f"{container['name']}: fieldRef {path} is not supported locally")
        return values[path]

    def resolve_env(self, container: Mapping[str, Any]) -> Resolved:
        """The container's environment as the kubelet would build it (plus the overrides)."""
        r = Resolved()
        cname = container["name"]
        for src in container.get("envFrom") or []:
            prefix = src.get("prefix", "")
            for kind, field_name, _, secret in _REF_KINDS:
                if field_name not in src:
                    continue
                ref = src[field_name]
                data = self._ref_data(kind, ref["name"])
                if data is None:
                    if ref.get("optional"):
                        continue
                    raise LocalPodError(f"{cname}: envFrom {kind} {ref['name']!r} does not exist")
                for k, v in data.items():
                    r.values[prefix + k] = v
                    r.sources[prefix + k] = f"{kind}/{ref['name']}:{k}"
                    if secret:
                        r.secret_names.add(prefix + k)
                    else:
                        r.secret_names.discard(prefix + k)
        for entry in container.get("env") or []:
            name = entry["name"]
            secret = False
            if "valueFrom" not in entry:
                used: set[str] = set()
                value = expand(str(entry.get("value", "")), r.values, used)
                secret = bool(used & r.secret_names)
                source = "value"
            else:
                vf = entry["valueFrom"]
                key_ref = next(((kind, f, holds_secret) for kind, _, f, holds_secret in _REF_KINDS
                                if f in vf), None)
                if key_ref is not None:
                    kind, ref_field, secret = key_ref
                    ref = vf[ref_field]
                    data = self._ref_data(kind, ref["name"])
                    if data is None or ref["key"] not in data:
                        if ref.get("optional"):
                            continue
                        raise LocalPodError(f"{cname}: {name} refers to {kind} {ref['name']!r} key "
                                            f"{ref['key']!r}, which does not exist")
                    value, source = data[ref["key"]], f"{kind}/{ref['name']}:{ref['key']}"
                elif "fieldRef" in vf:
                    path = vf["fieldRef"]["fieldPath"]
                    value, source = self._field_ref(path, container), f"fieldRef/{path}"
                else:
                    raise LocalPodError(f"{cname}: {name}: valueFrom {sorted(vf)} is not supported locally")
            r.values[name] = value
            r.sources[name] = source
            if secret:
                r.secret_names.add(name)
            else:
                r.secret_names.discard(name)
        for name, value in self.overrides.items():
            r.values[name] = value
            r.sources[name] = "override"  # a Secret-sourced variable stays secret when overridden
        return r

    def process_env(self, container: Mapping[str, Any]) -> dict[str, str]:
        """The full environment the local process gets: image ENV, PATH/HOME/HOSTNAME, the pod's env."""
        env: dict[str, str] = {"HOME": str(self.home)}
        if self.runs_app_image(container):
            for k, v in self.image.env:
                if k != "PATH":  # the image's PATH points into the image; ours starts with .venv/bin
                    env[k] = self.local_path(container, v)
        env.update({
            "PATH": f"{paths.VENV_BIN}:{SYSTEM_PATH}",
            "HOSTNAME": self.hostname,
            "LANG": env.get("LANG", "C.UTF-8"),
        })
        env.update(self.resolve_env(container).values)
        return env

    def local_path(self, container: Mapping[str, Any], value: str) -> str:
        """An in-container path -> its local stand-in: the image's WORKDIR -> service/, an emptyDir
        mount -> a directory under the scratch dir. Other values are returned unchanged."""
        volumes = {v["name"]: v for v in self.spec.get("volumes") or []}
        mounts = []
        for m in container.get("volumeMounts") or []:
            vol = volumes.get(m["name"], {})
            if "emptyDir" in vol:
                local = self.scratch / "volumes" / m["name"]
                local.mkdir(parents=True, exist_ok=True)
                mounts.append((m["mountPath"].rstrip("/"), str(local)))
        workdir = self.image.workdir.rstrip("/")
        if workdir and self.runs_app_image(container):
            mounts.append((workdir, str(self.image.local_dir())))
        for path, local in sorted(mounts, key=lambda m: -len(m[0])):
            if value == path or value.startswith(path + "/"):
                return local + value[len(path):]
        return value

    # ---- command line --------------------------------------------------------------------------
    def argv(self, container: Mapping[str, Any]) -> list[str]:
        """command + args as the kubelet builds them ($(VAR) expanded; image defaults when empty)."""
        command = list(container.get("command") or [])
        args = list(container.get("args") or [])
        if not command:
            image = self.image_for(container)
            if image is None:
                raise LocalPodError(f"{container['name']}: no command, and the default command of image "
                                    f"{container['image']} is unknown here")
            command = list(image.entrypoint)
            if not args:
                args = list(image.cmd)
            if not command and not args:
                raise LocalPodError(f"{container['name']}: image {container['image']} has neither ENTRYPOINT "
                                    f"nor CMD")
        r = self.resolve_env(container)
        out = []
        for part in [*command, *args]:
            used: set[str] = set()
            out.append(expand(str(part), r.values, used))
            leaked = used & r.secret_names
            if leaked:
                raise SecretOnArgv(f"{container['name']}: command line would carry the value of "
                                   f"{sorted(leaked)} (a Secret)")
        return out

    def workdir(self, container: Mapping[str, Any]) -> Path:
        """Where the process starts: service/ for the app image (its WORKDIR), else a scratch dir."""
        wd = container.get("workingDir")
        if self.runs_app_image(container):
            image_wd = self.image.workdir
            if wd is None or os.path.normpath(wd) == image_wd:
                return self.image.local_dir()
            raise LocalPodError(f"{container['name']}: workingDir {wd} is not the image's {image_wd}")
        d = self.scratch / "containers" / container["name"]
        d.mkdir(parents=True, exist_ok=True)
        return d

    def describe(self, container: Mapping[str, Any]) -> str:
        """One line for humans: what runs where (argv is safe to print: no secrets on it)."""
        return f"{shlex.join(self.argv(container))}   (in {self.workdir(container)})"

    # ---- processes -----------------------------------------------------------------------------
    def spawn(self, container: Mapping[str, Any], *, stdout: Any = None, stderr: Any = None,
              stdin: Any = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
        """Start the container's process (own process group); `stop()` ends it."""
        argv = self.argv(container)
        proc = subprocess.Popen(argv, env=self.process_env(container), cwd=self.workdir(container),
                                stdin=stdin, stdout=stdout, stderr=stderr, start_new_session=True)
        self._procs.append(proc)
        return proc

    def run(self, container: Mapping[str, Any], timeout: float | None = None,
            ) -> subprocess.CompletedProcess[str]:
        """Run the container to completion (an init container); output captured as text."""
        proc = self.spawn(container, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop(proc)
            out, err = proc.communicate()
            raise subprocess.TimeoutExpired(proc.args, timeout or 0, out, err) from None
        finally:
            if proc in self._procs and proc.poll() is not None:
                self._procs.remove(proc)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out.decode(errors="replace"),
                                           err.decode(errors="replace"))

    def stop(self, proc: subprocess.Popen[bytes], grace: float = 20.0) -> int:
        """SIGTERM the process group (like the kubelet), SIGKILL after `grace` seconds; anything left in
        the group (children of a shell) goes too. Returns the exit status."""
        stop_process(proc, grace, group=True)
        if proc in self._procs:
            self._procs.remove(proc)
        return proc.returncode

    def close(self) -> None:
        """Stop every process this pod started; remove the scratch dir if it made it."""
        for proc in list(self._procs):
            self.stop(proc)
        if self._own_scratch and self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def __enter__(self) -> "LocalPod":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- probes --------------------------------------------------------------------------------
    def container_port(self, container: Mapping[str, Any], port: int | str) -> int:
        """A probe/Service port (number or name) -> the container port number, as Kubernetes reads it."""
        if isinstance(port, int):
            return port
        if isinstance(port, str) and port.isdigit():
            raise LocalPodError(f"{container['name']}: port {port!r} is a string of digits; Kubernetes "
                                f"reads a string as a port NAME and rejects this (it must be an integer)")
        for p in container.get("ports") or []:
            if p.get("name") == port:
                return int(p["containerPort"])
        raise LocalPodError(f"{container['name']}: no container port named {port!r}")

    def probe(self, container: Mapping[str, Any], kind: str = "readinessProbe") -> dict[str, Any]:
        probe = container.get(kind)
        if not probe:
            raise LocalPodError(f"{container['name']} has no {kind}")
        if "httpGet" not in probe:
            raise LocalPodError(f"{container['name']}: {kind} is not an httpGet probe: {sorted(probe)}")
        return probe

    def probe_url(self, container: Mapping[str, Any], kind: str = "readinessProbe") -> str:
        """The local URL of an httpGet probe (the container port mapped through `ports`)."""
        http = self.probe(container, kind)["httpGet"]
        port = self.container_port(container, http["port"])
        local = self.ports.get(port, port)
        scheme = (http.get("scheme") or "HTTP").lower()
        path = http.get("path") or "/"
        return f"{scheme}://127.0.0.1:{local}{path}"

    def check_probe(self, container: Mapping[str, Any], kind: str = "readinessProbe") -> tuple[bool, str]:
        """One probe attempt: (passed, what happened). Success is a 2xx/3xx answer in timeoutSeconds."""
        probe = self.probe(container, kind)
        url = self.probe_url(container, kind)
        headers = {"User-Agent": "kube-probe/1.34"}
        for h in probe["httpGet"].get("httpHeaders") or []:
            headers[h["name"]] = h["value"]
        req = urllib.request.Request(url, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=float(probe.get("timeoutSeconds", 1))) as resp:
                return 200 <= resp.status < 400, f"HTTP {resp.status}"
        except urllib.error.HTTPError as e:
            return 200 <= e.code < 400, f"HTTP {e.code}"
        except (urllib.error.URLError, OSError) as e:
            return False, str(getattr(e, "reason", e))

    def wait_ready(self, container: Mapping[str, Any], proc: subprocess.Popen[bytes] | None = None,
                   timeout: float = 90.0, kind: str = "readinessProbe", interval: float = 0.2) -> str:
        """Poll the rendered probe until it passes `successThreshold` times in a row; returns its URL.

        Polls every `interval` seconds instead of `periodSeconds` (the check itself is the probe's).
        Raises NotReady when `proc` exits first or `timeout` passes."""
        probe = self.probe(container, kind)
        need = int(probe.get("successThreshold", 1))
        url = self.probe_url(container, kind)
        deadline = time.monotonic() + timeout
        streak, last = 0, "no attempt yet"
        while True:
            if proc is not None and proc.poll() is not None:
                raise NotReady(f"{container['name']} exited with {proc.returncode} before {url} passed "
                               f"({last})")
            ok, last = self.check_probe(container, kind)
            streak = streak + 1 if ok else 0
            if streak >= need:
                return url
            if time.monotonic() > deadline:
                raise NotReady(f"{kind} {url} did not pass within {timeout:.0f}s (last: {last})")
            time.sleep(interval)


def boot(pod: LocalPod, log: Path, timeout: float = 120.0) -> subprocess.Popen[bytes]:
    """Start the pod as the kubelet does: each init container to completion in order (each must exit 0),
    then the app container (its output to `log`) until its readiness probe passes. Returns the app's
    process; `pod.stop()` it. Raises LocalPodError naming the container that failed."""
    for init in pod.init_containers:
        result = pod.run(init, timeout=timeout)
        if result.returncode != 0:
            raise LocalPodError(f"init container {init['name']} exited {result.returncode}:\n"
                                f"{result.stdout}{result.stderr}")
    with open(log, "wb") as out:
        proc = pod.spawn(pod.app, stdout=out, stderr=out)
    try:
        pod.wait_ready(pod.app, proc, timeout=timeout)
    except Exception as e:
        pod.stop(proc)
        raise LocalPodError(f"{e}\napp log:\n{log.read_text(errors='replace')[-4000:]}") from None
    return proc


def secret_values(pod: LocalPod, containers: Sequence[Mapping[str, Any]] | None = None) -> set[str]:
    """Every Secret-sourced value the given containers (default: all) get, for leak checks."""
    out: set[str] = set()
    for c in containers or [*pod.init_containers, *pod.spec["containers"]]:
        r = pod.resolve_env(c)
        out |= {r.values[n] for n in r.secret_names if r.values.get(n)}
    return out
