"""Shared pieces of the release tests: the chart's versions and image name as `make publish` reads them, and
`ci/publish.py` run as `make publish` runs it. The fixtures that use them are in conftest.py."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

from tests.support import paths
from tests.support.image import Image

CHART_META = yaml.safe_load((paths.CHART / "Chart.yaml").read_text())
CHART_VERSION = str(CHART_META["version"])
APP_VERSION = str(CHART_META["appVersion"])
# Where the defaults put the app image below a registry (values.yaml's image.repository).
APP_REPOSITORY = yaml.safe_load((paths.CHART / "values.yaml").read_text())["image"]["repository"]


def publish(registry: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """ci/publish.py REGISTRY ARGS..., as `make publish` runs it. HELM_REGISTRY_CONFIG names a file that
    does not exist, so no `helm registry login` of the user's (~/.config/helm) is ever read."""
    env = {**os.environ, "HELM_REGISTRY_CONFIG": str(paths.HELM_HOME / "no-registry-login.json")}
    return subprocess.run([str(paths.PYTHON), str(paths.ROOT / "ci" / "publish.py"), registry, *args],
                          capture_output=True, text=True, env=env, timeout=timeout)


def publish_ok(registry: str, package: Path, image: Image) -> dict[str, str]:
    """Publish the package and the image to `registry`; {reference: digest} as publish printed them."""
    result = publish(registry, "--chart-package", str(package), "--image-layout", str(image.layout))
    assert result.returncode == 0, result.stderr
    pushed = {}
    for line in result.stdout.splitlines():
        word, ref, digest = line.split()
        assert word == "pushed", result.stdout
        pushed[ref] = digest
    return pushed
