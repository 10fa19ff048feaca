#!/usr/bin/env python
"""`make bench`: the agent-backend performance benchmark (issue 3, "Performance"; the comparison with
LiteLLM's proxy and a minimal relay, issue 13). Measures and prints; never a test
(tests/service/test_bench.py only checks that `--quick` runs and prints every figure). Loopback only,
bounded in count and time, stops by itself, and removes every process and temp dir it made, also on
Ctrl-C, SIGTERM or error.

Targets compared, in ONE run, interleaved, every one of them fed the same upstream request body by the
one Anthropic stand-in (the service's own upstream request, taken from the stand-in after the warm-up:
model, system prompt, tools, messages; only the marker text in the user message differs by phase):
- `direct`: the load generator's POST /v1/messages straight to the stand-in (the floor of the floor);
- `service`: the agent-backend service, one process (a turn as below: session, message, events);
- `litellm`: LiteLLM's proxy, `litellm[proxy]==1.82.6` EXACTLY (later releases were compromised on
  PyPI), installed on demand by this script into its own venv, .tools/litellm-1.82.6/, its dependencies
  pinned by ci/requirements-litellm.txt (`pip check`ed); never by `make test`. One worker (one
  process), no database, master-key auth (the key in its environment, never argv), the stand-in
  configured as its one model's api_base in a generated config file in the temp dir; its
  `/v1/messages` route (Anthropic format, its most direct streaming path);
- `relay`: the minimal aiohttp relay this bench carries (ci/bench_relay.py): one POST /v1/messages,
  bytes through to the stand-in, streaming, no database.
`--targets` picks some of them (direct always runs: the other TTFTs are measured against it). Without
`service` no MariaDB, service or MCP phase is set up, and the body is the service's system prompt and
tools built in this process (agent_backend.tools).

Set-up (all on 127.0.0.1): a throwaway MariaDB (tests/support/mariadb.py) with a fresh database per
service, `./init.sh` (the migrations, as the chart's init container runs them), the Anthropic, Platform,
LangSmith and Seqera MCP stand-ins (tests/support/standins/) each in its own process
(ci/bench_standins.py), and the service as ONE `python -m agent_backend` process (one worker, one event
loop; tests/support/service.py) with the chart's environment: ENVIRONMENT=production, LOG_LEVEL=INFO
(JSON logs to a file), tracing ON with LANGCHAIN_API_KEY set and LANGSMITH_ENDPOINT pointed at the
LangSmith stand-in (`--no-tracing` turns it off), ANTHROPIC_BASE_URL at the Anthropic stand-in, and
SEQERA_MCP_URL at the MCP stand-in (MCP on, the chart's default). Beside it, for the MCP phase only, a
baseline service that is the same but for an empty SEQERA_MCP_URL (MCP off). The Platform and MCP
stand-ins accept the bench's tokens (from the environment, never argv): the main one, the MCP phase's,
and one per MCP-phase turn that needs a token the service has not seen. LiteLLM and the relay each run
in a process of their own, pointed at the same Anthropic stand-in. The load generator is this
process: one aiohttp ClientSession with a large connection limit, speaking the CLI's protocol through
the tests' client (tests/support/cli.py) to the service and the Messages API's SSE to the others (a
frame is split off by `\n\n` and counted when it holds a `text_delta`). The /health probe is another
process (ci/bench_probe.py). RSS is sampled from /proc/<pid>/status (VmRSS) every 20 ms; CPU is
utime + stime from /proc/<pid>/stat; both summed over the target's process and its children.

Phases and figures (targets from issue 3; the MCP one from issue 10; the comparisons from issue 13), in
the order they run; the details table prints the MCP rows after the TTFT rows:
0. Seqera MCP (service only), while both services are fresh. A "turn" is phase 1's service sample.
   After a warm-up, turns interleaved: `off` on the baseline; `on` on the service with a token whose
   MCP tool list the service has cached (ListCache: before the 60 s `mcp_tools_ttl` can run out, the
   bench waits until it has and lets one untimed turn list again, so no sample lists);
   `new` on the service with a token it has not seen (the session created untimed, so the token check is
   cached and only MCP's connect + initialize + tools/list is added). Then turns whose stand-in model
   calls the read-only MCP tool `search_nfcore_module` twice (`[bench mcp=2]`) with the list cached, so
   the run connects on its first call and reuses the connection for the second.
   - added TTFT of a turn using no MCP tool = `on` percentile - `off` percentile (p50 < 1 ms);
   - MCP connect + tools/list through the service = `new` percentile - `on` percentile;
   - MCP call through the service, first of a run (connect + call) and later: from the `tool-call` part
     to its `tool-result` part as the events stream delivers them;
   - for reference, the SDK's client straight to the MCP stand-in: connect + initialize + tools/list,
     and a call on the open session;
   - the RSS of both services over a quiet moment after it (and after start-up).
   The baseline is stopped after this phase: the others measure the service alone.
1. Time to first token (TTFT), sequential, after warm-up; each round takes one sample of every target,
   the order rotating from round to round:
   - direct, LiteLLM, relay: POST /v1/messages (the service's upstream body, stream=true) -> first
     `text_delta` event;
   - service: on a fresh session (created untimed), in the CLI's order: POST .../messages is sent ->
     its response read -> GET .../events opened (no cursor) -> first `text-delta` part received.
   - added TTFT = target percentile - direct percentile (the service's: p50 < 2 ms, p99 < 10 ms).
   MCP is on here and in the phases below: the main token's tool list is listed again whenever the
   service's cache of it has expired (once a minute at most), as in production.
2. Idle: RSS of each target over a quiet window after the warm-up and TTFT traffic (the service's with
   MCP loaded: < 80 MiB); the /health probe's idle latency there is the baseline for the next phase.
3. Load, three levels (`--loads`, default 300x20,500x20,1000x10: streams x text deltas a second per
   stream), each level run on every target in turn (the order rotating from level to level). N streams
   arrive over `--ramp` seconds (on the service each is a conversation: it creates a session, posts a
   message and follows its events; elsewhere one POST /v1/messages). The stand-in sends a text delta
   every 1/rate s and holds every stream open until all N are streaming at once (or `--ramp` + 20 s
   have passed), keeps them so for `--steady` s (the steady window), then lets them finish in arrival
   order over another `--ramp` s; a stream not finished `--ramp` + 60 s after that is cancelled and
   counted as an error. Figures per target and level: errors (any non-2xx, transport error, `error`
   part or event, non-`stop` finish, or a stream ending without one; target 0), the peak number
   streaming at once, the p99 gap between consecutive text deltas of a stream over the steady window,
   the target's CPU over the steady window / text deltas delivered in it (CPU per relayed delta: the
   first level's is the one compared), its RSS in the steady window minus its idle RSS over the streams
   open (RSS per open stream: the second level's is compared), the drain time after the release, and the
   CPU unrelated work used meanwhile. For the service at the second level, also /health p99 (< 20 ms,
   issue 3; < 50 ms, issue 13; one new connection per probe every 50 ms) and its peak RSS (< 200 MiB);
   the detailed table shows the service's second level (steps under load, /health by stretch).
Then three tables: the service's details (its issue 3 and 10 targets), the comparison (one column per
target), and the ratios of issue 13's targets, each marked met / not met (or not run). The bench and
all its processes run at a raised priority (`--nice`, applied to their scheduler autogroups) and it
reports how much CPU unrelated work used meanwhile: on a shared machine that is what inflates the p99
figures.

`--quick` is a smoke run with tiny counts and durations (loads 3x20,5x20,6x10, 5 TTFT samples, 3 MCP-phase
turns of each kind, half-second phases) and without LiteLLM (its column reads "not run (--quick)"
unless `--targets` names it): every figure is printed, none means anything.

Exit status: 0 when the measurement completed (missed targets are printed as "not met"); with
`--strict`, 1 when any target was missed; 2 when the benchmark itself could not run or complete.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Iterator, TypeVar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from agent_backend.config import Config  # noqa: E402

from ci.bench_standins import HOLD_TICK, MCP_ARGS, MCP_REMOTE_TOOL  # noqa: E402  (`[bench mcp=N]`'s tool; a held delta)
from tests.support import paths, sse  # noqa: E402
from tests.support.cli import Cli  # noqa: E402
from tests.support.mariadb import MariaDB  # noqa: E402
from tests.support.proc import NotReady, die_with_parent, read_ready_line, stop_process, wait_http_ok  # noqa: E402
from tests.support.service import ServiceFailed, ServiceProcess, base_process_env, standin_env  # noqa: E402
from tests.support.standins import free_port  # noqa: E402

PY = str(paths.PYTHON)
MODEL = "claude-bench-standin"
MIB = 1024 * 1024
# The bench's sessions: the CLI's body from this directory, with no directory or instruction context.
SESSION_CWD = "/tmp/bench"
SESSION_FIELDS: dict[str, Any] = {"directory_context": {}, "instruction_context": ""}
SQL_SESSIONS = 20  # sessions created to count the MySQL statements of one
# How long the service keeps a token's Seqera MCP tool list (Config.mcp_tools_ttl; no environment variable).
MCP_TOOLS_TTL: float = next(f.default for f in fields(Config) if f.name == "mcp_tools_ttl")
MCP_CALLS = 2  # calls per MCP-call turn: the first of a run connects, the second reuses the connection
T = TypeVar("T")

# Targets (issue 3; the MCP one, issue 10).
ADDED_TTFT_P50_MS = 2.0
ADDED_TTFT_P99_MS = 10.0
HEALTH_P99_MS = 20.0
RSS_IDLE_MIB = 80.0
RSS_LOAD_MIB = 200.0
MCP_ADDED_TTFT_P50_MS = 1.0
# Issue 13's targets: the service against LiteLLM's proxy and the minimal relay (ratios in one run).
VS_LITELLM_TTFT = 0.5        # added TTFT p50 and p99, at most this times LiteLLM's
VS_RELAY_TTFT_P50 = 2.5      # added TTFT p50, at most this times the relay's
VS_LITELLM_CPU = 0.7         # CPU per relayed delta (first load level)
VS_RELAY_CPU = 1.6
VS_LITELLM_GAP = 1.0         # p99 gap between deltas (second load level)
VS_RELAY_GAP = 1.5
HEALTH_P99_LOAD_MS = 50.0    # /health p99 during the second load level
VS_LITELLM_RSS_IDLE = 0.5    # idle RSS, MCP loaded
RSS_PER_STREAM_KIB = 100.0   # (RSS at N open streams - idle RSS) / N, second load level

# The targets compared: --targets keys, in the table's column order, and their column names.
TARGETS = {"direct": "direct", "service": "service", "litellm": "LiteLLM", "relay": "minimal relay"}
LITELLM_VERSION = "1.82.6"  # EXACTLY: 1.82.7 and 1.82.8 were compromised on PyPI, later ones not known clean
LITELLM_VENV = ROOT / ".tools" / f"litellm-{LITELLM_VERSION}"
LITELLM_PINS = ROOT / "ci" / "requirements-litellm.txt"
LITELLM_INSTALL_SECONDS = 1200  # bound of its first install (pip from this machine's mirror)


class BenchError(Exception):
    """The benchmark could not run (set-up failed, a phase timed out)."""


class Terminated(BaseException):
    """SIGTERM/SIGHUP: unwind like Ctrl-C so every process and temp dir is cleaned up."""


# ------------------------------------------------------------------------------------------------
# small helpers
# ------------------------------------------------------------------------------------------------
def percentile(values: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (p in 0..100)."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def set_priority(pid: int | str, nice: int) -> None:
    """Give `pid`'s scheduling autogroup the niceness `nice`. With sched_autogroup on (the usual desktop
    and VM default), every session is its own CPU group and plain nice values only count inside it, so
    this is what lets the benchmark's processes win over unrelated work on a shared machine."""
    if not nice:
        return
    with contextlib.suppress(OSError):
        with open(f"/proc/{pid}/autogroup", "w") as f:
            f.write(str(nice))


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 65536) if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def start_helper(stack: contextlib.ExitStack, name: str, argv: list[str], env: dict[str, str], cwd: Path,
                 log: Path, nice: int) -> tuple[subprocess.Popen[bytes], str]:
    """Start one of ci/'s helper processes (a stand-in, the probe) in a session of its own, its stderr to
    `log`, and wait for its `READY <text>` line; `stack` stops it (SIGTERM, then SIGKILL) and closes its
    pipes and log. Returns the process and the text of its ready line."""
    logf = stack.enter_context(open(log, "ab"))
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=logf,
                            start_new_session=True, preexec_fn=die_with_parent)  # SIGTERM if the bench dies
    stack.callback(_stop_helper, proc)
    set_priority(proc.pid, nice)
    try:
        return proc, read_ready_line(proc, 30.0)
    except NotReady as e:
        raise BenchError(f"{name} did not start: it {e}; see {log}") from None


def _stop_helper(proc: subprocess.Popen[bytes]) -> None:
    stop_process(proc, grace=30.0)
    for f in (proc.stdin, proc.stdout):  # stdin's EOF is also what tells a helper its parent has gone
        if f is not None:
            with contextlib.suppress(OSError):
                f.close()


class RssSampler(threading.Thread):
    """VmRSS of one pid (with `tree`, summed over it and its children, looked up again every second) every
    `interval` seconds: [(t_monotonic, bytes)]. A context manager: runs inside."""

    def __init__(self, pid: int, interval: float = 0.02, tree: bool = False) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.pid = pid
        self.interval = interval
        self.tree = tree
        self.samples: list[tuple[float, int]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        pids, looked = [self.pid], 0.0
        while not self._halt.is_set():
            if self.tree and time.monotonic() - looked > 1.0:
                pids, looked = children_of(self.pid), time.monotonic()
            rss = read_status_kib(self.pid, "VmRSS")
            if rss is None:
                return
            rss += sum(read_status_kib(p, "VmRSS") or 0 for p in pids[1:])
            self.samples.append((time.monotonic(), rss * 1024))
            self._halt.wait(self.interval)

    def __enter__(self) -> "RssSampler":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._halt.set()
        self.join(2)

    def peak(self, t0: float, t1: float) -> float:
        vals = [b for t, b in self.samples if t0 <= t <= t1]
        return max(vals) if vals else float("nan")

    async def quiet_peak(self, seconds: float) -> float:
        """The peak over the next `seconds` of doing nothing."""
        t0 = time.monotonic()
        await asyncio.sleep(seconds)
        return self.peak(t0, time.monotonic())


def read_status_kib(pid: int, key: str) -> int | None:
    """A `kB` field of /proc/<pid>/status (VmRSS, VmHWM), or None once the process has gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def machine_busy_seconds() -> float:
    """CPU seconds all CPUs of the machine spent busy so far (/proc/stat, steal included)."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
        user, nice, system, _idle, _iowait, irq, softirq, steal = v
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return float("nan")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def children_of(pid: int) -> list[int]:
    """`pid` and every process below it (from /proc/*/stat's ppid), e.g. a proxy's worker processes."""
    parent: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                with open(f"/proc/{d}/stat") as f:
                    parent[int(d)] = int(f.read().rsplit(")", 1)[1].split()[1])
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += [c for c, pp in parent.items() if pp == p]
    return out


def tree_cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` and its children (a child that exited meanwhile is not counted)."""
    return sum(cpu_seconds(p) for p in children_of(pid))


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def p50_p99_ms(seconds: list[float]) -> str:
    return f"{fmt_ms(percentile(seconds, 50))} / {fmt_ms(percentile(seconds, 99))}"


@dataclass
class Row:
    figure: str
    measured: str
    target: str = ""
    ok: bool | None = None   # None: information only
    baseline: str = ""
    ratio: str = ""


def count_rows(label: str, counts: dict[str, int]) -> list[Row]:
    """One row per kind of failure, the most frequent first."""
    return [Row(f"    {label}: {kind}", str(n)) for kind, n in sorted(counts.items(), key=lambda kv: -kv[1])]


# ------------------------------------------------------------------------------------------------
# the test bed: MariaDB, the stand-ins, the service
# ------------------------------------------------------------------------------------------------
@dataclass
class Testbed:
    workdir: Path
    urls: dict[str, str]        # the stand-ins'
    anthropic_key: str          # the one the Anthropic stand-in accepts
    token: str                  # the main Platform access token (the Platform and MCP stand-ins accept it)
    mcp_token: str              # the MCP phase's token, its tool list kept cached (ListCache)
    new_tokens: list[str]       # one per MCP-phase turn that must find its token's tool list not cached
    db: MariaDB | None = None   # the rest of the service's test bed: None unless `service` is a target
    service: ServiceProcess | None = None   # the one measured: MCP on (SEQERA_MCP_URL at the MCP stand-in)
    baseline: ServiceProcess | None = None  # the same with MCP off (SEQERA_MCP_URL empty), MCP phase only
    # LiteLLM's proxy and the minimal relay, when they are targets: (url, the key clients send, pid)
    relays: dict[str, tuple[str, str, int]] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)  # other processes whose CPU is reported


def ensure_litellm() -> Path:
    """The `litellm` command of LITELLM_VENV, installed first when it is not there (or its pins changed):
    `litellm[proxy]==LITELLM_VERSION` with LITELLM_PINS as constraints, then `pip check`. Bounded in time."""
    stamp, exe = LITELLM_VENV / ".bench-installed", LITELLM_VENV / "bin" / "litellm"
    want = f"litellm[proxy]=={LITELLM_VERSION}\n" + LITELLM_PINS.read_text()
    if exe.exists() and stamp.exists() and stamp.read_text() == want:
        return exe
    print(f"[bench] installing litellm[proxy]=={LITELLM_VERSION} into {LITELLM_VENV.relative_to(ROOT)} "
          f"(pinned by {LITELLM_PINS.relative_to(ROOT)}; once)", flush=True)
    pip = [str(LITELLM_VENV / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    env = {**os.environ, "PIP_CACHE_DIR": str(ROOT / ".tools" / "pip-cache")}
    steps = [] if (LITELLM_VENV / "bin" / "python").exists() else [
        [getattr(sys, "_base_executable", sys.executable), "-m", "venv", str(LITELLM_VENV)]]
    steps += [[*pip, "install", "-q", f"litellm[proxy]=={LITELLM_VERSION}", "-c", str(LITELLM_PINS)],
              [*pip, "check"]]
    deadline = time.monotonic() + LITELLM_INSTALL_SECONDS
    for argv in steps:
        try:
            r = subprocess.run(argv, env=env, capture_output=True, text=True,
                               timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise BenchError(f"installing LiteLLM took longer than {LITELLM_INSTALL_SECONDS} s") from None
        if r.returncode != 0:
            raise BenchError(f"installing LiteLLM failed: {' '.join(argv[-4:])}: {(r.stdout + r.stderr)[-1500:]}")
    stamp.write_text(want)
    return exe


LITELLM_CONFIG = """\
# generated by ci/bench.py: one model, the Anthropic stand-in; keys from the environment
model_list:
  - model_name: {model}
    litellm_params:
      model: anthropic/{model}
      api_base: {api_base}
      api_key: os.environ/BENCH_ANTHROPIC_KEY
litellm_settings:
  telemetry: false
  drop_params: false
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
  disable_spend_logs: true
"""


def start_litellm(stack: contextlib.ExitStack, args: argparse.Namespace, workdir: Path, env: dict[str, str],
                  anthropic_url: str) -> tuple[str, str, int]:
    """LiteLLM's proxy: one worker, no database, master-key auth, the stand-in as its model. (url, key, pid)"""
    exe = ensure_litellm()
    key = "sk-bench-litellm-" + secrets.token_hex(12)
    config = workdir / "litellm.yaml"
    config.write_text(LITELLM_CONFIG.format(model=MODEL, api_base=anthropic_url))
    port = free_port()
    env = {**env, "LITELLM_MASTER_KEY": key, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR",
           "DISABLE_ADMIN_UI": "True", "LITELLM_TELEMETRY": "False", "NO_PROXY": "*", "no_proxy": "*"}
    env.pop("DATABASE_URL", None)
    log = workdir / "litellm.log"
    logf = stack.enter_context(open(log, "ab"))
    proc = subprocess.Popen([str(exe), "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
                             "--num_workers", "1"], env=env, cwd=workdir, stdin=subprocess.PIPE,
                            stdout=logf, stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=die_with_parent)
    stack.callback(lambda: (stop_process(proc, grace=15.0, group=True), proc.stdin and proc.stdin.close()))
    set_priority(proc.pid, args.nice)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(url + "/health/liveliness", proc, 180.0, interval=0.2)
    except NotReady as e:
        raise BenchError(f"LiteLLM did not start: it {e}; see {log}:\n{log.read_text()[-1500:]}") from None
    return url, key, proc.pid


@contextlib.contextmanager
def testbed(args: argparse.Namespace) -> Iterator[Testbed]:
    """The stand-ins, and per target: MariaDB + migrations + the service and its MCP-off baseline; LiteLLM's
    proxy; the minimal relay. All torn down on exit."""
    with contextlib.ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="agent-bench-"))
        stack.callback(shutil.rmtree, workdir, True)
        home = workdir / "home"
        home.mkdir()
        pids: dict[str, int] = {}
        anthropic_key = "sk-ant-bench-" + secrets.token_hex(12)
        token = "bench-token-" + secrets.token_hex(12)
        mcp_token = "bench-token-mcp-" + secrets.token_hex(12)
        new_tokens = ["bench-token-new-" + secrets.token_hex(12) for _ in range(args.warmup + args.mcp_samples)]
        relay_key = "sk-bench-relay-" + secrets.token_hex(12)
        sec_env = {**base_process_env(home), "BENCH_ANTHROPIC_KEY": anthropic_key, "BENCH_TOKEN": token,
                   "BENCH_MORE_TOKENS": ",".join([mcp_token, *new_tokens]), "BENCH_RELAY_KEY": relay_key}
        has_service = "service" in args.targets
        urls = {}
        for kind in ("anthropic", "platform", "langsmith", "mcp") if has_service else ("anthropic",):
            proc, urls[kind] = start_helper(stack, f"the {kind} stand-in",
                                            [PY, str(ROOT / "ci" / "bench_standins.py"), kind], sec_env, ROOT,
                                            workdir / f"{kind}.log", args.nice)
            pids[f"{kind} stand-in"] = proc.pid
        bed = Testbed(workdir=workdir, urls=urls, anthropic_key=anthropic_key, token=token, mcp_token=mcp_token,
                      new_tokens=new_tokens, pids=pids)
        if "relay" in args.targets:
            proc, url = start_helper(stack, "the minimal relay", [PY, str(ROOT / "ci" / "bench_relay.py"),
                                     urls["anthropic"]], sec_env, ROOT, workdir / "relay.log", args.nice)
            bed.relays["relay"] = (url, relay_key, proc.pid)
        if "litellm" in args.targets:
            bed.relays["litellm"] = start_litellm(stack, args, workdir, sec_env, urls["anthropic"])
        if not has_service:
            yield bed
            return

        db = MariaDB(basedir=workdir / "mariadb")
        stack.callback(db.destroy)
        for attempt in range(3):  # concurrent template installs elsewhere can fail spuriously
            try:
                db.start()
                break
            except RuntimeError as exc:
                if attempt == 2:
                    raise BenchError(f"MariaDB did not start: {str(exc)[-500:]}") from None
                time.sleep(1)
        with contextlib.suppress(OSError, ValueError):
            pids["MariaDB"] = int((db.basedir / "pid").read_text().strip())
            set_priority(pids["MariaDB"], args.nice)
        langchain_key = "" if args.no_tracing else "lsv2_bench_" + secrets.token_hex(8)

        def start_service(mcp_url: str, keep_log_as: Path | None = None) -> ServiceProcess:
            port = free_port()
            env = {
                **standin_env(db=db.create_database(), port=port, anthropic_url=urls["anthropic"],
                              anthropic_key=anthropic_key, langsmith_url=urls["langsmith"], langchain_key=langchain_key,
                              platform_url=urls["platform"], platform_api_url=urls["platform"] + "/api"),
                # what the chart sets in production, where the tests use other values
                "ENVIRONMENT": "production",
                "LOG_LEVEL": "INFO",
                "ANTHROPIC_MODEL": MODEL,
                "AGENT_BACKEND_PUBLIC_URL": f"http://127.0.0.1:{port}",
                "SEQERA_MCP_URL": mcp_url,
            }
            service = ServiceProcess(env, home)  # ./init.sh first, then the service, its log in `home`
            if keep_log_as is not None:  # once the service has stopped
                stack.callback(keep_log, service.log_path, keep_log_as)
            stack.callback(service.stop)
            try:
                service.start(wait=False)
                assert service.proc is not None
                set_priority(service.proc.pid, args.nice)
                service.wait_ready(60, path="/health?ready=1")
            except ServiceFailed as e:
                what, _, output = str(e).partition("\n")  # output: init.sh's stderr or the service log
                raise BenchError(f"{what}\n{output[-2000:]}") from None
            return service

        bed.db = db
        bed.service = start_service(urls["mcp"], Path.cwd() / "bench-service.log" if args.keep_log else None)
        bed.baseline = start_service("")  # its own database on the same MariaDB
        yield bed


def keep_log(log: Path, dest: Path) -> None:
    with contextlib.suppress(FileNotFoundError):  # the service never started
        shutil.copy(log, dest)


def mysql_questions(db: MariaDB) -> int:
    """Statements the server has executed so far (global `Questions`, as root over the socket)."""
    conn = db.root()
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW GLOBAL STATUS LIKE 'Questions'")
            return int(cur.fetchone()[1])
    finally:
        conn.close()


# ------------------------------------------------------------------------------------------------
# what every phase uses
# ------------------------------------------------------------------------------------------------
class HttpFailure(Exception):
    def __init__(self, what: str, status: int, body: str = "") -> None:
        super().__init__(f"{what}: HTTP {status} {body[:200]}")
        self.what, self.status = what, status


@dataclass
class Bench:
    """The options, the test bed, the load generator's HTTP session, the targets' RSS samples and the body."""

    args: argparse.Namespace
    bed: Testbed
    http: aiohttp.ClientSession
    rss: dict[str, RssSampler]      # per target with a process of its own: service, litellm, relay
    body: "Body | None" = None      # the upstream request every target sends (once the warm-up took it)
    foreign_cores: float = 0.0      # the most CPU unrelated work used during a phase, in cores

    @property
    def pid(self) -> int:
        assert self.bed.service is not None and self.bed.service.proc is not None
        return self.bed.service.proc.pid

    def target_pid(self, key: str) -> int | None:
        """The process that does a target's relaying (None for `direct`: the stand-in answers itself)."""
        if key == "service":
            return self.pid
        return self.bed.relays[key][2] if key in self.bed.relays else None

    def endpoint(self, key: str) -> tuple[str, dict[str, str]]:
        """A Messages-API target's POST URL and headers (direct, litellm, relay)."""
        headers = {"anthropic-version": "2023-06-01", "content-type": "application/json"}
        if key == "direct":
            return self.bed.urls["anthropic"] + "/v1/messages", {**headers, "x-api-key": self.bed.anthropic_key}
        url, client_key, _ = self.bed.relays[key]
        if key == "litellm":  # master-key auth
            return url + "/v1/messages", {**headers, "authorization": f"Bearer {client_key}"}
        return url + "/v1/messages", {**headers, "x-api-key": client_key}

    def cli(self, token: str | None = None, service: ServiceProcess | None = None) -> Cli:
        """The protocol client of `service` (the measured one) with `token` (the main one)."""
        svc = service or self.bed.service
        assert svc is not None
        return Cli(self.http, svc.url, token or self.bed.token)

    def foreign_work(self, cores: float) -> None:
        self.foreign_cores = max(self.foreign_cores, cores)

    def own_cpu_seconds(self) -> float:
        """CPU used so far by this process and the other processes of the test bed (not the targets)."""
        return sum(os.times()[:2]) + sum(cpu_seconds(p) for p in self.bed.pids.values())

    def targets_cpu_seconds(self) -> float:
        return sum(tree_cpu_seconds(p) for k in self.args.targets if (p := self.target_pid(k)) is not None)


async def new_session(cli: Cli) -> str:
    r = await cli.post("/v1/cli/sessions", cli.session_body(SESSION_CWD, **SESSION_FIELDS))
    if r.status != 200:
        raise HttpFailure("POST sessions", r.status, r.text)
    return r.body["session_id"]


async def send_message(cli: Cli, sid: str, content: str) -> None:
    r = await cli.send(sid, content)
    if r.status != 200:
        raise HttpFailure("POST messages", r.status, r.text)


async def sse_frames(resp: aiohttp.ClientResponse) -> AsyncIterator[sse.Frame]:
    """The SSE frames of a response, read incrementally and parsed leniently; comment-only frames are skipped."""
    buf = b""
    async for chunk in resp.content.iter_any():
        frames, buf = sse.take_frames(buf + chunk)
        for text in frames:
            frame = sse.parse_frame(text)
            if frame.data is not None or frame.event is not None:
                yield frame


def check_finished(end: Any, what: str) -> None:
    """A turn's terminal part must be a `finish` with finishReason `stop`."""
    if end.type == "error":
        raise BenchError(f"{what} got an error part: {end.data.get('error')!r}")
    if end.data.get("finishReason") != "stop":
        raise BenchError(f"{what} finished with {end.data.get('finishReason')!r}")


# What a failed sample raises (AssertionError: the protocol client's, a bad frame or none in time).
SAMPLE_ERRORS = (BenchError, HttpFailure, AssertionError, aiohttp.ClientError, OSError, ValueError, KeyError,
                 asyncio.TimeoutError)


class Failures:
    """Failed samples of a phase, counted by kind and message; more than a tenth of `samples` (or 5) ends the
    benchmark: it is the benchmark that is broken then, there is nothing to measure."""

    def __init__(self, what: str, samples: int) -> None:
        self.what, self.limit = what, max(5, samples // 10)
        self.counts: dict[str, int] = {}

    async def attempt(self, kind: str, sample: Awaitable[T]) -> T | None:
        """`sample`'s value, or None when it failed (counted)."""
        try:
            return await sample
        except SAMPLE_ERRORS as exc:
            key = f"{kind}: {str(exc)[:70]}"
            self.counts[key] = self.counts.get(key, 0) + 1
            if self.total > self.limit:
                raise BenchError(f"too many failed {self.what} samples: {self.counts}") from None
            return None

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def rows(self) -> list[Row]:
        return [Row(f"  {self.what} samples that failed", str(self.total), "0", self.total == 0),
                *count_rows("failed", self.counts)]


@dataclass
class CpuMark:
    """The machine's busy CPU and the test bed's (the bench, its processes, the targets, `extra`) at a moment."""

    t: float
    machine: float
    ours: float

    @classmethod
    def now(cls, b: "Bench", *extra: int) -> "CpuMark":
        return cls(time.monotonic(), machine_busy_seconds(),
                   b.own_cpu_seconds() + b.targets_cpu_seconds() + sum(cpu_seconds(p) for p in extra))

    def foreign_cores(self, b: "Bench", *extra: int) -> float:
        """The cores unrelated work used on average since this mark (also recorded in `b`)."""
        end = CpuMark.now(b, *extra)
        cores = max(0.0, (end.machine - self.machine - (end.ours - self.ours)) / (end.t - self.t))
        b.foreign_work(cores)
        return cores


# ------------------------------------------------------------------------------------------------
# the body every target sends upstream, and the Messages-API client of direct, LiteLLM and the relay
# ------------------------------------------------------------------------------------------------
FAST_TEXT = "[bench fast] hello"


class Body:
    """The service's upstream request (as the stand-in received it for a `[bench fast]` turn), with its
    marker text swapped: `fast` for TTFT samples, `hold(interval)` for the load levels."""

    def __init__(self, template: dict[str, Any], source: str) -> None:
        self.source = source
        self.text = json.dumps({**template, "stream": True})
        if self.text.count(json.dumps(FAST_TEXT)[1:-1]) != 1:
            raise BenchError(f"the upstream request does not hold {FAST_TEXT!r} exactly once")
        self.fast = self.hold_text(FAST_TEXT)

    def hold_text(self, text: str) -> bytes:
        return self.text.replace(json.dumps(FAST_TEXT)[1:-1], text).encode()

    def hold(self, interval: float) -> bytes:
        return self.hold_text(f"[bench hold={interval:g}] a stream")


async def take_body(b: "Bench") -> Body:
    """The service's upstream request from the stand-in (after a service turn), or, without the service,
    the body the service would build: its system prompt and tools (agent_backend.tools)."""
    if b.bed.service is not None:
        async with b.http.get(b.bed.urls["anthropic"] + "/bench/last-request") as r:
            if r.status != 200:
                raise BenchError(f"the stand-in has no service request to copy: HTTP {r.status}")
            return Body(await r.json(), "the service's upstream request")
    from agent_backend.tools import system_prompt, tools_for_mode
    system = system_prompt(cwd=SESSION_CWD, directory_context={}, instruction_context="", mode=None,
                           local_execution=True)
    return Body({"model": MODEL, "max_tokens": 1024, "system": system, "tools": tools_for_mode(None),
                 "messages": [{"role": "user", "content": [{"type": "text", "text": FAST_TEXT}]}]},
                "the service's system prompt and tools (agent_backend.tools; the service was not run)")


async def read_messages_sse(resp: aiohttp.ClientResponse, on_deltas: Any = None) -> bool:
    """Read a Messages-API SSE body to its end, calling `on_deltas(k)` for each chunk that completed k
    `text_delta` frames. True when it ended with `message_stop`; an `error` event raises BenchError."""
    buf, stopped = b"", False
    async for chunk in resp.content.iter_any():
        buf += chunk
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n")
        if b"\n\n" not in buf:
            continue
        frames = buf.split(b"\n\n")
        buf = frames.pop()
        k = 0
        for f in frames:
            if b'"text_delta"' in f:
                k += 1
            elif b"message_stop" in f:
                stopped = True
            elif f.startswith(b"event: error") or b'"type": "error"' in f or b'"type":"error"' in f:
                raise BenchError(f"error event: {f[-120:].decode(errors='replace')}")
        if k and on_deltas is not None:
            on_deltas(k)
    return stopped


async def messages_ttft(b: "Bench", key: str) -> float:
    """POST /v1/messages (the body, stream) to a Messages-API target -> its first `text_delta` event."""
    url, headers = b.endpoint(key)
    assert b.body is not None
    t0 = time.perf_counter()
    first: list[float] = []
    async with b.http.post(url, data=b.body.fast, headers=headers) as r:
        if r.status != 200:
            raise HttpFailure(f"{key} POST /v1/messages", r.status, await r.text())
        done = await read_messages_sse(r, lambda k: first or first.append(time.perf_counter()))
    if not first or not done:
        raise BenchError(f"{key} TTFT sample: {'no text_delta' if not first else 'no message_stop'}")
    return first[0] - t0


# ------------------------------------------------------------------------------------------------
# 1. time to first token
# ------------------------------------------------------------------------------------------------
@dataclass
class TtftSample:
    total: float
    post: float = 0.0      # POST messages round trip
    open: float = 0.0      # GET events until response headers
    first: float = 0.0     # from headers to the first text-delta


async def service_ttft(cli: Cli) -> TtftSample:
    sid = await new_session(cli)  # untimed
    t0 = time.perf_counter()
    await send_message(cli, sid, "[bench fast] hello")
    t_post = time.perf_counter()
    stream = await cli.open_events(sid, expect=None)
    t_open = time.perf_counter()
    try:
        if stream.status != 200:
            raise HttpFailure("GET events", stream.status, await stream.resp.text())
        first = await stream.until_type("text-delta", "finish", "error")
        t_first = time.perf_counter()
        end = first if first.type != "text-delta" else await stream.until_type("finish", "error")
    finally:
        await stream.close()
    check_finished(end, "service TTFT sample")
    if first is end:
        raise BenchError("service TTFT sample: no text-delta before the end of the stream")
    return TtftSample(total=t_first - t0, post=t_post - t0, open=t_open - t_post, first=t_first - t_open)


async def sdk_ttft_samples(bed: Testbed, n: int, warmup: int) -> list[float] | None:
    """Information only: TTFT of the official anthropic SDK called directly (aiohttp transport, the service's
    system prompt and tools), to show how much of the added TTFT the SDK itself accounts for."""
    try:
        import anthropic

        from agent_backend.tools import system_prompt, tools_for_mode
        tools = tools_for_mode(None)
        system = system_prompt(cwd=SESSION_CWD, directory_context={}, instruction_context="", mode=None,
                               local_execution=True)
    except Exception as exc:  # the row is optional; the benchmark goes on without it
        print(f"[bench] SDK baseline skipped: {type(exc).__name__}: {exc}", flush=True)
        return None
    client = anthropic.AsyncAnthropic(api_key=bed.anthropic_key, base_url=bed.urls["anthropic"], max_retries=0,
                                      http_client=anthropic.DefaultAioHttpClient())
    out: list[float] = []
    try:
        for i in range(warmup + n):
            t0 = time.perf_counter()
            first = None
            stream = await client.messages.create(
                model=MODEL, max_tokens=1024, stream=True, system=system, tools=tools,
                messages=[{"role": "user", "content": [{"type": "text", "text": "[bench fast] hello"}]}])
            async for ev in stream:
                if ev.type == "content_block_delta" and first is None:
                    first = time.perf_counter() - t0
            if i >= warmup and first is not None:
                out.append(first)
    finally:
        await client.close()
    return out


@dataclass
class TtftResult:
    """Phase 1's samples per target (seconds), and the service's details rows."""

    samples: dict[str, list[float]]
    failures: Failures
    detail_rows: list[Row]

    def p(self, key: str, q: float) -> float:
        return percentile(self.samples.get(key, []), q)

    def added(self, key: str, q: float) -> float:
        return self.p(key, q) - self.p("direct", q)


async def ttft_phase(b: Bench) -> TtftResult:
    """Warm-up (the service's first, to take its upstream request), the MySQL statements of a session,
    then one sample of each target per round, the order rotating."""
    args, bed = b.args, b.bed
    keys = [k for k in TARGETS if k in args.targets]
    has_service = bed.service is not None
    cli = b.cli() if has_service else None
    print(f"[bench] TTFT: {args.warmup} warm-up + {args.samples} samples each of {', '.join(keys)}, "
          "interleaved", flush=True)
    if cli is not None:
        for _ in range(args.warmup):
            await service_ttft(cli)
    b.body = await take_body(b)
    for _ in range(args.warmup):
        for k in keys:
            if k != "service":
                await messages_ttft(b, k)
    sql_per_session = float("nan")
    if has_service:
        assert cli is not None and bed.db is not None
        q0 = mysql_questions(bed.db)
        for _ in range(SQL_SESSIONS):
            await new_session(cli)
        sql_per_session = (mysql_questions(bed.db) - q0 - 1) / SQL_SESSIONS
        q0 = mysql_questions(bed.db)
        cpu0 = cpu_seconds(b.pid)

    samples: dict[str, list[float]] = {k: [] for k in keys}
    parts: list[TtftSample] = []
    failures = Failures("TTFT", args.samples)
    mark = CpuMark.now(b)
    for i in range(args.samples):
        for k in keys[i % len(keys):] + keys[:i % len(keys)]:
            if k == "service":
                assert cli is not None
                got = await failures.attempt(k, service_ttft(cli))
                if got is not None:
                    parts.append(got)
                    samples[k].append(got.total)
            else:
                total = await failures.attempt(k, messages_ttft(b, k))
                if total is not None:
                    samples[k].append(total)
    foreign = mark.foreign_cores(b)
    res = TtftResult(samples, failures, [])
    if not has_service:
        return res
    service_cpu = cpu_seconds(b.pid) - cpu0
    assert bed.db is not None
    sql_per_turn = (mysql_questions(bed.db) - q0 - 1) / args.samples - sql_per_session
    sdk = await sdk_ttft_samples(bed, max(args.samples // 2, 20), args.warmup)

    d50, d99 = res.p("direct", 50), res.p("direct", 99)
    s50, s99 = res.p("service", 50), res.p("service", 99)
    add50, add99 = s50 - d50, s99 - d99
    rows = [
        Row("TTFT direct to the stand-in p50 / p99", f"{fmt_ms(d50)} / {fmt_ms(d99)}"),
        Row("TTFT through the service p50 / p99", f"{fmt_ms(s50)} / {fmt_ms(s99)}",
            baseline="direct", ratio=f"{s50 / d50:.1f}x / {s99 / d99:.1f}x"),
        Row("added TTFT p50 (service p50 - direct p50)", fmt_ms(add50), f"< {ADDED_TTFT_P50_MS:g} ms",
            add50 * 1000 < ADDED_TTFT_P50_MS, f"direct {fmt_ms(d50)}", f"{s50 / d50:.1f}x"),
        Row("added TTFT p99 (service p99 - direct p99)", fmt_ms(add99), f"< {ADDED_TTFT_P99_MS:g} ms",
            add99 * 1000 < ADDED_TTFT_P99_MS, f"direct {fmt_ms(d99)}", f"{s99 / d99:.1f}x"),
        *failures.rows(),
    ]
    if sdk:
        k50, k99 = percentile(sdk, 50), percentile(sdk, 99)
        rows.append(Row("  for reference: TTFT via the anthropic SDK directly p50 / p99",
                        f"{fmt_ms(k50)} / {fmt_ms(k99)}", baseline="direct",
                        ratio=f"SDK adds {fmt_ms(k50 - d50)} / {fmt_ms(k99 - d99)}"))
    rows.append(Row("  CPU used by unrelated work on the machine meanwhile",
                    f"{foreign:.2f} of {os.cpu_count()} cores"))
    for name, attr in (("POST messages round trip", "post"), ("GET events until headers", "open"),
                       ("headers -> first text-delta", "first")):
        rows.append(Row(f"  service TTFT part: {name} p50 / p99", p50_p99_ms([getattr(s, attr) for s in parts])))
    rows.append(Row("  service CPU per sample (session + turn)", f"{service_cpu / args.samples * 1000:.1f} ms"))
    rows.append(Row("  MySQL statements per turn / per session create", f"{sql_per_turn:.1f} / {sql_per_session:.1f}"))
    res.detail_rows = rows
    return res


# ------------------------------------------------------------------------------------------------
# 0. Seqera MCP (run first, while both services are fresh; its rows are printed after the TTFT rows)
# ------------------------------------------------------------------------------------------------
LIST_MARGIN = 2.0  # seconds within which a sample's run has looked its token's tool list up


class ListCache:
    """Keeps one token's Seqera MCP tool list cached in the service, so that no sample's run lists it. The
    service keeps a list MCP_TOOLS_TTL seconds from the end of the listing: a turn started at t0 that listed
    leaves it cached until t0 + TTL at least, and gone by that turn's end + TTL (the next run lists again)."""

    def __init__(self, cli: Cli) -> None:
        self.cli = cli
        self.cached_until = self.gone_by = 0.0

    async def ensure(self) -> Cli:
        """The token's client, once its list is sure to stay cached for the next LIST_MARGIN seconds."""
        if time.monotonic() + LIST_MARGIN >= self.cached_until:
            await asyncio.sleep(max(0.0, self.gone_by - time.monotonic()))
            t0 = time.monotonic()
            await service_ttft(self.cli)  # not a sample: this run lists the tools, and the service caches them
            self.cached_until, self.gone_by = t0 + MCP_TOOLS_TTL, time.monotonic() + MCP_TOOLS_TTL
        return self.cli


async def mcp_call_sample(cli: Cli) -> list[float]:
    """A turn whose model calls the read-only MCP tool MCP_CALLS times, then answers: for each call, the
    seconds from its `tool-call` part to its `tool-result` part as the events stream delivers them."""
    sid = await new_session(cli)  # untimed
    await send_message(cli, sid, f"[bench mcp={MCP_CALLS}] which nf-core module runs FastQC?")
    stream = await cli.open_events(sid, expect=None)
    called: dict[str, float] = {}
    took: list[float] = []
    try:
        if stream.status != 200:
            raise HttpFailure("GET events", stream.status, await stream.resp.text())
        while (ev := await stream.next_part()) is not None and ev.type not in ("finish", "error"):
            seen = time.perf_counter()
            if ev.type == "tool-call":
                called[ev.data["toolCallId"]] = seen
            elif ev.type == "tool-result":
                result = str(ev.data.get("result"))
                if "nf-core/" not in result:  # the stand-in's answer: else the call failed or was refused
                    raise BenchError(f"MCP call failed: {result[:60]!r}")
                took.append(seen - called.pop(ev.data["toolCallId"]))
            elif ev.type == "execute-local":
                raise BenchError(f"the service asked the CLI to run {ev.data.get('toolName')!r}")
    finally:
        await stream.close()
    if ev is None:
        raise BenchError("MCP call sample: the stream ended without a finish")
    check_finished(ev, "MCP call sample")
    if len(took) != MCP_CALLS:
        raise BenchError(f"MCP call sample: {len(took)} tool results, not {MCP_CALLS}")
    return took


async def mcp_direct_samples(bed: Testbed, n: int, warmup: int) -> dict[str, list[float]] | None:
    """Information only: the MCP stand-in through the `mcp` SDK's client called directly, as the service calls
    it (one connection pool, a new MCP session each time): connect + initialize + tools/list, and a call on
    the open session (the close is not timed); to tell the stand-in's and the SDK's share of the figures
    through the service."""
    try:
        import httpx2
        from mcp import Client
        from mcp.client.streamable_http import streamable_http_client
    except Exception as exc:  # the rows are optional; the benchmark goes on without them
        print(f"[bench] MCP SDK baseline skipped: {type(exc).__name__}: {exc}", flush=True)
        return None
    out: dict[str, list[float]] = {"list": [], "call": []}
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {bed.mcp_token}"}) as http:
        for i in range(warmup + n):
            t0 = time.perf_counter()
            async with Client(streamable_http_client(bed.urls["mcp"], http_client=http), mode="auto") as client:
                await client.list_tools()
                t1 = time.perf_counter()
                await client.call_tool(MCP_REMOTE_TOOL, MCP_ARGS)
                t2 = time.perf_counter()
            if i >= warmup:
                out["list"].append(t1 - t0)
                out["call"].append(t2 - t1)
    return out


async def mcp_phase(b: Bench, rss_off: RssSampler, fresh: tuple[float, float]) -> list[Row]:
    """Turns interleaved on the service (MCP on) and its baseline (MCP off), after a warm-up of each kind:
    `off`, a turn on the baseline; `on`, one on the service with its token's tool list cached (ListCache);
    `new`, one on the service with a token it has not seen (the session is created untimed, so the token
    check is cached: what `new` adds to `on` is MCP's connect, initialize and tools/list). Then turns whose
    model calls a read-only MCP tool MCP_CALLS times, the list cached (so the run connects on its first
    call). Then both services' RSS over a quiet moment; `fresh` is theirs (on, off) after start-up."""
    args, bed = b.args, b.bed
    n, warm = args.mcp_samples, args.warmup
    print(f"[bench] Seqera MCP: {warm} warm-up + {n} turns each with MCP off, on (tool list cached) and on with "
          f"a new token, interleaved; then {warm} + {n} turns calling an MCP tool {MCP_CALLS} times", flush=True)
    assert bed.baseline.proc is not None
    cached, off, new_tokens = ListCache(b.cli(bed.mcp_token)), b.cli(service=bed.baseline), iter(bed.new_tokens)

    async def turn(kind: str) -> float:
        cli = off if kind == "off" else await cached.ensure() if kind == "on" else b.cli(next(new_tokens))
        return (await service_ttft(cli)).total

    async def calling_turn() -> list[float]:
        return await mcp_call_sample(await cached.ensure())

    kinds = ("off", "on", "new")
    ttft: dict[str, list[float]] = {k: [] for k in kinds}
    calls: dict[str, list[float]] = {"first": [], "later": []}
    failures = Failures("MCP phase", n)
    mark = CpuMark.now(b, bed.baseline.proc.pid)
    for i in range(warm + n):
        for kind in kinds[i % 3:] + kinds[:i % 3]:  # each kind in each place in turn
            got = await turn(kind) if i < warm else await failures.attempt(kind, turn(kind))
            if got is not None and i >= warm:
                ttft[kind].append(got)
    for i in range(warm + n):
        took = await calling_turn() if i < warm else await failures.attempt("MCP call", calling_turn())
        if took is not None and i >= warm:
            calls["first"].append(took[0])
            calls["later"] += took[1:]
    foreign = mark.foreign_cores(b, bed.baseline.proc.pid)
    direct = await mcp_direct_samples(bed, n, warm)
    await asyncio.sleep(args.settle)
    rss_on, rss_off_peak = await asyncio.gather(b.rss["service"].quiet_peak(args.settle),
                                               rss_off.quiet_peak(args.settle))

    p50 = {k: percentile(v, 50) for k, v in ttft.items()}
    p99 = {k: percentile(v, 99) for k, v in ttft.items()}
    add50, add99 = p50["on"] - p50["off"], p99["on"] - p99["off"]
    rows = [
        Row("MCP on, a turn using no MCP tool: added TTFT p50", fmt_ms(add50), f"< {MCP_ADDED_TTFT_P50_MS:g} ms",
            add50 * 1000 < MCP_ADDED_TTFT_P50_MS, f"MCP off {fmt_ms(p50['off'])}", f"{p50['on'] / p50['off']:.2f}x"),
        Row("  MCP on, a turn using no MCP tool: added TTFT p99", fmt_ms(add99),
            baseline=f"MCP off {fmt_ms(p99['off'])}", ratio=f"{p99['on'] / p99['off']:.2f}x"),
        Row("  TTFT with MCP off (baseline service) p50 / p99", p50_p99_ms(ttft["off"])),
        Row("  TTFT with MCP on, tool list cached p50 / p99", p50_p99_ms(ttft["on"])),
        Row("  TTFT with MCP on, tool list not cached p50 / p99", p50_p99_ms(ttft["new"]), baseline="a new token"),
        Row("MCP connect + tools/list via the service p50 / p99",
            f"{fmt_ms(p50['new'] - p50['on'])} / {fmt_ms(p99['new'] - p99['on'])}", baseline="not cached - cached"),
        Row("MCP call via the service, first in a run p50 / p99", p50_p99_ms(calls["first"]),
            baseline="connects, then calls"),
        Row("MCP call via the service, later in a run p50 / p99", p50_p99_ms(calls["later"]),
            baseline="tool-call -> tool-result"),
    ]
    if direct:
        rows += [Row("  for reference: MCP connect + tools/list, SDK direct p50 / p99", p50_p99_ms(direct["list"]),
                     baseline="no service"),
                 Row("  for reference: MCP call, SDK direct p50 / p99", p50_p99_ms(direct["call"]),
                     baseline="no service")]
    return rows + [
        Row("RSS with MCP on / off (after the MCP phase)", f"{rss_on / MIB:.1f} / {rss_off_peak / MIB:.1f} MiB",
            baseline=f"fresh {fresh[0] / MIB:.1f} / {fresh[1] / MIB:.1f} MiB",
            ratio=f"{(rss_on - rss_off_peak) / MIB:+.1f} MiB"),
        *failures.rows(),
        Row("  CPU used by unrelated work on the machine meanwhile", f"{foreign:.2f} of {os.cpu_count()} cores"),
    ]


# ------------------------------------------------------------------------------------------------
# 2. idle, and the /health probe that runs through phases 2 and 3
# ------------------------------------------------------------------------------------------------
@dataclass
class Window:
    """A stretch of the run (time.monotonic(), system-wide: the probe's clock too)."""

    t0: float
    t1: float


@contextlib.contextmanager
def health_probe(b: Bench) -> Iterator[list[list[float]]]:
    """ci/bench_probe.py for the duration of the block; the list it yields holds the probe's samples
    ([t_monotonic, latency_ms, status]) once the block has ended."""
    workdir, out = b.bed.workdir, b.bed.workdir / "health.json"
    argv = [PY, str(ROOT / "ci" / "bench_probe.py"), b.bed.service.url + "/health", str(b.args.health_interval),
            str(b.args.max_seconds), str(out)]
    samples: list[list[float]] = []
    with contextlib.ExitStack() as stack:
        start_helper(stack, "the health probe", argv, base_process_env(workdir), workdir, workdir / "probe.log",
                     b.args.nice)
        yield samples
    try:
        samples.extend(json.loads(out.read_text()))
    except (OSError, ValueError):
        raise BenchError("the /health probe wrote no samples") from None


async def idle_phase(b: Bench) -> tuple[Window, dict[str, float]]:
    """A quiet window: the /health baseline, and each target's idle RSS (its peak there)."""
    print(f"[bench] idle: {b.args.idle:g} s (RSS of each target, /health baseline)", flush=True)
    t0 = time.monotonic()
    await asyncio.sleep(b.args.idle)
    w = Window(t0, time.monotonic())
    return w, {k: r.peak(w.t0, w.t1) for k, r in b.rss.items()}


# ------------------------------------------------------------------------------------------------
# 3. load: N held streams at a delta rate, on each target in turn
# ------------------------------------------------------------------------------------------------
ALL_STREAMING_GRACE = 20.0  # seconds past the ramp to wait for all N streaming, before the steady window anyway
DRAIN_GRACE = 60.0          # seconds past the release spread before unfinished streams are cancelled (errors)


@dataclass
class LoadResult:
    key: str
    n: int
    rate: float
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    streaming_now: int = 0
    ever_streaming: int = 0
    peak_streaming: int = 0
    deltas: int = 0
    t_start: float = 0.0
    t_all_streaming: float | None = None
    steady: Window | None = None      # the steady window (set once it has ended)
    in_steady: bool = False
    steady_t0: float = 0.0
    streaming_in_steady: int = 0      # streams open when the steady window began
    steady_deltas: int = 0
    gaps: list[float] = field(default_factory=list)  # between a stream's deltas, both in the steady window
    cpu_steady: float = float("nan")  # the target's CPU over the steady window (s)
    db_cpu_steady: float = float("nan")  # MariaDB's, for the service
    t_release: float = 0.0
    t_end: float = 0.0
    cpu_phase: float = float("nan")   # the target's CPU over the whole level
    others: dict[str, float] = field(default_factory=dict)  # the bench's processes' CPU over it
    foreign: float = 0.0              # unrelated work, cores, over the whole level
    first_delta_s: list[float] = field(default_factory=list)
    # the service: per conversation, seconds from its start: session created, message accepted, events headers
    steps: dict[str, list[float]] = field(default_factory=lambda: {"session": [], "message": [], "events": []})
    all_streaming: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def label(self) -> str:
        return f"{self.n} streams x {self.rate:g} deltas/s"

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def started(self, t0: float) -> None:
        """A stream's first text delta."""
        self.first_delta_s.append(time.monotonic() - t0)
        self.streaming_now += 1
        self.ever_streaming += 1
        self.peak_streaming = max(self.peak_streaming, self.streaming_now)
        if self.ever_streaming == self.n:
            self.all_streaming.set()

    def delta(self, k: int, last: float | None) -> float:
        """k text deltas of one stream arrived now (its previous one at `last`): returns now."""
        now = time.monotonic()
        self.deltas += k
        if self.in_steady:
            self.steady_deltas += k
            if last is not None and last >= self.steady_t0:
                self.gaps.append(now - last)
                if k > 1:
                    self.gaps.extend([0.0] * (k - 1))
        return now

    @property
    def total_errors(self) -> int:
        return sum(self.errors.values())

    def gap_p99(self) -> float:
        return percentile(self.gaps, 99)

    def cpu_per_delta(self) -> float:
        return self.cpu_steady / self.steady_deltas if self.steady_deltas else float("nan")


def _count_exception(res: LoadResult, exc: BaseException) -> None:
    if isinstance(exc, HttpFailure):
        res.error(f"{exc.what} HTTP {exc.status}")
    elif isinstance(exc, AssertionError):  # the protocol client: a frame the CLI could not read, or none in time
        res.error(str(exc).split(";")[0][:60])
    elif isinstance(exc, BenchError):
        res.error(str(exc)[:60])
    else:
        res.error(type(exc).__name__)


async def conversation(cli: Cli, i: int, interval: float, res: LoadResult) -> None:
    """One of the service's streams: a session, a message, its events followed to the finish."""
    counted = False
    stream = None
    last: float | None = None
    t0 = time.monotonic()
    try:
        sid = await new_session(cli)
        res.steps["session"].append(time.monotonic() - t0)
        await send_message(cli, sid, f"[bench hold={interval:g}] conversation {i}")
        res.steps["message"].append(time.monotonic() - t0)
        stream = await cli.open_events(sid, expect=None)
        res.steps["events"].append(time.monotonic() - t0)
        if stream.status != 200:
            raise HttpFailure("GET events", stream.status, await stream.resp.text())
        while (ev := await stream.next_part()) is not None:
            if ev.type == "text-delta":
                if not counted:
                    counted = True
                    res.started(t0)
                # the service merges consecutive deltas into one part when they queue up (events.py): count the
                # stand-in's deltas it carries, as the other targets deliver one frame per upstream delta
                last = res.delta(max(1, str(ev.data.get("delta", "")).count(HOLD_TICK)), last)
            elif ev.type == "finish":
                if ev.data.get("finishReason") == "stop":
                    res.ok += 1
                else:
                    res.error(f"finish {ev.data.get('finishReason')}")
                return
            elif ev.type == "error":
                res.error(f"error part: {str(ev.data.get('error'))[:60]}")
                return
        res.error("stream ended without finish")
    except asyncio.CancelledError:
        res.error("not finished before the level's deadline")
        raise
    except (HttpFailure, AssertionError, BenchError, aiohttp.ClientError, OSError, asyncio.TimeoutError,
            ValueError) as exc:
        _count_exception(res, exc)
    finally:
        if counted:
            res.streaming_now -= 1
        if stream is not None:
            await stream.close()


async def messages_stream(b: Bench, key: str, body: bytes, res: LoadResult) -> None:
    """One stream of a Messages-API target: POST /v1/messages, its SSE read to `message_stop`."""
    url, headers = b.endpoint(key)
    counted = False
    last: float | None = None
    t0 = time.monotonic()

    def on_deltas(k: int) -> None:
        nonlocal counted, last
        if not counted:
            counted = True
            res.started(t0)
        last = res.delta(k, last)

    try:
        async with b.http.post(url, data=body, headers=headers) as r:
            if r.status != 200:
                raise HttpFailure("POST /v1/messages", r.status, await r.text())
            if await read_messages_sse(r, on_deltas):
                res.ok += 1
            else:
                res.error("stream ended without message_stop")
    except asyncio.CancelledError:
        res.error("not finished before the level's deadline")
        raise
    except (HttpFailure, BenchError, aiohttp.ClientError, OSError, asyncio.TimeoutError, ValueError) as exc:
        _count_exception(res, exc)
    finally:
        if counted:
            res.streaming_now -= 1


async def run_load(b: Bench, key: str, n: int, rate: float) -> LoadResult:
    """N streams of `key` arriving over the ramp, held by the stand-in until all stream (or the grace is
    over), the steady window, then released in arrival order over the ramp and drained (bounded)."""
    args, standin = b.args, b.bed.urls["anthropic"]
    interval, ramp = 1.0 / rate, args.ramp
    res = LoadResult(key=key, n=n, rate=rate)
    print(f"[bench]   {TARGETS[key]}: {res.label}", flush=True)
    assert b.body is not None
    body = b.body.hold(interval)
    cli = b.cli() if key == "service" else None
    pid = b.target_pid(key)
    db_pid = b.bed.pids.get("MariaDB") if key == "service" else None

    def target_cpu() -> float:
        return tree_cpu_seconds(pid) if pid is not None else float("nan")

    async with b.http.post(standin + "/bench/arm") as r:
        await r.read()
    mark = CpuMark.now(b)
    cpu0 = target_cpu()
    others0 = {name: cpu_seconds(p) for name, p in b.bed.pids.items()}
    self0 = sum(os.times()[:2])
    loop = asyncio.get_running_loop()
    res.t_start = time.monotonic()
    tasks = []
    for i in range(n):
        tasks.append(loop.create_task(conversation(cli, i, interval, res) if cli is not None
                                      else messages_stream(b, key, body, res)))
        # arrivals spread evenly over the ramp (absolute schedule, so slow iterations do not stretch it)
        delay = res.t_start + ramp * (i + 1) / n - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(res.all_streaming.wait(),
                               max(0.0, res.t_start + ramp + ALL_STREAMING_GRACE - time.monotonic()))
    if res.all_streaming.is_set():
        res.t_all_streaming = time.monotonic()
    # the steady window: all streaming (or as many as did within the grace)
    c0, d0 = target_cpu(), cpu_seconds(db_pid) if db_pid else float("nan")
    res.steady_t0, res.streaming_in_steady, res.in_steady = time.monotonic(), res.streaming_now, True
    await asyncio.sleep(args.steady)
    res.in_steady = False
    res.cpu_steady = target_cpu() - c0
    if db_pid:
        res.db_cpu_steady = cpu_seconds(db_pid) - d0
    res.steady = Window(res.steady_t0, time.monotonic())
    res.t_release = time.monotonic()
    async with b.http.post(standin + "/bench/release", params={"spread": str(ramp)}) as r:
        await r.read()
    _done, pending = await asyncio.wait(tasks, timeout=ramp + DRAIN_GRACE)
    for t in pending:
        t.cancel()
    if pending:
        await asyncio.wait(pending, timeout=5)
    res.t_end = time.monotonic()
    res.cpu_phase = target_cpu() - cpu0
    res.others = {"load generator": sum(os.times()[:2]) - self0,
                  **{name: cpu_seconds(p) - others0[name] for name, p in b.bed.pids.items()}}
    res.foreign = mark.foreign_cores(b)
    if res.ok == 0 and key == "direct":  # the stand-in or the load generator is broken: nothing to measure
        raise BenchError(f"direct, {res.label}: no stream completed: {res.errors}")
    # a target whose every stream failed is a result (its errors), not a broken benchmark
    return res


async def load_phase(b: Bench) -> dict[tuple[str, int], LoadResult]:
    """Every load level on every target, the order of the targets rotating from level to level:
    {(target, level index): result}."""
    args = b.args
    keys = [k for k in TARGETS if k in args.targets]
    out: dict[tuple[str, int], LoadResult] = {}
    for level, (n, rate) in enumerate(args.loads):
        print(f"[bench] load level {level + 1}: {n} streams x {rate:g} deltas/s, arriving over {args.ramp:g} s, "
              f"all held open {args.steady:g} s, finishing over {args.ramp:g} s; on each target", flush=True)
        for key in keys[level % len(keys):] + keys[:level % len(keys)]:
            out[(key, level)] = await run_load(b, key, n, rate)
            await asyncio.sleep(args.settle)  # let the last level's connections and timers go
    return out


def service_load_rows(args: argparse.Namespace, res: LoadResult) -> list[Row]:
    """The details of the service's run of the second level (the one /health and RSS per stream come from)."""
    errors = res.total_errors
    dur = res.t_end - res.t_start
    ramp_done = (res.t_all_streaming - res.t_start) if res.t_all_streaming else float("nan")
    return [
        Row(f"service, {res.label}: completed / errors", f"{res.ok} / {errors}", f"{res.n} / 0",
            res.ok == res.n and errors == 0),
        Row("  peak simultaneously streaming", str(res.peak_streaming), f"{res.n}", res.peak_streaming == res.n),
        *count_rows("error", res.errors),
        Row("  time until all were streaming", f"{ramp_done:.1f} s (ramp {args.ramp:g} s)"),
        Row("  time to first token under load p50 / p99", p50_p99_ms(res.first_delta_s),
            baseline=f"stand-in pacing {3 / res.rate * 1000:.0f} ms"),
        *(Row(f"    under load, {name} after p50 / p99", p50_p99_ms(res.steps[key]))
          for name, key in (("session created", "session"), ("message accepted", "message"),
                            ("events stream open", "events"))),
        Row("  text deltas delivered", f"{res.deltas} ({res.deltas / dur:.0f}/s)"),
        Row("  service CPU during the level", f"{res.cpu_phase:.1f} s of {dur:.1f} s "
            f"({res.cpu_phase / dur * 100:.0f}% of one core)"),
        Row("  MariaDB CPU per delta in the steady window",
            f"{res.db_cpu_steady / res.steady_deltas * 1e6:.0f} us" if res.steady_deltas else "no deltas"),
        Row("  others' CPU in that time", ", ".join(f"{k} {v:.1f} s" for k, v in res.others.items())),
        Row("  CPU used by unrelated work on the machine meanwhile", f"{res.foreign:.2f} of {os.cpu_count()} cores"),
    ]


# ------------------------------------------------------------------------------------------------
# figures over several phases: /health, RSS, the service's own counts
# ------------------------------------------------------------------------------------------------
def health_samples(health: list[list[float]], w: Window, ok_only: bool = False) -> list[float]:
    return [ms for t, ms, st in health if w.t0 <= t <= w.t1 and (st == 200 or not ok_only)]


def health_rows(health: list[list[float]], idle: Window, res: LoadResult) -> list[Row]:
    whole = Window(res.t_start, res.t_end)
    load_ms = health_samples(health, whole)
    bad = sum(1 for t, _, st in health if whole.t0 <= t <= whole.t1 and st != 200)
    hi99, hl99 = percentile(health_samples(health, idle, ok_only=True), 99), percentile(load_ms, 99)
    rows = [
        Row(f"/health p99 during the service's {res.label}", f"{hl99:.2f} ms", f"< {HEALTH_P99_MS:g} ms",
            hl99 < HEALTH_P99_MS and bad == 0, f"idle {hi99:.2f} ms", f"{hl99 / hi99:.1f}x"),
        Row("  /health p50 / max / probes / non-200", f"{percentile(load_ms, 50):.2f} / "
            f"{max(load_ms, default=float('nan')):.2f} ms / {len(load_ms)} / {bad}"),
    ]
    t_all = res.steady.t0 if res.steady else res.t_release
    for name, w in (("arrivals (until all streaming)", Window(res.t_start, t_all)),
                    ("steady (all streaming)", Window(t_all, res.t_release)),
                    ("finishing (after release)", Window(res.t_release, res.t_end))):
        part = health_samples(health, w)
        rows.append(Row(f"    /health p50 / p99 / max, {name}",
                        f"{percentile(part, 50):.2f} / {percentile(part, 99):.2f} / {max(part):.2f} ms"
                        if part else "no probe started in this window"))
    return rows


def rss_rows(b: Bench, fresh: float, idle_rss: float, res: LoadResult, after: float) -> list[Row]:
    rss = b.rss["service"]
    rss_load = rss.peak(res.t_start, res.t_end)
    hwm = read_status_kib(b.pid, "VmHWM") or 0
    return [
        Row("RSS idle (after warm-up, peak VmRSS)", f"{idle_rss / MIB:.1f} MiB", f"< {RSS_IDLE_MIB:g} MiB",
            idle_rss / MIB < RSS_IDLE_MIB, f"fresh {fresh / MIB:.1f} MiB"),
        Row(f"RSS peak during {res.n} streams", f"{rss_load / MIB:.1f} MiB", f"< {RSS_LOAD_MIB:g} MiB",
            rss_load / MIB < RSS_LOAD_MIB, f"idle {idle_rss / MIB:.1f} MiB", f"{rss_load / idle_rss:.1f}x"),
        Row("  RSS after the streams ended / kernel VmHWM", f"{after / MIB:.1f} MiB / {hwm / 1024:.1f} MiB"),
    ]


def service_rows(args: argparse.Namespace, bed: Testbed) -> list[Row]:
    """What the LangSmith stand-in received, and the service's log lines by level."""
    rows = []
    if not args.no_tracing:
        with urllib.request.urlopen(bed.urls["langsmith"] + "/bench/stats", timeout=5) as r:
            ls = json.loads(r.read())
        rows.append(Row("LangSmith stand-in: runs received / turns ended", f"{ls['runs']} / {ls['root_runs_ended']}"))
    levels: dict[str, int] = {}
    for line in bed.service.log().splitlines():
        with contextlib.suppress(ValueError, AttributeError):
            lvl = json.loads(line).get("level", "?")
            levels[lvl] = levels.get(lvl, 0) + 1
    rows.append(Row("service log lines by level", ", ".join(f"{k} {v}" for k, v in sorted(levels.items()))))
    return rows


# ------------------------------------------------------------------------------------------------
# the comparison (one column per target) and issue 13's targets
# ------------------------------------------------------------------------------------------------
@dataclass
class Results:
    """What the comparison and the targets tables are made of."""

    ttft: TtftResult
    idle_rss: dict[str, float]
    loads: dict[tuple[str, int], LoadResult]
    health_p99: float          # the service's, during its second level (nan without the service)
    health_bad: int

    def rss_per_stream(self, key: str, level: int) -> float:
        """(peak RSS in the steady window - idle RSS) / streams open then, bytes (nan without a process)."""
        res = self.loads.get((key, level))
        sampler = self.rss_of.get(key)
        if res is None or sampler is None or res.steady is None or not res.streaming_in_steady:
            return float("nan")
        return (sampler.peak(res.steady.t0, res.steady.t1) - self.idle_rss[key]) / res.streaming_in_steady

    rss_of: dict[str, RssSampler] = field(default_factory=dict)


def not_run(args: argparse.Namespace, key: str) -> str:
    return "not run (--quick)" if key == "litellm" and args.quick and not args.asked_targets else "not run (--targets)"


def _num(v: float, fmt: str) -> str:
    return "-" if v != v else format(v, fmt)  # nan: not applicable (e.g. direct has no relaying process)


def comparison_rows(args: argparse.Namespace, r: Results) -> list[tuple[str, list[str]]]:
    """(figure, one cell per target of TARGETS) rows."""
    def row(figure: str, cell: Any) -> tuple[str, list[str]]:
        return figure, [cell(k) if k in args.targets else not_run(args, k) for k in TARGETS]

    t = r.ttft
    rows = [
        row("TTFT p50 / p99, ms", lambda k: f"{t.p(k, 50) * 1e3:.2f} / {t.p(k, 99) * 1e3:.2f}"),
        row("added TTFT p50, ms (minus direct's)", lambda k: "-" if k == "direct" else f"{t.added(k, 50) * 1e3:.2f}"),
        row("added TTFT p99, ms (minus direct's)", lambda k: "-" if k == "direct" else f"{t.added(k, 99) * 1e3:.2f}"),
        row("TTFT samples that failed",
            lambda k: str(sum(v for kk, v in t.failures.counts.items() if kk.split(":")[0] == k))),
        row("idle RSS, MiB (the service: MCP loaded)",
            lambda k: _num(r.idle_rss.get(k, float("nan")) / MIB, ".1f")),
    ]
    for level, (n, rate) in enumerate(args.loads):
        lab = f"{n} streams x {rate:g} deltas/s"

        def res(k: str, level: int = level) -> LoadResult:
            return r.loads[(k, level)]

        rows += [
            row(f"{lab}: errors", lambda k, res=res: str(res(k).total_errors)),
            row(f"{lab}: peak streaming at once", lambda k, res=res: str(res(k).peak_streaming)),
            row(f"{lab}: p99 gap between deltas, ms", lambda k, res=res: _num(res(k).gap_p99() * 1e3, ".0f")),
            row(f"{lab}: CPU per relayed delta, us",
                lambda k, res=res: _num(res(k).cpu_per_delta() * 1e6, ".0f")),
            row(f"{lab}: RSS per open stream, KiB",
                lambda k, level=level: _num(r.rss_per_stream(k, level) / 1024, ".1f")),
            row(f"{lab}: drain after release, s", lambda k, res=res: f"{res(k).t_end - res(k).t_release:.1f}"),
            row(f"{lab}: CPU of the load generator / unrelated work, cores",
                lambda k, res=res: f"{res(k).others['load generator'] / (res(k).t_end - res(k).t_start):.2f}"
                                   f" / {res(k).foreign:.2f}"),
        ]
        if level == 1:
            rows.append(row(f"{lab}: /health p99, ms",
                            lambda k: f"{r.health_p99:.1f}" + (f" ({r.health_bad} non-200)" if r.health_bad else "")
                            if k == "service" else "-"))
    return rows


def _ratio_row(figure: str, a: float, b: float, limit: float, unit: str, fmt: str = ".2f") -> Row:
    """The target `a <= limit * b`: its ratio a / b, marked met / not met (not run when a figure is missing)."""
    if a != a or b != b:
        return Row(figure, "-", f"<= {limit:g}x", None)
    ratio = f"{a / b:.2f}x" if b > 0 else "n/a"
    return Row(figure, ratio, f"<= {limit:g}x", a <= limit * b, f"{a:{fmt}} / {b:{fmt}} {unit}")


def target_rows(args: argparse.Namespace, r: Results) -> list[Row]:
    """Issue 13's targets, each the service against LiteLLM or the minimal relay, or absolute."""
    nan = float("nan")
    have = set(args.targets)

    def f(key: str, v: Any) -> float:
        return v() if key in have and "service" in have else nan

    t = r.ttft
    (n1, r1), (n2, r2), (n3, r3) = args.loads
    l1, l2, l3 = (f"{n} streams x {rt:g}/s" for n, rt in args.loads)

    def load(key: str, level: int) -> LoadResult | None:
        return r.loads.get((key, level))

    def gap(key: str) -> float:
        return f(key, lambda: load(key, 1).gap_p99() * 1e3)  # type: ignore[union-attr]

    def cpu(key: str) -> float:
        return f(key, lambda: load(key, 0).cpu_per_delta() * 1e6)  # type: ignore[union-attr]

    svc = "service" in have
    s2, s3 = load("service", 1), load("service", 2)
    rss_stream = r.rss_per_stream("service", 1) / 1024 if svc else nan
    rows = [
        _ratio_row("added TTFT p50: service / LiteLLM", f("litellm", lambda: t.added("service", 50) * 1e3),
                   f("litellm", lambda: t.added("litellm", 50) * 1e3), VS_LITELLM_TTFT, "ms"),
        _ratio_row("added TTFT p99: service / LiteLLM", f("litellm", lambda: t.added("service", 99) * 1e3),
                   f("litellm", lambda: t.added("litellm", 99) * 1e3), VS_LITELLM_TTFT, "ms"),
        _ratio_row("added TTFT p50: service / minimal relay", f("relay", lambda: t.added("service", 50) * 1e3),
                   f("relay", lambda: t.added("relay", 50) * 1e3), VS_RELAY_TTFT_P50, "ms"),
        _ratio_row(f"CPU per relayed delta, {l1}: service / LiteLLM", f("litellm", lambda: cpu("service")),
                   cpu("litellm"), VS_LITELLM_CPU, "us", ".0f"),
        _ratio_row(f"CPU per relayed delta, {l1}: service / minimal relay", f("relay", lambda: cpu("service")),
                   cpu("relay"), VS_RELAY_CPU, "us", ".0f"),
        Row(f"{l2}: service errors", str(s2.total_errors) if s2 else "-", "0",
            s2.total_errors == 0 if s2 else None),
        _ratio_row(f"{l2}: p99 gap between deltas, service / LiteLLM", f("litellm", lambda: gap("service")),
                   gap("litellm"), VS_LITELLM_GAP, "ms", ".0f"),
        _ratio_row(f"{l2}: p99 gap between deltas, service / minimal relay", f("relay", lambda: gap("service")),
                   gap("relay"), VS_RELAY_GAP, "ms", ".0f"),
        Row(f"{l2}: service /health p99", f"{r.health_p99:.1f} ms" if svc else "-", f"< {HEALTH_P99_LOAD_MS:g} ms",
            (r.health_p99 < HEALTH_P99_LOAD_MS and r.health_bad == 0) if svc else None,
            f"{r.health_bad} non-200" if svc else ""),
        Row(f"{l3} on one process: service errors", str(s3.total_errors) if s3 else "-", "0",
            s3.total_errors == 0 if s3 else None),
        _ratio_row("idle RSS with MCP loaded: service / LiteLLM",
                   f("litellm", lambda: r.idle_rss["service"] / MIB), f("litellm", lambda: r.idle_rss["litellm"] / MIB),
                   VS_LITELLM_RSS_IDLE, "MiB", ".1f"),
        Row(f"RSS per open stream, {l2}: service", _num(rss_stream, ".1f") + (" KiB" if svc else ""), f"<= {RSS_PER_STREAM_KIB:g} KiB",
            rss_stream <= RSS_PER_STREAM_KIB if rss_stream == rss_stream else None),
    ]
    return rows


# ------------------------------------------------------------------------------------------------
# the driver
# ------------------------------------------------------------------------------------------------
@dataclass
class Tables:
    details: list[Row]                        # the service's (issue 3 and 10 targets)
    comparison: list[tuple[str, list[str]]]   # one column per target
    targets: list[Row]                        # issue 13's
    foreign: float                            # the most CPU unrelated work used meanwhile (cores)


async def measure(args: argparse.Namespace, bed: Testbed) -> Tables:
    """Every phase in order; the tables."""
    most = max(n for n, _ in args.loads)
    conn = aiohttp.TCPConnector(limit=most * 2 + 100, limit_per_host=0, ttl_dns_cache=None)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as http:
        with contextlib.ExitStack() as samplers:
            rss: dict[str, RssSampler] = {}
            if bed.service is not None:
                assert bed.service.proc is not None
                rss["service"] = samplers.enter_context(RssSampler(bed.service.proc.pid))
            for key, (_url, _key, pid) in bed.relays.items():
                rss[key] = samplers.enter_context(RssSampler(pid, tree=True))
            b = Bench(args, bed, http, rss)
            details: list[Row] = []
            mcp_rows: list[Row] = []
            fresh = float("nan")
            if bed.service is not None:
                assert bed.baseline is not None and bed.baseline.proc is not None
                with RssSampler(bed.baseline.proc.pid) as rss_off:  # start-up idle RSS (information)
                    fresh, fresh_off = await asyncio.gather(rss["service"].quiet_peak(args.settle),
                                                            rss_off.quiet_peak(args.settle))
                    mcp_rows = await mcp_phase(b, rss_off, (fresh, fresh_off))
                bed.baseline.stop()  # from here on the service is measured alone
            ttft = await ttft_phase(b)
            details += ttft.detail_rows + mcp_rows
            probe = health_probe(b) if bed.service is not None else contextlib.nullcontext([])
            with probe as health:
                idle, idle_rss = await idle_phase(b)
                loads = await load_phase(b)
                await asyncio.sleep(args.settle)
                after = await rss["service"].quiet_peak(args.settle) if "service" in rss else float("nan")
            health_p99, bad = float("nan"), 0
            if bed.service is not None:
                s2 = loads[("service", 1)]
                details += service_load_rows(args, s2) + health_rows(health, idle, s2) + \
                    rss_rows(b, fresh, idle_rss["service"], s2, after)
                w = Window(s2.t_start, s2.t_end)
                health_p99 = percentile(health_samples(health, w), 99)
                bad = sum(1 for t, _, st in health if w.t0 <= t <= w.t1 and st != 200)
            results = Results(ttft, idle_rss, loads, health_p99, bad, rss_of=rss)
            print(f"[bench] every target was sent {b.body.source if b.body else '?'}", flush=True)
            return Tables(details, comparison_rows(args, results), target_rows(args, results), b.foreign_cores)


def print_table(rows: list[Row]) -> None:
    w0 = max(len(r.figure) for r in rows)
    w1 = max([len(r.measured) for r in rows if len(r.measured) <= 24] or [8])
    w2 = max(len(r.target) for r in rows)
    w4 = max(len(r.baseline) for r in rows)
    head = f"{'figure':<{w0}}  {'measured':>{w1}}  {'target':<{w2}}  {'result':<7}  {'baseline':<{w4}}  ratio"
    print(head)
    print("-" * len(head))
    for r in rows:
        if len(r.measured) > w1 and r.ok is None and not r.baseline:  # long information line
            print(f"{r.figure:<{w0}}  {r.measured}")
            continue
        res = ("" if not r.target else "not run") if r.ok is None else ("met" if r.ok else "not met")
        print(f"{r.figure:<{w0}}  {r.measured:>{w1}}  {r.target:<{w2}}  {res:<7}  {r.baseline:<{w4}}  {r.ratio}".rstrip())


def print_grid(rows: list[tuple[str, list[str]]]) -> None:
    """The comparison: a figure per row, a target per column."""
    names = list(TARGETS.values())
    w0 = max(len(f) for f, _ in rows)
    ws = [max(len(names[i]), *(len(c[i]) for _, c in rows)) for i in range(len(names))]
    head = f"{'figure':<{w0}}  " + "  ".join(f"{n:>{w}}" for n, w in zip(names, ws))
    print(head)
    print("-" * len(head))
    for f, cells in rows:
        print(f"{f:<{w0}}  " + "  ".join(f"{c:>{w}}" for c, w in zip(cells, ws)))


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: tiny counts and half-second phases; every figure printed, none meaningful")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    ap.add_argument("--targets",
                    help="comma-separated, of direct,service,litellm,relay (default all; quick: all but litellm); "
                         "direct always runs")
    ap.add_argument("--loads", help="the three load levels, streams x text deltas a second: CPU per delta from "
                                    "the first, gaps, /health and RSS per stream from the second "
                                    "(default 300x20,500x20,1000x10; quick 3x20,5x20,6x10)")
    ap.add_argument("--samples", type=int, help="TTFT samples of each target (default 400; quick 5)")
    ap.add_argument("--warmup", type=int, help="TTFT and MCP warm-up rounds, not counted (default 30; quick 2)")
    ap.add_argument("--mcp-samples", type=int,
                    help="MCP-phase turns of each kind: MCP off, on, on with a new token, calling a tool "
                         "(default 200; quick 3)")
    ap.add_argument("--ramp", type=float, help="seconds over which the conversations arrive (default 5; quick 0.5)")
    ap.add_argument("--steady", type=float, help="seconds all conversations stay streaming (default 10; quick 0.5)")
    ap.add_argument("--idle", type=float, help="quiet seconds for idle RSS and /health (default 3; quick 0.5)")
    ap.add_argument("--settle", type=float,
                    help="quiet seconds for the RSS after start-up and after the streams (default 1; quick 0.2)")
    ap.add_argument("--health-interval", type=float, default=0.05, help="seconds between /health probes")
    ap.add_argument("--no-tracing", action="store_true", help="run without LANGCHAIN_API_KEY (tracing off)")
    ap.add_argument("--max-seconds", type=float, help="hard limit for the measurement (default 1800; quick 150)")
    ap.add_argument("--nice", type=int, default=-10 if os.geteuid() == 0 else 0,
                    help="niceness for the bench and all its processes (default -10 as root: less noise from "
                         "other work on a shared machine; 0 leaves it)")
    ap.add_argument("--keep-log", action="store_true", help="copy the service log to ./bench-service.log")
    a = ap.parse_args(argv)
    for name, full, quick in (("loads", "300x20,500x20,1000x10", "3x20,5x20,6x10"), ("samples", 400, 5),
                              ("warmup", 30, 2), ("mcp_samples", 200, 3),
                              ("ramp", 5.0, 0.5), ("steady", 10.0, 0.5), ("idle", 3.0, 0.5), ("settle", 1.0, 0.2),
                              ("max_seconds", 1800.0, 150.0)):
        if getattr(a, name) is None:
            setattr(a, name, quick if a.quick else full)
    try:
        a.loads = [(int(n), float(r)) for n, r in (lv.split("x") for lv in a.loads.split(","))]
    except ValueError:
        ap.error(f"--loads: NxR,NxR,NxR (streams x deltas a second), not {a.loads!r}")
    if len(a.loads) != 3 or any(n < 1 or r <= 0 for n, r in a.loads):
        ap.error("--loads: exactly three levels, each streams >= 1 x deltas a second > 0")
    a.asked_targets = [t.strip() for t in a.targets.split(",") if t.strip()] if a.targets else []
    unknown = set(a.asked_targets) - set(TARGETS)
    if unknown:
        ap.error(f"--targets: unknown {', '.join(sorted(unknown))} (of {', '.join(TARGETS)})")
    chosen = set(a.asked_targets) if a.targets else set(TARGETS) - ({"litellm"} if a.quick else set())
    a.targets = [k for k in TARGETS if k in chosen | {"direct"}]
    return a


def _terminate(signum: int, _frame: object) -> None:
    raise Terminated()


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C even if started with SIGINT ignored
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _terminate)
    _raise_nofile()
    if args.nice:
        with contextlib.suppress(OSError):
            os.nice(args.nice)  # inherited by every process started below
        set_priority("self", args.nice)
    started = time.monotonic()
    load = os.getloadavg()
    print(f"[bench] agent-backend benchmark ({'quick' if args.quick else 'full'}); {os.cpu_count()} CPUs, "
          f"load average {load[0]:.2f} at start; niceness {os.nice(0)}", flush=True)
    bed: Testbed | None = None
    with contextlib.ExitStack() as stack:
        try:
            bed = stack.enter_context(testbed(args))
            service = bed.service
            if service is not None:
                assert service.proc is not None
                print(f"[bench] service pid {service.proc.pid} on {service.url}: one process, LOG_LEVEL=INFO, "
                      f"ENVIRONMENT=production, tracing {'OFF' if args.no_tracing else 'ON -> LangSmith stand-in'}",
                      flush=True)
            for key, (url, _key, pid) in bed.relays.items():
                print(f"[bench] {TARGETS[key]} pid {pid} on {url}", flush=True)
            try:
                tables = asyncio.run(asyncio.wait_for(measure(args, bed), args.max_seconds))
            except asyncio.TimeoutError:
                raise BenchError(f"measurement did not finish within {args.max_seconds:.0f} s") from None
            if service is not None:
                assert service.proc is not None
                if service.proc.poll() is not None:
                    raise BenchError(f"service exited with status {service.proc.returncode} during the benchmark")
                tables.details += service_rows(args, bed)
        except (BenchError, Exception) as exc:
            print(f"[bench] ERROR: {type(exc).__name__}: {exc}", file=sys.stderr)
            if bed is not None and bed.service is not None:
                tail = bed.service.log().splitlines()[-15:]
                print("[bench] service log tail:\n  " + "\n  ".join(tail), file=sys.stderr)
            return 2
        except (KeyboardInterrupt, Terminated):
            print("\n[bench] interrupted; cleaning up", file=sys.stderr)
            return 130

    print()
    print("Definitions: TTFT = POST /v1/messages (stream; the same body for every target) -> first text_delta "
          "event; for the service, POST /v1/cli/sessions/{id}/messages sent -> response read -> GET .../events "
          "opened -> first text-delta part (the CLI's order; session created untimed). Added = target - direct per "
          "percentile. Gap = between two consecutive text deltas of one stream, both in the steady window. CPU per "
          "relayed delta = the target's utime+stime (with its children) over the steady window / text deltas "
          "delivered in it. RSS per open stream = (peak VmRSS in the steady window - idle) / streams open. "
          f"/health: one new connection per probe every {args.health_interval * 1000:.0f} ms from a separate "
          "process. MCP: added TTFT = TTFT with MCP on (the token's tool list cached) - TTFT of the baseline "
          "service with MCP off, per percentile; connect + tools/list = TTFT with a token new to the service - "
          "TTFT with MCP on; a call = its tool-call part -> its tool-result part on the events stream.")
    print(f"Set-up: targets {', '.join(args.targets)}; {args.samples} TTFT samples each (+{args.warmup} warm-up); "
          f"{args.mcp_samples} MCP-phase turns of each kind (+{args.warmup} warm-up); load levels "
          f"{', '.join(f'{n} streams x {r:g} deltas/s' for n, r in args.loads)}, ramp {args.ramp:g} s, "
          f"steady {args.steady:g} s; LangSmith {'off' if args.no_tracing else 'on (stand-in)'}; MariaDB 10.11 "
          f"throwaway (innodb_flush_log_at_trx_commit=2); LiteLLM {LITELLM_VERSION} (one worker, no database); "
          f"{os.cpu_count()} CPUs shared by everything.")
    missed: list[Row] = []
    if tables.details:
        print("\nThe service (issue 3 and 10 targets):")
        print_table(tables.details)
        missed += [r for r in tables.details if r.ok is False]
    print("\nSide by side, one interleaved run:")
    print_grid(tables.comparison)
    print("\nIssue 13's targets (ratios in this run):")
    print_table(tables.targets)
    missed += [r for r in tables.targets if r.ok is False]
    if tables.foreign > 0.25:
        print(f"\n[bench] WARNING: unrelated work used up to {tables.foreign:.2f} of {os.cpu_count()} CPUs while "
              "measuring; latency figures (p99 above all) are inflated by it. Re-run on a quiet machine.")
    print()
    print(f"[bench] load average {os.getloadavg()[0]:.2f} at the end; "
          f"{len(missed)} target(s) missed; {time.monotonic() - started:.0f} s in all"
          + ("" if not missed else ": " + "; ".join(r.figure.strip() for r in missed)))
    return 1 if (missed and args.strict) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
