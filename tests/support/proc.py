"""Helpers for the processes the tests, the demo and the benchmark start. Standard library only, so that
the benchmark's small helper processes (ci/bench_probe.py) can use it without importing aiohttp.

    subprocess.Popen(argv, preexec_fn=die_with_parent)   # the child gets SIGTERM if its parent dies
    stop = stop_event()                                   # set on SIGINT/SIGTERM or when stdin reaches EOF
    wait_http_ok(url, proc, timeout=30)                   # poll until GET url answers 200, or raise NotReady
    text = read_ready_line(proc, timeout=30)              # the child's first line, "READY <text>", or NotReady
    stop_process(proc, grace=10)                          # SIGTERM, wait, SIGKILL, reap: its exit status
    stop_process(proc, group=True)                        # the same for its whole process group
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

PR_SET_PDEATHSIG = 1
# How long stop_process() waits for a process to go after SIGKILL before it gives up (TimeoutExpired).
KILL_WAIT = 10.0


def die_with_parent() -> None:
    """Linux: ask for SIGTERM when the parent thread or process ends (PR_SET_PDEATHSIG). Use it as a
    child's `preexec_fn`, or call it first thing in a helper process; elsewhere it does nothing."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def stop_event(watch_stdin: bool = True) -> threading.Event:
    """An event that is set on SIGINT or SIGTERM and, with `watch_stdin`, when stdin reaches EOF (the
    parent that holds the other end of the pipe went away). Call it from the main thread."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    def watch() -> None:
        with contextlib.suppress(OSError):
            while sys.stdin.buffer.read(4096):
                pass
        stop.set()

    if watch_stdin:
        threading.Thread(target=watch, name="stdin-watch", daemon=True).start()
    return stop


def stop_process(proc: subprocess.Popen, grace: float = 10.0, *, sig: int | None = signal.SIGTERM,
                 group: bool = False) -> int:
    """Stop `proc` and reap it; returns its exit status (negative: the signal that ended it).

    Unless it has exited already: send it `sig` (None: it was asked to stop another way, e.g. a SQL
    SHUTDOWN), wait up to `grace` seconds, then SIGKILL it and wait up to KILL_WAIT seconds more
    (subprocess.TimeoutExpired after that). With `group` the signals go to its process group, which
    it must lead (`start_new_session=True`), and whatever is left in the group once the leader has
    gone (the children of a shell) is SIGKILLed too. Its pipes and log files stay the caller's."""

    def send(s: int) -> None:
        if group:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, s)
        else:
            proc.send_signal(s)  # does nothing once the process has been reaped

    if proc.poll() is None:
        if sig is not None:
            send(sig)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            send(signal.SIGKILL)
            proc.wait(KILL_WAIT)
    if group:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode


class NotReady(Exception):
    """The process exited, or did not show it is ready (an HTTP 200, its ready line) in time."""


def wait_http_ok(url: str, proc: subprocess.Popen, timeout: float, interval: float = 0.05) -> None:
    """Poll `GET url` until it answers 200; raise NotReady when `proc` exits first or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise NotReady(f"exited with status {proc.returncode} before {url} answered 200")
        with contextlib.suppress(urllib.error.URLError, OSError):
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        time.sleep(interval)
    raise NotReady(f"{url} did not answer 200 within {timeout:g}s")


def read_ready_line(proc: subprocess.Popen, timeout: float, prefix: str = "READY") -> str:
    """The rest of the first line `proc` writes to its stdout (a pipe) when that line starts with
    `prefix` (the helper processes of ci/ print `READY <what>` once they serve); raise NotReady when
    it writes another line, closes its stdout (exits) or writes nothing within `timeout` seconds."""
    assert proc.stdout is not None, "read_ready_line needs stdout=subprocess.PIPE"
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(proc.stdout.readline()),  # type: ignore[union-attr]
                              name="ready-line", daemon=True)
    reader.start()
    reader.join(timeout)
    raw = box[0] if box else ""
    line = (raw.decode(errors="replace") if isinstance(raw, bytes) else raw).strip()
    if not line.startswith(prefix):
        why = f"wrote {line!r}" if line else ("exited" if box else f"wrote nothing within {timeout:g}s")
        raise NotReady(f"{why} instead of a {prefix} line")
    return line[len(prefix):].strip()
