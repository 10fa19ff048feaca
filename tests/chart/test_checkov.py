"""checkov over the rendered chart: with only the required values and with every values example.

One checkov run (it takes seconds to import) scans a directory holding one rendered file per values
file. Every failed check must be listed, with its reason, in the chart README's "Security scan
(checkov)" table; the tests fail on any other, and on a listed check that no longer fails anywhere.
checkov runs offline: no update check, no platform download, and an audit hook in its interpreter
refuses (and records) any attempt to open a network connection or resolve a name.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.support import helm as h
from tests.support import k8s, paths

README = paths.CHART / "README.md"
TIMEOUT = 300  # hang bound for the one checkov run (a few seconds on an idle machine)

# Started as `python -c GUARD <checkov args>`: an audit hook blocks and logs network access, then checkov's own
# entry point runs. Audit hooks cannot be removed and survive fork, so checkov's worker processes keep it.
GUARD = r"""
import socket, sys
log = open(sys.argv.pop(1), "a", buffering=1)
def guard(event, args):
    if event == "socket.getaddrinfo" or event == "socket.gethostbyname" or (
            event in ("socket.connect", "socket.sendto") and args[0].family in (socket.AF_INET, socket.AF_INET6)):
        log.write(f"{event} {args[1:] if event.startswith('socket.c') or event == 'socket.sendto' else args}\n")
        raise OSError(f"network access refused in tests: {event}")
sys.addaudithook(guard)
sys.argv[0] = "checkov"
from checkov.main import Checkov
sys.exit(Checkov().run())
"""

# What makes checkov offline: no version check against PyPI, no download of platform policies/mappings.
OFFLINE_ENV = {"CKV_SKIP_PACKAGE_UPDATE_CHECK": "true", "BC_SKIP_MAPPING": "TRUE"}

# A render that must fail a check the README does not list: proof that an unexplained failure is seen.
CANARY = ("canary-token-mounted", {"serviceAccount": {"automountServiceAccountToken": True}}, "CKV_K8S_38")


def explained_checks() -> dict[str, str]:
    """check id -> reason, from the README's "Security scan (checkov)" table."""
    section = README.read_text().split("## Security scan (checkov)", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and re.fullmatch(r"CKV2?_[A-Z0-9]+_\d+", cells[0]):
            assert len(cells) == 3 and cells[2], f"README row without a reason: {line}"
            rows[cells[0]] = cells[2]
    return rows


def scanned_renders() -> dict[str, h.Rendered]:
    """file name (without .yaml) -> the render checkov scans: the required values, then each example."""
    renders = {"required-values": h.render(k8s.values())}
    for example in sorted(paths.VALUES_EXAMPLES.glob("*.yaml")):
        renders[f"example-{example.stem}"] = h.render(files=[example])
    return renders


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    """checkov's results by file name and its network log, from one run per test session: pytest-xdist
    workers share it through the session's temp directory (under a lock), so it runs once, not per worker."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return run_checkov(tmp_path_factory.mktemp("checkov"))
    shared = tmp_path_factory.getbasetemp().parent  # this session's, common to its workers
    with open(shared / "checkov.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = shared / "checkov-scan.json"
        if not result.exists():
            result.write_text(json.dumps(run_checkov(shared / "checkov")))
        by_file, netlog = json.loads(result.read_text())
    return by_file, netlog


def run_checkov(tmp: Path) -> tuple[dict[str, dict[str, list]], str]:
    """Run checkov once over every render plus the canary. Returns (results by file name, network log)."""
    tmp.mkdir(exist_ok=True)
    manifests = tmp / "manifests"
    manifests.mkdir()
    renders = scanned_renders()
    name, overrides, _ = CANARY
    renders[name] = h.render(k8s.values(overrides))
    for stem, rendered in renders.items():
        (manifests / f"{stem}.yaml").write_text(rendered.text)
    netlog = tmp / "network.log"
    netlog.touch()
    env = {"PATH": os.defpath, "HOME": str(tmp), "TMPDIR": str(tmp), "LANG": "C.UTF-8", **OFFLINE_ENV}
    cmd = [str(paths.CHECKOV_PYTHON), "-c", GUARD, str(netlog), "-d", str(manifests),
           "--framework", "kubernetes", "--skip-download", "--output", "json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp, timeout=TIMEOUT)
    # checkov exits 1 when a check fails (always, here: the canary), 2 when it crashes.
    assert proc.returncode in (0, 1), f"checkov exited {proc.returncode}:\n{proc.stderr[-4000:]}"
    reports = json.loads(proc.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    assert [r["check_type"] for r in reports] == ["kubernetes"], [r.get("check_type") for r in reports]
    report = reports[0]
    assert report["summary"]["parsing_errors"] == 0, report["summary"]
    by_file: dict[str, dict[str, list]] = {stem: {"passed": [], "failed": []} for stem in renders}
    for outcome in ("passed", "failed"):
        for check in report["results"][f"{outcome}_checks"]:
            by_file[Path(check["file_path"]).stem][outcome].append(check)
    return by_file, netlog.read_text()


def failures(results: dict[str, list], explained: dict[str, str]) -> list[str]:
    """The failed checks of one file that the README does not explain, as readable lines."""
    return sorted(f"{c['check_id']} ({c['check_name']}) on {c['resource']}"
                  for c in results["failed"] if c["check_id"] not in explained)


class TestCheckov:
    def test_should_scan_every_render(self, scan):
        by_file, _ = scan
        for stem, results in by_file.items():
            assert len(results["passed"]) >= 50, f"{stem}: checkov ran only {len(results['passed'])} checks"

    def test_should_explain_every_failed_check(self, scan):
        by_file, _ = scan
        explained = explained_checks()
        unexplained = {stem: failures(results, explained) for stem, results in by_file.items()
                       if stem != CANARY[0]}
        assert not any(unexplained.values()), (
            "checkov checks that fail and are not explained in the chart README's 'Security scan (checkov)' "
            "table (fix the chart, or add a row with the reason to schema/chart-readme.md.tpl and run "
            "`make docs`):\n" + "\n".join(f"  {stem}: {line}" for stem, lines in unexplained.items()
                                          for line in lines))

    def test_should_list_only_checks_that_still_fail(self, scan):
        by_file, _ = scan
        failed = {c["check_id"] for stem, results in by_file.items() if stem != CANARY[0]
                  for c in results["failed"]}
        stale = sorted(set(explained_checks()) - failed)
        assert not stale, f"the README explains checks that no longer fail; remove their rows: {stale}"

    def test_should_see_an_unexplained_failure(self, scan):
        by_file, _ = scan
        name, _, check_id = CANARY
        assert check_id not in explained_checks()
        assert [line.split()[0] for line in failures(by_file[name], explained_checks())] == [check_id]

    def test_should_not_mount_the_service_account_token(self, scan):
        by_file, _ = scan
        for stem, results in by_file.items():
            if stem != CANARY[0]:
                assert "CKV_K8S_38" in {c["check_id"] for c in results["passed"]}, stem

    def test_should_never_reach_the_network(self, scan):
        _, netlog = scan
        assert netlog == "", f"checkov tried the network:\n{netlog}"


class TestNetworkGuard:
    """The guard that the scan relies on does catch a lookup and a connection (else the test above proves nothing)."""

    def test_should_record_and_refuse_network_access(self, tmp_path):
        netlog = tmp_path / "network.log"
        probe = GUARD.split("from checkov.main", 1)[0] + (
            "import socket\n"
            "for attempt in (lambda: socket.getaddrinfo('example.org', 443),\n"
            "                lambda: socket.socket().connect(('127.0.0.1', 9))):\n"
            "    try:\n        attempt()\n    except OSError as e:\n        print(e)\n")
        proc = subprocess.run([str(paths.CHECKOV_PYTHON), "-c", probe, str(netlog)], capture_output=True,
                              text=True, timeout=60, env={"PATH": os.defpath})
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.count("network access refused in tests") == 2, proc.stdout
        assert "socket.getaddrinfo" in netlog.read_text()
        assert "socket.connect" in netlog.read_text()
