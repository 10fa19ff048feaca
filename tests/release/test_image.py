"""`make image` (ci/image.py): the image's config and contents are what the chart and the issue ask for,
it is built from the exact pins, it is small, it is cached, and the same commit builds to the same digest
from a clean clone in another directory."""
from __future__ import annotations

import datetime
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

from tests.support import paths
from tests.support.image import Image, build, built

CHART = yaml.safe_load((paths.CHART / "Chart.yaml").read_text())
MAX_COMPRESSED = 80 * 10**6  # bytes, all layers as pushed (the bound; about 71 MB today)
# What an image that runs the service has no use for: an installer, a compiler, caches, build logs.
FORBIDDEN = (
    re.compile(r"^opt/venv/lib/python3\.\d+/site-packages/(pip|setuptools|wheel)(-[^/]*)?/"),
    re.compile(r"^(usr/)?(s?bin)/(pip3?|apt|apt-get|gcc|cc|make|g\+\+)$"),
    re.compile(r"\.whl$"),
    re.compile(r"^var/cache/.+"), re.compile(r"^var/lib/apt/lists/.+"), re.compile(r"^var/log/.+"),
    re.compile(r"^root/\.cache"), re.compile(r"^tmp/.+"),
)


@pytest.fixture(scope="module")
def image() -> Image:
    return built()


@pytest.fixture(scope="module")
def files(image: Image) -> dict[str, tarfile.TarInfo]:
    """Every entry of the image's layers, by path."""
    out: dict[str, tarfile.TarInfo] = {}
    for layer in image.manifest()["layers"]:
        algo, hexdigest = layer["digest"].split(":", 1)
        with tarfile.open(image.layout / "blobs" / algo / hexdigest, "r:gz") as tar:
            out.update({m.name.lstrip("./"): m for m in tar})
    return out


def _inputs_commit() -> tuple[str, int]:
    out = subprocess.run(["git", "-C", str(paths.ROOT), "log", "-1", "--format=%H %ct", "--", "ci/image.py",
                          "ci/requirements.txt", "service"], capture_output=True, text=True, check=True)
    sha, ct = out.stdout.split()
    return sha, int(ct)


def _inputs_dirty() -> bool:
    out = subprocess.run(["git", "-C", str(paths.ROOT), "status", "--porcelain", "--", "ci/image.py",
                          "ci/requirements.txt", "service"], capture_output=True, text=True, check=True)
    return bool(out.stdout.strip())


def test_the_config_runs_the_service_as_101_from_app(image: Image) -> None:
    assert image.tag == CHART["appVersion"]
    config = image.config()["config"]
    assert config["User"] == "101:101"
    assert config["WorkingDir"] == "/app"
    assert config["Cmd"] == ["python", "-m", "agent_backend"]
    env = dict(e.split("=", 1) for e in config["Env"])
    assert env["PATH"].split(":")[0] == "/opt/venv/bin"
    assert env["HOME"] == env["TMPDIR"] == "/tmp"  # the only writable place under the chart's pod spec
    assert "8002/tcp" in config["ExposedPorts"]


def test_the_oci_labels_say_what_was_built_from_which_commit(image: Image) -> None:
    labels = image.config()["config"]["Labels"]
    sha, ct = _inputs_commit()
    assert labels["org.opencontainers.image.version"] == CHART["appVersion"]
    assert labels["org.opencontainers.image.revision"] == sha + ("-dirty" if _inputs_dirty() else "")
    assert labels["org.opencontainers.image.source"] == CHART["sources"][0]
    created = datetime.datetime.fromtimestamp(ct, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert labels["org.opencontainers.image.created"] == image.config()["created"] == created


def test_init_sh_is_there_and_runs_the_migrations(image: Image, files: dict[str, tarfile.TarInfo]) -> None:
    init = files["app/init.sh"]
    assert init.isfile() and init.mode & 0o111 and init.uid == 0  # executable, not writable by UID 101
    assert (paths.SERVICE / "init.sh").read_text().strip().endswith("python -m agent_backend.migrate \"$@\"")
    assert any(n.startswith("opt/venv/lib/python3.11/site-packages/agent_backend/migrations/") for n in files)


def test_user_and_group_101_exist(files: dict[str, tarfile.TarInfo], image: Image) -> None:
    # the layer's /etc/passwd: read from the blob, not from this machine
    algo, hexdigest = image.manifest()["layers"][-1]["digest"].split(":", 1)
    with tarfile.open(image.layout / "blobs" / algo / hexdigest, "r:gz") as tar:
        passwd = tar.extractfile("etc/passwd").read().decode()  # type: ignore[union-attr]
        group = tar.extractfile("etc/group").read().decode()  # type: ignore[union-attr]
    assert re.search(r"^agent:x:101:101:[^:]*:/tmp:/usr/sbin/nologin$", passwd, re.M), passwd
    assert re.search(r"^agent:x:101:$", group, re.M), group


def test_no_installer_compiler_or_cache_is_left(files: dict[str, tarfile.TarInfo]) -> None:
    found = sorted(n for n in files if any(p.search(n) for p in FORBIDDEN))
    assert not found, f"left in the image: {found[:20]}"


def test_python_distributions_are_exactly_the_pins(image: Image) -> None:
    pins = {}
    for line in (paths.ROOT / "ci" / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            pins[re.sub(r"[-_.]+", "-", name.lower())] = version
    installed = dict(line[3:].split("==") for line in image.packages.read_text().splitlines()
                     if line.startswith("py "))
    service = installed.pop("agent-backend")
    assert service == CHART["appVersion"]
    wrong = {n: v for n, v in installed.items() if pins.get(re.sub(r"[-_.]+", "-", n)) != v}
    assert not wrong, f"not the version ci/requirements.txt pins: {wrong}"
    assert {"aiohttp", "aiomysql", "anthropic", "langsmith", "mcp"} <= set(installed)


def test_compressed_size_is_at_most_80_mb(image: Image) -> None:
    size = sum(layer["size"] for layer in image.manifest()["layers"])
    assert size <= MAX_COMPRESSED, f"{size / 1e6:.1f} MB compressed"


def test_a_second_build_with_the_same_inputs_comes_from_the_cache(image: Image, tmp_path: Path) -> None:
    result = subprocess.run([str(paths.PYTHON), str(paths.ROOT / "ci" / "image.py"), "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "inputs unchanged" in result.stderr and "mmdebstrap" not in result.stderr, result.stderr
    assert result.stdout.split()[1] == image.digest


def _clean_clone(dest: Path) -> Path:
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(paths.ROOT), str(dest)], check=True,
                   capture_output=True, timeout=300)
    return dest


@pytest.mark.timeout(2400)  # one or two cold builds on a loaded machine: a hang bound, not a timing
def test_the_same_commit_builds_to_the_same_bytes_from_a_clean_clone_elsewhere(image: Image,
                                                                               tmp_path: Path) -> None:
    """From a clone in another directory, with no cache: the digest and archive this checkout built (or,
    while this checkout has uncommitted changes to the image's inputs, those a second clean clone builds)."""
    clones = [_clean_clone(tmp_path / "somewhere" / "else")]
    try:
        got = build(out=clones[0] / "dist", cwd=clones[0])
        reference = image
        if _inputs_dirty():
            clones.append(_clean_clone(tmp_path / "another"))
            reference = build(out=clones[1] / "dist", cwd=clones[1])
        assert got.digest == reference.digest
        assert got.archive.read_bytes() == reference.archive.read_bytes()
    finally:
        for clone in clones:  # each holds a build cache of its own
            shutil.rmtree(clone, ignore_errors=True)
