"""Vendoring, end to end, as the chart README's "Vendoring images" section tells a user to do it: the chart
and the image published to an "upstream" registry (`ci/publish.py`, what `make publish` runs), the README's
vendoring block run by bash exactly as written into a "private" registry, then the chart rendered from
"private" with only `global.imageRegistry` pointing at it: every image it renders, and the chart itself,
is in "private" with the digest it has at its source; and the pod, its images pulled from "private", runs
under runc (migrates a real MariaDB, the app passes its readiness probe, SIGTERM stops it).

All three registries are Debian's docker-registry on loopback (plain HTTP, hence `TLS_VERIFY=false`). The
third stands in for Docker Hub (`DOCKER_HUB`), holding the tests' stand-in for `mysql:9`
(`tests/support/image.py`) as `library/mysql:9`: the real one cannot be fetched on these machines."""
from __future__ import annotations

import os
import re
import subprocess

import pytest
import yaml

from tests.release.artifacts import APP_REPOSITORY, APP_VERSION, CHART_VERSION, publish_ok
from tests.support import helm as h
from tests.support import image, k8s, paths
from tests.support.containerpod import ContainerPod, pull
from tests.support.localpod import LocalPod, boot
from tests.support.mariadb import MariaDB
from tests.support.registry import Registry, by_digest, manifest_digest
from tests.support.standins._server import free_port

MARKER = "<!-- vendoring-steps:"


def readme_block() -> str:
    """The bash block that follows the vendoring-steps marker in the chart README."""
    readme = (paths.CHART / "README.md").read_text()
    assert readme.count(MARKER) == 1, f"no single {MARKER} marker in the chart README"
    found = re.match(r"[^\n]*\n```bash\n(.*?)\n```\n", readme.split(MARKER, 1)[1], re.S)
    assert found, f"no ```bash block right after {MARKER}"
    return found.group(1)


class TestVendoring:
    @pytest.mark.parametrize("pin", ["tag", "digest"])
    def test_should_copy_every_image_and_the_chart_with_their_digests_and_run_the_pod_from_the_copies(
            self, tmp_path, chart_package, service_image, private_mariadb, pin):
        with Registry("upstream") as upstream, Registry("private") as private, Registry("docker-hub") as hub:
            # a path below each host, as many registries have (a project, an organisation)
            source, target = f"{upstream.host}/seqera", f"{private.host}/vendored"
            published = publish_ok(source, chart_package, service_image)
            app_digest = published[f"{source}/{APP_REPOSITORY}:{APP_VERSION}"]
            copied = subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", image.mysql_client_standin().ref,
                                     f"docker://{hub.host}/library/mysql:9"], capture_output=True, text=True,
                                    timeout=300)
            assert copied.returncode == 0, copied.stderr
            # the user's values: what they will install with, already pointing at their registry; pinned by
            # digest or not
            values = k8s.values({"global": {"imageRegistry": target}})
            if pin == "digest":
                values["image"] = {"digest": app_digest}
            values_file = tmp_path / "my-values.yaml"
            values_file.write_text(yaml.safe_dump(values))

            steps = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", readme_block()], cwd=paths.ROOT, capture_output=True, text=True,
                # HOME of its own: no login of the user's is read
                env={**os.environ, "HOME": str(tmp_path), "UPSTREAM": source, "PRIVATE": target,
                     "VALUES": str(values_file), "DOCKER_HUB": hub.host, "TLS_VERIFY": "false"},
                timeout=900)
            assert steps.returncode == 0, f"{steps.stdout}\n{steps.stderr}"

            objs = h.render(files=[values_file], chart=f"oci://{target}/charts/agent-backend", version=CHART_VERSION,
                            plain_http=True, set_={"global.imageRegistry": target})
            app = f"{target}/{APP_REPOSITORY}:{APP_VERSION}" + (f"@{app_digest}" if pin == "digest" else "")
            wait = f"{target}/mysql:9"
            assert k8s.pod_images(objs) == {app, wait}
            assert manifest_digest(f"docker://{by_digest(app)}") == app_digest
            assert manifest_digest(f"docker://{wait}") == manifest_digest(f"docker://{hub.host}/library/mysql:9")
            chart = f"charts/agent-backend:{CHART_VERSION}"
            assert manifest_digest(f"docker://{target}/{chart}") == published[f"oci://{source}/{chart}"]
            assert_the_pod_runs_from(objs, private_mariadb, tmp_path / "pod")


def assert_the_pod_runs_from(objs, db: MariaDB, scratch) -> None:
    """The rendered pod, each image pulled from where the render says (the private registry) as a runtime
    would, runs under runc: its init containers migrate an empty database and the app gets ready."""
    plan = LocalPod(objs)
    env = plan.resolve_env(plan.app).values  # the database the values name, with their password
    db.create_database(name=env["AGENT_BACKEND_DB_NAME"], user=env["AGENT_BACKEND_DB_USER"],
                       password=env["AGENT_BACKEND_DB_PASSWORD"])
    images = {ref: pull(ref, scratch / f"image-{i}") for i, ref in enumerate(sorted(k8s.pod_images(objs)))}
    port = free_port()
    overrides = {"AGENT_BACKEND_DB_HOST": db.host, "AGENT_BACKEND_DB_PORT": str(db.port),
                 "AGENT_BACKEND_PORT": str(port)}
    with ContainerPod(objs, images=images, overrides=overrides, ports={plan.container_port(plan.app, "http"): port},
                      scratch=scratch / "run") as pod:
        proc = boot(pod, scratch / "app.log")
        assert pod.stop(proc, grace=30) == 0, (scratch / "app.log").read_text()[-4000:]
