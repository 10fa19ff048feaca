"""`make demo ONCE=1` end to end: `ci/demo.py --once` exits 0 after every step succeeded, and leaves
no process and no temp file behind."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from tests.support import paths
from tests.support.standins._server import free_port

PYTHON = paths.ROOT / ".venv" / "bin" / "python"


def processes_referring_to(text: str) -> list[str]:
    """Live processes whose command line, working directory or environment mention `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = (entry / "environ").read_bytes().decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
            state = next((line for line in (entry / "status").read_text().splitlines()
                          if line.startswith("State:")), "")
        except (OSError, PermissionError):
            continue
        if "Z" in state.split()[1:2]:  # a zombie is already dead
            continue
        if text in cmdline or text in environ or cwd.startswith(text):
            found.append(f"pid {entry.name}: {cmdline[:200]}")
    return found


@pytest.fixture
def tmpdir_short() -> Iterator[Path]:
    """A TMPDIR for the demo with a short path: MariaDB's unix socket path must stay under 108 bytes."""
    d = Path(tempfile.mkdtemp(prefix="demo-test-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_demo_once_succeeds_and_leaves_nothing_behind(tmpdir_short: Path) -> None:
    tmpdir = tmpdir_short
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}  # no internet: the stand-in model
    env["TMPDIR"] = str(tmpdir)
    proc = subprocess.run([str(PYTHON), "ci/demo.py", "--once", "--port", str(free_port())],
                          cwd=paths.ROOT, env=env, capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-12000:]
    for step in ("1. Render", "2. Start the system", "3. Talk to the service"):
        assert re.search(rf"^    OK  +{re.escape(step)}", proc.stdout, re.M), f"step {step!r} not OK:\n{out[-6000:]}"
    assert "FAIL" not in proc.stdout, out[-12000:]
    assert "demo: every step succeeded" in proc.stdout
    # It told us what it started, and all of it is gone.
    pids = [int(p) for p in re.findall(r"\(pid (\d+)\)", proc.stdout)]
    assert len(pids) >= 3, f"the demo did not report what it started:\n{out[-6000:]}"
    leftovers = processes_referring_to(str(tmpdir))
    assert not leftovers, f"processes left running: {leftovers}"
    assert sorted(p.name for p in tmpdir.iterdir()) == [], "temp files left behind"
    # The secrets of the quickstart file never reach the demo's output.
    assert "replace-with-the-database-password" not in out
