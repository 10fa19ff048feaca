"""service/Dockerfile builds as a Docker user builds it (the repository root as the context) and gives the
image `make image` gives: the same Python distributions, make image's Debian packages at the same versions,
the same config, /app/init.sh, and nothing of the build left in it.

No Docker engine and no base image can be had here, so `buildah bud --isolation chroot` builds it from
ci/image.py's `debian-base` recipe (Debian bookworm with apt, made with mmdebstrap like make image's root
filesystem: the stand-in for debian:bookworm-slim), with buildah's storage in a temp dir. The Dockerfile's
apt steps reach Debian's mirror as on any machine; pip cannot reach an index from inside the build here,
so the wheels stage gets a wheelhouse built on this machine from the same pins, through the build args
a user without PyPI would use (PIP_NO_INDEX, PIP_FIND_LINKS) and a `--volume`.

The image is built once per session: the first xdist worker builds it, pushes it to an OCI layout,
unpacks it with umoci and keeps what the tests read (config, packages, files; make image's config and
package list, tests/support/image.py's `built()`) as JSON; the other waits on a lock and reads that.
buildah's storage, the layout and the unpacked tree are removed right away.
"""
from __future__ import annotations

import fcntl
import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.support import image, paths

# Bounds on a loaded shared machine (a cold build takes a few minutes), never asserted on: each step, and the
# whole (two ci/image.py builds, the wheelhouse, buildah bud and push, umoci unpack).
STEP_TIMEOUT = 1800
pytestmark = pytest.mark.timeout(2 * image.BUILD_TIMEOUT + 4 * STEP_TIMEOUT)

DOCKERFILE = paths.SERVICE / "Dockerfile"
TAG = "dockerfile"
WHEELS_IN_BUILD = "/wheels"
# Where a build could leave something behind (its sources, caches, indexes, logs, temp files).
BUILD_LEFTOVERS = ("src", "build", "stage", "wheels", "tmp", "root/.cache", "var/lib/apt/lists", "var/cache/apt",
                   "var/log")
# What make image's config says about running the service, compared field by field.
CONFIG_FIELDS = ("User", "WorkingDir", "Entrypoint", "Cmd", "Env", "ExposedPorts", "StopSignal")


def run(*argv: str | Path, **kw: Any) -> str:
    result = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=STEP_TIMEOUT, **kw)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, argv[:4]))} ... failed ({result.returncode}):\n"
                             f"{result.stdout[-4000:]}{result.stderr[-4000:]}")
    return result.stdout


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def listed(packages: Path, kind: str) -> dict[str, str]:
    """A .packages file's `deb name=version` or `py name==version` lines, as {name: version}."""
    sep = "==" if kind == "py" else "="
    out = {}
    for line in packages.read_text().splitlines():
        if line.startswith(f"{kind} "):
            name, version = line[len(kind) + 1:].split(sep, 1)
            out[canonical(name) if kind == "py" else name] = version
    return out


def wheelhouse(out: Path) -> None:
    """On this machine: the service's wheels from ci/requirements.txt's pins, and its build backend."""
    pip = (sys.executable, "-m", "pip", "--disable-pip-version-check")
    run(*pip, "wheel", "--quiet", "--no-cache-dir", "--wheel-dir", out, "-c", paths.ROOT / "ci" / "requirements.txt",
        paths.SERVICE)
    backend = tomllib.loads((paths.SERVICE / "pyproject.toml").read_text())["build-system"]["requires"]
    run(*pip, "download", "--quiet", "--no-cache-dir", "--only-binary", ":all:", "--no-deps", "--dest", out, *backend)


def installed_debs(rootfs: Path) -> dict[str, str]:
    """{package: version} of what dpkg's status file says is installed."""
    out = {}
    for stanza in (rootfs / "var" / "lib" / "dpkg" / "status").read_text().split("\n\n"):
        fields = dict(re.findall(r"^([\w-]+): (.*)$", stanza, re.M))
        if fields.get("Status") == "install ok installed":
            out[fields["Package"]] = fields["Version"]
    return out


def venv_distributions(rootfs: Path) -> dict[str, str]:
    [site] = (rootfs / "opt" / "venv" / "lib").glob("python3*/site-packages")
    return {canonical(d.metadata["Name"]): d.version for d in importlib.metadata.distributions(path=[str(site)])}


def read_blob(layout: Path, digest: str) -> dict[str, Any]:
    return json.loads((layout / "blobs" / Path(*digest.split(":", 1))).read_text())


def facts(rootfs: Path, config: dict[str, Any]) -> dict[str, Any]:
    """What the tests read from the Dockerfile's image."""
    init = rootfs / "app" / "init.sh"
    return {
        "config": config.get("config") or {},
        "debs": installed_debs(rootfs),
        "dists": venv_distributions(rootfs),
        "init_sh": {"mode": init.stat().st_mode & 0o7777, "text": init.read_text()} if init.is_file() else None,
        "leftovers": {d: sorted(str(p.relative_to(rootfs)) for p in (rootfs / d).rglob("*") if not p.is_dir())
                      for d in BUILD_LEFTOVERS if (rootfs / d).is_dir()},
    }


def build_and_inspect(work: Path) -> dict[str, Any]:
    """make image's image and its base's packages, then buildah bud of service/Dockerfile from that base and
    the facts of the result."""
    made = image.built()
    make_image = {"config": made.config().get("config") or {}, "debs": listed(made.packages, "deb"),
                  "dists": listed(made.packages, "py")}
    base = image.build(out=work / "base", recipe="debian-base")
    wheels = work / "wheels"
    wheelhouse(wheels)
    storage = Path(tempfile.mkdtemp(prefix="buildah-", dir=work))
    buildah = ("buildah", "--root", storage / "root", "--runroot", storage / "run", "--storage-driver", "vfs")
    layout = work / "oci"
    try:
        run(*buildah, "bud", "--isolation", "chroot", "--file", DOCKERFILE, "--tag", f"localhost/agent-backend:{TAG}",
            "--build-arg", f"BASE=oci:{base.layout}:{base.tag}",
            "--build-arg", "PIP_NO_INDEX=1", "--build-arg", f"PIP_FIND_LINKS={WHEELS_IN_BUILD}",
            "--volume", f"{wheels}:{WHEELS_IN_BUILD}:ro", paths.ROOT, cwd=paths.ROOT)
        run(*buildah, "push", f"localhost/agent-backend:{TAG}", f"oci:{layout}:{TAG}")
    finally:
        shutil.rmtree(storage)
    bundle = work / "bundle"
    run("umoci", "unpack", "--image", f"{layout}:{TAG}", bundle)
    [manifest] = json.loads((layout / "index.json").read_text())["manifests"]
    config = read_blob(layout, read_blob(layout, manifest["digest"])["config"]["digest"])
    return {"dockerfile": facts(bundle / "rootfs", config), "make_image": make_image,
            "base_debs": listed(base.packages, "deb")}


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> dict[str, Any]:
    """The facts of service/Dockerfile's image and of make image's, gathered once per session (the first xdist
    worker builds, the other waits and reads the result): only one worker reads make image's dist/."""
    session = tmp_path_factory.getbasetemp()
    shared = session if worker_id == "master" else session.parent
    result = shared / "dockerfile-image.json"
    with open(shared / "dockerfile-image.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not result.is_file():
            work = Path(tempfile.mkdtemp(prefix="dockerfile-", dir=shared))
            try:
                result.write_text(json.dumps(build_and_inspect(work)))
            finally:
                shutil.rmtree(work)
    return json.loads(result.read_text())


def test_the_python_distributions_are_make_images(images: dict) -> None:
    assert images["dockerfile"]["dists"] == images["make_image"]["dists"]


def test_make_images_debian_packages_are_there_at_the_same_versions(images: dict) -> None:
    debs = images["dockerfile"]["debs"]
    differ = {name: (version, debs.get(name)) for name, version in images["make_image"]["debs"].items()
              if debs.get(name) != version}
    assert differ == {}, "package: (make image's version, the Dockerfile's)"


def test_its_other_debian_packages_are_the_bases_no_build_tools(images: dict) -> None:
    extra = set(images["dockerfile"]["debs"]) - set(images["make_image"]["debs"])
    assert extra - set(images["base_debs"]) == set()


def how_it_runs(config: dict[str, Any]) -> dict[str, Any]:
    """An image config's CONFIG_FIELDS, Env as a dict (its order does not matter)."""
    return {f: dict(e.split("=", 1) for e in config.get(f) or ()) if f == "Env" else config.get(f)
            for f in CONFIG_FIELDS}


def test_the_config_is_make_images(images: dict) -> None:
    got = how_it_runs(images["dockerfile"]["config"])
    assert got == how_it_runs(images["make_image"]["config"])
    assert (got["User"], got["WorkingDir"], got["Env"]["PATH"].split(":")[0]) == ("101:101", "/app", "/opt/venv/bin")


def test_init_sh_is_the_services_and_executable(images: dict) -> None:
    init = images["dockerfile"]["init_sh"]
    assert init is not None, "/app/init.sh is missing"
    assert init["text"] == (paths.SERVICE / "init.sh").read_text()
    assert init["mode"] & 0o111 == 0o111


def test_nothing_of_the_build_stays(images: dict) -> None:
    assert {d: files for d, files in images["dockerfile"]["leftovers"].items() if files} == {}
