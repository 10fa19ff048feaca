"""The local pod runner follows Kubernetes' rules (the contract tests and the demo rely on it)."""
from __future__ import annotations

import base64
from pathlib import Path

import pytest

from tests.support.localpod import LocalPod, LocalPodError, SecretOnArgv, expand, image_config


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def manifest(app: dict, *, init: list | None = None) -> list[dict]:
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"},
         "data": {"A": "from-cm", "HOST": "db.cluster", "SHARED": "cm"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sec"},
         "data": {"PASSWORD": b64("s3cret"), "SHARED": b64("secret")}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "app", "namespace": "ns"},
         "spec": {"template": {"metadata": {"labels": {"a": "b"}},
                               "spec": {"initContainers": init or [], "containers": [app]}}}},
    ]


def app_container(**kw) -> dict:
    c = {"name": "app", "image": "example/app:1", "ports": [{"name": "http", "containerPort": 8002}]}
    c.update(kw)
    return c


@pytest.fixture
def dockerfile(tmp_path: Path) -> Path:
    p = tmp_path / "Dockerfile"
    p.write_text(
        "FROM python:3.11 AS build\nWORKDIR /src\nCMD [\"build\"]\n"
        "# the final stage\nFROM python:3.11-slim\n"
        "ENV A=1 \\\n    HOME=/tmp\n"
        "WORKDIR /app\nCMD [\"python\", \"-m\", \"svc\"]\n")
    return p


def test_the_final_stage_of_the_dockerfile_gives_the_defaults(dockerfile: Path) -> None:
    img = image_config(dockerfile)
    assert (img.workdir, img.entrypoint, img.cmd) == ("/app", (), ("python", "-m", "svc"))
    assert dict(img.env) == {"A": "1", "HOME": "/tmp"}


def test_entrypoint_resets_cmd_and_shell_form_runs_through_sh(tmp_path: Path) -> None:
    p = tmp_path / "Dockerfile"
    p.write_text("FROM x\nCMD [\"a\"]\nENTRYPOINT run --flag\n")
    img = image_config(p)
    assert img.entrypoint == ("/bin/sh", "-c", "run --flag") and img.cmd == ()


def test_dollar_references_expand_like_kubernetes() -> None:
    env = {"A": "x", "B": "y"}
    assert expand("$(A)-$(B)-$(C)-$$(A)", env) == "x-y-$(C)-$(A)"


def test_env_entries_override_env_from_and_overrides_win(dockerfile: Path) -> None:
    app = app_container(envFrom=[{"configMapRef": {"name": "cm"}}, {"secretRef": {"name": "sec"}}],
                        env=[{"name": "A", "value": "literal-$(HOST)"},
                             {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "PASSWORD"}}},
                             {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}])
    pod = LocalPod(manifest(app), overrides={"HOST": "127.0.0.1"}, dockerfile=dockerfile)
    r = pod.resolve_env(pod.app)
    assert r.values["A"] == "literal-127.0.0.1"  # the override applies to the ConfigMap key too
    assert r.values["SHARED"] == "secret"        # later envFrom source wins
    assert r.values["PW"] == "s3cret" and r.values["NS"] == "ns"
    assert {"PW", "PASSWORD", "SHARED"} <= r.secret_names and "A" not in r.secret_names
    pod.close()


def test_a_missing_reference_fails_unless_optional(dockerfile: Path) -> None:
    ref = {"secretKeyRef": {"name": "users-secret", "key": "K"}}
    pod = LocalPod(manifest(app_container(env=[{"name": "X", "valueFrom": ref}])), dockerfile=dockerfile)
    with pytest.raises(LocalPodError, match="users-secret"):
        pod.resolve_env(pod.app)
    pod = LocalPod(manifest(app_container(env=[{"name": "X", "valueFrom": ref}])), dockerfile=dockerfile,
                   existing_secrets={"users-secret": {"K": "v"}})
    assert pod.resolve_env(pod.app).values["X"] == "v"
    optional = {"secretKeyRef": {"name": "users-secret", "key": "K", "optional": True}}
    pod = LocalPod(manifest(app_container(env=[{"name": "X", "valueFrom": optional}])), dockerfile=dockerfile)
    assert "X" not in pod.resolve_env(pod.app).values


def test_empty_command_means_the_image_default_and_args_replace_cmd(dockerfile: Path) -> None:
    pod = LocalPod(manifest(app_container()), dockerfile=dockerfile)
    assert pod.argv(pod.app) == ["python", "-m", "svc"]
    pod = LocalPod(manifest(app_container(args=["--x"])), dockerfile=dockerfile)
    assert pod.argv(pod.app) == ["--x"]  # no ENTRYPOINT: args alone
    pod = LocalPod(manifest(app_container(command=["sh", "-c"], args=["echo $(A)"],
                                          envFrom=[{"configMapRef": {"name": "cm"}}])), dockerfile=dockerfile)
    assert pod.argv(pod.app) == ["sh", "-c", "echo from-cm"]


def test_a_secret_is_never_expanded_onto_a_command_line(dockerfile: Path) -> None:
    app = app_container(command=["run", "--password=$(PW)"],
                        env=[{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "PASSWORD"}}}])
    pod = LocalPod(manifest(app), dockerfile=dockerfile)
    with pytest.raises(SecretOnArgv, match="PW"):
        pod.argv(pod.app)


def test_probe_ports_follow_kubernetes_rules(dockerfile: Path) -> None:
    pod = LocalPod(manifest(app_container()), ports={8002: 18002}, dockerfile=dockerfile)
    assert pod.container_port(pod.app, "http") == 8002
    assert pod.container_port(pod.app, 8002) == 8002
    with pytest.raises(LocalPodError, match="string of digits"):
        pod.container_port(pod.app, "8002")
    with pytest.raises(LocalPodError, match="no container port named"):
        pod.container_port(pod.app, "metrics")
    app = app_container(readinessProbe={"httpGet": {"path": "/health", "port": "http"}})
    pod = LocalPod(manifest(app), ports={8002: 18002}, dockerfile=dockerfile)
    assert pod.probe_url(pod.app) == "http://127.0.0.1:18002/health"


def test_processes_get_the_pod_environment_only(dockerfile: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SHOULD_NOT_LEAK", "1")
    app = app_container(command=["sh", "-c", "env"], envFrom=[{"configMapRef": {"name": "cm"}}],
                        volumeMounts=[{"name": "tmp", "mountPath": "/tmp"}])
    objs = manifest(app)
    objs[2]["spec"]["template"]["spec"]["volumes"] = [{"name": "tmp", "emptyDir": {}}]
    with LocalPod(objs, dockerfile=dockerfile, scratch=tmp_path / "s") as pod:
        result = pod.run(pod.app, timeout=30)
    env = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    assert "SHOULD_NOT_LEAK" not in env
    assert env["A"] == "from-cm"
    assert env["HOME"] == str(tmp_path / "s" / "volumes" / "tmp")  # the image's HOME=/tmp, /tmp an emptyDir
    assert env["PATH"].split(":")[0].endswith(".venv/bin")
