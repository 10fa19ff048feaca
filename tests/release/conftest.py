"""Fixtures of the release tests: the chart package (ci/package.py) and the service image. Registries are
started in the tests' own `with` blocks, so that a failure shows their logs."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.release.artifacts import CHART_META, CHART_VERSION
from tests.support import image, paths


@pytest.fixture(scope="session")
def service_image() -> image.Image:
    """The image `make image` builds (built once per input hash; `make test` builds it before pytest)."""
    return image.built()


@pytest.fixture(scope="session")
def chart_package(tmp_path_factory) -> Path:
    """`make package`'s .tgz, written by ci/package.py into a temp dir (dist/ stays the user's)."""
    out = tmp_path_factory.mktemp("package")
    result = subprocess.run([str(paths.PYTHON), str(paths.ROOT / "ci" / "package.py"), "--out", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    package = out / f"{CHART_META['name']}-{CHART_VERSION}.tgz"
    assert package.is_file(), result.stdout
    return package
