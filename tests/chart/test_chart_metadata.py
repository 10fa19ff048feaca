"""Chart.yaml as Artifact Hub and `helm package` see it: the images and changes annotations (generated
by schema/generate.py) match what the defaults render and the CHANGELOG's current section, and the
packaged chart carries CHANGELOG.md, so the README's link to it works from an OCI registry too."""
from __future__ import annotations

import importlib.util
import re
import subprocess
import tarfile
from pathlib import PurePosixPath

import yaml

from tests.support import helm as h
from tests.support import k8s, paths

CHART_YAML = yaml.safe_load((paths.CHART / "Chart.yaml").read_text())
ANNOTATIONS = CHART_YAML["annotations"]
CHANGELOG = (paths.ROOT / "CHANGELOG.md").read_text()


def load_generator():
    spec = importlib.util.spec_from_file_location("generate", paths.ROOT / "schema" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def changelog_section(heading_prefix: str) -> str:
    """The text of the CHANGELOG's `## <heading_prefix>...` section."""
    parts = re.split(r"^## ", CHANGELOG, flags=re.M)
    found = [p for p in parts if p.startswith(heading_prefix)]
    assert len(found) == 1, heading_prefix
    return found[0]


class TestArtifactHubImages:
    def test_should_list_the_images_the_defaults_render(self):
        listed = yaml.safe_load(ANNOTATIONS["artifacthub.io/images"])
        objs = h.render(k8s.values())
        rendered = {c["image"] for c in k8s.all_containers(k8s.pod(objs))}
        assert sorted(i["image"] for i in listed) == sorted(rendered)
        assert {i["name"]: i["image"] for i in listed} == {
            "agent-backend": k8s.app_container(objs)["image"],
            "wait-for-mysql": k8s.wait_container(objs)["image"]}


class TestArtifactHubChanges:
    def test_should_list_every_entry_of_the_unreleased_section(self):
        changes = yaml.safe_load(ANNOTATIONS["artifacthub.io/changes"])
        section = changelog_section("[Unreleased]")
        expected = []
        for block in re.split(r"^### ", section, flags=re.M)[1:]:
            kind = block.split("\n", 1)[0].strip().lower()
            expected += [(kind, " ".join(entry.split())) for entry in re.split(r"^- ", block, flags=re.M)[1:]]
        assert expected, "the Unreleased section has no entries"
        assert [(c["kind"], c["description"]) for c in changes] == [
            (kind, text.replace("**BREAKING**", "BREAKING:")) for kind, text in expected]

    def test_should_fall_back_to_the_chart_version_section_once_released(self):
        generate = load_generator()
        unreleased = generate.current_changes(CHANGELOG, "9.9.9")
        # Released as 9.9.9: an empty Unreleased section above it.
        released = CHANGELOG.replace("## [Unreleased]", "## [Unreleased]\n\n## [9.9.9] - 2027-01-01", 1)
        assert generate.current_changes(released, "9.9.9") == unreleased
        # No Unreleased section at all: the chart version's section (here 0.1.4's).
        without = released.replace("## [Unreleased]\n", "", 1)
        first = generate.current_changes(without, "0.1.4")[0]
        assert first["kind"] == "added"
        assert first["description"].startswith("Deployment with init containers in order")


class TestChartMetadata:
    def test_should_name_the_license_links_and_sources(self):
        assert ANNOTATIONS["artifacthub.io/license"] == "Apache-2.0"
        links = yaml.safe_load(ANNOTATIONS["artifacthub.io/links"])
        assert all(set(link) == {"name", "url"} and link["url"].startswith("https://") for link in links)
        assert CHART_YAML["sources"] and all(s.startswith("https://") for s in CHART_YAML["sources"])

    def test_should_name_no_people_as_maintainers(self):
        assert "maintainers" not in CHART_YAML


class TestPackage:
    def test_should_carry_the_changelog_and_every_file_the_readme_links(self, tmp_path):
        helm = h.helm_binary("helm4")
        proc = subprocess.run([str(helm), "package", str(paths.CHART), "--destination", str(tmp_path)],
                              capture_output=True, text=True, env=h.helm_env("helm4"), timeout=120)
        assert proc.returncode == 0, proc.stderr
        (tgz,) = tmp_path.glob("agent-backend-*.tgz")
        with tarfile.open(tgz) as tar:
            members = {m.name: m for m in tar.getmembers() if m.isfile()}
            assert tar.extractfile(members["agent-backend/CHANGELOG.md"]).read().decode() == CHANGELOG
            readme = tar.extractfile(members["agent-backend/README.md"]).read().decode()
        targets = {t for t in re.findall(r"\]\(([^)#\s]+)[^)]*\)", readme) if "://" not in t}
        assert "CHANGELOG.md" in targets
        for target in targets:
            path = PurePosixPath("agent-backend") / target
            assert str(path) in members, f"README links {target}, which the packaged chart does not carry"
