"""Fixtures of the contract tests (the helpers they use are in tests/contract/examples.py).

`example` parametrizes a test over `values-examples/*.yaml` (globbed: a new example is covered the
moment it lands); `private_mariadb` (tests/conftest.py) is a real, throwaway MariaDB of the test's own;
`pod_images` are the images the pod runs, pushed to a loopback registry and pulled back once a session:
the service's (`make image`) and the tests' stand-in for `mysql:9`; `deploy` creates the database an example's values describe and gives its
pod, whose containers run from those images under runc (tests/support/containerpod.py).
"""
from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.contract.examples import (Deployed, Example, app_container_port, database_settings,
                                     load_example, user_objects)
from tests.support import paths
from tests.support.containerpod import ContainerPod, UnpackedImage, pull
from tests.support.image import built, mysql_client_standin
from tests.support.localpod import LocalPod, LocalPodError
from tests.support.mariadb import MariaDB
from tests.support.registry import Registry, manifest_digest
from tests.support.standins._server import free_port

EXAMPLES = sorted(paths.VALUES_EXAMPLES.glob("*.yaml"))


@pytest.fixture(params=[pytest.param(p, id=p.stem) for p in EXAMPLES])
def example(request: pytest.FixtureRequest) -> Example:
    return load_example(request.param)


@dataclass(frozen=True)
class PodImages:
    app: UnpackedImage
    mysql_client: UnpackedImage

    def for_pod(self, pod: LocalPod) -> dict[str, UnpackedImage]:
        """The rendered image references of `pod` -> what runs for them."""
        images = {pod.app_image: self.app}
        try:
            images[pod.wait_for_mysql["image"]] = self.mysql_client
        except LocalPodError:
            pass  # wait-for-mysql is off
        return images


@pytest.fixture(scope="session")
def pod_images(tmp_path_factory: pytest.TempPathFactory) -> PodImages:
    """Both images pushed to a loopback registry and pulled back from it, as a node would get them."""
    root = tmp_path_factory.mktemp("images")
    pulled = {}
    with Registry("contract") as registry:
        for name, img in (("agent-backend", built()), ("mysql-client", mysql_client_standin())):
            ref = f"{registry.host}/{name}:{img.tag}"
            pushed = subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", img.ref, f"docker://{ref}"],
                                    capture_output=True, text=True, timeout=600)
            assert pushed.returncode == 0, pushed.stderr
            assert manifest_digest(f"docker://{ref}") == img.digest
            pulled[name] = pull(ref, root / name)
    return PodImages(app=pulled["agent-backend"], mysql_client=pulled["mysql-client"])


@pytest.fixture
def deploy(private_mariadb: MariaDB, pod_images: PodImages, tmp_path: Path):
    """deploy(example, **extra_overrides) -> Deployed: database created as the values say, the
    pod's processes pointed at it (and at any stand-ins given in extra_overrides)."""
    pods: list[LocalPod] = []

    def _deploy(example: Example, **extra: str) -> Deployed:
        name, user, password = database_settings(example)
        creds = private_mariadb.create_database(name=name, user=user, password=password)
        existing_secrets, existing_cms = user_objects(example, password)
        probe_port = app_container_port(example)
        app_port = free_port()
        overrides = {
            "AGENT_BACKEND_DB_HOST": private_mariadb.host,
            "AGENT_BACKEND_DB_PORT": str(private_mariadb.port),
            "AGENT_BACKEND_PORT": str(app_port),
            **extra,
        }
        scratch = tmp_path / f"pod-{len(pods)}"
        pod = ContainerPod(example.objs, images=pod_images.for_pod(LocalPod(example.objs)), overrides=overrides,
                           existing_secrets=existing_secrets, existing_configmaps=existing_cms,
                           ports={probe_port: app_port}, scratch=scratch)
        pods.append(pod)
        return Deployed(example, pod, creds, app_port, overrides)

    yield _deploy
    for pod in pods:
        pod.close()
