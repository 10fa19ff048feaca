"""The app container: its probes point at real routes of the service on the port it listens on, and
the service, run from its image under runc with the rendered environment and securityContext after the
rendered init containers, passes its rendered probes, runs as the securityContext says, and stops on
SIGTERM within the grace period."""
from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest
from aiohttp.test_utils import make_mocked_request

from agent_backend.app import create_app
from agent_backend.config import load_config
from tests.contract.examples import Example, load_example, user_objects
from tests.support.containerpod import ContainerPod
from tests.support.localpod import LocalPod, boot, secret_values
from tests.support.standins.anthropic import AnthropicStandIn
from tests.support.standins.langsmith import LangSmithStandIn
from tests.support.standins.platform import PlatformStandIn

PROBES = ("startupProbe", "readinessProbe", "livenessProbe")


def _pod(example: Example) -> LocalPod:
    existing_secrets, existing_cms = user_objects(example, "pw-contract")
    return LocalPod(example.objs, existing_secrets=existing_secrets, existing_configmaps=existing_cms)


async def _route_exists(app, path: str) -> bool:
    req = make_mocked_request("GET", path, app=app)
    match = await app.router.resolve(req)
    return match.http_exception is None


async def test_probes_point_at_service_routes_on_the_service_port(example: Example) -> None:
    pod = _pod(example)
    app_container = pod.app
    env = pod.resolve_env(app_container).values
    cfg = load_config(env)  # the service's own reading of the rendered environment
    web_app = create_app(cfg)  # the route table; nothing connects before startup
    http_ports = [p for p in app_container.get("ports") or [] if p.get("name") == "http"]
    assert len(http_ports) == 1, f"{example.id}: container ports {app_container.get('ports')}"
    assert http_ports[0]["containerPort"] == cfg.port, (
        f"{example.id}: container port `http` is {http_ports[0]['containerPort']}, the service listens on "
        f"AGENT_BACKEND_PORT={cfg.port}")
    present = [k for k in PROBES if app_container.get(k)]
    assert "readinessProbe" in present and "livenessProbe" in present, f"{example.id}: probes {present}"
    for kind in present:
        http = pod.probe(app_container, kind)["httpGet"]
        assert pod.container_port(app_container, http["port"]) == cfg.port, (
            f"{example.id}: {kind} port {http['port']!r} is not the service's port {cfg.port}")
        assert await _route_exists(web_app, http["path"]), (
            f"{example.id}: {kind} path {http['path']} is not a GET route of the service")


def test_the_service_targets_the_named_container_port(example: Example) -> None:
    pod = _pod(example)
    services = [o for o in example.objs.of_kind("Service")
                if o["spec"].get("selector", {}).items() <= (pod.deployment["spec"]["template"]["metadata"]
                                                             .get("labels") or {}).items()]
    assert services, f"{example.id}: no Service selects the pod"
    for svc in services:
        for port in svc["spec"]["ports"]:
            assert pod.container_port(pod.app, port["targetPort"]) == pod.container_port(pod.app, "http"), (
                f"{example.id}: Service {svc['metadata']['name']} targets {port['targetPort']!r}")


def mountinfo(pid: int) -> dict[str, list[str]]:
    """The mounts a process sees, by mount point: the fields of each /proc/<pid>/mountinfo line."""
    return {line.split()[4]: line.split() for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines()}


def assert_runs_as_rendered(pod: ContainerPod, proc) -> None:
    """What the kernel says of the container's process matches the rendered securityContext."""
    sc = pod.security(pod.app)
    pid = pod.container_pid(proc)
    status = dict(line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                  if ":\t" in line)
    assert sc.get("runAsUser") and status["Uid"].split() == [str(sc["runAsUser"])] * 4, status["Uid"]
    if "ALL" in (sc.get("capabilities") or {}).get("drop", []):
        assert int(status["CapEff"], 16) == int(status["CapBnd"], 16) == 0, status
    if sc.get("allowPrivilegeEscalation") is False:
        assert status["NoNewPrivs"].strip() == "1"
    if (sc.get("seccompProfile") or {}).get("type") == "RuntimeDefault":
        assert status["Seccomp"].strip() == "2"  # filter mode
    mounts = mountinfo(pid)
    if sc.get("readOnlyRootFilesystem"):
        assert mounts["/"][5].split(",")[0] == "ro", mounts["/"]
    for m in pod.app.get("volumeMounts") or []:
        fields = mounts[m["mountPath"]]
        assert fields[fields.index("-") + 1] == "tmpfs", fields  # an emptyDir, as a tmpfs


@pytest.fixture
def standins() -> Iterator[dict[str, str]]:
    platform, model, traces = PlatformStandIn().start(), AnthropicStandIn().start(), LangSmithStandIn().start()
    yield {"SEQERA_PLATFORM_API_URL": platform.api_url, "ANTHROPIC_BASE_URL": model.url,
           "LANGSMITH_ENDPOINT": traces.url}
    for s in (platform, model, traces):
        s.stop()


def test_starts_with_the_rendered_environment_and_passes_its_probes(
        example: Example, deploy, standins: dict[str, str], tmp_path: Path) -> None:
    d = deploy(example, **standins)
    pod = d.pod
    for init in pod.init_containers:  # in the pod's order
        result = pod.run(init, timeout=120)
        assert result.returncode == 0, f"{example.id}: init container {init['name']} failed:\n" \
                                       f"{result.stdout}{result.stderr}"
    log = tmp_path / "app.log"
    with open(log, "wb") as out:
        proc = pod.spawn(pod.app, stdout=out, stderr=out)
    try:
        try:
            for kind in PROBES:
                if pod.app.get(kind):
                    pod.wait_ready(pod.app, proc, timeout=90, kind=kind)
        except Exception as e:
            pytest.fail(f"{example.id}: {e}\nservice log:\n{log.read_text()[-4000:]}")
        # The rendered settings reached the service (not a default): `/` reports the Platform URL.
        rendered = pod.resolve_env(pod.app).values["SEQERA_PLATFORM_URL"]
        with urllib.request.urlopen(f"http://127.0.0.1:{d.app_port}/", timeout=10) as resp:
            assert json.load(resp)["platform_url"] == rendered
        assert_runs_as_rendered(pod, proc)
    finally:
        rc = pod.stop(proc, grace=float(pod.spec.get("terminationGracePeriodSeconds", 30)))
    assert rc == 0, f"{example.id}: exited {rc} on SIGTERM\n{log.read_text()[-4000:]}"
    text = log.read_text()
    leaked = [s for s in secret_values(pod, [pod.app]) if s in text]
    assert not leaked, f"{example.id}: a secret value is in the service log"


EXTRA_VOLUMES = Path(__file__).parent / "values" / "extra-volumes.yaml"


def test_extra_volumes_are_mounted_as_rendered(deploy, standins: dict[str, str], tmp_path: Path) -> None:
    """extraVolumes of each kind that can be had here: an emptyDir (a tmpfs of its sizeLimit), a ConfigMap
    the chart deploys (its defaultMode) and a Secret of the user's (`items`), read-only."""
    example = load_example(EXTRA_VOLUMES)
    d = deploy(example, **standins)
    pod = d.pod
    pod.existing_secrets["user-files"] = {"token": "user-file-token"}
    log = tmp_path / "app.log"
    proc = boot(pod, log)
    try:
        pid = pod.container_pid(proc)
        root = Path(f"/proc/{pid}/root")  # the container's own view of its filesystem
        [settings] = [o for o in example.objs.of_kind("ConfigMap") if o["metadata"]["name"].endswith("-settings")]
        ini = root / "settings" / "settings.ini"
        assert ini.read_text() == settings["data"]["settings.ini"]
        assert ini.stat().st_mode & 0o777 == 0o440
        assert (root / "user-files" / "nested" / "token").read_text() == "user-file-token"
        mounts = mountinfo(pid)
        cache = mounts["/var/cache/agent"]
        assert cache[cache.index("-") + 1] == "tmpfs" and "size=16384k" in cache[-1], cache
        for path in ("/settings", "/user-files"):
            assert mounts[path][5].split(",")[0] == "ro", mounts[path]
    finally:
        rc = pod.stop(proc, grace=30)
    assert rc == 0, log.read_text()[-4000:]
