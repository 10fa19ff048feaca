"""`make publish REGISTRY=...` (ci/publish.py): the chart and the image land at exactly the references the
README documents, on a real registry (Debian's docker-registry on loopback), with real helm and skopeo;
plain HTTP only for loopback; missing artifacts and an unreachable registry are one clear message."""
from __future__ import annotations

import importlib.util
import os
import socket
import subprocess

import pytest

from tests.release.artifacts import APP_REPOSITORY, APP_VERSION, CHART_VERSION, publish, publish_ok
from tests.support import helm as h
from tests.support import k8s, paths
from tests.support.registry import Registry, manifest_digest

spec = importlib.util.spec_from_file_location("publish_script", paths.ROOT / "ci" / "publish.py")
publish_script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(publish_script)


class TestPublishedReferences:
    @pytest.mark.parametrize("path", ["", "/some/path"], ids=["host-port", "with-path"])
    def test_should_push_the_chart_and_image_where_an_install_finds_them(self, chart_package, service_image, path):
        with Registry() as registry:
            target = registry.host + path
            pushed = publish_ok(target, chart_package, service_image)
            chart_ref = f"{target}/charts/agent-backend:{CHART_VERSION}"
            image_ref = f"{target}/{APP_REPOSITORY}:{APP_VERSION}"
            assert set(pushed) == {f"oci://{chart_ref}", image_ref}
            assert pushed[f"oci://{chart_ref}"] == manifest_digest(f"docker://{chart_ref}")
            # the image is the layout's, digest unchanged
            assert pushed[image_ref] == manifest_digest(f"docker://{image_ref}") == manifest_digest(service_image.ref)
            # the chart renders from the registry, and global.imageRegistry alone points it at the pushed image
            objs = h.render(k8s.values(), chart=f"oci://{target}/charts/agent-backend", version=CHART_VERSION,
                            plain_http=True, set_={"global.imageRegistry": target})
            assert image_ref in k8s.pod_images(objs)

    def test_make_publish_builds_what_is_missing_and_pushes_it(self):
        """The command as the README names it: `make publish REGISTRY=...` makes the package and the image
        (from the cache here) and pushes both."""
        with Registry() as registry:
            result = subprocess.run(["make", "-s", "publish", f"REGISTRY={registry.host}"], cwd=paths.ROOT,
                                    capture_output=True, text=True, timeout=1800,
                                    env={**os.environ, "HELM_REGISTRY_CONFIG": str(paths.HELM_HOME / "none.json")})
            assert result.returncode == 0, result.stdout + result.stderr
            for ref in (f"{registry.host}/charts/agent-backend:{CHART_VERSION}",
                        f"{registry.host}/{APP_REPOSITORY}:{APP_VERSION}"):
                assert f"pushed {'oci://' if 'charts/' in ref else ''}{ref} sha256:" in result.stdout, result.stdout
                manifest_digest(f"docker://{ref}")  # there, or AssertionError with skopeo's message

    def test_the_documented_image_reference_is_the_charts_default(self):
        # README and CHANGELOG name REGISTRY/private/nf-tower-enterprise/agent-backend:0.1.0
        assert (APP_REPOSITORY, APP_VERSION) == ("private/nf-tower-enterprise/agent-backend", "0.1.0")
        assert f"private/nf-tower-enterprise/agent-backend:{APP_VERSION}" in k8s.pod_images(h.render(k8s.values()))


class TestPlainHttpOnlyOnLoopback:
    @pytest.mark.parametrize("address", ["127.0.0.1:5000", "127.8.9.10", "localhost", "LOCALHOST:5000/x",
                                          "[::1]:5000/charts", "::1", "127.0.0.1:5000/some/path"])
    def test_should_use_plain_http_for_loopback(self, address):
        assert publish_script.is_loopback(address)

    @pytest.mark.parametrize("address", ["registry.example.com", "registry.example.com:5000/path", "10.0.0.1:5000",
                                          "[fe80::1]:5000", "localhost.example.com", "127.example.com",
                                          "cr.seqera.io/private"])
    def test_should_use_tls_elsewhere(self, address):
        assert not publish_script.is_loopback(address)

    @pytest.mark.parametrize("address", ["https://registry.example.com", "oci://127.0.0.1:5000",
                                          "host:port", "host//path"])
    def test_should_refuse_what_is_not_host_port_path(self, chart_package, service_image, address):
        result = publish(address, "--chart-package", str(chart_package), "--image-layout", str(service_image.layout))
        assert result.returncode == 1 and "host[:port][/path]" in result.stderr


class TestClearErrors:
    def test_should_name_make_package_when_the_chart_package_is_missing(self, tmp_path, service_image):
        missing = tmp_path / "agent-backend-0.1.4.tgz"
        result = publish("127.0.0.1:5000", "--chart-package", str(missing), "--image-layout",
                         str(service_image.layout))
        assert result.returncode == 1
        assert result.stderr.strip() == f"publish: no chart package at {missing}: run `make package`"

    def test_should_name_make_image_when_the_image_is_missing(self, tmp_path, chart_package):
        result = publish("127.0.0.1:5000", "--chart-package", str(chart_package), "--image-layout",
                         str(tmp_path / "image"))
        assert result.returncode == 1
        assert "run `make image`" in result.stderr and f"no image tagged {APP_VERSION}" in result.stderr

    def test_should_say_in_one_line_that_the_registry_is_unreachable(self, chart_package, service_image):
        # a port bound and never listened on: nobody accepts there while the test runs. The timeout is a
        # hang bound (publish gives up connecting after 10 s), not a speed check.
        with socket.socket() as held:
            held.bind(("127.0.0.1", 0))
            target = f"127.0.0.1:{held.getsockname()[1]}/some/path"
            result = publish(target, "--chart-package", str(chart_package), "--image-layout",
                             str(service_image.layout), timeout=120)
        assert result.returncode == 1 and result.stdout == ""
        assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"publish: registry {target} is unreachable")

    def test_should_print_usage_without_a_registry(self):
        result = publish("")
        assert result.returncode == 2 and "usage: make publish REGISTRY=<host[:port][/path]>" in result.stderr
