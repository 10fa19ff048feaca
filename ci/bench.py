#!/usr/bin/env python
"""`make bench`: the agent-backend performance benchmark (issue 3, "Performance"). Measures and prints;
never a test (tests/service/test_bench.py only checks that `--quick` runs and prints every figure).
Loopback only, bounded in count and time, stops by itself, and removes every process and temp dir it
made, also on Ctrl-C, SIGTERM or error.

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
and one per MCP-phase turn that needs a token the service has not seen. The load generator is this
process: one aiohttp ClientSession with a large connection limit, speaking the CLI's protocol through
the tests' client (tests/support/cli.py). The /health probe is another process (ci/bench_probe.py). RSS
is sampled from /proc/<pid>/status (VmRSS) every 20 ms.

Phases and figures (targets from issue 3; the MCP one from issue 10), in the order they run; the table
prints the MCP rows after the TTFT rows:
0. Seqera MCP, while both services are fresh. A "turn" is phase 1's service sample. After a warm-up,
   turns interleaved: `off` on the baseline; `on` on the service with a token whose MCP tool list the
   service has cached (ListCache: before the 60 s `mcp_tools_ttl` can run out, the bench waits until
   it has and lets one untimed turn list again, so no sample lists);
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
1. Time to first token (TTFT), sequential, after warm-up, direct and service samples interleaved:
   - direct: POST /v1/messages to the Anthropic stand-in (stream=true) -> first `text_delta` event.
   - service: on a fresh session (created untimed), in the CLI's order: POST .../messages is sent ->
     its response read -> GET .../events opened (no cursor) -> first `text-delta` part received.
   - added TTFT = service percentile - direct percentile (p50 < 2 ms, p99 < 10 ms).
   MCP is on here and in the phases below: the main token's tool list is listed again whenever the
   service's cache of it has expired (once a minute at most), as in production.
2. Idle: RSS (< 80 MiB) over a quiet window after the warm-up and TTFT traffic; the /health probe's
   idle latency there is the baseline for the next phase.
3. Concurrency: N conversations (500) arrive over `--ramp` seconds; each creates a session, posts a
   message and follows its events. The stand-in sends a text delta every `--delta-interval` s and
   holds every stream open until all N are streaming at once, keeps them so for `--steady` s, then
   lets them finish in arrival order over another `--ramp` s. Figures: errors (target 0: any non-2xx,
   transport error, `error` part, non-`stop` finish or stream ending without a finish), /health p99
   over the whole phase (< 20 ms; one new connection per probe every 50 ms), peak RSS (< 200 MiB).
The bench and all its processes run at a raised priority (`--nice`, applied to their scheduler
autogroups) and it reports how much CPU unrelated work used meanwhile: on a shared machine that is
what inflates the p99 figures.

`--quick` is a smoke run with tiny counts and durations (5 conversations, 5 TTFT samples, 3 MCP-phase
turns of each kind, half-second phases): every figure is printed, none means anything.

Exit status: 0 when the measurement completed (missed targets are printed as FAIL lines); with
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

from ci.bench_standins import MCP_ARGS, MCP_REMOTE_TOOL  # noqa: E402  (what `[bench mcp=N]` makes the model call)
from tests.support import paths, sse  # noqa: E402
from tests.support.cli import Cli  # noqa: E402
from tests.support.mariadb import MariaDB  # noqa: E402
from tests.support.proc import NotReady, die_with_parent, read_ready_line, stop_process  # noqa: E402
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
    """VmRSS of one pid every `interval` seconds: [(t_monotonic, bytes)]. A context manager: runs inside."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            rss = read_status_kib(self.pid, "VmRSS")
            if rss is None:
                return
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
    db: MariaDB
    urls: dict[str, str]        # the stand-ins'
    service: ServiceProcess     # the one measured: MCP on (SEQERA_MCP_URL at the MCP stand-in), as the chart's default
    baseline: ServiceProcess    # the same with MCP off (SEQERA_MCP_URL empty), for the MCP phase only
    anthropic_key: str          # the one the Anthropic stand-in accepts
    token: str                  # the main Platform access token (the Platform and MCP stand-ins accept it)
    mcp_token: str              # the MCP phase's token, its tool list kept cached (ListCache)
    new_tokens: list[str]       # one per MCP-phase turn that must find its token's tool list not cached
    pids: dict[str, int] = field(default_factory=dict)  # other processes whose CPU is reported


@contextlib.contextmanager
def testbed(args: argparse.Namespace) -> Iterator[Testbed]:
    """MariaDB + migrations + the four stand-ins + the service and its MCP-off baseline, all torn down on exit."""
    with contextlib.ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="agent-bench-"))
        stack.callback(shutil.rmtree, workdir, True)
        home = workdir / "home"
        home.mkdir()
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
        pids: dict[str, int] = {}
        with contextlib.suppress(OSError, ValueError):
            pids["MariaDB"] = int((db.basedir / "pid").read_text().strip())
            set_priority(pids["MariaDB"], args.nice)

        anthropic_key = "sk-ant-bench-" + secrets.token_hex(12)
        token = "bench-token-" + secrets.token_hex(12)
        mcp_token = "bench-token-mcp-" + secrets.token_hex(12)
        new_tokens = ["bench-token-new-" + secrets.token_hex(12) for _ in range(args.warmup + args.mcp_samples)]
        sec_env = {**base_process_env(home), "BENCH_ANTHROPIC_KEY": anthropic_key, "BENCH_TOKEN": token,
                   "BENCH_MORE_TOKENS": ",".join([mcp_token, *new_tokens])}
        urls = {}
        for kind in ("anthropic", "platform", "langsmith", "mcp"):
            proc, urls[kind] = start_helper(stack, f"the {kind} stand-in",
                                            [PY, str(ROOT / "ci" / "bench_standins.py"), kind], sec_env, ROOT,
                                            workdir / f"{kind}.log", args.nice)
            pids[f"{kind} stand-in"] = proc.pid

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

        service = start_service(urls["mcp"], Path.cwd() / "bench-service.log" if args.keep_log else None)
        baseline = start_service("")  # its own database on the same MariaDB
        yield Testbed(workdir=workdir, db=db, urls=urls, service=service, baseline=baseline,
                      anthropic_key=anthropic_key, token=token, mcp_token=mcp_token, new_tokens=new_tokens, pids=pids)


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
    """The options, the test bed, the load generator's HTTP session and the service's RSS samples."""

    args: argparse.Namespace
    bed: Testbed
    http: aiohttp.ClientSession
    rss: RssSampler
    foreign_cores: float = 0.0  # the most CPU unrelated work used during a phase, in cores

    @property
    def pid(self) -> int:
        assert self.bed.service.proc is not None
        return self.bed.service.proc.pid

    def cli(self, token: str | None = None, service: ServiceProcess | None = None) -> Cli:
        """The protocol client of `service` (the measured one) with `token` (the main one)."""
        return Cli(self.http, (service or self.bed.service).url, token or self.bed.token)

    def foreign_work(self, cores: float) -> None:
        self.foreign_cores = max(self.foreign_cores, cores)

    def own_cpu_seconds(self) -> float:
        """CPU used so far by this process and the other processes of the test bed (not the service)."""
        return sum(os.times()[:2]) + sum(cpu_seconds(p) for p in self.bed.pids.values())


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
    """The machine's busy CPU and the test bed's (the bench, its processes, the service, `extra`) at a moment."""

    t: float
    machine: float
    ours: float

    @classmethod
    def now(cls, b: "Bench", *extra: int) -> "CpuMark":
        return cls(time.monotonic(), machine_busy_seconds(),
                   b.own_cpu_seconds() + cpu_seconds(b.pid) + sum(cpu_seconds(p) for p in extra))

    def foreign_cores(self, b: "Bench", *extra: int) -> float:
        """The cores unrelated work used on average since this mark (also recorded in `b`)."""
        end = CpuMark.now(b, *extra)
        cores = max(0.0, (end.machine - self.machine - (end.ours - self.ours)) / (end.t - self.t))
        b.foreign_work(cores)
        return cores


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


async def direct_ttft(http: aiohttp.ClientSession, bed: Testbed) -> TtftSample:
    body = {"model": MODEL, "max_tokens": 1024, "stream": True,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "[bench fast] hello"}]}]}
    headers = {"x-api-key": bed.anthropic_key, "anthropic-version": "2023-06-01"}
    t0 = time.perf_counter()
    t_first = None
    async with http.post(bed.urls["anthropic"] + "/v1/messages", json=body, headers=headers) as r:
        t_open = time.perf_counter()
        if r.status != 200:
            raise HttpFailure("direct POST /v1/messages", r.status, await r.text())
        async for frame in sse_frames(r):
            if frame.event == "content_block_delta" and t_first is None and '"text_delta"' in (frame.data or ""):
                t_first = time.perf_counter()
            elif frame.event == "message_stop":
                break
    if t_first is None:
        raise BenchError("direct TTFT sample: no text_delta")
    return TtftSample(total=t_first - t0, open=t_open - t0, first=t_first - t_open)


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


async def ttft_phase(b: Bench) -> list[Row]:
    """Warm-up, the MySQL statements of a session, then direct and service samples interleaved."""
    args, bed, cli = b.args, b.bed, b.cli()
    print(f"[bench] TTFT: {args.warmup} warm-up + {args.samples} samples each, direct and through "
          f"the service, interleaved", flush=True)
    for _ in range(args.warmup):
        await direct_ttft(b.http, bed)
        await service_ttft(cli)
    q0 = mysql_questions(bed.db)
    for _ in range(SQL_SESSIONS):
        await new_session(cli)
    sql_per_session = (mysql_questions(bed.db) - q0 - 1) / SQL_SESSIONS

    samples: dict[str, list[TtftSample]] = {"direct": [], "service": []}
    failures = Failures("TTFT", args.samples)
    q0 = mysql_questions(bed.db)
    cpu0, mark = cpu_seconds(b.pid), CpuMark.now(b)
    for i in range(args.samples):
        for kind in (("direct", "service") if i % 2 else ("service", "direct")):
            got = await failures.attempt(kind, direct_ttft(b.http, bed) if kind == "direct" else service_ttft(cli))
            if got is not None:
                samples[kind].append(got)
    service_cpu = cpu_seconds(b.pid) - cpu0
    foreign = mark.foreign_cores(b)
    direct, via = samples["direct"], samples["service"]
    sql_per_turn = (mysql_questions(bed.db) - q0 - 1) / args.samples - sql_per_session
    sdk = await sdk_ttft_samples(bed, max(args.samples // 2, 20), args.warmup)

    d50, d99 = percentile([s.total for s in direct], 50), percentile([s.total for s in direct], 99)
    s50, s99 = percentile([s.total for s in via], 50), percentile([s.total for s in via], 99)
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
        rows.append(Row(f"  service TTFT part: {name} p50 / p99", p50_p99_ms([getattr(s, attr) for s in via])))
    rows.append(Row("  service CPU per sample (session + turn)", f"{service_cpu / args.samples * 1000:.1f} ms"))
    rows.append(Row("  MySQL statements per turn / per session create", f"{sql_per_turn:.1f} / {sql_per_session:.1f}"))
    return rows


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
    rss_on, rss_off_peak = await asyncio.gather(b.rss.quiet_peak(args.settle), rss_off.quiet_peak(args.settle))

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


async def idle_phase(b: Bench) -> Window:
    print(f"[bench] idle: {b.args.idle:g} s (RSS, /health baseline)", flush=True)
    t0 = time.monotonic()
    await asyncio.sleep(b.args.idle)
    return Window(t0, time.monotonic())


# ------------------------------------------------------------------------------------------------
# 3. concurrency
# ------------------------------------------------------------------------------------------------
@dataclass
class ConcurrencyResult:
    n: int
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    streaming_now: int = 0
    ever_streaming: int = 0
    peak_streaming: int = 0
    deltas: int = 0
    t_start: float = 0.0
    t_all_streaming: float | None = None
    t_release: float = 0.0
    t_end: float = 0.0
    first_delta_s: list[float] = field(default_factory=list)
    # per conversation, seconds from its start: session created, message accepted, events headers
    steps: dict[str, list[float]] = field(default_factory=lambda: {"session": [], "message": [], "events": []})

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


async def conversation(cli: Cli, i: int, interval: float, res: ConcurrencyResult,
                       all_streaming: asyncio.Event) -> None:
    counted = False
    stream = None
    t0 = time.monotonic()
    try:
        sid = await new_session(cli)
        res.steps["session"].append(time.monotonic() - t0)
        await send_message(cli, sid, f"[bench hold={interval}] conversation {i}")
        res.steps["message"].append(time.monotonic() - t0)
        stream = await cli.open_events(sid, expect=None)
        res.steps["events"].append(time.monotonic() - t0)
        if stream.status != 200:
            raise HttpFailure("GET events", stream.status, await stream.resp.text())
        while (ev := await stream.next_part()) is not None:
            if ev.type == "text-delta":
                res.deltas += 1
                if not counted:
                    counted = True
                    res.first_delta_s.append(time.monotonic() - t0)
                    res.streaming_now += 1
                    res.ever_streaming += 1
                    res.peak_streaming = max(res.peak_streaming, res.streaming_now)
                    if res.ever_streaming == res.n:
                        all_streaming.set()
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
    except HttpFailure as exc:
        res.error(f"{exc.what} HTTP {exc.status}")
    except AssertionError as exc:  # the protocol client: a frame the CLI could not read, or none in time
        res.error(str(exc).split(";")[0][:60])
    except asyncio.CancelledError:
        res.error("not finished before the phase deadline")
        raise
    except (aiohttp.ClientError, OSError, asyncio.TimeoutError, ValueError) as exc:
        res.error(f"{type(exc).__name__}")
    finally:
        if counted:
            res.streaming_now -= 1
        if stream is not None:
            await stream.close()


async def conversations(b: Bench) -> ConcurrencyResult:
    """N conversations arriving over the ramp, held by the stand-in until all stream, then released."""
    args, standin, cli = b.args, b.bed.urls["anthropic"], b.cli()
    n, ramp = args.streams, args.ramp
    res = ConcurrencyResult(n=n)
    all_streaming = asyncio.Event()
    async with b.http.post(standin + "/bench/arm") as r:
        await r.read()
    res.t_start = time.monotonic()
    tasks = []
    for i in range(n):
        tasks.append(asyncio.get_running_loop().create_task(
            conversation(cli, i, args.delta_interval, res, all_streaming)))
        # arrivals spread evenly over the ramp (absolute schedule, so slow iterations do not stretch it)
        delay = res.t_start + ramp * (i + 1) / n - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(all_streaming.wait(), ramp + 60)
    if all_streaming.is_set():
        res.t_all_streaming = time.monotonic()
        await asyncio.sleep(args.steady)
    res.t_release = time.monotonic()
    async with b.http.post(standin + "/bench/release", params={"spread": str(ramp)}) as r:
        await r.read()
    _done, pending = await asyncio.wait(tasks, timeout=ramp + 60)
    for t in pending:
        t.cancel()
    if pending:
        await asyncio.wait(pending, timeout=5)
    res.t_end = time.monotonic()
    return res


async def concurrency_phase(b: Bench) -> tuple[ConcurrencyResult, list[Row]]:
    args = b.args
    print(f"[bench] concurrency: {args.streams} conversations arriving over {args.ramp:g} s, "
          f"a text delta every {args.delta_interval} s, all held open {args.steady:g} s, "
          f"finishing over {args.ramp:g} s", flush=True)
    cpu0 = cpu_seconds(b.pid)
    others0 = {name: cpu_seconds(p) for name, p in b.bed.pids.items()}
    self0, machine0 = sum(os.times()[:2]), machine_busy_seconds()
    conc = await conversations(b)
    if conc.ok == 0:  # as with the TTFT samples: the benchmark itself is broken, there is nothing to measure
        raise BenchError(f"no conversation completed: {conc.errors}")
    service_cpu = cpu_seconds(b.pid) - cpu0
    others = {"load generator": sum(os.times()[:2]) - self0,
              **{name: cpu_seconds(p) - others0[name] for name, p in b.bed.pids.items()}}
    foreign = max(0.0, machine_busy_seconds() - machine0 - service_cpu - sum(others.values()))
    dur = conc.t_end - conc.t_start
    b.foreign_work(foreign / dur)

    errors = sum(conc.errors.values())
    ramp_done = (conc.t_all_streaming - conc.t_start) if conc.t_all_streaming else float("nan")
    rows = [
        Row("concurrent conversations: completed / errors", f"{conc.ok} / {errors}", f"{conc.n} / 0",
            conc.ok == conc.n and errors == 0),
        Row("  peak simultaneously streaming", str(conc.peak_streaming), f"{conc.n}", conc.peak_streaming == conc.n),
        *count_rows("error", conc.errors),
        Row("  time until all were streaming", f"{ramp_done:.1f} s (ramp {args.ramp:g} s)"),
        Row("  time to first token under load p50 / p99", p50_p99_ms(conc.first_delta_s),
            baseline=f"stand-in pacing {3 * args.delta_interval * 1000:.0f} ms"),
        *(Row(f"    under load, {name} after p50 / p99", p50_p99_ms(conc.steps[key]))
          for name, key in (("session created", "session"), ("message accepted", "message"),
                            ("events stream open", "events"))),
        Row("  text deltas delivered", f"{conc.deltas} ({conc.deltas / dur:.0f}/s)"),
        Row("  service CPU during the phase", f"{service_cpu:.1f} s of {dur:.1f} s "
            f"({service_cpu / dur * 100:.0f}% of one core)"),
        Row("  others' CPU in that time", ", ".join(f"{k} {v:.1f} s" for k, v in others.items())),
        Row("  CPU used by unrelated work on the machine meanwhile",
            f"{foreign:.1f} s ({foreign / dur:.2f} of {os.cpu_count()} cores)"),
    ]
    return conc, rows


# ------------------------------------------------------------------------------------------------
# figures over several phases: /health, RSS, the service's own counts
# ------------------------------------------------------------------------------------------------
def health_rows(health: list[list[float]], idle: Window, conc: ConcurrencyResult) -> list[Row]:
    def latencies(w: Window, ok_only: bool = False) -> list[float]:
        return [ms for t, ms, st in health if w.t0 <= t <= w.t1 and (st == 200 or not ok_only)]

    whole = Window(conc.t_start, conc.t_end)
    load_ms = latencies(whole)
    bad = sum(1 for t, _, st in health if whole.t0 <= t <= whole.t1 and st != 200)
    hi99, hl99 = percentile(latencies(idle, ok_only=True), 99), percentile(load_ms, 99)
    rows = [
        Row("/health p99 during the concurrency phase", f"{hl99:.2f} ms", f"< {HEALTH_P99_MS:g} ms",
            hl99 < HEALTH_P99_MS and bad == 0, f"idle {hi99:.2f} ms", f"{hl99 / hi99:.1f}x"),
        Row("  /health p50 / max / probes / non-200", f"{percentile(load_ms, 50):.2f} / "
            f"{max(load_ms, default=float('nan')):.2f} ms / {len(load_ms)} / {bad}"),
    ]
    t_all = conc.t_all_streaming or conc.t_release
    for name, w in (("arrivals (until all streaming)", Window(conc.t_start, t_all)),
                    ("steady (all streaming)", Window(t_all, conc.t_release)),
                    ("finishing (after release)", Window(conc.t_release, conc.t_end))):
        part = latencies(w)
        rows.append(Row(f"    /health p50 / p99 / max, {name}",
                        f"{percentile(part, 50):.2f} / {percentile(part, 99):.2f} / {max(part):.2f} ms"
                        if part else "no probe started in this window"))
    return rows


def rss_rows(b: Bench, fresh: float, idle: Window, conc: ConcurrencyResult, after: float) -> list[Row]:
    rss_idle = b.rss.peak(idle.t0, idle.t1)
    rss_load = b.rss.peak(conc.t_start, conc.t_end)
    hwm = read_status_kib(b.pid, "VmHWM") or 0
    return [
        Row("RSS idle (after warm-up, peak VmRSS)", f"{rss_idle / MIB:.1f} MiB", f"< {RSS_IDLE_MIB:g} MiB",
            rss_idle / MIB < RSS_IDLE_MIB, f"fresh {fresh / MIB:.1f} MiB"),
        Row(f"RSS peak during {conc.n} streams", f"{rss_load / MIB:.1f} MiB", f"< {RSS_LOAD_MIB:g} MiB",
            rss_load / MIB < RSS_LOAD_MIB, f"idle {rss_idle / MIB:.1f} MiB", f"{rss_load / rss_idle:.1f}x"),
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
# the driver
# ------------------------------------------------------------------------------------------------
async def measure(args: argparse.Namespace, bed: Testbed) -> tuple[list[Row], float]:
    """Every phase in order; the table's rows and the most CPU unrelated work used meanwhile (cores)."""
    assert bed.service.proc is not None
    conn = aiohttp.TCPConnector(limit=args.streams * 2 + 100, limit_per_host=0, ttl_dns_cache=None)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as http:
        assert bed.baseline.proc is not None
        with RssSampler(bed.service.proc.pid) as rss:
            b = Bench(args, bed, http, rss)
            with RssSampler(bed.baseline.proc.pid) as rss_off:  # start-up idle RSS (information)
                fresh, fresh_off = await asyncio.gather(rss.quiet_peak(args.settle), rss_off.quiet_peak(args.settle))
                mcp_rows = await mcp_phase(b, rss_off, (fresh, fresh_off))
            bed.baseline.stop()  # from here on the service is measured alone
            rows = await ttft_phase(b) + mcp_rows
            with health_probe(b) as health:
                idle = await idle_phase(b)
                conc, conc_rows = await concurrency_phase(b)
                await asyncio.sleep(args.settle)
                after = await rss.quiet_peak(args.settle)
            rows += conc_rows + health_rows(health, idle, conc) + rss_rows(b, fresh, idle, conc, after)
    return rows, b.foreign_cores


def print_table(rows: list[Row]) -> None:
    w0 = max(len(r.figure) for r in rows)
    w1 = max([len(r.measured) for r in rows if len(r.measured) <= 24] or [8])
    w2 = max(len(r.target) for r in rows)
    w4 = max(len(r.baseline) for r in rows)
    head = f"{'figure':<{w0}}  {'measured':>{w1}}  {'target':<{w2}}  {'result':<6}  {'baseline':<{w4}}  ratio"
    print(head)
    print("-" * len(head))
    for r in rows:
        if len(r.measured) > w1 and r.ok is None and not r.baseline:  # long information line
            print(f"{r.figure:<{w0}}  {r.measured}")
            continue
        res = "" if r.ok is None else ("PASS" if r.ok else "FAIL")
        print(f"{r.figure:<{w0}}  {r.measured:>{w1}}  {r.target:<{w2}}  {res:<6}  {r.baseline:<{w4}}  {r.ratio}".rstrip())


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: tiny counts and half-second phases; every figure printed, none meaningful")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    ap.add_argument("--streams", type=int, help="concurrent conversations (default 500; quick 5)")
    ap.add_argument("--samples", type=int, help="TTFT samples each, direct and service (default 400; quick 5)")
    ap.add_argument("--warmup", type=int, help="TTFT and MCP warm-up rounds, not counted (default 30; quick 2)")
    ap.add_argument("--mcp-samples", type=int,
                    help="MCP-phase turns of each kind: MCP off, on, on with a new token, calling a tool "
                         "(default 200; quick 3)")
    ap.add_argument("--ramp", type=float, help="seconds over which the conversations arrive (default 5; quick 0.5)")
    ap.add_argument("--steady", type=float, help="seconds all conversations stay streaming (default 10; quick 0.5)")
    ap.add_argument("--delta-interval", type=float, default=0.1, help="stand-in seconds between SSE events")
    ap.add_argument("--idle", type=float, help="quiet seconds for idle RSS and /health (default 3; quick 0.5)")
    ap.add_argument("--settle", type=float,
                    help="quiet seconds for the RSS after start-up and after the streams (default 1; quick 0.2)")
    ap.add_argument("--health-interval", type=float, default=0.05, help="seconds between /health probes")
    ap.add_argument("--no-tracing", action="store_true", help="run without LANGCHAIN_API_KEY (tracing off)")
    ap.add_argument("--max-seconds", type=float, help="hard limit for the measurement (default 600; quick 120)")
    ap.add_argument("--nice", type=int, default=-10 if os.geteuid() == 0 else 0,
                    help="niceness for the bench and all its processes (default -10 as root: less noise from "
                         "other work on a shared machine; 0 leaves it)")
    ap.add_argument("--keep-log", action="store_true", help="copy the service log to ./bench-service.log")
    a = ap.parse_args(argv)
    for name, full, quick in (("streams", 500, 5), ("samples", 400, 5), ("warmup", 30, 2), ("mcp_samples", 200, 3),
                              ("ramp", 5.0, 0.5), ("steady", 10.0, 0.5), ("idle", 3.0, 0.5), ("settle", 1.0, 0.2),
                              ("max_seconds", 600.0, 120.0)):
        if getattr(a, name) is None:
            setattr(a, name, quick if a.quick else full)
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
            assert service.proc is not None
            print(f"[bench] service pid {service.proc.pid} on {service.url}: one process, LOG_LEVEL=INFO, "
                  f"ENVIRONMENT=production, tracing {'OFF' if args.no_tracing else 'ON -> LangSmith stand-in'}",
                  flush=True)
            try:
                rows, busy = asyncio.run(asyncio.wait_for(measure(args, bed), args.max_seconds))
            except asyncio.TimeoutError:
                raise BenchError(f"measurement did not finish within {args.max_seconds:.0f} s") from None
            if service.proc.poll() is not None:
                raise BenchError(f"service exited with status {service.proc.returncode} during the benchmark")
            rows += service_rows(args, bed)
        except (BenchError, Exception) as exc:
            print(f"[bench] ERROR: {type(exc).__name__}: {exc}", file=sys.stderr)
            if bed is not None:
                tail = bed.service.log().splitlines()[-15:]
                print("[bench] service log tail:\n  " + "\n  ".join(tail), file=sys.stderr)
            return 2
        except (KeyboardInterrupt, Terminated):
            print("\n[bench] interrupted; cleaning up", file=sys.stderr)
            return 130

    print()
    print("Definitions: TTFT direct = aiohttp POST /v1/messages (stream) to the Anthropic stand-in -> first "
          "text_delta event. TTFT service = POST /v1/cli/sessions/{id}/messages sent -> response read -> "
          "GET .../events opened -> first text-delta part (the CLI's order; session created untimed). "
          "Added = service - direct per percentile. /health: one new connection per probe every "
          f"{args.health_interval * 1000:.0f} ms from a separate process. RSS: VmRSS of the service pid every 20 ms. "
          "MCP: added TTFT = TTFT with MCP on (the token's tool list cached) - TTFT of the baseline service with "
          "MCP off, per percentile; connect + tools/list = TTFT with a token new to the service - TTFT with MCP "
          "on; a call = its tool-call part -> its tool-result part on the events stream.")
    print(f"Set-up: {args.samples} TTFT samples (+{args.warmup} warm-up); {args.mcp_samples} MCP-phase turns of "
          f"each kind (+{args.warmup} warm-up); {args.streams} conversations, "
          f"ramp {args.ramp:g} s, steady {args.steady:g} s, stand-in event interval {args.delta_interval:g} s; "
          f"LangSmith {'off' if args.no_tracing else 'on (stand-in)'}; MariaDB 10.11 throwaway "
          f"(innodb_flush_log_at_trx_commit=2); {os.cpu_count()} CPUs shared by everything.")
    print()
    print_table(rows)
    missed = [r for r in rows if r.ok is False]
    if busy > 0.25:
        print(f"\n[bench] WARNING: unrelated work used up to {busy:.2f} of {os.cpu_count()} CPUs while measuring; "
              "latency figures (p99 above all) are inflated by it. Re-run on a quiet machine.")
    print()
    print(f"[bench] load average {os.getloadavg()[0]:.2f} at the end; "
          f"{len(missed)} target(s) missed; {time.monotonic() - started:.0f} s in all"
          + ("" if not missed else ": " + "; ".join(r.figure for r in missed)))
    return 1 if (missed and args.strict) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
