#!/usr/bin/env python3
"""`make image`: the service image, built without a Docker daemon from Debian's packages and the exact
pins of ci/requirements.txt.

    ci/image.py [--out DIR] [--fresh]
        DIR/image/                          OCI image layout, tagged with the chart's appVersion
        DIR/agent-backend-<tag>.oci.tar     the same image as an oci-archive
        DIR/agent-backend-<tag>.packages    what is in it: Debian packages and Python distributions

How it is made (root is needed: mmdebstrap --mode=root, chroot):
1. wheels, on this machine: `pip wheel -c ci/requirements.txt ./service` (the image is installed offline
   from them: nothing inside the build reaches an index);
2. a root filesystem from Debian bookworm's packages with mmdebstrap (the essential variant, python3 and
   ca-certificates; man pages, docs and translations left out), into which a venv at /opt/venv gets the
   wheels, installed by pip run from its own wheel (so no pip stays in the image) and compiled to
   bytecode checked by hash; then /app/init.sh, user and group 101, no caches or logs;
3. every mtime clamped to SOURCE_DATE_EPOCH, the tree packed as one layer with umoci, the config set
   (user 101:101, workdir /app, the service as the command, the OCI labels).

Reproducible: SOURCE_DATE_EPOCH (and the `revision` label) default to the last commit that changed what
the image is made of (this script, ci/requirements.txt, service/), so building the same commit from a
clean clone in any directory gives the same manifest digest; a commit that changes only the chart keeps
the image. With those inputs changed and not committed, the revision label ends in `-dirty`.

Cached: a build is kept under .tools/image-cache/<hash of the inputs>/ and copied from there when the
inputs match (`--fresh`, or `make image FRESH=1`, rebuilds). Debian's packages come from this machine's
apt sources; a newer point release is picked up by a fresh build.
"""
from __future__ import annotations

import argparse
import datetime
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHART_YAML = ROOT / "charts" / "agent-backend" / "Chart.yaml"
REQUIREMENTS = ROOT / "ci" / "requirements.txt"
SERVICE = ROOT / "service"
CACHE = ROOT / ".tools" / "image-cache"

SUITE = "bookworm"
# pip runs once, from its wheel, to install the service's wheels into the image's venv; it is not kept.
PIP = "pip==24.3.1"
VENV = "/opt/venv"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# What dpkg leaves out of the image: nobody reads man pages or translations in a container.
DPKG_EXCLUDES = ("/usr/share/man/*", "/usr/share/doc/*", "/usr/share/info/*", "/usr/share/locale/*",
                 "/usr/share/lintian/*")
DPKG_INCLUDES = ("/usr/share/doc/*/copyright",)  # the licenses stay
# What no image keeps of its build (removed after mmdebstrap, which leaves apt's state directories, owned
# by whoever ran the build, even without apt).
LEFTOVERS = ("var/cache/*", "var/lib/apt/lists/*", "var/log/*", "etc/machine-id", "var/lib/dbus/machine-id")
# The chroot's commands get a clean environment (none of this machine's PIP_*, proxies or paths).
IN_CHROOT = 'chroot "$1" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 /bin/sh'

# Prints an image's contents: its Debian packages, then the Python distributions of its venv if any.
LIST_PACKAGES = f"""set -eu
dpkg-query -W -f 'deb ${{Package}}=${{Version}}\\n' | LC_ALL=C sort
if [ -x {VENV}/bin/python ]; then {VENV}/bin/python /tmp/stage/list-distributions.py; fi
"""
LIST_DISTRIBUTIONS = """import importlib.metadata as m
print("\\n".join(sorted("py %s==%s" % (d.metadata["Name"].lower(), d.version) for d in m.distributions())))
"""


@dataclass(frozen=True)
class Recipe:
    """One image: its Debian packages, what runs in the chroot after them, its config, where it goes."""

    name: str
    title: str
    packages: tuple[str, ...]
    customize: str                  # shell, run in the chroot with the staged files at /tmp/stage
    config: tuple[str, ...]         # umoci config options (user, workdir, cmd, env...)
    layout: str                     # the OCI layout's directory under --out
    wheels: bool = False            # stage the service's wheels, ci/requirements.txt and init.sh

    def inputs(self) -> list[Path]:
        """What the image is made of: this script, and for the service the pins and service/'s files."""
        files = [Path(__file__).resolve()]
        if self.wheels:
            listed = git("ls-files", "--cached", "--others", "--exclude-standard", "service")
            service = [ROOT / p for p in listed.splitlines()] if listed else [
                p for p in SERVICE.rglob("*") if "__pycache__" not in p.parts]
            files += [REQUIREMENTS, *(p for p in service if p.is_file())]
        return sorted(set(files))

    def input_paths(self) -> list[str]:
        """The same, as paths for git log / git status."""
        paths = [Path(__file__).resolve(), *((REQUIREMENTS, SERVICE) if self.wheels else ())]
        return [str(p.relative_to(ROOT)) for p in paths]


UID = GID = 101
AGENT_BACKEND = Recipe(
    name="agent-backend", title="agent-backend", layout="image", wheels=True,
    packages=("python3", "ca-certificates"),
    customize=f"""set -eu
/usr/bin/python3 -m venv --without-pip {VENV}
{VENV}/bin/python /tmp/stage/pip.whl/pip install --quiet --no-index --no-compile --no-cache-dir \\
    --disable-pip-version-check --find-links /tmp/stage/wheels -c /tmp/stage/requirements.txt agent-backend
{VENV}/bin/python -m compileall -q --invalidation-mode checked-hash {VENV}/lib
mkdir -p /app
install -m 0755 /tmp/stage/init.sh /app/init.sh
echo 'agent:x:{GID}:' >> /etc/group
echo 'agent:x:{UID}:{GID}:agent-backend:/tmp:/usr/sbin/nologin' >> /etc/passwd
""",
    config=("--config.user", f"{UID}:{GID}", "--config.workingdir", "/app", "--config.exposedports", "8002/tcp",
            "--config.stopsignal", "SIGTERM",
            *(a for e in (f"PATH={VENV}/bin:{SYSTEM_PATH}", "PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1",
                          "HOME=/tmp", "TMPDIR=/tmp", "LANG=C.UTF-8") for a in ("--config.env", e)),
            *(a for c in ("python", "-m", "agent_backend") for a in ("--config.cmd", c))),
)
# For the tests only: `mysql:9` cannot be fetched here, so the wait-for-mysql init container runs from this
# image instead: Debian's MySQL-compatible client (MariaDB's `mysql`), bash and coreutils, nothing else.
MYSQL_CLIENT = Recipe(
    name="mysql-client", title="mysql client (MariaDB's, Debian): a test stand-in for mysql:9",
    layout="mysql-client-image", packages=("mariadb-client-core",), customize="",
    config=("--config.env", f"PATH={SYSTEM_PATH}", "--config.cmd", "mysql"),
)
# For the tests only: no base image can be pulled here, so service/Dockerfile is built (buildah bud) from this
# stand-in for debian:bookworm-slim: Debian bookworm with apt, made the same way as the service's root filesystem.
DEBIAN_BASE = Recipe(
    name="debian-base", title="Debian bookworm with apt (Debian): a test stand-in for debian:bookworm-slim",
    layout="debian-base-image", packages=("apt",), customize="",
    config=("--config.env", f"PATH={SYSTEM_PATH}", "--config.cmd", "bash"),
)
RECIPES = {r.name: r for r in (AGENT_BACKEND, MYSQL_CLIENT, DEBIAN_BASE)}


def log(msg: str) -> None:
    print(f"[image] {msg}", file=sys.stderr, flush=True)


def run(*argv: str | Path, **kw) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(a) for a in argv], text=True, capture_output=True, **kw)
    if result.returncode != 0:
        raise SystemExit(f"image: {' '.join(map(str, argv[:3]))} ... failed ({result.returncode}):\n"
                         f"{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return result


def git(*args: str) -> str:
    out = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else ""


def chart_meta() -> dict:
    import yaml
    return yaml.safe_load(CHART_YAML.read_text())


def provenance(recipe: Recipe) -> tuple[int, str]:
    """(SOURCE_DATE_EPOCH, revision): the environment's, else the last commit that changed the inputs."""
    paths = recipe.input_paths()
    commit = git("log", "-1", "--format=%H %ct", "--", *paths)
    if os.environ.get("SOURCE_DATE_EPOCH"):
        epoch = int(os.environ["SOURCE_DATE_EPOCH"])
    elif commit:
        epoch = int(commit.split()[1])
    else:
        raise SystemExit("image: set SOURCE_DATE_EPOCH (not a git checkout)")
    revision = commit.split()[0] if commit else "unknown"
    if commit and git("status", "--porcelain", "--", *paths):
        revision += "-dirty"
    return epoch, revision


def inputs_hash(recipe: Recipe, epoch: int, revision: str, tag: str) -> str:
    h = hashlib.sha256(f"{recipe.name} {epoch} {revision} {tag}\n".encode())
    for p in recipe.inputs():
        h.update(f"{p.relative_to(ROOT)}\0".encode())
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return f"{recipe.name}-{h.hexdigest()[:24]}"


def stage(work: Path, recipe: Recipe) -> Path:
    """What the chroot installs from: the scripts, and for the service its wheels, pip.whl, the pins and
    init.sh."""
    out = work / "stage"
    out.mkdir(parents=True)
    (out / "customize.sh").write_text(recipe.customize)
    (out / "list-packages.sh").write_text(LIST_PACKAGES)
    (out / "list-distributions.py").write_text(LIST_DISTRIBUTIONS)
    if recipe.wheels:
        log("building wheels from ci/requirements.txt")
        run(sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "--no-cache-dir",
            "--wheel-dir", out / "wheels", "-c", REQUIREMENTS, SERVICE)
        run(sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
            "--only-binary", ":all:", "--dest", work / "pip", PIP)
        [pip_wheel] = (work / "pip").glob("pip-*.whl")
        shutil.copy(pip_wheel, out / "pip.whl")
        shutil.copy(REQUIREMENTS, out / "requirements.txt")
        shutil.copy(SERVICE / "init.sh", out / "init.sh")
    return out


def rootfs(work: Path, staged: Path, recipe: Recipe, epoch: int) -> tuple[Path, str]:
    """The image's root filesystem, and its package list."""
    root = work / "rootfs"
    packages = work / "packages"
    log(f"{recipe.name}: root filesystem from Debian {SUITE} (mmdebstrap)")
    dpkg = [f"--dpkgopt=path-exclude={p}" for p in DPKG_EXCLUDES]
    dpkg += [f"--dpkgopt=path-include={p}" for p in DPKG_INCLUDES]
    run("mmdebstrap", "--quiet", "--variant=essential", "--mode=root",
        "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
        f"--include={','.join(recipe.packages)}", *dpkg,
        f"--customize-hook=copy-in {staged} /tmp",
        f"--customize-hook={IN_CHROOT} /tmp/stage/customize.sh",
        f"--customize-hook={IN_CHROOT} /tmp/stage/list-packages.sh > {packages}",
        '--customize-hook=rm -rf "$1/tmp/stage"',
        SUITE, root, env={**os.environ, "SOURCE_DATE_EPOCH": str(epoch)})
    for pattern in LEFTOVERS:
        for p in root.glob(pattern):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
    clamp_mtimes(root, epoch)
    return root, packages.read_text()


def clamp_mtimes(root: Path, epoch: int) -> None:
    """No file newer than SOURCE_DATE_EPOCH (what the packages shipped keeps its own older time)."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            p = os.path.join(dirpath, name)
            if os.lstat(p).st_mtime > epoch:
                os.utime(p, (epoch, epoch), follow_symlinks=False)
    os.utime(root, (epoch, epoch))


def pack(root: Path, layout: Path, recipe: Recipe, tag: str, epoch: int, revision: str, meta: dict) -> None:
    created = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    image = f"{layout}:{tag}"
    log(f"{recipe.name}: packing with umoci")
    run("umoci", "init", "--layout", layout)
    run("umoci", "new", "--image", image)
    run("umoci", "insert", "--image", image, "--history.created", created,
        "--history.created_by", f"ci/image.py {recipe.name}: Debian {SUITE}", root, "/")
    labels = {
        "org.opencontainers.image.title": recipe.title,
        "org.opencontainers.image.description": meta.get("description", ""),
        "org.opencontainers.image.version": tag,
        "org.opencontainers.image.revision": revision,
        "org.opencontainers.image.source": (meta.get("sources") or [meta.get("home", "")])[0],
        "org.opencontainers.image.created": created,
        "org.opencontainers.image.licenses": "Apache-2.0",
    }
    run("umoci", "config", "--image", image, "--no-history", "--created", created, "--os", "linux",
        "--architecture", "amd64", *recipe.config,
        *(a for k, v in labels.items() for a in ("--config.label", f"{k}={v}")))
    run("umoci", "gc", "--layout", layout)


def archive(layout: Path, out: Path, epoch: int) -> None:
    """An oci-archive: the layout as a tar, with fixed owners, modes and times (the same bytes each time)."""
    def fixed(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = epoch
        info.mode = 0o755 if info.isdir() else 0o644
        return info

    tmp = out.with_suffix(".tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for p in sorted(layout.rglob("*")):
            tar.add(p, arcname=str(p.relative_to(layout)), recursive=False, filter=fixed)
    tmp.replace(out)


def manifest_digest(layout: Path, tag: str) -> str:
    index = json.loads((layout / "index.json").read_text())
    for m in index["manifests"]:
        if (m.get("annotations") or {}).get("org.opencontainers.image.ref.name") == tag:
            return m["digest"]
    raise SystemExit(f"image: no manifest tagged {tag} in {layout}/index.json")


def build(cached: Path, recipe: Recipe, tag: str, epoch: int, revision: str, meta: dict) -> None:
    work = Path(tempfile.mkdtemp(prefix="build-", dir=CACHE))
    try:
        staged = stage(work, recipe)
        root, packages = rootfs(work, staged, recipe, epoch)
        layout = work / "out" / "image"
        pack(root, layout, recipe, tag, epoch, revision, meta)
        (work / "out" / "packages").write_text(packages)
        archive(layout, work / "out" / "image.oci.tar", epoch)
        if cached.exists():
            shutil.rmtree(cached)
        (work / "out").rename(cached)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def publish(cached: Path, layout: Path, tar: Path, packages: Path) -> None:
    """Copy a build to --out, each file replaced whole (a reader of the old one never sees half of it);
    a layout that already holds this build is left as it is."""
    layout.parent.mkdir(parents=True, exist_ok=True)
    index = layout / "index.json"
    if not (index.is_file() and index.read_bytes() == (cached / "image" / "index.json").read_bytes()):
        tmp = Path(tempfile.mkdtemp(prefix=f".{layout.name}-", dir=layout.parent))
        shutil.copytree(cached / "image", tmp / "image")
        if layout.exists():
            layout.rename(tmp / "old")
        (tmp / "image").rename(layout)
        shutil.rmtree(tmp)
    for src, dest in ((cached / "image.oci.tar", tar), (cached / "packages", packages)):
        part = dest.with_name(f".{dest.name}.part")
        shutil.copy(src, part)
        part.replace(dest)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "dist")
    ap.add_argument("--fresh", action="store_true", help="rebuild even when a cached build matches")
    ap.add_argument("--recipe", choices=sorted(RECIPES), default=AGENT_BACKEND.name,
                    help="the service (default), or a test stand-in: for mysql:9, for debian:bookworm-slim")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("image: run as root (mmdebstrap --mode=root and chroot build the root filesystem)")
    for tool in ("mmdebstrap", "umoci"):
        if shutil.which(tool) is None:
            raise SystemExit(f"image: {tool} is missing: run ci/setup.sh (as root) to install it")
    recipe = RECIPES[args.recipe]
    meta = chart_meta()
    tag = str(meta["appVersion"])
    epoch, revision = provenance(recipe)
    cached = CACHE / inputs_hash(recipe, epoch, revision, tag)
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time; the others then find it cached
        if args.fresh or not (cached / "image" / "index.json").is_file():
            build(cached, recipe, tag, epoch, revision, meta)
        else:
            log(f"{recipe.name}: inputs unchanged, using the build in {cached.relative_to(ROOT)}")
        layout, tar = args.out / recipe.layout, args.out / f"{recipe.name}-{tag}.oci.tar"
        publish(cached, layout, tar, args.out / f"{recipe.name}-{tag}.packages")
    print(f"{layout}:{tag} {manifest_digest(layout, tag)}")
    print(tar)
    return 0


if __name__ == "__main__":
    sys.exit(main())
