"""Image references: registry/repository:tag@digest, tag defaulting to appVersion, digest winning,
tag as a template, and global.imageRegistry re-pointing every image the chart uses."""
from __future__ import annotations

import pytest
import yaml

from tests.support import helm as h
from tests.support import k8s, paths

APP_VERSION = str(yaml.safe_load((paths.CHART / "Chart.yaml").read_text())["appVersion"])
DIGEST = "sha256:" + "ab" * 32
MYSQL_DIGEST = "sha256:" + "cd" * 32


class TestAppImage:
    def test_should_default_the_tag_to_the_app_version(self):
        objs = h.render(k8s.values())
        assert k8s.app_container(objs)["image"] == f"private/nf-tower-enterprise/agent-backend:{APP_VERSION}"

    def test_should_prefix_the_registry(self):
        objs = h.render(k8s.values({"image": {"registry": "cr.example.com", "repository": "seqera/ab",
                                              "tag": "1.2.3"}}))
        assert k8s.app_container(objs)["image"] == "cr.example.com/seqera/ab:1.2.3"

    def test_should_accept_a_registry_port_in_the_repository(self):
        """A ':' before the last '/' is a registry port, not a tag (a tag there is refused: invalid/)."""
        objs = h.render(k8s.values({"image": {"repository": "localhost:5000/seqera/ab", "tag": "1.2.3"}}))
        assert k8s.app_container(objs)["image"] == "localhost:5000/seqera/ab:1.2.3"

    def test_should_treat_an_empty_tag_as_the_app_version(self):
        objs = h.render(k8s.values({"image": {"tag": ""}}))
        assert k8s.app_container(objs)["image"].endswith(f":{APP_VERSION}")

    @pytest.mark.parametrize("tag,expected", [
        ("{{ .chart.AppVersion }}-debug", f"{APP_VERSION}-debug"),
        ("{{ .Chart.AppVersion }}", APP_VERSION),
        ('{{ "v" }}{{ .chart.AppVersion | replace "." "-" }}', "v" + APP_VERSION.replace(".", "-")),
    ])
    def test_should_evaluate_the_tag_as_a_template(self, tag, expected):
        objs = h.render(k8s.values({"image": {"tag": tag}}))
        assert k8s.app_container(objs)["image"] == f"private/nf-tower-enterprise/agent-backend:{expected}"

    def test_should_let_the_digest_win(self):
        objs = h.render(k8s.values({"image": {"registry": "cr.example.com", "digest": DIGEST}}))
        image = k8s.app_container(objs)["image"]
        repo = "cr.example.com/private/nf-tower-enterprise/agent-backend"
        assert image == f"{repo}:{APP_VERSION}@{DIGEST}"

    def test_should_apply_the_pull_policy(self):
        objs = h.render(k8s.values({"image": {"pullPolicy": "Always"}}))
        assert k8s.app_container(objs)["imagePullPolicy"] == "Always"
        assert k8s.migration_container(objs)["imagePullPolicy"] == "Always"

    def test_should_run_migrations_from_the_same_image(self):
        objs = h.render(k8s.values({"image": {"registry": "r.example.com", "digest": DIGEST}}))
        assert k8s.migration_container(objs)["image"] == k8s.app_container(objs)["image"]


class TestWaitForMySQLImage:
    def test_should_default_to_mysql_9(self):
        assert k8s.wait_container(h.render(k8s.values()))["image"] == "mysql:9"

    def test_should_build_the_full_reference(self):
        objs = h.render(k8s.values({"initContainerDependencies": {"waitForMySQL": {"image": {
            "registry": "docker.io", "repository": "library/mysql", "tag": "9.1",
            "digest": MYSQL_DIGEST, "pullPolicy": "Never"}}}}))
        c = k8s.wait_container(objs)
        assert c["image"] == f"docker.io/library/mysql:9.1@{MYSQL_DIGEST}"
        assert c["imagePullPolicy"] == "Never"

    def test_should_evaluate_the_tag_as_a_template(self):
        objs = h.render(k8s.values({"initContainerDependencies": {"waitForMySQL": {"image": {
            "tag": '{{ "8" }}.4'}}}}))
        assert k8s.wait_container(objs)["image"] == "mysql:8.4"


class TestNumericTags:
    """A tag YAML reads as a number (or --set reads as an integer) is the tag as written, a string."""

    def test_should_use_numbers_in_a_values_file_as_written(self, helm):
        objs = h.render(files=[h.TEST_VALUES / "numeric-image-tags.yaml"], helm=helm)
        assert k8s.app_container(objs)["image"] == "private/nf-tower-enterprise/agent-backend:20261130"
        assert k8s.wait_container(objs)["image"] == "mysql:8.4"

    def test_should_use_an_integer_set_on_the_command_line_as_written(self, helm):
        objs = h.render(k8s.values(), helm=helm, set_=["image.tag=123"])
        assert k8s.app_container(objs)["image"] == "private/nf-tower-enterprise/agent-backend:123"

    def test_should_print_numeric_tags_in_the_notes(self):
        text = h.notes(files=[h.TEST_VALUES / "numeric-image-tags.yaml"])
        assert "agent-backend:20261130" in text and "mysql:8.4" in text


class TestGlobalImageRegistry:
    def test_should_re_point_every_chart_image(self):
        objs = h.render(k8s.values({"global": {"imageRegistry": "mirror.internal"},
                                    "image": {"registry": "cr.example.com"},
                                    "initContainerDependencies": {"waitForMySQL": {"image": {
                                        "registry": "docker.io"}}}}))
        assert k8s.app_container(objs)["image"] == (
            f"mirror.internal/private/nf-tower-enterprise/agent-backend:{APP_VERSION}")
        assert k8s.migration_container(objs)["image"] == k8s.app_container(objs)["image"]
        assert k8s.wait_container(objs)["image"] == "mirror.internal/mysql:9"

    def test_should_keep_digests_when_re_pointing(self):
        objs = h.render(k8s.values({"global": {"imageRegistry": "mirror.internal/seqera"},
                                    "image": {"digest": DIGEST}}))
        image = k8s.app_container(objs)["image"]
        assert image.startswith("mirror.internal/seqera/private/nf-tower-enterprise/agent-backend")
        assert image.endswith("@" + DIGEST)

    def test_should_not_touch_user_init_container_images(self):
        objs = h.render(k8s.values({"global": {"imageRegistry": "mirror.internal"},
                                    "initContainers": [{"name": "user", "image": "busybox:1.36"}]}))
        assert k8s.init_containers(objs)[0]["image"] == "busybox:1.36"

    def test_should_list_only_images_from_the_private_registry(self):
        objs = h.render(files=[paths.VALUES_EXAMPLES / "private-registry.yaml"])
        spec = k8s.pod(objs)
        for c in k8s.all_containers(spec):
            assert c["image"].startswith("registry.internal.example.com/"), c["image"]
            assert "@sha256:" in c["image"], c["image"]
