"""The one way the tests run the chart: real helm, pinned Kubernetes version, every object validated.

`render()` shells out to `helm template` (fixed release name and namespace, pinned `--kube-version`),
caches helm's text per distinct input (values, files, --set, helm binary, chart contents) but parses
a fresh copy on every call, so a test can mutate what it gets. Every rendered object is validated in
strict mode against the Kubernetes 1.29 and 1.34 schemas bundled with `kubernetes-validate`; an
object whose kind has no schema is a failure, not a warning. `lint()` runs `helm lint --strict`;
`notes()` returns the NOTES.txt of a client-side `helm install --dry-run` (helm 4 only, no cluster).

Failures raise `HelmError` (helm exited non-zero; carries helm's stderr) or `ManifestInvalid`
(helm succeeded but an object is not valid Kubernetes, or output is not parseable YAML).
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import kubernetes_validate
import yaml

from tests.support import paths

RELEASE = "ab-test"
NAMESPACE = "ab-ns"
KUBE_VERSION = "1.34.0"
VALIDATE_VERSIONS = ("1.29", "1.34")
HELMS = tuple(paths.HELM_BINARIES)  # ("helm4", "helm3")
TIMEOUT = 120


# Values files the chart tests render (globbed, so new files are picked up automatically).
TEST_VALUES = paths.ROOT / "tests" / "chart" / "values"
INVALID_VALUES = paths.ROOT / "tests" / "chart" / "invalid"


def values_files() -> list[Path]:
    """Every values file the chart must accept: values-examples/*.yaml + tests/chart/values/*.yaml."""
    return sorted(paths.VALUES_EXAMPLES.glob("*.yaml")) + sorted(TEST_VALUES.glob("*.yaml"))


class HelmError(Exception):
    """helm exited non-zero. `stderr` holds helm's own message (what the user would see)."""

    def __init__(self, cmd: Sequence[str], returncode: int, stdout: str, stderr: str):
        self.cmd = list(cmd)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        super().__init__(f"{' '.join(self.cmd[:3])} ... exited {returncode}:\n{stderr}{stdout}")


class ManifestInvalid(Exception):
    """helm rendered something that is not a valid Kubernetes object for a supported version."""


class Obj(dict):
    """One rendered object; `source` is the template it came from (`templates/deployment.yaml`)."""

    source: str = ""


class Rendered(list):
    """The parsed objects of one render, in helm's order, plus helm's raw `text`."""

    text: str = ""

    def of_kind(self, kind: str) -> list[Obj]:
        return [o for o in self if o.get("kind") == kind]

    def get(self, kind: str, name: str | None = None) -> Obj:
        """Exactly one object of `kind` (and `name`, if given); AssertionError otherwise."""
        found = [o for o in self.of_kind(kind) if name is None or o["metadata"]["name"] == name]
        assert len(found) == 1, (
            f"expected exactly one {kind}{' ' + name if name else ''}, found "
            f"{[o['metadata']['name'] for o in found]} among "
            f"{[(o.get('kind'), o['metadata'].get('name')) for o in self]}"
        )
        return found[0]

    def names(self, kind: str) -> list[str]:
        return [o["metadata"]["name"] for o in self.of_kind(kind)]


_lock = threading.Lock()
_text_cache: dict[str, str] = {}  # cache key -> validated helm output
_lint_cache: dict[str, str] = {}
_notes_cache: dict[str, str] = {}


def helm_binary(helm: str) -> Path:
    """Path of the pinned helm binary named `helm` ("helm4" or "helm3"); hard failure if missing."""
    if helm not in paths.HELM_BINARIES:
        raise ValueError(f"unknown helm {helm!r}; expected one of {sorted(paths.HELM_BINARIES)}")
    binary = paths.HELM_BINARIES[helm]
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        raise RuntimeError(f"{helm} binary missing at {binary}: run ci/setup.sh")
    return binary


def helm_env(helm: str) -> dict[str, str]:
    """Environment for helm: its cache/config/data homes under paths.HELM_HOME, never ~."""
    home = paths.HELM_HOME / helm
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELM_")}
    for name in ("cache", "config", "data"):
        d = home / name
        d.mkdir(parents=True, exist_ok=True)
        env[f"HELM_{name.upper()}_HOME"] = str(d)
    env.pop("KUBECONFIG", None)
    env["KUBECONFIG"] = os.devnull
    return env


def _chart_fingerprint(chart: Path | str) -> str:
    """Hash of every file in the chart, so an edited chart is never served from the cache. A chart
    reference (`oci://...`) stands for itself: render() never caches one (a registry can change)."""
    if isinstance(chart, str):
        return chart
    h = hashlib.sha256()
    for p in sorted(chart.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(chart)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def _set_args(set_: Mapping[str, Any] | Sequence[str] | None) -> list[str]:
    if not set_:
        return []
    if isinstance(set_, Mapping):
        items = [f"{k}={v}" for k, v in set_.items()]
    else:
        items = list(set_)
    out: list[str] = []
    for item in items:
        out += ["--set", item]
    return out


def _run(helm: str, args: list[str], values: Any, files: Iterable[str | os.PathLike],
         cache: dict[str, str], chart: Path | str) -> tuple[str, str, bool]:
    """Run `helm <args> -f <files...> -f <values>`.

    Returns (stdout, cache key, was_cached). The caller stores the text under the key once it has
    accepted it (so a render that fails validation is never cached as good)."""
    file_list = [Path(f) for f in files]
    for f in file_list:
        if not f.is_file():
            raise FileNotFoundError(f"values file {f} does not exist")
    values_text = None if values is None else yaml.safe_dump(values, sort_keys=True, allow_unicode=True)
    key_material = [helm, *args, _chart_fingerprint(chart)]
    for f in file_list:
        key_material += [str(f), f.read_text()]
    key_material.append(values_text if values_text is not None else "<none>")
    key = hashlib.sha256("\0".join(key_material).encode()).hexdigest()
    with _lock:
        if key in cache:
            return cache[key], key, True

    binary = helm_binary(helm)
    with tempfile.TemporaryDirectory(prefix="render-") as tmp:
        cmd = [str(binary), *args]
        for f in file_list:
            cmd += ["-f", str(f)]
        if values_text is not None:
            vf = Path(tmp) / "values.yaml"
            vf.write_text(values_text)
            cmd += ["-f", str(vf)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=helm_env(helm),
                              cwd=tmp, timeout=TIMEOUT)
    if proc.returncode != 0:
        raise HelmError(cmd, proc.returncode, proc.stdout, proc.stderr)
    return proc.stdout, key, False


def parse(text: str) -> Rendered:
    """Split helm output into objects; each Obj remembers its `# Source:` template."""
    result = Rendered()
    result.text = text
    docs: list[list[str]] = [[]]
    for line in text.splitlines():
        if line.rstrip() == "---":
            docs.append([])
        else:
            docs[-1].append(line)
    for lines in docs:
        source = ""
        for line in lines:
            if line.startswith("# Source: "):
                source = line[len("# Source: "):].strip()
                break
        try:
            data = yaml.safe_load("\n".join(lines))
        except yaml.YAMLError as e:
            raise ManifestInvalid(f"{source or 'helm output'} is not valid YAML: {e}\n---\n"
                                  + "\n".join(lines)) from e
        if data is None:
            continue
        if not isinstance(data, dict):
            raise ManifestInvalid(f"{source}: document is a {type(data).__name__}, not an object")
        obj = Obj(data)
        # "agent-backend/templates/x.yaml" -> "templates/x.yaml"
        obj.source = source.split("/", 1)[1] if "/" in source else source
        result.append(obj)
    return result


def validate_objects(objs: Iterable[dict], versions: Sequence[str] = VALIDATE_VERSIONS) -> None:
    """Strict Kubernetes schema validation of each object for each version; no schema = failure."""
    problems = []
    for obj in objs:
        ident = f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"
        if not obj.get("apiVersion") or not obj.get("kind"):
            problems.append(f"{ident}: missing apiVersion or kind")
            continue
        for version in versions:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.SchemaNotFoundError:
                problems.append(f"{ident} [k8s {version}]: no schema for "
                                f"{obj['apiVersion']} {obj['kind']} (unknown kind or apiVersion)")
            except kubernetes_validate.ValidationError as e:
                path = "/".join(str(p) for p in e.path)
                problems.append(f"{ident} [k8s {version}]: {path}: {e.message}")
    if problems:
        raise ManifestInvalid("rendered objects fail Kubernetes validation:\n  " + "\n  ".join(problems))


def render(values: Any = None, files: Iterable[str | os.PathLike] = (),
           show_only: str | Sequence[str] | None = None, helm: str = "helm4",
           set_: Mapping[str, Any] | Sequence[str] | None = None, *,
           release: str = RELEASE, namespace: str = NAMESPACE,
           kube_version: str = KUBE_VERSION, chart: Path | str = paths.CHART,
           version: str | None = None, plain_http: bool = False) -> Rendered:
    """Render the chart with real helm and return fresh, validated objects.

    values:    a dict written to a temp values file (applied after `files`); None = no extra file.
    files:     values files, in order (`-f`).
    show_only: a template path ("templates/deployment.yaml") or several; filters the result.
               The whole chart is always rendered and validated (one cached helm call per input).
    helm:      "helm4" or "helm3" (paths.HELM_BINARIES).
    set_:      {"a.b": "v"} or ["a.b=v"], passed as --set.
    chart:     a chart directory, or a reference such as "oci://host/charts/agent-backend" with its
               `version` (`--version`); `plain_http` for a registry without TLS (`--plain-http`).
    """
    args = ["template", release, str(chart), "--namespace", namespace,
            "--kube-version", kube_version, *_set_args(set_),
            *(["--version", version] if version else []), *(["--plain-http"] if plain_http else [])]
    cache = _text_cache if isinstance(chart, Path) else {}
    text, key, cached = _run(helm, args, values, files, cache, chart)
    if not cached:  # fresh helm output: validate once, then cache
        validate_objects(parse(text))
        with _lock:
            cache[key] = text
    objs = parse(text)
    if show_only is not None:
        wanted = [show_only] if isinstance(show_only, str) else list(show_only)
        missing = [w for w in wanted if not any(o.source == w for o in objs)]
        if missing:
            raise AssertionError(f"no objects rendered from {missing}; sources: "
                                 f"{sorted({o.source for o in objs})}")
        filtered = Rendered(o for o in objs if o.source in wanted)
        filtered.text = text
        return filtered
    return objs


def notes(values: Any = None, files: Iterable[str | os.PathLike] = (), helm: str = "helm4",
          set_: Mapping[str, Any] | Sequence[str] | None = None, *,
          release: str = RELEASE, namespace: str = NAMESPACE, chart: Path = paths.CHART) -> str:
    """The NOTES.txt a user sees after install: `helm install --dry-run=client` (no cluster needed).

    Only helm 4 can do a client dry-run without a cluster; helm 3 always contacts one. Raises
    HelmError when helm stops (requirement checks and schema errors stop install too)."""
    args = ["install", release, str(chart), "--namespace", namespace, "--dry-run=client",
            *_set_args(set_)]
    text, key, cached = _run(helm, args, values, files, _notes_cache, chart)
    if not cached:
        with _lock:
            _notes_cache[key] = text
    marker = "\nNOTES:\n"
    assert marker in text, f"helm printed no NOTES:\n{text[-2000:]}"
    return text.split(marker, 1)[1]


def lint(values: Any = None, files: Iterable[str | os.PathLike] = (), helm: str = "helm4",
         set_: Mapping[str, Any] | Sequence[str] | None = None, *,
         namespace: str = NAMESPACE, kube_version: str = KUBE_VERSION,
         chart: Path = paths.CHART) -> str:
    """`helm lint --strict` with the given values; returns helm's output, raises HelmError."""
    args = ["lint", "--strict", str(chart), "--namespace", namespace,
            "--kube-version", kube_version, *_set_args(set_)]
    text, key, cached = _run(helm, args, values, files, _lint_cache, chart)
    if not cached:
        with _lock:
            _lint_cache[key] = text
    return text
