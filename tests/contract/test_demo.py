"""`make demo`: `ci/demo.py --once` exits 0 after every step succeeded and leaves no process and no temp
file behind; the interactive demo does the same when stopped with Ctrl-C or by closing its terminal; a
hung CLI cannot hang it; a port in TIME-WAIT is not mistaken for a taken one."""
from __future__ import annotations

import errno
import fcntl
import importlib.util
import os
import pty
import re
import selectors
import shutil
import signal
import socket
import subprocess
import tempfile
import termios
import time
from pathlib import Path
from types import ModuleType
from typing import Iterator

import pytest

from tests.support import paths
from tests.support.proc import stop_process
from tests.support.standins._server import free_port
from tests.support.standins.anthropic import (DEFAULT_ANSWER, PLATFORM_INTRO, PLATFORM_PREFIX, RESULT_PREFIX,
                                              TOOL_INTRO)

DEMO = paths.ROOT / "ci" / "demo.py"
PROMPT = "Press Ctrl-C to stop everything"


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
        except (OSError, PermissionError):
            continue
        if not alive(int(entry.name)):
            continue
        if text in cmdline or text in environ or cwd.startswith(text):
            found.append(f"pid {entry.name}: {cmdline[:200]}")
    return found


def alive(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie (a zombie is already dead)."""
    try:
        state = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                     if line.startswith("State:"))
    except (OSError, StopIteration):
        return False
    return "Z" not in state.split()[1:2]


def still_alive(pids: list[int], timeout: float = 30.0) -> list[int]:
    """The pids among `pids` still alive once `timeout` seconds have passed, polling: a killed process
    can take a moment to go (a signal still being delivered, a zombie not yet reaped) on a busy machine."""
    deadline = time.monotonic() + timeout
    while True:
        left = [p for p in pids if alive(p)]
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.05)


def reported_pids(output: str) -> list[int]:
    """The pids the demo reported starting (`started ... (pid N)`)."""
    return [int(p) for p in re.findall(r"\(pid (\d+)\)", output)]


def demo_env(tmpdir: Path) -> dict[str, str]:
    """The demo's environment: no ANTHROPIC_API_KEY (no internet: the stand-in model), TMPDIR = `tmpdir`."""
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    env["TMPDIR"] = str(tmpdir)
    return env


def load_demo() -> ModuleType:
    """ci/demo.py as a module (ci/ is not a package)."""
    spec = importlib.util.spec_from_file_location("ci_demo", DEMO)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tmpdir_short() -> Iterator[Path]:
    """A TMPDIR for the demo with a short path: MariaDB's unix socket path must stay under 108 bytes."""
    d = Path(tempfile.mkdtemp(prefix="demo-test-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_demo_once_succeeds_and_leaves_nothing_behind(tmpdir_short: Path) -> None:
    tmpdir = tmpdir_short
    proc = subprocess.run([str(paths.PYTHON), str(DEMO), "--once", "--port", str(free_port())],
                          cwd=paths.ROOT, env=demo_env(tmpdir), capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-12000:]
    for step in ("1. Render", "2. Start the system", "3. Talk to the service"):
        assert re.search(rf"^    OK  +{re.escape(step)}", proc.stdout, re.M), f"step {step!r} not OK:\n{out[-6000:]}"
    assert not re.search(r"^    FAIL\b", proc.stdout, re.M), out[-12000:]
    assert "demo: every step succeeded" in proc.stdout
    assert re.search(r"streamed: the service sent the answer as \d+ text-delta SSE events", proc.stdout), out[-6000:]
    # Every answer it shows says it comes from the local stand-in model, not Claude.
    for text in (TOOL_INTRO, RESULT_PREFIX, DEFAULT_ANSWER, PLATFORM_INTRO, PLATFORM_PREFIX):
        assert "stand-in model" in text and re.search(r"\bnot\b.*\bClaude\b", text), text
    answers = re.findall(r"answer \(streamed\):\n((?:        > .*\n)+)", proc.stdout)
    assert len(answers) == 3, out[-6000:]
    assert TOOL_INTRO.strip() in answers[0] and RESULT_PREFIX in answers[0], answers[0]
    assert DEFAULT_ANSWER in answers[1], answers[1]
    # The Platform question: answered from the demo user's own runs, through Seqera MCP.
    assert PLATFORM_INTRO.strip() in answers[2] and PLATFORM_PREFIX in answers[2], answers[2]
    assert "demo-user_rnaseq_nightly" in answers[2], answers[2]
    # It told us what it started, and all of it is gone.
    pids = reported_pids(proc.stdout)
    assert len(pids) >= 3, f"the demo did not report what it started:\n{out[-6000:]}"
    leftovers = processes_referring_to(str(tmpdir))
    assert not leftovers, f"processes left running: {leftovers}"
    assert sorted(p.name for p in tmpdir.iterdir()) == [], "temp files left behind"
    # The secrets of the quickstart file never reach the demo's output.
    assert "replace-with-the-database-password" not in out


class InteractiveDemo:
    """`ci/demo.py` without --once, on a pseudo-terminal of its own (it is the session leader)."""

    def __init__(self, tmpdir: Path) -> None:
        self.tmpdir = tmpdir
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            [str(paths.PYTHON), str(DEMO), "--port", str(free_port())], cwd=paths.ROOT, env=demo_env(tmpdir),
            stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))  # the pty becomes its terminal
        os.close(slave)
        self.output = ""

    def read_until(self, text: str, timeout: float) -> None:
        """Read the terminal until `text` shows (or the demo exits, or `timeout` passes)."""
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(self.master, selectors.EVENT_READ)
            while text not in self.output:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    break
                try:
                    data = os.read(self.master, 65536)
                except OSError as e:  # EIO: every process holding the terminal is gone
                    assert e.errno == errno.EIO
                    break
                if not data:
                    break
                self.output += data.decode(errors="replace").replace("\r\n", "\n")

    def demo_dir(self) -> Path:
        """The demo's temp directory, from the service log path it prints before the prompt."""
        m = re.search(r"Service log: (\S+)/agent-backend\.log", self.output)
        assert m, self.output[-6000:]
        return Path(m.group(1))

    def close(self) -> None:
        """Kill the demo if it is still running and close the terminal."""
        stop_process(self.proc, sig=signal.SIGKILL)
        if self.master >= 0:
            os.close(self.master)
            self.master = -1


@pytest.fixture
def interactive_demo(tmpdir_short: Path) -> Iterator[InteractiveDemo]:
    """The interactive demo, started and waiting at its Ctrl-C prompt."""
    demo = InteractiveDemo(tmpdir_short)
    try:
        demo.read_until(PROMPT, timeout=120)
        assert PROMPT in demo.output, f"the demo never reached its prompt:\n{demo.output[-8000:]}"
        yield demo
    finally:
        demo.close()


def assert_nothing_left(demo: InteractiveDemo, pids: list[int], demo_dir: Path) -> None:
    """Every pid the demo reported is gone, and so are its temp directory and anything under TMPDIR."""
    assert len(pids) >= 3, f"the demo did not report what it started:\n{demo.output[-6000:]}"
    assert still_alive(pids) == [], demo.output[-6000:]
    assert not demo_dir.exists(), f"{demo_dir} left behind"
    assert not processes_referring_to(str(demo.tmpdir))
    assert sorted(p.name for p in demo.tmpdir.iterdir()) == [], "temp files left behind"


def test_ctrl_c_stops_the_interactive_demo_and_leaves_nothing_behind(interactive_demo: InteractiveDemo) -> None:
    demo = interactive_demo
    pids, demo_dir = reported_pids(demo.output), demo.demo_dir()
    start = time.monotonic()
    demo.proc.send_signal(signal.SIGINT)
    demo.read_until("\n==> Summary", timeout=30)
    rc = demo.proc.wait(60)
    assert time.monotonic() - start < 120  # a hang bound, not a timing check
    assert rc == 0, demo.output[-6000:]
    assert f"removed {demo_dir}" in demo.output
    assert_nothing_left(demo, pids, demo_dir)


def test_closing_the_terminal_stops_the_interactive_demo_and_leaves_nothing_behind(
        interactive_demo: InteractiveDemo) -> None:
    demo = interactive_demo
    pids, demo_dir = reported_pids(demo.output), demo.demo_dir()
    os.close(demo.master)  # the terminal goes away: the kernel sends SIGHUP, later writes fail with EIO
    demo.master = -1
    demo.proc.wait(30)
    assert_nothing_left(demo, pids, demo_dir)


def test_a_cli_that_hangs_silently_is_killed_at_the_deadline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    demo_module = load_demo()
    child_pid = tmp_path / "child.pid"
    fake_cli = tmp_path / "seqera"
    fake_cli.write_text(f"#!/bin/sh\nsleep 600 &\necho $! > {child_pid}\nwait\n")  # prints nothing, ever
    fake_cli.chmod(0o755)
    monkeypatch.setattr(demo_module.paths, "SEQERA_CLI", fake_cli)
    monkeypatch.setattr(demo_module, "CLI_TIMEOUT", 2)
    demo = demo_module.Demo(once=True, port=0)
    try:
        start = time.monotonic()
        with pytest.raises(demo_module.StepFailed, match="did not finish within 2s; its process group was killed"):
            demo.seqera("hello", cwd=tmp_path)
        assert time.monotonic() - start < 120  # a hang bound (the child sleeps 600 s), not a timing check
        [cli] = demo.cli_procs
        assert still_alive([cli.pid, int(child_pid.read_text())]) == []  # the CLI's children went with it
    finally:
        demo.cleanup()


def in_time_wait(port: int) -> bool:
    """Whether a TCP connection on local port `port` is in TIME-WAIT (state 06 in /proc/net/tcp)."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return any(r.split()[1].endswith(f":{port:04X}") and r.split()[3] == "06" for r in rows)


def test_a_port_in_time_wait_is_free_and_a_listened_one_is_not() -> None:
    demo_module = load_demo()
    with socket.socket() as listener:
        # A previous run's service: aiohttp listens with SO_REUSEADDR, and its connections inherit it.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert not demo_module.port_free(port)
        client = socket.create_connection(("127.0.0.1", port))
        conn, _ = listener.accept()
        conn.close()  # the listening side closes first, so its end waits in TIME-WAIT
        client.close()
    deadline = time.monotonic() + 5
    while not in_time_wait(port) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert in_time_wait(port)
    with socket.socket() as plain, pytest.raises(OSError) as taken:
        plain.bind(("127.0.0.1", port))
    assert taken.value.errno == errno.EADDRINUSE  # what the demo's check ran into before
    assert demo_module.port_free(port)
