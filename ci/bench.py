#!/usr/bin/env python
"""`make bench`: the agent-backend performance benchmark (issue 3, "Performance"). Measures and prints;
never a test. Loopback only, bounded in count and time, stops by itself, and removes every process and
temp dir it made, also on Ctrl-C, SIGTERM or error.

Set-up (all on 127.0.0.1): a throwaway MariaDB (tests/support/mariadb.py) with a fresh database,
`./init.sh` (the migrations, as the chart's init container runs them), the Anthropic, Platform and
LangSmith stand-ins (tests/support/standins/) each in its own process (ci/bench_standins.py), and the
service as ONE `python -m agent_backend` process (one worker, one event loop) with the chart's
environment: ENVIRONMENT=production, LOG_LEVEL=INFO (JSON logs to a file), tracing ON with
LANGCHAIN_API_KEY set and LANGSMITH_ENDPOINT pointed at the LangSmith stand-in (`--no-tracing` turns
it off), ANTHROPIC_BASE_URL at the Anthropic stand-in. The load generator is this process: one aiohttp
ClientSession with a large connection limit, SSE read incrementally. The /health probe is another
process (ci/bench_probe.py). RSS is sampled from /proc/<service pid>/status (VmRSS) every 20 ms.

Phases and figures (targets from issue 3):
1. Time to first token (TTFT), sequential, after warm-up, direct and service samples interleaved:
   - direct: POST /v1/messages to the Anthropic stand-in (stream=true) -> first `text_delta` event.
   - service: on a fresh session (created untimed), in the CLI's order: POST .../messages is sent ->
     its response read -> GET .../events opened (no cursor) -> first `text-delta` part received.
   - added TTFT = service percentile - direct percentile (p50 < 2 ms, p99 < 10 ms).
2. Idle: RSS (< 80 MiB) over a quiet window after the warm-up and TTFT traffic; the /health probe's
   idle latency there is the baseline for the next phase.
3. Concurrency: N conversations (500; `--quick`: 50) arrive over `--ramp` seconds; each creates a
   session, posts a message and follows its events. The stand-in sends a text delta every
   `--delta-interval` s and holds every stream open until all N are streaming at once, keeps them so
   for `--steady` s, then lets them finish in arrival order over another `--ramp` s. Figures: errors
   (target 0: any non-2xx, transport error, `error` part, non-`stop` finish or stream ending without a
   finish), /health p99 over the whole phase (< 20 ms; one new connection per probe every 50 ms), peak
   RSS (< 200 MiB).
The bench and all its processes run at a raised priority (`--nice`, applied to their scheduler
autogroups) and it reports how much CPU unrelated work used meanwhile: on a shared machine that is
what inflates the p99 figures.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from tests.support.service import base_process_env, run_migrations, standin_env  # noqa: E402
from tests.support import paths, sse  # noqa: E402
from tests.support.mariadb import MariaDB  # noqa: E402
from tests.support.proc import NotReady, die_with_parent, wait_http_ok  # noqa: E402
from tests.support.standins import free_port  # noqa: E402

PY = str(paths.PYTHON)
MODEL = "claude-bench-standin"
MIB = 1024 * 1024
PRIORITY = {"nice": 0}  # set from --nice in main(); applied to every child's autogroup

# Targets (issue 3).
ADDED_TTFT_P50_MS = 2.0
ADDED_TTFT_P99_MS = 10.0
HEALTH_P99_MS = 20.0
RSS_IDLE_MIB = 80.0
RSS_LOAD_MIB = 200.0


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


class Child:
    """A helper process (stand-in, probe, service) in its own session, stopped by its pid only."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], cwd: Path, log: Path | None = None,
                 ready_line: bool = True) -> None:
        self.name = name
        self._logf = open(log, "ab") if log else None
        self.proc = subprocess.Popen(
            argv, env=env, cwd=cwd, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE if ready_line else self._logf,
            stderr=self._logf if self._logf else subprocess.DEVNULL,
            start_new_session=True, preexec_fn=die_with_parent)  # SIGTERM if the bench dies uncleanly
        set_priority(self.proc.pid, PRIORITY["nice"])
        self.ready_text = ""
        if ready_line:
            self.ready_text = self._wait_ready_line(30.0)

    def _wait_ready_line(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        box: dict[str, str] = {}

        def read() -> None:
            assert self.proc.stdout is not None
            box["line"] = self.proc.stdout.readline().decode(errors="replace").strip()

        t = threading.Thread(target=read, daemon=True)
        t.start()
        t.join(timeout)
        line = box.get("line", "")
        if not line.startswith("READY"):
            self.stop()
            raise BenchError(f"{self.name} did not start (got {line!r}); see its log")
        return line[len("READY"):].strip()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(OSError):
                    self.proc.kill()
                self.proc.wait(10)
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()
        if self._logf:
            self._logf.close()
            self._logf = None


class RssSampler(threading.Thread):
    """VmRSS of one pid every `interval` seconds: [(t_monotonic, bytes)]."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.path = f"/proc/{pid}/status"
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            rss = read_status_kib(self.path, "VmRSS")
            if rss is None:
                return
            self.samples.append((time.monotonic(), rss * 1024))
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join(2)

    def peak(self, t0: float, t1: float) -> float:
        vals = [b for t, b in self.samples if t0 <= t <= t1]
        return max(vals) if vals else float("nan")


def read_status_kib(path: str, key: str) -> int | None:
    try:
        with open(path) as f:
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


# ------------------------------------------------------------------------------------------------
# SSE and HTTP
# ------------------------------------------------------------------------------------------------
async def sse_frames(resp: aiohttp.ClientResponse) -> AsyncIterator[sse.Frame]:
    """The SSE frames of a response, read incrementally and parsed leniently; comment-only frames are skipped."""
    buf = b""
    async for chunk in resp.content.iter_any():
        frames, buf = sse.take_frames(buf + chunk)
        for text in frames:
            frame = sse.parse_frame(text)
            if frame.data is not None or frame.event is not None:
                yield frame


class HttpFailure(Exception):
    def __init__(self, what: str, status: int, body: str = "") -> None:
        super().__init__(f"{what}: HTTP {status} {body[:200]}")
        self.what, self.status = what, status


@dataclass
class Endpoints:
    service: str
    anthropic: str
    anthropic_key: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "X-Client-Version": "bench"}


SESSION_BODY = {"cwd": "/tmp/bench", "approval_mode": "auto", "local_execution": True, "headless": True,
                "directory_context": {}, "instruction_context": ""}


async def create_session(http: aiohttp.ClientSession, ep: Endpoints) -> str:
    async with http.post(ep.service + "/v1/cli/sessions", json=SESSION_BODY, headers=ep.auth) as r:
        if r.status != 200:
            raise HttpFailure("POST sessions", r.status, await r.text())
        return (await r.json())["session_id"]


def message_body(content: str) -> dict[str, Any]:
    return {"type": "user_message", "content": content, "run_id": secrets.token_hex(8), "verbose": False,
            "interaction_mode": "headless", "caller": "script"}


@dataclass
class TtftSample:
    total: float
    post: float = 0.0      # POST messages round trip
    open: float = 0.0      # GET events until response headers
    first: float = 0.0     # from headers to the first text-delta


async def service_ttft(http: aiohttp.ClientSession, ep: Endpoints) -> TtftSample:
    sid = await create_session(http, ep)  # untimed
    url = f"{ep.service}/v1/cli/sessions/{sid}"
    t0 = time.perf_counter()
    async with http.post(url + "/messages", json=message_body("[bench fast] hello"), headers=ep.auth) as r:
        body = await r.read()
        if r.status != 200:
            raise HttpFailure("POST messages", r.status, body.decode(errors="replace"))
    t_post = time.perf_counter()
    t_first = None
    async with http.get(url + "/events", headers=ep.auth) as r:
        t_open = time.perf_counter()
        if r.status != 200:
            raise HttpFailure("GET events", r.status, await r.text())
        async for frame in sse_frames(r):
            if frame.data is None:
                continue
            part = frame.json()
            kind = part.get("type")
            if kind == "text-delta" and t_first is None:
                t_first = time.perf_counter()
            elif kind == "finish":
                if part.get("finishReason") != "stop":
                    raise BenchError(f"service TTFT sample finished with {part.get('finishReason')!r}")
                break
            elif kind == "error":
                raise BenchError(f"service TTFT sample got an error part: {part.get('error')!r}")
    if t_first is None:
        raise BenchError("service TTFT sample: no text-delta before the end of the stream")
    return TtftSample(total=t_first - t0, post=t_post - t0, open=t_open - t_post, first=t_first - t_open)


async def direct_ttft(http: aiohttp.ClientSession, ep: Endpoints) -> TtftSample:
    body = {"model": MODEL, "max_tokens": 1024, "stream": True,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "[bench fast] hello"}]}]}
    headers = {"x-api-key": ep.anthropic_key, "anthropic-version": "2023-06-01"}
    t0 = time.perf_counter()
    t_first = None
    async with http.post(ep.anthropic + "/v1/messages", json=body, headers=headers) as r:
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


async def sdk_ttft_samples(ep: Endpoints, n: int, warmup: int) -> list[float] | None:
    """Information only: TTFT of the official anthropic SDK called directly (aiohttp transport, the service's
    system prompt and tools), to show how much of the added TTFT the SDK itself accounts for."""
    try:
        import anthropic

        from agent_backend.tools import system_prompt, tools_for_mode
        tools = tools_for_mode(None)
        system = system_prompt(cwd=SESSION_BODY["cwd"], directory_context={}, instruction_context="", mode=None,
                               local_execution=True)
    except Exception as exc:  # the row is optional; the benchmark goes on without it
        print(f"[bench] SDK baseline skipped: {type(exc).__name__}: {exc}", flush=True)
        return None
    client = anthropic.AsyncAnthropic(api_key=ep.anthropic_key, base_url=ep.anthropic, max_retries=0,
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


# ------------------------------------------------------------------------------------------------
# the concurrency phase
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


async def conversation(http: aiohttp.ClientSession, ep: Endpoints, i: int, interval: float,
                       res: ConcurrencyResult, all_streaming: asyncio.Event) -> None:
    counted = False
    t0 = time.monotonic()
    try:
        sid = await create_session(http, ep)
        res.steps["session"].append(time.monotonic() - t0)
        url = f"{ep.service}/v1/cli/sessions/{sid}"
        async with http.post(url + "/messages", json=message_body(f"[bench hold={interval}] conversation {i}"),
                             headers=ep.auth) as r:
            body = await r.read()
            if r.status != 200:
                raise HttpFailure("POST messages", r.status, body.decode(errors="replace"))
        res.steps["message"].append(time.monotonic() - t0)
        async with http.get(url + "/events", headers=ep.auth) as r:
            res.steps["events"].append(time.monotonic() - t0)
            if r.status != 200:
                raise HttpFailure("GET events", r.status, await r.text())
            async for frame in sse_frames(r):
                if frame.data is None:
                    continue
                part = frame.json()
                kind = part.get("type")
                if kind == "text-delta":
                    res.deltas += 1
                    if not counted:
                        counted = True
                        res.first_delta_s.append(time.monotonic() - t0)
                        res.streaming_now += 1
                        res.ever_streaming += 1
                        res.peak_streaming = max(res.peak_streaming, res.streaming_now)
                        if res.ever_streaming == res.n:
                            all_streaming.set()
                elif kind == "finish":
                    if part.get("finishReason") == "stop":
                        res.ok += 1
                    else:
                        res.error(f"finish {part.get('finishReason')}")
                    return
                elif kind == "error":
                    res.error(f"error part: {str(part.get('error'))[:60]}")
                    return
            res.error("stream ended without finish")
    except HttpFailure as exc:
        res.error(f"{exc.what} HTTP {exc.status}")
    except asyncio.CancelledError:
        res.error("not finished before the phase deadline")
        raise
    except (aiohttp.ClientError, OSError, asyncio.TimeoutError, ValueError) as exc:
        res.error(f"{type(exc).__name__}")
    finally:
        if counted:
            res.streaming_now -= 1


async def concurrency_phase(http: aiohttp.ClientSession, ep: Endpoints, n: int, ramp: float, steady: float,
                            interval: float, ramp_timeout: float, drain_timeout: float) -> ConcurrencyResult:
    res = ConcurrencyResult(n=n)
    all_streaming = asyncio.Event()
    async with http.post(ep.anthropic + "/bench/arm") as r:
        await r.read()
    res.t_start = time.monotonic()
    tasks = []
    for i in range(n):
        tasks.append(asyncio.get_running_loop().create_task(conversation(http, ep, i, interval, res, all_streaming)))
        # arrivals spread evenly over the ramp (absolute schedule, so slow iterations do not stretch it)
        delay = res.t_start + ramp * (i + 1) / n - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(all_streaming.wait(), ramp_timeout)
    if all_streaming.is_set():
        res.t_all_streaming = time.monotonic()
        await asyncio.sleep(steady)
    res.t_release = time.monotonic()
    async with http.post(ep.anthropic + "/bench/release", params={"spread": str(ramp)}) as r:
        await r.read()
    _done, pending = await asyncio.wait(tasks, timeout=drain_timeout)
    for t in pending:
        t.cancel()
    if pending:
        await asyncio.wait(pending, timeout=5)
    res.t_end = time.monotonic()
    return res


# ------------------------------------------------------------------------------------------------
# orchestration
# ------------------------------------------------------------------------------------------------
@dataclass
class Row:
    figure: str
    measured: str
    target: str = ""
    ok: bool | None = None   # None: information only
    baseline: str = ""
    ratio: str = ""


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


@dataclass
class Testbed:
    workdir: Path
    db: MariaDB
    urls: dict[str, str]
    service: Child
    ep: Endpoints
    pids: dict[str, int] = field(default_factory=dict)  # other processes whose CPU is reported


@contextlib.contextmanager
def testbed(args: argparse.Namespace) -> Iterator[Testbed]:
    """MariaDB + migrations + the three stand-ins + the service, all torn down on exit."""
    with contextlib.ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="agent-bench-"))
        stack.callback(shutil.rmtree, workdir, True)
        (workdir / "home").mkdir()
        base_env = base_process_env(workdir / "home")
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
            set_priority(pids["MariaDB"], PRIORITY["nice"])
        creds = db.create_database()

        anthropic_key = "sk-ant-bench-" + secrets.token_hex(12)
        token = "bench-token-" + secrets.token_hex(12)
        sec_env = {**base_env, "BENCH_ANTHROPIC_KEY": anthropic_key, "BENCH_TOKEN": token}
        urls = {}
        for kind in ("anthropic", "platform", "langsmith"):
            child = Child(f"{kind} stand-in", [PY, str(ROOT / "ci" / "bench_standins.py"), kind], sec_env,
                          cwd=ROOT, log=workdir / f"{kind}.log")
            stack.callback(child.stop)
            urls[kind] = child.ready_text
            pids[f"{kind} stand-in"] = child.pid

        port = free_port()
        env = {
            **standin_env(db=creds, port=port, anthropic_url=urls["anthropic"], anthropic_key=anthropic_key,
                          langsmith_url=urls["langsmith"],
                          langchain_key="" if args.no_tracing else "lsv2_bench_" + secrets.token_hex(8),
                          platform_url=urls["platform"], platform_api_url=urls["platform"] + "/api"),
            # what the chart sets in production, where the tests use other values
            "ENVIRONMENT": "production",
            "LOG_LEVEL": "INFO",
            "ANTHROPIC_MODEL": MODEL,
            "AGENT_BACKEND_PUBLIC_URL": f"http://127.0.0.1:{port}",
        }
        mig = run_migrations(env, workdir / "home")
        if mig.returncode != 0:
            raise BenchError(f"./init.sh failed ({mig.returncode}):\n{mig.stderr[-2000:]}")
        service_log = workdir / "service.log"
        service = Child("service", [PY, "-m", "agent_backend"], {**base_env, **env}, cwd=workdir / "home",
                        log=service_log, ready_line=False)
        stack.callback(service.stop)
        if getattr(args, "keep_log", False):
            stack.callback(lambda: shutil.copy(service_log, Path.cwd() / "bench-service.log"))
        ep = Endpoints(service=f"http://127.0.0.1:{port}", anthropic=urls["anthropic"],
                       anthropic_key=anthropic_key, token=token)
        try:
            wait_http_ok(ep.service + "/health?ready=1", service.proc, 60)
        except NotReady as e:
            raise BenchError(f"service {e}") from None
        yield Testbed(workdir=workdir, db=db, urls=urls, service=service, ep=ep, pids=pids)


def mysql_questions(db: MariaDB) -> int:
    """Statements the server has executed so far (global `Questions`, as root over the socket)."""
    conn = db.root()
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW GLOBAL STATUS LIKE 'Questions'")
            return int(cur.fetchone()[1])
    finally:
        conn.close()


async def measure(args: argparse.Namespace, ep: Endpoints, service: Child, workdir: Path,
                  db: MariaDB, others: dict[str, int]) -> tuple[list[Row], dict]:
    pid = service.pid
    info: dict[str, Any] = {}
    rows: list[Row] = []
    sampler = RssSampler(pid)
    sampler.start()
    conn = aiohttp.TCPConnector(limit=args.streams * 2 + 100, limit_per_host=0, ttl_dns_cache=None)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)
    try:
        async with aiohttp.ClientSession(connector=conn, timeout=timeout) as http:
            # -- start-up idle RSS (information) ------------------------------------------------------
            t = time.monotonic()
            await asyncio.sleep(1.0)
            info["rss_fresh"] = sampler.peak(t, time.monotonic())

            # -- 1. TTFT ------------------------------------------------------------------------------
            print(f"[bench] TTFT: {args.warmup} warm-up + {args.samples} samples each, direct and through "
                  f"the service, interleaved", flush=True)
            for _ in range(args.warmup):
                await direct_ttft(http, ep)
                await service_ttft(http, ep)
            q0 = mysql_questions(db)
            for _ in range(20):
                await create_session(http, ep)
            info["sql_per_session"] = (mysql_questions(db) - q0 - 1) / 20
            direct: list[TtftSample] = []
            via: list[TtftSample] = []
            q0 = mysql_questions(db)
            cpu0 = cpu_seconds(pid)
            t_ttft0, m_ttft0 = time.monotonic(), machine_busy_seconds()
            own_ttft0 = sum(os.times()[:2]) + sum(cpu_seconds(p) for p in others.values())
            failures: dict[str, int] = {}

            async def sample(kind: str) -> None:
                try:
                    if kind == "direct":
                        direct.append(await direct_ttft(http, ep))
                    else:
                        via.append(await service_ttft(http, ep))
                except (BenchError, HttpFailure, aiohttp.ClientError, OSError, ValueError,
                        asyncio.TimeoutError) as exc:
                    key = f"{kind}: {str(exc)[:70]}"
                    failures[key] = failures.get(key, 0) + 1
                    if sum(failures.values()) > max(5, args.samples // 10):
                        raise BenchError(f"too many failed TTFT samples: {failures}") from None

            for i in range(args.samples):
                for kind in (("direct", "service") if i % 2 else ("service", "direct")):
                    await sample(kind)
            info["ttft_failures"] = failures
            info["cpu_per_turn_ms"] = (cpu_seconds(pid) - cpu0) / args.samples * 1000
            own = sum(os.times()[:2]) + sum(cpu_seconds(p) for p in others.values()) - own_ttft0 \
                + (cpu_seconds(pid) - cpu0)
            info["foreign_ttft_cores"] = max(0.0, (machine_busy_seconds() - m_ttft0 - own) / (time.monotonic() - t_ttft0))
            info["sql_per_turn"] = (mysql_questions(db) - q0 - 1) / args.samples - info["sql_per_session"]
            info["sdk_ttft"] = await sdk_ttft_samples(ep, max(args.samples // 2, 20), args.warmup)

            # -- 2. idle -----------------------------------------------------------------------------
            probe_out = workdir / "health.json"
            probe = Child("health probe", [PY, str(ROOT / "ci" / "bench_probe.py"), ep.service + "/health",
                                           str(args.health_interval), str(args.max_seconds), str(probe_out)],
                          env=base_process_env(workdir), cwd=workdir)
            try:
                print(f"[bench] idle: {args.idle:.0f} s (RSS, /health baseline)", flush=True)
                t_idle0 = time.monotonic()
                await asyncio.sleep(args.idle)
                t_idle1 = time.monotonic()
                info["rss_idle"] = sampler.peak(t_idle0, t_idle1)

                # -- 3. concurrency -----------------------------------------------------------------
                print(f"[bench] concurrency: {args.streams} conversations arriving over {args.ramp:.0f} s, "
                      f"a text delta every {args.delta_interval} s, all held open {args.steady:.0f} s, "
                      f"finishing over {args.ramp:.0f} s", flush=True)
                cpu1 = cpu_seconds(pid)
                others0 = {name: cpu_seconds(p) for name, p in others.items()}
                self0 = sum(os.times()[:2])
                machine0 = machine_busy_seconds()
                conc = await concurrency_phase(http, ep, args.streams, args.ramp, args.steady, args.delta_interval,
                                               ramp_timeout=args.ramp + 60, drain_timeout=args.ramp + 60)
                info["cpu_conc_s"] = cpu_seconds(pid) - cpu1
                info["cpu_others"] = {"load generator": sum(os.times()[:2]) - self0,
                                      **{name: cpu_seconds(p) - others0[name] for name, p in others.items()}}
                info["cpu_foreign"] = (machine_busy_seconds() - machine0 - info["cpu_conc_s"]
                                       - sum(info["cpu_others"].values()))
                await asyncio.sleep(1.0)
                t_after0 = time.monotonic()
                await asyncio.sleep(1.0)
                info["rss_after"] = sampler.peak(t_after0, time.monotonic())
            finally:
                probe.stop()
            try:
                health = json.loads(probe_out.read_text())
            except (OSError, ValueError):
                raise BenchError("the /health probe wrote no samples") from None
            info["hwm"] = read_status_kib(f"/proc/{pid}/status", "VmHWM")
            async with http.get(ep.anthropic + "/bench/stats") as r:
                info["anthropic_stats"] = await r.json()
    finally:
        sampler.stop()

    # ---- figures --------------------------------------------------------------------------------
    d50, d99 = percentile([s.total for s in direct], 50), percentile([s.total for s in direct], 99)
    s50, s99 = percentile([s.total for s in via], 50), percentile([s.total for s in via], 99)
    add50, add99 = s50 - d50, s99 - d99
    rows.append(Row("TTFT direct to the stand-in p50 / p99", f"{fmt_ms(d50)} / {fmt_ms(d99)}"))
    rows.append(Row("TTFT through the service p50 / p99", f"{fmt_ms(s50)} / {fmt_ms(s99)}",
                    baseline="direct", ratio=f"{s50 / d50:.1f}x / {s99 / d99:.1f}x"))
    rows.append(Row("added TTFT p50 (service p50 - direct p50)", fmt_ms(add50), f"< {ADDED_TTFT_P50_MS:g} ms",
                    add50 * 1000 < ADDED_TTFT_P50_MS, f"direct {fmt_ms(d50)}", f"{s50 / d50:.1f}x"))
    rows.append(Row("added TTFT p99 (service p99 - direct p99)", fmt_ms(add99), f"< {ADDED_TTFT_P99_MS:g} ms",
                    add99 * 1000 < ADDED_TTFT_P99_MS, f"direct {fmt_ms(d99)}", f"{s99 / d99:.1f}x"))
    nfail = sum(info["ttft_failures"].values())
    rows.append(Row("  TTFT samples that failed", str(nfail), "0", nfail == 0))
    for kind, count in sorted(info["ttft_failures"].items(), key=lambda kv: -kv[1]):
        rows.append(Row(f"    failed: {kind}", str(count)))
    sdk = info.get("sdk_ttft")
    if sdk:
        k50, k99 = percentile(sdk, 50), percentile(sdk, 99)
        rows.append(Row("  for reference: TTFT via the anthropic SDK directly p50 / p99",
                        f"{fmt_ms(k50)} / {fmt_ms(k99)}", baseline="direct",
                        ratio=f"SDK adds {fmt_ms(k50 - d50)} / {fmt_ms(k99 - d99)}"))
    rows.append(Row("  CPU used by unrelated work on the machine meanwhile",
                    f"{info['foreign_ttft_cores']:.2f} of {os.cpu_count()} cores"))
    for name, attr in (("POST messages round trip", "post"), ("GET events until headers", "open"),
                       ("headers -> first text-delta", "first")):
        vals = [getattr(s, attr) for s in via]
        rows.append(Row(f"  service TTFT part: {name} p50 / p99",
                        f"{fmt_ms(percentile(vals, 50))} / {fmt_ms(percentile(vals, 99))}"))
    rows.append(Row("  service CPU per sample (session + turn)", f"{info['cpu_per_turn_ms']:.1f} ms"))
    rows.append(Row("  MySQL statements per turn / per session create",
                    f"{info['sql_per_turn']:.1f} / {info['sql_per_session']:.1f}"))

    errors = sum(conc.errors.values())
    rows.append(Row("concurrent conversations: completed / errors", f"{conc.ok} / {errors}",
                    f"{conc.n} / 0", conc.ok == conc.n and errors == 0))
    rows.append(Row("  peak simultaneously streaming", str(conc.peak_streaming), f"{conc.n}",
                    conc.peak_streaming == conc.n))
    if conc.errors:
        for kind, count in sorted(conc.errors.items(), key=lambda kv: -kv[1]):
            rows.append(Row(f"    error: {kind}", str(count)))
    ramp_done = (conc.t_all_streaming - conc.t_start) if conc.t_all_streaming else float("nan")
    rows.append(Row("  time until all were streaming", f"{ramp_done:.1f} s (ramp {args.ramp:.0f} s)"))
    fd = conc.first_delta_s
    rows.append(Row("  time to first token under load p50 / p99",
                    f"{fmt_ms(percentile(fd, 50))} / {fmt_ms(percentile(fd, 99))}",
                    baseline=f"stand-in pacing {3 * args.delta_interval * 1000:.0f} ms"))
    for name, key in (("session created", "session"), ("message accepted", "message"),
                      ("events stream open", "events")):
        v = conc.steps[key]
        rows.append(Row(f"    under load, {name} after p50 / p99",
                        f"{fmt_ms(percentile(v, 50))} / {fmt_ms(percentile(v, 99))}"))
    dur = conc.t_end - conc.t_start
    rows.append(Row("  text deltas delivered", f"{conc.deltas} ({conc.deltas / dur:.0f}/s)"))
    rows.append(Row("  service CPU during the phase", f"{info['cpu_conc_s']:.1f} s of {dur:.1f} s "
                    f"({info['cpu_conc_s'] / dur * 100:.0f}% of one core)"))
    rows.append(Row("  others' CPU in that time", ", ".join(f"{k} {v:.1f} s" for k, v in info["cpu_others"].items())))
    info["cpu_foreign"] = max(0.0, info["cpu_foreign"])
    info["foreign_cores"] = info["cpu_foreign"] / dur
    rows.append(Row("  CPU used by unrelated work on the machine meanwhile",
                    f"{info['cpu_foreign']:.1f} s ({info['foreign_cores']:.2f} of {os.cpu_count()} cores)"))

    idle_h = [ms for t, ms, st in health if t_idle0 <= t <= t_idle1 and st == 200]
    load = [(ms, st) for t, ms, st in health if conc.t_start <= t <= conc.t_end]
    load_ms = [ms for ms, st in load]
    bad = sum(1 for _, st in load if st != 200)
    hi99, hl99 = percentile(idle_h, 99), percentile(load_ms, 99)
    rows.append(Row("/health p99 during the concurrency phase", f"{hl99:.2f} ms", f"< {HEALTH_P99_MS:g} ms",
                    hl99 < HEALTH_P99_MS and bad == 0, f"idle {hi99:.2f} ms", f"{hl99 / hi99:.1f}x"))
    rows.append(Row("  /health p50 / max / probes / non-200",
                    f"{percentile(load_ms, 50):.2f} / {max(load_ms, default=float('nan')):.2f} ms / "
                    f"{len(load_ms)} / {bad}"))
    t_all = conc.t_all_streaming or conc.t_release
    for name, a, b in (("arrivals (until all streaming)", conc.t_start, t_all),
                       ("steady (all streaming)", t_all, conc.t_release),
                       ("finishing (after release)", conc.t_release, conc.t_end)):
        part = [ms for t, ms, st in health if a <= t <= b]
        if part:
            rows.append(Row(f"    /health p50 / p99 / max, {name}",
                            f"{percentile(part, 50):.2f} / {percentile(part, 99):.2f} / {max(part):.2f} ms"))

    rows.append(Row("RSS idle (after warm-up, peak VmRSS)", f"{info['rss_idle'] / MIB:.1f} MiB",
                    f"< {RSS_IDLE_MIB:g} MiB", info["rss_idle"] / MIB < RSS_IDLE_MIB,
                    f"fresh {info['rss_fresh'] / MIB:.1f} MiB"))
    rss_load = sampler.peak(conc.t_start, conc.t_end)
    rows.append(Row(f"RSS peak during {conc.n} streams", f"{rss_load / MIB:.1f} MiB", f"< {RSS_LOAD_MIB:g} MiB",
                    rss_load / MIB < RSS_LOAD_MIB, f"idle {info['rss_idle'] / MIB:.1f} MiB",
                    f"{rss_load / info['rss_idle']:.1f}x"))
    rows.append(Row("  RSS after the streams ended / kernel VmHWM",
                    f"{info['rss_after'] / MIB:.1f} MiB / {(info['hwm'] or 0) / 1024:.1f} MiB"))
    return rows, info


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
    ap.add_argument("--quick", action="store_true", help="smoke run: 50 streams, 60 TTFT samples, short phases")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    ap.add_argument("--streams", type=int, help="concurrent conversations (default 500; quick 50)")
    ap.add_argument("--samples", type=int, help="TTFT samples each, direct and service (default 400; quick 60)")
    ap.add_argument("--warmup", type=int, help="TTFT warm-up rounds, not counted (default 30; quick 10)")
    ap.add_argument("--ramp", type=float, help="seconds over which the conversations arrive (default 5; quick 1)")
    ap.add_argument("--steady", type=float, help="seconds all conversations stay streaming (default 10; quick 2)")
    ap.add_argument("--delta-interval", type=float, default=0.1, help="stand-in seconds between SSE events")
    ap.add_argument("--idle", type=float, help="quiet seconds for idle RSS and /health (default 3; quick 2)")
    ap.add_argument("--health-interval", type=float, default=0.05, help="seconds between /health probes")
    ap.add_argument("--no-tracing", action="store_true", help="run without LANGCHAIN_API_KEY (tracing off)")
    ap.add_argument("--max-seconds", type=float, help="hard limit for the measurement (default 600; quick 180)")
    ap.add_argument("--nice", type=int, default=-10 if os.geteuid() == 0 else 0,
                    help="niceness for the bench and all its processes (default -10 as root: less noise from "
                         "other work on a shared machine; 0 leaves it)")
    ap.add_argument("--keep-log", action="store_true", help="copy the service log to ./bench-service.log")
    a = ap.parse_args(argv)
    q = a.quick
    for name, full, quick in (("streams", 500, 50), ("samples", 400, 60), ("warmup", 30, 10), ("ramp", 5.0, 1.0),
                              ("steady", 10.0, 2.0), ("idle", 3.0, 2.0), ("max_seconds", 600.0, 180.0)):
        if getattr(a, name) is None:
            setattr(a, name, quick if q else full)
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
        PRIORITY["nice"] = args.nice
        set_priority("self", args.nice)
    started = time.monotonic()
    load = os.getloadavg()
    print(f"[bench] agent-backend benchmark ({'quick' if args.quick else 'full'}); {os.cpu_count()} CPUs, "
          f"load average {load[0]:.2f} at start; niceness {os.nice(0)}", flush=True)
    bed: Testbed | None = None
    with contextlib.ExitStack() as stack:
        try:
            bed = stack.enter_context(testbed(args))
            service, db, workdir, urls, ep = bed.service, bed.db, bed.workdir, bed.urls, bed.ep
            print(f"[bench] service pid {service.pid} on {ep.service}: one process, LOG_LEVEL=INFO, "
                  f"ENVIRONMENT=production, tracing {'OFF' if args.no_tracing else 'ON -> LangSmith stand-in'}",
                  flush=True)
            try:
                rows, info = asyncio.run(asyncio.wait_for(measure(args, ep, service, workdir, db, bed.pids), args.max_seconds))
            except asyncio.TimeoutError:
                raise BenchError(f"measurement did not finish within {args.max_seconds:.0f} s") from None
            if service.proc.poll() is not None:
                raise BenchError(f"service exited with status {service.proc.returncode} during the benchmark")
            if not args.no_tracing:
                with urllib.request.urlopen(urls["langsmith"] + "/bench/stats", timeout=5) as r:
                    ls = json.loads(r.read())
                rows.append(Row("LangSmith stand-in: runs received / turns ended", f"{ls['runs']} / "
                                f"{ls['root_runs_ended']}"))
            levels: dict[str, int] = {}
            for line in (workdir / "service.log").read_text(errors="replace").splitlines():
                with contextlib.suppress(ValueError, AttributeError):
                    lvl = json.loads(line).get("level", "?")
                    levels[lvl] = levels.get(lvl, 0) + 1
            rows.append(Row("service log lines by level", ", ".join(f"{k} {v}" for k, v in sorted(levels.items()))))
        except (BenchError, Exception) as exc:
            print(f"[bench] ERROR: {type(exc).__name__}: {exc}", file=sys.stderr)
            with contextlib.suppress(Exception):
                assert bed is not None
                tail = (bed.workdir / "service.log").read_text(errors="replace").splitlines()[-15:]
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
          f"{args.health_interval * 1000:.0f} ms from a separate process. RSS: VmRSS of the service pid every 20 ms.")
    print(f"Set-up: {args.samples} TTFT samples (+{args.warmup} warm-up); {args.streams} conversations, "
          f"ramp {args.ramp:g} s, steady {args.steady:g} s, stand-in event interval {args.delta_interval:g} s; "
          f"LangSmith {'off' if args.no_tracing else 'on (stand-in)'}; MariaDB 10.11 throwaway "
          f"(innodb_flush_log_at_trx_commit=2); {os.cpu_count()} CPUs shared by everything.")
    print()
    print_table(rows)
    missed = [r for r in rows if r.ok is False]
    busy = max(info.get("foreign_cores", 0), info.get("foreign_ttft_cores", 0))
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
