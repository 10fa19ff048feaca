"""Small helpers for reading rendered Kubernetes objects in chart tests (no helm here; see helm.py)."""
from __future__ import annotations

import base64
import copy
import json
from typing import Any, Iterator, Mapping

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


def pod_template_metadata(obj: Mapping[str, Any]) -> dict[str, Any]:
    path = _POD_SPEC_PATHS[obj["kind"]]
    return dig(obj, *path[:-1], "metadata", default={}) if len(path) > 1 else obj["metadata"]


def all_containers(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Init, regular and ephemeral containers of a pod spec, in that order."""
    return [*spec.get("initContainers", []), *spec.get("containers", []),
            *spec.get("ephemeralContainers", [])]


def deployment(objs: list[dict]) -> dict[str, Any]:
    found = [o for o in objs if o.get("kind") == "Deployment"]
    assert len(found) == 1, f"expected one Deployment, got {[o['metadata']['name'] for o in found]}"
    return found[0]


def app_container(objs: list[dict]) -> dict[str, Any]:
    """The main container of the chart's Deployment (the one serving the `http` port)."""
    containers = deployment(objs)["spec"]["template"]["spec"]["containers"]
    serving = [c for c in containers if any(p.get("name") == "http" for p in c.get("ports", []))]
    assert len(serving) == 1, f"expected one container with port 'http', got {containers}"
    return serving[0]


def init_containers(objs: list[dict]) -> list[dict[str, Any]]:
    return deployment(objs)["spec"]["template"]["spec"].get("initContainers", [])


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


def find(objs: list[dict], kind: str, name: str | None = None) -> dict[str, Any] | None:
    """The object of `kind` (and `name`) among objs, or None. More than one match is an error."""
    found = [o for o in objs if o.get("kind") == kind
             and (name is None or dig(o, "metadata", "name") == name)]
    assert len(found) <= 1, f"several {kind} objects: {[ident(o) for o in found]}"
    return found[0] if found else None


def resolved_env(container: Mapping[str, Any], objs: list[dict]) -> dict[str, dict[str, Any]]:
    """What each environment variable of a container resolves to, following the objects rendered.

    Each value is one of:
      {"value": "..."}                          literal, or read from a rendered ConfigMap
      {"secret": name, "key": key}              from a Secret (rendered or not)
      {"configMap": name, "key": key}           from a ConfigMap the chart did not render
      {"other": <valueFrom>}                    fieldRef / resourceFieldRef
    `env` entries override `envFrom`, as in Kubernetes.
    """
    out: dict[str, dict[str, Any]] = {}
    for source in container.get("envFrom", []):
        prefix = source.get("prefix", "")
        if "configMapRef" in source:
            name = source["configMapRef"]["name"]
            cm = find(objs, "ConfigMap", name)
            if cm is not None:
                for k, v in (cm.get("data") or {}).items():
                    out[prefix + k] = {"value": v, "from": f"ConfigMap/{name}"}
        elif "secretRef" in source:
            name = source["secretRef"]["name"]
            secret = find(objs, "Secret", name)
            if secret is not None:
                for k in secret_data(secret):
                    out[prefix + k] = {"secret": name, "key": k}
    for entry in container.get("env", []):
        name = entry["name"]
        if "value" in entry:
            out[name] = {"value": entry["value"]}
        elif "valueFrom" not in entry:
            out[name] = {"value": ""}
        elif "secretKeyRef" in entry["valueFrom"]:
            ref = entry["valueFrom"]["secretKeyRef"]
            out[name] = {"secret": ref["name"], "key": ref["key"]}
        elif "configMapKeyRef" in entry["valueFrom"]:
            ref = entry["valueFrom"]["configMapKeyRef"]
            cm = find(objs, "ConfigMap", ref["name"])
            if cm is not None:
                out[name] = {"value": (cm.get("data") or {}).get(ref["key"]),
                             "from": f"ConfigMap/{ref['name']}"}
            else:
                out[name] = {"configMap": ref["name"], "key": ref["key"]}
        else:
            out[name] = {"other": entry["valueFrom"]}
    return out


def wait_container(objs: list[dict]) -> dict[str, Any]:
    """The chart's wait-for-MySQL init container (the one running a mysql image)."""
    found = [c for c in init_containers(objs)
             if "mysql" in c["image"].split("@")[0].split(":")[0].split("/")[-1]]
    assert len(found) == 1, [c["image"] for c in init_containers(objs)]
    return found[0]


def migration_container(objs: list[dict]) -> dict[str, Any]:
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
