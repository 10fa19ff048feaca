"""The service image (`make image`, ci/image.py), for the tests that run it, publish it or compare with it.

    img = built()            # builds dist/image once per input hash (ci/image.py caches), then reuses it
    img.ref                  # "oci:<dist>/image:0.1.0", what skopeo and umoci read
    img.digest               # the manifest digest
    img.config()             # the image config (user, workdir, cmd, env, labels)
    mysql_client_standin()   # the tests' stand-in for mysql:9, the same way

ci/image.py takes a lock, so xdist workers asking at once wait for one build instead of racing.
`make test` runs this module first (`python -m tests.support.image`), so that the builds happen before
pytest and its per-test hang bound; within the tests they are then cache hits.
"""
from __future__ import annotations

import functools
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support import paths

SCRIPT = paths.ROOT / "ci" / "image.py"
DIST = paths.ROOT / "dist"
BUILD_TIMEOUT = 1800  # a cold build takes minutes on a loaded machine; a bound, never asserted on


@dataclass(frozen=True)
class Image:
    layout: Path
    tag: str
    digest: str
    archive: Path | None = None   # what ci/image.py wrote beside the layout (None: a layout from elsewhere)
    packages: Path | None = None

    @classmethod
    def tagged(cls, layout: Path, tag: str) -> "Image":
        """The image an OCI layout holds under `tag` (index.json's ref.name), whatever made it."""
        index = json.loads((layout / "index.json").read_text())
        [digest] = [m["digest"] for m in index["manifests"]
                    if (m.get("annotations") or {}).get("org.opencontainers.image.ref.name") == tag]
        return cls(layout=layout, tag=tag, digest=digest)

    @property
    def ref(self) -> str:
        return f"oci:{self.layout}:{self.tag}"

    def blob(self, digest: str) -> bytes:
        algo, hexdigest = digest.split(":", 1)
        return (self.layout / "blobs" / algo / hexdigest).read_bytes()

    def manifest(self) -> dict[str, Any]:
        return json.loads(self.blob(self.digest))

    def config(self) -> dict[str, Any]:
        return json.loads(self.blob(self.manifest()["config"]["digest"]))


def build(out: Path = DIST, cwd: Path = paths.ROOT, env: dict[str, str] | None = None,
          fresh: bool = False, recipe: str = "agent-backend") -> Image:
    """Run ci/image.py (from the checkout `cwd`) for `recipe` (one of its RECIPES) into `out`; its first line
    is `<layout>:<tag> <digest>`."""
    argv = [str(paths.PYTHON), str(cwd / "ci" / "image.py"), "--out", str(out), "--recipe", recipe,
            *(["--fresh"] if fresh else [])]
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=BUILD_TIMEOUT, env=env)
    if result.returncode != 0:
        raise AssertionError(f"ci/image.py failed ({result.returncode}):\n{result.stderr[-6000:]}")
    first, archive = result.stdout.splitlines()[:2]
    ref, digest = first.split()
    layout, tag = ref.rsplit(":", 1)
    return Image(layout=Path(layout), archive=Path(archive), packages=out / f"{recipe}-{tag}.packages",
                 tag=tag, digest=digest)


@functools.lru_cache(maxsize=None)
def built() -> Image:
    """This checkout's image in dist/, built on first use in a test process."""
    return build()


@functools.lru_cache(maxsize=None)
def mysql_client_standin() -> Image:
    """The tests' stand-in for `mysql:9` (which cannot be fetched here): Debian's MariaDB client, bash and
    coreutils, built by ci/image.py's mysql-client recipe into .tools/ (it is no release artifact)."""
    return build(out=paths.TOOLS / "standin-images", recipe="mysql-client")


if __name__ == "__main__":
    for image in (built(), mysql_client_standin()):
        print(f"{image.ref} {image.digest}")
