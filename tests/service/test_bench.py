"""`make bench`: `ci/bench.py --quick` (tiny counts, half-second phases) runs to the end and prints every
figure of its table. It measures nothing worth reading on a shared machine, so no figure's value is
checked here: this test only keeps a change to the shared harness (tests/support/) from breaking the
benchmark unnoticed."""
from __future__ import annotations

import re
import subprocess
from collections import Counter

import pytest

from tests.support import paths
from tests.support.proc import stop_process

BENCH = paths.ROOT / "ci" / "bench.py"
# A hang bound, not a timing check: the quick run takes about 25 s; the bench bounds its own measurement
# (--max-seconds, 120 s when quick) and this bound leaves room for its set-up and clean-up.
HANG_BOUND = 240

# Every row of the full table, in its order; {n} is the number of conversations the bench reports.
FIGURES = [
    "TTFT direct to the stand-in p50 / p99",
    "TTFT through the service p50 / p99",
    "added TTFT p50 (service p50 - direct p50)",
    "added TTFT p99 (service p99 - direct p99)",
    "TTFT samples that failed",
    "for reference: TTFT via the anthropic SDK directly p50 / p99",
    "CPU used by unrelated work on the machine meanwhile",
    "service TTFT part: POST messages round trip p50 / p99",
    "service TTFT part: GET events until headers p50 / p99",
    "service TTFT part: headers -> first text-delta p50 / p99",
    "service CPU per sample (session + turn)",
    "MySQL statements per turn / per session create",
    "MCP on, a turn using no MCP tool: added TTFT p50",
    "MCP on, a turn using no MCP tool: added TTFT p99",
    "TTFT with MCP off (baseline service) p50 / p99",
    "TTFT with MCP on, tool list cached p50 / p99",
    "TTFT with MCP on, tool list not cached p50 / p99",
    "MCP connect + tools/list via the service p50 / p99",
    "MCP call via the service, first in a run p50 / p99",
    "MCP call via the service, later in a run p50 / p99",
    "for reference: MCP connect + tools/list, SDK direct p50 / p99",
    "for reference: MCP call, SDK direct p50 / p99",
    "RSS with MCP on / off (after the MCP phase)",
    "MCP phase samples that failed",
    "CPU used by unrelated work on the machine meanwhile",
    "concurrent conversations: completed / errors",
    "peak simultaneously streaming",
    "time until all were streaming",
    "time to first token under load p50 / p99",
    "under load, session created after p50 / p99",
    "under load, message accepted after p50 / p99",
    "under load, events stream open after p50 / p99",
    "text deltas delivered",
    "service CPU during the phase",
    "others' CPU in that time",
    "CPU used by unrelated work on the machine meanwhile",
    "/health p99 during the concurrency phase",
    "/health p50 / max / probes / non-200",
    "/health p50 / p99 / max, arrivals (until all streaming)",
    "/health p50 / p99 / max, steady (all streaming)",
    "/health p50 / p99 / max, finishing (after release)",
    "RSS idle (after warm-up, peak VmRSS)",
    "RSS peak during {n} streams",
    "RSS after the streams ended / kernel VmHWM",
    "LangSmith stand-in: runs received / turns ended",
    "service log lines by level",
]


def table_figures(stdout: str) -> list[str]:
    """The figure column of the printed table: the rows between the dashed rule and the next blank line."""
    lines = stdout.splitlines()
    rule = next(i for i, line in enumerate(lines) if line and set(line) == {"-"})
    rows = []
    for line in lines[rule + 1:]:
        if not line.strip():
            break
        rows.append(re.split(r" {2,}", line.strip())[0])  # columns are two or more spaces apart
    return rows


def test_quick_bench_runs_and_prints_every_figure() -> None:
    # --nice 0: leave the priority of this test run's scheduler group alone (the bench raises it as root).
    proc = subprocess.Popen([str(paths.PYTHON), str(BENCH), "--quick", "--nice", "0"], cwd=paths.ROOT,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=HANG_BOUND)
    except subprocess.TimeoutExpired:
        stop_process(proc, grace=60)  # SIGTERM: the bench stops what it started and removes its temp dir
        out, err = proc.communicate()
        pytest.fail(f"ci/bench.py --quick still running after {HANG_BOUND} s:\n{out[-6000:]}\n{err[-6000:]}")
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{out[-6000:]}\n{err[-6000:]}"
    n = re.search(r"; (\d+) conversations, ramp", out)
    assert n, out[-6000:]
    expected = Counter(label.format(n=n.group(1)) for label in FIGURES)
    missing = expected - Counter(table_figures(out))
    assert not missing, f"figures not printed: {sorted(missing)}\n{out[-6000:]}"
