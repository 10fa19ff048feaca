#!/usr/bin/env python3
"""`make publish REGISTRY=<host[:port][/path]>`: the chart package and the service image, pushed to one
OCI registry at the references an install expects.

- the chart (`make package`'s .tgz) with the pinned helm's `helm push` to `oci://REGISTRY/charts`, so it is
  `oci://REGISTRY/charts/agent-backend` at the chart version;
- the image (`make image`'s OCI layout, tag = Chart.yaml's appVersion) with `skopeo copy` to
  `REGISTRY/<image.repository of values.yaml>:<appVersion>`, i.e.
  `REGISTRY/private/nf-tower-enterprise/agent-backend:0.1.0`: `--set global.imageRegistry=REGISTRY` alone
  points an install at it. The manifest digest is kept (`--preserve-digests`).

Plain HTTP only when the registry host is loopback (localhost, 127.0.0.0/8, ::1); TLS, verified, otherwise.
Credentials are the ones you stored, never arguments: `helm registry login REGISTRY` (read from
HELM_REGISTRY_CONFIG, else HELM_CONFIG_HOME's or ~/.config/helm's registry/config.json) and
`skopeo login REGISTRY` (or REGISTRY_AUTH_FILE, as skopeo reads it). Prints each reference pushed with its
manifest digest.

    ci/publish.py REGISTRY [--chart DIR] [--chart-package TGZ] [--image-layout DIR]
    # defaults: charts/agent-backend, dist/agent-backend-<chart version>.tgz, dist/image
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from tests.support import helm, paths  # noqa: E402

DIST = ROOT / "dist"
CONNECT_TIMEOUT = 10.0  # seconds to wait for the registry to accept a connection
PUSH_TIMEOUT = 1800  # a hang bound for one push of a ~70 MB image over a slow link


class PublishError(Exception):
    """Why nothing (or not everything) was pushed; one message for the user."""


def split_host(registry: str) -> tuple[str, int | None]:
    """(host, port) of REGISTRY's first element: `h`, `h:5000`, `[::1]:5000`, a bare `::1`."""
    hostport = registry.split("/", 1)[0]
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif hostport.count(":") > 1:
        host, port = hostport, ""
    else:
        host, _, port = hostport.partition(":")
    if not host or (port and not port.isdigit()):
        raise PublishError(f"REGISTRY {registry!r} is not host[:port][/path]")
    return host, int(port) if port else None


def is_loopback(registry: str) -> bool:
    """Whether REGISTRY's host is this machine (localhost, 127.0.0.0/8, ::1): only then plain HTTP."""
    host, _ = split_host(registry)
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_registry(registry: str) -> str:
    """REGISTRY without a trailing slash, refused when it has a scheme or an empty path element."""
    if "://" in registry:
        raise PublishError(f"REGISTRY {registry!r}: give host[:port][/path], without a scheme")
    registry = registry.rstrip("/")
    if not registry or "" in registry.split("/"):
        raise PublishError(f"REGISTRY {registry!r} is not host[:port][/path]")
    split_host(registry)
    return registry


def check_reachable(registry: str) -> None:
    """A TCP connection to the registry, so that an unreachable one fails in one line, quickly."""
    host, port = split_host(registry)
    port = port or (80 if is_loopback(registry) else 443)
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT).close()
    except OSError as exc:
        raise PublishError(f"registry {registry} is unreachable ({host}:{port}: {exc.strerror or exc})") from None


def layout_has_tag(layout: Path, tag: str) -> bool:
    try:
        index = json.loads((layout / "index.json").read_text())
    except (OSError, ValueError):
        return False
    return any((m.get("annotations") or {}).get("org.opencontainers.image.ref.name") == tag
               for m in index.get("manifests", []))


def helm_registry_config() -> list[str]:
    """The `--registry-config` of the user's `helm registry login`: helm_env() keeps the pinned helm's homes
    under .tools/, where no login is stored."""
    config_home = os.environ.get("HELM_CONFIG_HOME") or Path(
        os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "helm"
    path = Path(os.environ.get("HELM_REGISTRY_CONFIG") or Path(config_home) / "registry" / "config.json")
    return ["--registry-config", str(path)] if path.is_file() else []


def run(what: str, cmd: list[str], env: dict[str, str] | None = None) -> str:
    """Run a push; its combined output, or PublishError with the tool's own message."""
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=PUSH_TIMEOUT)
    if result.returncode != 0:
        raise PublishError(f"{what} failed: {(result.stderr or result.stdout).strip()}")
    return result.stdout + result.stderr


def push_chart(package: Path, registry: str) -> tuple[str, str]:
    """`helm push` of the package to oci://REGISTRY/charts; (reference, manifest digest)."""
    cmd = [str(helm.helm_binary("helm4")), "push", str(package), f"oci://{registry}/charts",
           *helm_registry_config(), *(["--plain-http"] if is_loopback(registry) else [])]
    out = run(f"helm push to oci://{registry}/charts", cmd, helm.helm_env("helm4"))
    pushed, digest = re.search(r"^Pushed: (\S+)", out, re.M), re.search(r"^Digest: (sha256:\w+)", out, re.M)
    if not (pushed and digest):
        raise PublishError(f"helm push printed no reference and digest:\n{out}")
    return f"oci://{pushed.group(1)}", digest.group(1)


def push_image(layout: Path, tag: str, registry: str, repository: str) -> tuple[str, str]:
    """`skopeo copy` of the layout's `tag` to REGISTRY/repository:tag; (reference, manifest digest)."""
    dest = f"{registry}/{repository}:{tag}"
    with tempfile.TemporaryDirectory(prefix="publish-") as tmp:
        digestfile = Path(tmp) / "digest"
        run(f"skopeo copy to {dest}", [
            "skopeo", "copy", "--preserve-digests", "--digestfile", str(digestfile),
            f"--dest-tls-verify={'false' if is_loopback(registry) else 'true'}",
            f"oci:{layout}:{tag}", f"docker://{dest}"])
        return dest, digestfile.read_text().strip()


def publish(registry: str, chart: Path, package: Path | None, layout: Path) -> list[tuple[str, str]]:
    """Push the chart package and the image; [(reference, digest)] in that order."""
    registry = check_registry(registry)
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    repository = yaml.safe_load((chart / "values.yaml").read_text())["image"]["repository"]
    tag = str(meta["appVersion"])
    package = package or DIST / f"{meta['name']}-{meta['version']}.tgz"
    if not package.is_file():
        raise PublishError(f"no chart package at {package}: run `make package`")
    if not layout_has_tag(layout, tag):
        raise PublishError(f"no image tagged {tag} in the OCI layout {layout}: run `make image`")
    check_reachable(registry)
    return [push_chart(package, registry), push_image(layout, tag, registry, repository)]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("registry", nargs="?", default="", help="host[:port][/path]")
    parser.add_argument("--chart", type=Path, default=paths.CHART, help="the chart whose versions and image name count")
    parser.add_argument("--chart-package", type=Path, help="default: dist/agent-backend-<chart version>.tgz")
    parser.add_argument("--image-layout", type=Path, default=DIST / "image", help="an OCI image layout")
    args = parser.parse_args(argv)
    if not args.registry:
        print("usage: make publish REGISTRY=<host[:port][/path]>", file=sys.stderr)
        return 2
    try:
        pushed = publish(args.registry, args.chart.resolve(), args.chart_package and args.chart_package.resolve(),
                         args.image_layout.resolve())
    except PublishError as exc:
        print(f"publish: {exc}", file=sys.stderr)
        return 1
    for ref, digest in pushed:
        print(f"pushed {ref} {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
