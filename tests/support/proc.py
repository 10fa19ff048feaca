"""Helpers for the processes the tests, the demo and the benchmark start. Standard library only, so that
the benchmark's small helper processes (ci/bench_probe.py) can use it without importing aiohttp.

    subprocess.Popen(argv, preexec_fn=die_with_parent)   # the child gets SIGTERM if its parent dies
    stop = stop_event()                                   # set on SIGINT/SIGTERM or when stdin reaches EOF
    wait_http_ok(url, proc, timeout=30)                   # poll until GET url answers 200, or raise NotReady
"""
from __future__ import annotations

import contextlib
import ctypes
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

PR_SET_PDEATHSIG = 1


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


class NotReady(Exception):
    """The process exited, or `url` did not answer 200 in time."""


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
