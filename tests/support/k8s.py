"""Small helpers for reading rendered Kubernetes objects and values in tests (no helm here; see helm.py).

`objs` arguments are what `helm.render()` returns (a `Rendered`): its `get(kind, name)` is the one
lookup of a single object, and `pod(objs)` the one way to the chart Deployment's pod spec.
"""
from __future__ import annotations

import base64
import copy
import json
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from tests.support.localpod import LocalPod

if TYPE_CHECKING:
    from tests.support.helm import Rendered

# Pod-bearing kinds and where their pod template lives.
_POD_SPEC_PATHS = {
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "Pod": ("spec",),
}

# The smallest set of values the chart requires (plain-text credentials). Tests start from this.
REQUIRED_VALUES: dict[str, Any] = {
    "database": {
        "host": "mysql.db.svc",
        "name": "agent_backend",
        "username": "agent",
        "password": "db-password",
    },
    "anthropicApiKey": "anthropic-key",
    "langchainApiKey": "langchain-key",
}


def merge(base: Mapping[str, Any], *overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge mappings into a new dict (later wins; lists and scalars are replaced)."""
    out = copy.deepcopy(dict(base))
    for override in overrides:
        for key, value in override.items():
            if isinstance(value, Mapping) and isinstance(out.get(key), dict):
                out[key] = merge(out[key], value)
            else:
                out[key] = copy.deepcopy(value)
    return out


def values(*overrides: Mapping[str, Any]) -> dict[str, Any]:
    """REQUIRED_VALUES deep-merged with `overrides` (a fresh dict each call)."""
    return merge(REQUIRED_VALUES, *overrides)


def dig(obj: Any, *path: Any, default: Any = None) -> Any:
    """obj[path[0]][path[1]]...; `default` when any step is missing."""
    for step in path:
        try:
            obj = obj[step]
        except (KeyError, IndexError, TypeError):
            return default
    return obj


def pod_spec(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """The pod spec inside a pod-bearing object, or None for other kinds."""
    path = _POD_SPEC_PATHS.get(obj.get("kind"))
    return None if path is None else dig(obj, *path)


def pod(objs: Rendered) -> dict[str, Any]:
    """The pod spec of the chart's (one) Deployment."""
    return pod_spec(objs.get("Deployment"))


def all_containers(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Init, regular and ephemeral containers of a pod spec, in that order."""
    return [*spec.get("initContainers", []), *spec.get("containers", []),
            *spec.get("ephemeralContainers", [])]


def pod_images(objs: Rendered) -> set[str]:
    """The image of every container of every pod-bearing object rendered (what the cluster pulls)."""
    return {c["image"] for o in objs if (spec := pod_spec(o)) is not None for c in all_containers(spec)}


def app_container(objs: Rendered) -> dict[str, Any]:
    """The main container of the chart's Deployment (the one serving the `http` port)."""
    containers = pod(objs)["containers"]
    serving = [c for c in containers if any(p.get("name") == "http" for p in c.get("ports", []))]
    assert len(serving) == 1, f"expected one container with port 'http', got {containers}"
    return serving[0]


def init_containers(objs: Rendered) -> list[dict[str, Any]]:
    return pod(objs).get("initContainers", [])


def env(container: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """A container's env entries by name (duplicates are an error)."""
    entries = container.get("env", [])
    names = [e["name"] for e in entries]
    dupes = sorted({n for n in names if names.count(n) > 1})
    assert not dupes, f"duplicate env vars in {container.get('name')}: {dupes}"
    return {e["name"]: e for e in entries}


def secret_data(secret: Mapping[str, Any]) -> dict[str, str]:
    """A Secret's decoded contents: base64 `data` decoded (UTF-8) merged with `stringData`."""
    out = {k: base64.b64decode(v).decode("utf-8") for k, v in (secret.get("data") or {}).items()}
    out.update(secret.get("stringData") or {})
    return out


def dockerconfig(secret: Mapping[str, Any]) -> dict[str, Any]:
    """The parsed `.dockerconfigjson` of a kubernetes.io/dockerconfigjson Secret."""
    assert secret.get("type") == "kubernetes.io/dockerconfigjson", secret.get("type")
    return json.loads(secret_data(secret)[".dockerconfigjson"])


def strings(obj: Any) -> Iterator[str]:
    """Every string anywhere in obj: mapping keys and values, list items, scalars (as str)."""
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            yield str(k)
            yield from strings(v)
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            yield from strings(item)
    elif obj is not None:
        yield str(obj)


def labels(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict(dig(obj, "metadata", "labels", default={}) or {})


def annotations(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict(dig(obj, "metadata", "annotations", default={}) or {})


def ident(obj: Mapping[str, Any]) -> str:
    return f"{obj.get('kind')}/{dig(obj, 'metadata', 'name')}"


# Reference fields: (envFrom field, valueFrom field, kind).
_REFS = (("configMapRef", "configMapKeyRef", "ConfigMap"), ("secretRef", "secretKeyRef", "Secret"))


def resolved_env(container: Mapping[str, Any], objs: Rendered) -> dict[str, dict[str, Any]]:
    """What each environment variable of a container resolves to, following the objects rendered.

    The resolution is LocalPod.resolve_env (the one implementation of the kubelet's rules: `envFrom`
    then `env`, later entries winning, `$(VAR)` expanded). ConfigMaps and Secrets the chart does not
    render (the user's) stand in as holding exactly the keys the container names. Each value is one of:
      {"value": "..."}                                 literal
      {"value": "...", "configMap": name, "key": key}  from a rendered ConfigMap
      {"configMap": name, "key": key}                  from a ConfigMap the chart did not render
      {"secret": name, "key": key}                     from a Secret (rendered or not)
      {"fieldRef": path}                               downward API
    """
    rendered = {(o.get("kind"), dig(o, "metadata", "name")) for o in objs}
    user: dict[str, dict[str, dict[str, str]]] = {"ConfigMap": {}, "Secret": {}}
    for env_from, value_from, kind in _REFS:
        for source in container.get("envFrom") or []:
            if env_from in source and (kind, source[env_from]["name"]) not in rendered:
                user[kind].setdefault(source[env_from]["name"], {})
        for entry in container.get("env") or []:
            ref = dig(entry, "valueFrom", value_from)
            if ref and (kind, ref["name"]) not in rendered:
                user[kind].setdefault(ref["name"], {})[ref["key"]] = ""
    resolved = LocalPod(objs, existing_configmaps=user["ConfigMap"],
                        existing_secrets=user["Secret"]).resolve_env(container)
    out: dict[str, dict[str, Any]] = {}
    for name, source in resolved.sources.items():
        # LocalPod sources: "value", "fieldRef/<path>", "<Kind>/<name>:<key>" (names and keys hold no ':')
        kind, _, rest = source.partition("/")
        ref_name, _, key = rest.partition(":")
        if kind == "Secret":
            out[name] = {"secret": ref_name, "key": key}
        elif kind == "ConfigMap":
            out[name] = {"configMap": ref_name, "key": key}
            if ref_name not in user["ConfigMap"]:
                out[name]["value"] = resolved.values[name]
        elif kind == "fieldRef":
            out[name] = {"fieldRef": rest}
        else:
            out[name] = {"value": resolved.values[name]}
    return out


def wait_container(objs: Rendered) -> dict[str, Any]:
    """The chart's wait-for-MySQL init container (the one running a mysql image)."""
    found = [c for c in init_containers(objs)
             if "mysql" in c["image"].split("@")[0].split(":")[0].split("/")[-1]]
    assert len(found) == 1, [c["image"] for c in init_containers(objs)]
    return found[0]


def migration_container(objs: Rendered) -> dict[str, Any]:
    """The chart's DB migration init container (the one running the app image)."""
    app_image = app_container(objs)["image"]
    found = [c for c in init_containers(objs) if c["image"] == app_image]
    assert len(found) == 1, [c["image"] for c in init_containers(objs)]
    return found[0]


# Unique strings, one per sensitive value; none may appear outside a Secret's data.
SENTINELS = {
    "db": "SENTINEL-db-7f3a91",
    "anthropic": "SENTINEL-anthropic-c04e2b",
    "langchain": "SENTINEL-langchain-5d8e13",
    "registry1": "SENTINEL-reg1-pass-a6b2f0",
    "registry2": "SENTINEL-reg2-pass-e91c47",
}


def sentinel_values(extra: dict | None = None) -> dict:
    return values({
        "database": {"password": SENTINELS["db"]},
        "anthropicApiKey": SENTINELS["anthropic"],
        "langchainApiKey": SENTINELS["langchain"],
        "global": {"imageCredentials": [
            {"registry": "reg-one.example.com", "username": "u1", "password": SENTINELS["registry1"],
             "email": "a@example.com"},
            {"registry": "reg-two.example.com", "username": "u2", "password": SENTINELS["registry2"],
             "email": "b@example.com"},
        ]},
    }, extra or {})


def encodings(secret: str) -> list[str]:
    """The forms a leaked secret could take in a manifest: raw, base64 (alone or in a user:pass)."""
    forms = [secret, base64.b64encode(secret.encode()).decode()]
    for user in ("u1", "u2"):
        forms.append(base64.b64encode(f"{user}:{secret}".encode()).decode())
    return forms


def secret_payload(secret: dict) -> str:
    """Everything a Secret carries in its data, decoded, including decoded docker auth strings."""
    data = secret_data(secret)
    parts = list(data.values())
    if secret.get("type") == "kubernetes.io/dockerconfigjson":
        for entry in dockerconfig(secret)["auths"].values():
            parts.append(base64.b64decode(entry.get("auth", "")).decode())
    return "\n".join(parts)
