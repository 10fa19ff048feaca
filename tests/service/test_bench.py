"""`make bench`: `ci/bench.py --quick` (tiny counts, half-second phases) runs to the end and prints every
figure of its three tables (the service's details, the side-by-side comparison, issue 13's targets). It
measures nothing worth reading on a shared machine, so no figure's value is checked here: this test only
keeps a change to the shared harness (tests/support/) from breaking the benchmark unnoticed. `--quick`
does not run LiteLLM's proxy (it is installed on demand by a full run only, never by `make test`): its
column must say so in every row, and each target against it must read "not run"."""
from __future__ import annotations

import re
import subprocess
from collections import Counter

import pytest

from tests.support import paths
from tests.support.proc import stop_process

BENCH = paths.ROOT / "ci" / "bench.py"
# A hang bound, not a timing check: the quick run takes 60-100 s on a loaded machine; the bench bounds its own measurement
# (--max-seconds, 150 s when quick) and this bound leaves room for its set-up and clean-up.
HANG_BOUND = 300

# Every row of the service's table, in its order; {n} is the second load level's streams, {l2} that level.
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
    "service, {l2}: completed / errors",
    "peak simultaneously streaming",
    "time until all were streaming",
    "time to first token under load p50 / p99",
    "under load, session created after p50 / p99",
    "under load, message accepted after p50 / p99",
    "under load, events stream open after p50 / p99",
    "text deltas delivered",
    "service CPU during the level",
    "MariaDB CPU per delta in the steady window",
    "others' CPU in that time",
    "CPU used by unrelated work on the machine meanwhile",
    "/health p99 during the service's {l2}",
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
# The comparison's rows: the TTFT and idle rows, then these for each load level ({l} = "N streams x R deltas/s").
COMPARISON = ["TTFT p50 / p99, ms", "added TTFT p50, ms (minus direct's)", "added TTFT p99, ms (minus direct's)",
              "TTFT samples that failed", "idle RSS, MiB (the service: MCP loaded)"]
PER_LEVEL = ["{l}: errors", "{l}: peak streaming at once", "{l}: p99 gap between deltas, ms",
             "{l}: CPU per relayed delta, us", "{l}: RSS per open stream, KiB", "{l}: drain after release, s",
             "{l}: CPU of the load generator / unrelated work, cores"]
QUICK_LEVELS = ["3 streams x 20 deltas/s", "5 streams x 20 deltas/s", "6 streams x 10 deltas/s"]
# Issue 13's targets, and whether the quick run (no LiteLLM) has what each needs.
TARGETS = [
    ("added TTFT p50: service / LiteLLM", False),
    ("added TTFT p99: service / LiteLLM", False),
    ("added TTFT p50: service / minimal relay", True),
    ("CPU per relayed delta, 3 streams x 20/s: service / LiteLLM", False),
    ("CPU per relayed delta, 3 streams x 20/s: service / minimal relay", True),
    ("5 streams x 20/s: service errors", True),
    ("5 streams x 20/s: p99 gap between deltas, service / LiteLLM", False),
    ("5 streams x 20/s: p99 gap between deltas, service / minimal relay", True),
    ("5 streams x 20/s: service /health p99", True),
    ("6 streams x 10/s on one process: service errors", True),
    ("idle RSS with MCP loaded: service / LiteLLM", False),
    ("RSS per open stream, 5 streams x 20/s: service", True),
]
COLUMNS = ["direct", "service", "LiteLLM", "minimal relay"]


def tables(stdout: str) -> list[list[str]]:
    """Each printed table's rows (the lines between its dashed rule and the next blank line), in order."""
    lines = stdout.splitlines()
    out: list[list[str]] = []
    for i, line in enumerate(lines):
        if line and set(line) == {"-"} and i > 0 and lines[i - 1].startswith("figure"):
            rows = []
            for row in lines[i + 1:]:
                if not row.strip():
                    break
                rows.append(row)
            out.append(rows)
    return out


def figure(row: str) -> str:
    return re.split(r" {2,}", row.strip())[0]  # columns are two or more spaces apart


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
    printed = tables(out)
    assert len(printed) == 3, out[-6000:]
    details, comparison, targets = printed

    expected = Counter(label.format(n=5, l2=QUICK_LEVELS[1]) for label in FIGURES)
    missing = expected - Counter(figure(r) for r in details)
    assert not missing, f"figures not printed: {sorted(missing)}\n{out[-6000:]}"

    want = COMPARISON + [p.format(l=lv) for lv in QUICK_LEVELS for p in PER_LEVEL] + [f"{QUICK_LEVELS[1]}: /health p99, ms"]
    assert sorted(figure(r) for r in comparison) == sorted(want), out[-6000:]
    header = next(line for line in out.splitlines() if line.startswith("figure") and "minimal relay" in line)
    assert re.split(r" {2,}", header.strip())[1:] == COLUMNS
    for row in comparison:  # LiteLLM's column (the third target) says it was not run, in every row
        assert re.split(r" {2,}", row.strip())[3] == "not run (--quick)", row

    assert [figure(r) for r in targets] == [name for name, _ in TARGETS], out[-6000:]
    for row, (name, runs) in zip(targets, TARGETS):  # a result for each; "not run" exactly when LiteLLM is needed
        result = re.search(r" {2}(not met|not run|met)( {2}|$)", row)
        assert result, row
        assert (result.group(1) != "not run") == runs, f"{name}: {row}"
