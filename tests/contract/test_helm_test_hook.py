"""The `helm test` hook's command, run as rendered (the test Pod's own container, through
tests/support/containerpod.py: from the app image, under runc) against the service started from the same
render after its init containers, the way test_app.py runs the app container. Its Service URL is checked against the
rendered Service, then pointed at the local port the Service's targetPort maps to."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.contract.examples import Deployed, load_example
from tests.support import paths
from tests.support.localpod import boot
from tests.support.mariadb import MariaDB
from tests.support.standins._server import free_port

# Hang bounds, never asserted on: a broken hook fails the test instead of hanging it.
DEADLINE = 90
WITH_HOOK = [p for p in sorted(paths.VALUES_EXAMPLES.glob("*.yaml"))
             if ((yaml.safe_load(p.read_text()) or {}).get("helmTest") or {}).get("enabled")]


def test_an_example_turns_the_hook_on() -> None:
    assert WITH_HOOK, "no values example sets helmTest.enabled"


def hook_container(d: Deployed) -> dict:
    (pod,) = [o for o in d.example.objs.of_kind("Pod")
              if o["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"]
    (container,) = pod["spec"]["containers"]
    return container


def local_url(d: Deployed, container: dict) -> str:
    """The hook's AGENT_BACKEND_URL, checked to name the rendered Service and its port, mapped to
    the local port the app listens on (what the Service would forward to)."""
    url = urllib.parse.urlsplit(next(e["value"] for e in container["env"] if e["name"] == "AGENT_BACKEND_URL"))
    svc = d.example.objs.get("Service")
    assert url.hostname == f"{svc['metadata']['name']}.{svc['metadata']['namespace']}.svc", url
    (http,) = [p for p in svc["spec"]["ports"] if p["targetPort"] == "http"]
    assert url.port == http["port"], (url, http)
    return f"http://127.0.0.1:{d.app_port}"


def run_hook(d: Deployed, url: str, timeout_seconds: int | None = None):
    d.pod.overrides["AGENT_BACKEND_URL"] = url
    if timeout_seconds is not None:
        d.pod.overrides["AGENT_BACKEND_TEST_TIMEOUT"] = str(timeout_seconds)
    return d.pod.run(hook_container(d), timeout=DEADLINE)


def ready_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url + "/health?ready=1", timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code


@pytest.fixture(params=[pytest.param(p, id=p.stem) for p in WITH_HOOK])
def running(request: pytest.FixtureRequest, deploy, tmp_path: Path):
    """The example's service, migrated and ready, as its Deployment runs it."""
    d: Deployed = deploy(load_example(request.param))
    proc = boot(d.pod, tmp_path / "app.log", timeout=DEADLINE)
    try:
        yield d
    finally:
        d.pod.stop(proc, grace=30)


def test_the_hook_passes_against_the_running_service(running: Deployed) -> None:
    container = hook_container(running)
    result = run_hook(running, local_url(running, container))
    assert result.returncode == 0, result.stdout + result.stderr
    base = f"helm test: GET http://127.0.0.1:{running.app_port}"
    liveness, readiness = result.stdout.splitlines()
    assert liveness.startswith(f"{base}/health: 200 "), liveness
    assert readiness.startswith(f"{base}/health?ready=1: 200 "), readiness
    assert json.loads(readiness.split(": 200 ", 1)[1])["database"] == "ok"


def test_the_hook_fails_naming_readiness_while_mysql_is_down(running: Deployed, private_mariadb: MariaDB) -> None:
    url = local_url(running, hook_container(running))
    private_mariadb.stop()
    deadline = time.monotonic() + DEADLINE
    while ready_status(url) != 503:
        assert time.monotonic() < deadline, "the service never reported MySQL down"
        time.sleep(0.5)
    result = run_hook(running, url, timeout_seconds=3)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "/health: 200" in result.stdout  # liveness still answers
    assert f"GET {url}/health?ready=1: 503" in result.stderr, result.stderr


def test_the_hook_fails_when_nothing_answers(running: Deployed) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = run_hook(running, url, timeout_seconds=2)
    assert result.returncode == 1
    assert f"GET {url}/health: no answer" in result.stderr, result.stderr
