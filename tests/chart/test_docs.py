"""Generated docs stay in sync with their one source, and the chart keeps the seed contract's keys
and defaults (tests/chart/contract/seed-chart-readme.md is a copy of the contract)."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import yaml

from tests.support import k8s, paths

SEED_README = paths.ROOT / "tests" / "chart" / "contract" / "seed-chart-readme.md"
# The chart's files schema/generate.py writes (Chart.yaml: its annotations below the GENERATED line).
GENERATED = ("values.yaml", "values.schema.json", "README.md", "templates/_k8s-types.tpl", "Chart.yaml",
             "CHANGELOG.md")


def seed_rows() -> list[tuple[str, str, str]]:
    """(key, type, default text) for each row of the seed README's values table."""
    rows = []
    in_values = False
    for line in SEED_README.read_text().splitlines():
        if line.startswith("## "):
            in_values = line.strip() == "## Values"
            continue
        if not in_values or not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] in ("Key", "") or set(cells[0]) <= {"-"}:
            continue
        rows.append((cells[0], cells[1], cells[2]))
    return rows


def parse_default(text: str):
    """A Default cell (`...`) as data: JSON, with the seed's `nil` meaning null."""
    assert text.startswith("`") and text.endswith("`"), text
    raw = text[1:-1]
    return None if raw == "nil" else json.loads(raw)


def seed_part(actual, expected):
    """`actual` restricted to the keys the seed's `expected` has, at every depth: the chart may add
    keys to an object the seed documents as one row (serviceAccount.create), never change the seed's."""
    if isinstance(actual, dict) and isinstance(expected, dict):
        return {k: seed_part(actual[k], expected[k]) if k in actual else KeyError for k in expected}
    return actual


def run_generator(root, *args):
    return subprocess.run([str(paths.PYTHON), str(root / "schema" / "generate.py"), *args],
                          capture_output=True, text=True, cwd=root, timeout=120)


@pytest.fixture
def tree(tmp_path):
    """A private copy of the generator, its source and the chart, to break on purpose."""
    shutil.copytree(paths.ROOT / "schema", tmp_path / "schema",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(paths.CHART, tmp_path / "charts" / "agent-backend")
    shutil.copy(paths.ROOT / "CHANGELOG.md", tmp_path / "CHANGELOG.md")
    return tmp_path


class TestGeneratedDocs:
    def test_should_be_in_sync_with_the_source(self):
        result = run_generator(paths.ROOT, "--check")
        assert result.returncode == 0, result.stdout + result.stderr

    def test_should_be_in_sync_in_a_copy(self, tree):
        result = run_generator(tree, "--check")
        assert result.returncode == 0, result.stdout + result.stderr

    def test_should_regenerate_the_committed_files_byte_for_byte(self, tree):
        assert run_generator(tree).returncode == 0
        for name in GENERATED:
            assert (tree / "charts" / "agent-backend" / name).read_bytes() == (paths.CHART / name).read_bytes(), name

    @pytest.mark.parametrize("target", GENERATED)
    def test_should_detect_a_hand_edited_output(self, tree, target):
        out = tree / "charts" / "agent-backend" / target
        out.write_text(out.read_text() + "\n# hand edit\n" if target != "values.schema.json"
                       else out.read_text().replace('"type": "object"', '"type":"object"', 1))
        result = run_generator(tree, "--check")
        assert result.returncode != 0, f"--check did not notice an edit of {target}"

    def test_should_detect_a_changed_source(self, tree):
        source = tree / "schema" / "values.schema.yaml"
        text = source.read_text()
        assert "Anthropic model to use" in text
        source.write_text(text.replace("Anthropic model to use", "Anthropic model to use (changed)", 1))
        result = run_generator(tree, "--check")
        assert result.returncode != 0
        # and regenerating brings it back in sync, carrying the change into the README
        assert run_generator(tree).returncode == 0
        assert run_generator(tree, "--check").returncode == 0
        assert "Anthropic model to use (changed)" in (tree / "charts" / "agent-backend" / "README.md").read_text()

    def test_should_carry_a_changelog_edit_into_the_chart(self, tree):
        changelog = tree / "CHANGELOG.md"
        changelog.write_text(changelog.read_text().replace(
            "### Added\n\n", "### Added\n\n- A new entry for this test.\n", 1))
        assert run_generator(tree, "--check").returncode != 0
        assert run_generator(tree).returncode == 0
        chart_dir = tree / "charts" / "agent-backend"
        assert (chart_dir / "CHANGELOG.md").read_bytes() == changelog.read_bytes()
        changes = yaml.safe_load(yaml.safe_load((chart_dir / "Chart.yaml").read_text())["annotations"]
                                 ["artifacthub.io/changes"])
        assert changes[0] == {"kind": "added", "description": "A new entry for this test."}

    def test_should_detect_a_changed_chart_version(self, tree):
        chart_yaml = tree / "charts" / "agent-backend" / "Chart.yaml"
        chart_yaml.write_text(chart_yaml.read_text().replace("version: 0.1.4", "version: 0.1.5"))
        assert run_generator(tree, "--check").returncode != 0


# Seed defaults the chart changes on purpose: key -> the chart's default. Each one needs a **BREAKING**
# entry in CHANGELOG.md that names the key (test below), and counts for the key's parent rows too.
SEED_DEFAULT_CHANGES = {
    "serviceAccount.automountServiceAccountToken": False,  # checkov CKV_K8S_38: the app never calls the API
}


def seed_default(key: str, default: str):
    """The default the chart must have for a seed row: the seed's, unless SEED_DEFAULT_CHANGES changes it
    (or a key below it)."""
    expected = parse_default(default)
    for changed, value in SEED_DEFAULT_CHANGES.items():
        if changed == key:
            expected = value
        elif changed.startswith(key + ".") and isinstance(expected, dict):
            node = expected
            *parents, leaf = changed[len(key) + 1:].split(".")
            for part in parents:
                node = node[part]
            node[leaf] = value
    return expected


class TestSeedContract:
    def test_should_parse_the_whole_seed_table(self):
        assert len(seed_rows()) >= 100

    def test_should_list_only_seed_keys_as_changed_defaults(self):
        keys = {key for key, *_ in seed_rows()}
        assert set(SEED_DEFAULT_CHANGES) <= keys

    @pytest.mark.parametrize("key", sorted(SEED_DEFAULT_CHANGES))
    def test_should_announce_a_changed_default_as_breaking(self, key):
        changelog = (paths.ROOT / "CHANGELOG.md").read_text()
        entries = [e for e in changelog.split("\n- ")[1:] if e.startswith("**BREAKING**")]
        assert any(f"`{key}`" in e for e in entries), f"no **BREAKING** CHANGELOG entry names `{key}`"

    def test_should_have_every_seed_key_with_the_seed_default(self):
        values = yaml.safe_load((paths.CHART / "values.yaml").read_text())
        wrong = []
        for key, _type, default in seed_rows():
            expected = seed_default(key, default)
            actual = seed_part(k8s.dig(values, *key.split("."), default=KeyError), expected)
            if actual is KeyError:
                wrong.append(f"{key}: missing (seed default {expected!r})")
            elif actual != expected or type(actual) is not type(expected):
                wrong.append(f"{key}: {actual!r} != seed {expected!r}")
        assert not wrong, "\n".join(wrong)

    def test_should_document_every_seed_key_in_the_chart_readme(self):
        readme = (paths.CHART / "README.md").read_text()
        missing = [key for key, *_ in seed_rows() if f"| {key} |" not in readme]
        assert not missing, missing

    def test_should_carry_the_chart_version_and_app_version(self):
        chart = yaml.safe_load((paths.CHART / "Chart.yaml").read_text())
        assert (chart["version"], str(chart["appVersion"])) == ("0.1.4", "0.1.0")
        readme = (paths.CHART / "README.md").read_text()
        assert "Version-0.1.4" in readme and "AppVersion-0.1.0" in readme
        assert "--version 0.1.4" in readme


class TestReadmeContent:
    @pytest.mark.parametrize("var", [
        "AGENT_BACKEND_PORT", "AGENT_BACKEND_DB_HOST", "AGENT_BACKEND_DB_PORT", "AGENT_BACKEND_DB_NAME",
        "AGENT_BACKEND_DB_USER", "ANTHROPIC_MODEL", "ENVIRONMENT", "LOG_LEVEL", "SEQERA_PLATFORM_URL",
        "SEQERA_PLATFORM_API_URL", "SEQERA_MCP_URL", "AGENT_BACKEND_PUBLIC_URL",
        "AGENT_BACKEND_DB_PASSWORD", "ANTHROPIC_API_KEY", "LANGCHAIN_API_KEY"])
    def test_should_document_the_env_contract(self, var):
        assert var in (paths.CHART / "README.md").read_text()

    def test_should_keep_a_changelog_entry_for_this_version(self):
        candidates = [paths.CHART / "CHANGELOG.md", paths.ROOT / "CHANGELOG.md"]
        found = [p for p in candidates if p.exists()]
        assert found, "no CHANGELOG.md"
        text = found[0].read_text()
        assert "Keep a Changelog" in text or "keepachangelog" in text
        assert "## [0.1.4]" in text
