"""The environment contract, for every values example: what the chart sets is what the service reads.

The service's side is observed, not copied: `agent_backend.config.load_config()` is given the app
container's rendered environment through a mapping that records every name it looks up.
"""
from __future__ import annotations

from typing import Any, Mapping

import pytest

from agent_backend import config as service_config
from tests.contract.examples import Example, load_example, user_objects
from tests.support import paths
from tests.support.credentials import CREDENTIALS, at
from tests.support.helm import render
from tests.support.localpod import LocalPod, SecretOnArgv, secret_values


class RecordingEnv(dict):
    """A dict that remembers every key looked up in it (get, [], in)."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.read: set[str] = set()

    def get(self, key: Any, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: Any) -> Any:
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: Any) -> bool:
        self.read.add(key)
        return super().__contains__(key)


def local_pod(example: Example) -> LocalPod:
    existing_secrets, existing_cms = user_objects(example, "pw-contract")
    return LocalPod(example.objs, existing_secrets=existing_secrets, existing_configmaps=existing_cms)


def chart_set_names(example: Example, pod: LocalPod) -> set[str]:
    """Variables the chart puts on the app container, user extras aside."""
    user_cms, user_secrets = example.user_env_sources()
    resolved = pod.resolve_env(pod.app)
    out = set()
    for name, source in resolved.sources.items():
        kind_name = source.split(":", 1)[0]
        if kind_name in {f"ConfigMap/{n}" for n in user_cms} | {f"Secret/{n}" for n in user_secrets}:
            continue
        out.add(name)
    return out - example.extra_env_names()


def service_reads(env: Mapping[str, str]) -> set[str]:
    """Every variable load_config() looks up, given `env` (it must accept it)."""
    rec = RecordingEnv(env)
    service_config.load_config(rec)
    return set(rec.read)


def override_only_vars() -> set[str]:
    """The service-only optional overrides, as the service's config module declares them."""
    declared = getattr(service_config, "OVERRIDE_ENV_VARS", None)
    assert declared is not None, (
        "agent_backend.config has no OVERRIDE_ENV_VARS: the service must declare which variables "
        "it reads that the chart does not set")
    return set(declared)


def test_the_service_reads_every_variable_the_chart_sets(example: Example) -> None:
    pod = local_pod(example)
    env = pod.resolve_env(pod.app).values
    chart_sets = chart_set_names(example, pod)
    unread = chart_sets - service_reads(env)
    assert not unread, f"{example.id}: the chart sets {sorted(unread)}, which the service never reads"


def test_the_chart_sets_every_variable_the_service_reads(example: Example) -> None:
    pod = local_pod(example)
    env = pod.resolve_env(pod.app).values
    chart_sets = chart_set_names(example, pod)
    omitted = example.omitted_env_names()
    assert not omitted & chart_sets, (f"{example.id}: the chart sets {sorted(omitted & chart_sets)}, which "
                                      f"these values turn off")
    required = omitted & set(service_config.REQUIRED_ENV_VARS)
    assert not required, f"{example.id}: the service requires {sorted(required)}, which the chart leaves out here"
    # load_config() raises (naming the variable) if a required one is missing: that is a failure too.
    reads = service_reads({k: v for k, v in env.items() if k in chart_sets})
    missing = reads - chart_sets - override_only_vars() - omitted
    assert not missing, (f"{example.id}: the service reads {sorted(missing)}, which the chart does "
                         f"not set on the app container")


def test_the_service_declares_exactly_what_it_reads(example: Example) -> None:
    """The config module's public list of names agrees with what load_config() really looks up."""
    declared = getattr(service_config, "ENV_VARS", None)
    assert declared is not None, "agent_backend.config has no public ENV_VARS"
    pod = local_pod(example)
    reads = service_reads(pod.resolve_env(pod.app).values)
    assert reads == set(declared), (f"load_config() reads {sorted(reads - set(declared))} not in ENV_VARS; "
                                    f"ENV_VARS lists {sorted(set(declared) - reads)} it never reads")
    assert override_only_vars() <= set(declared)


def test_every_secret_reference_resolves(example: Example) -> None:
    """Each secretKeyRef / secretRef names a key of the chart Secret, or the user's own Secret/key."""
    pod = LocalPod(example.objs)
    _, user_secrets = example.user_env_sources()
    user_refs = set(example.user_credential_refs.values())
    problems = []
    for c in [*pod.init_containers, *pod.spec["containers"]]:
        for entry in c.get("env") or []:
            ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
            if not ref:
                continue
            chart_data = pod.secret_data(ref["name"])
            if ref["name"] in example.chart_secret_names:
                if chart_data is None or ref["key"] not in chart_data:
                    problems.append(f"{c['name']}: {entry['name']} -> chart Secret {ref['name']} has no key "
                                    f"{ref['key']!r} (keys: {sorted(chart_data or {})})")
            elif (ref["name"], ref["key"]) not in user_refs:
                problems.append(f"{c['name']}: {entry['name']} -> Secret {ref['name']}/{ref['key']}, which "
                                f"is neither rendered nor named in the values")
        for src in c.get("envFrom") or []:
            ref = src.get("secretRef")
            if ref and ref["name"] not in example.chart_secret_names and ref["name"] not in user_secrets:
                problems.append(f"{c['name']}: envFrom Secret {ref['name']} is neither rendered nor a user extra")
    assert not problems, f"{example.id}:\n  " + "\n  ".join(problems)


def test_credentials_come_from_where_the_values_say(example: Example) -> None:
    """Plain values: the chart Secret holds exactly that value; existing Secrets: referenced directly."""
    pod = local_pod(example)
    app = {e["name"]: e for e in pod.app.get("env") or []}
    for c in CREDENTIALS:
        var = c.env
        assert var in app, f"{example.id}: {var} is not set on the app container"
        ref = (app[var].get("valueFrom") or {}).get("secretKeyRef")
        assert ref, f"{example.id}: {var} must come from a secretKeyRef, got {app[var]}"
        if var in example.user_credential_refs:
            assert (ref["name"], ref["key"]) == example.user_credential_refs[var], (example.id, var, ref)
        else:
            plain = at(example.values, c.value_path)
            assert ref["name"] in example.chart_secret_names, (example.id, var, ref)
            assert pod.resolve_env(pod.app).values[var] == plain, f"{example.id}: {var} decodes to another value"


def test_init_containers_get_what_they_need(example: Example) -> None:
    """The migration container's environment is enough for the service's DB settings."""
    pod = local_pod(example)
    env = pod.resolve_env(pod.migration).values
    db = service_config.load_db_config(env)
    app_db = service_config.load_db_config(pod.resolve_env(pod.app).values)
    assert db == app_db or repr(db) == repr(app_db), f"{example.id}: migration and app see different databases"
    assert db.password == app_db.password


def test_no_secret_reaches_a_command_line(example: Example) -> None:
    pod = local_pod(example)
    values = secret_values(pod)
    assert values, f"{example.id}: no secret values resolved at all"
    for c in [*pod.init_containers, *pod.spec["containers"]]:
        try:
            argv = pod.argv(c)
        except SecretOnArgv as e:
            pytest.fail(f"{example.id}: {e}")
        joined = "\0".join(argv)
        leaked = [v for v in values if v in joined]
        assert not leaked, f"{example.id}: {c['name']} has a secret value on its command line"


def test_helm3_renders_the_same_objects_as_helm4(example: Example) -> None:
    """The process-level contract tests run what helm 4 renders; helm 3 must render the very same objects."""
    helm3 = render(files=[example.path], helm="helm3")
    assert [dict(o) for o in helm3] == [dict(o) for o in example.objs], (
        f"{example.id}: helm 3.18 and helm 4.1 render different objects")


def test_the_service_sees_what_the_values_say(example: Example) -> None:
    """values -> chart -> environment -> the service's own config: every setting arrives unchanged."""
    pod = local_pod(example)
    cfg = service_config.load_config(pod.resolve_env(pod.app).values)
    v = example.values
    platform = v["global"]["platformExternalDomain"]
    assert (cfg.db.host, cfg.db.port, cfg.db.name, cfg.db.user) == (
        v["database"]["host"], int(v["database"]["port"]), v["database"]["name"], v["database"]["username"])
    assert cfg.anthropic_model == v["anthropicModel"]
    assert (cfg.environment, cfg.log_level) == (v["environment"], v["logLevel"])
    assert (cfg.platform_url, cfg.platform_api_url) == (f"https://{platform}", f"https://{platform}/api")
    assert cfg.public_url == f"https://{example.domain('agentBackendDomain')}"
    assert cfg.mcp_url == example.mcp_url, (
        f"{example.id}: the service sees Seqera MCP at {cfg.mcp_url}, the values say {example.mcp_url}")
    assert cfg.port == int(v["service"]["http"]["targetPort"])
    assert cfg.tracing_enabled, f"{example.id}: LangSmith tracing is off although a LangChain key is configured"
    for ingress in example.objs.of_kind("Ingress"):  # the public URL is where the Ingress publishes it
        hosts = [r.get("host") for r in ingress["spec"].get("rules") or []]
        assert cfg.public_url.removeprefix("https://") in hosts, (
            f"{example.id}: AGENT_BACKEND_PUBLIC_URL={cfg.public_url}, Ingress hosts {hosts}")


def test_the_examples_cover_seqera_mcp_on_and_off() -> None:
    """Both sides of the switch go through the tests above: an example with Seqera MCP on (the
    default) and one with it off (global.mcpDomain: "", where the service's Config has mcp_url None)."""
    urls = {p.stem: load_example(p).mcp_url for p in sorted(paths.VALUES_EXAMPLES.glob("*.yaml"))}
    assert any(urls.values()), f"no example with Seqera MCP on: {urls}"
    assert None in urls.values(), f"no example with Seqera MCP off: {urls}"
