"""The benchmark's /health probe, a process of its own: `python ci/bench_probe.py URL INTERVAL MAX_SECONDS OUT`.

Like a kubelet HTTP probe it opens a new TCP connection for every `GET URL` (blocking http.client,
5 s timeout), one probe every INTERVAL seconds (the next one starts INTERVAL after the previous one
started, or at once if it took longer). Being a separate process, its timings do not include the load
generator's event-loop delays. Stops on SIGTERM/SIGINT, stdin EOF (parent gone) or after MAX_SECONDS,
then writes OUT as JSON: [[t_monotonic_start, latency_ms, status], ...] (status 0 = connection error or
timeout). time.monotonic() is system-wide on Linux, so ci/bench.py can cut the samples into phases.
"""
from __future__ import annotations

import http.client
import json
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.proc import die_with_parent, stop_event  # noqa: E402


def main(argv: list[str]) -> int:
    url, interval, max_s, out = argv[0], float(argv[1]), float(argv[2]), argv[3]
    die_with_parent()
    parts = urlsplit(url)
    path = parts.path or "/"
    stop = stop_event()
    samples: list[list[float]] = []
    end = time.monotonic() + max_s
    next_at = time.monotonic()
    print("READY", flush=True)
    while not stop.is_set() and time.monotonic() < end:
        t0 = time.monotonic()
        status = 0
        try:
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            status = resp.status
            conn.close()
        except (OSError, http.client.HTTPException):
            status = 0
        samples.append([t0, (time.monotonic() - t0) * 1000.0, status])
        next_at = max(next_at + interval, time.monotonic())
        stop.wait(max(0.0, next_at - time.monotonic()))
    with open(out, "w") as f:
        json.dump(samples, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
