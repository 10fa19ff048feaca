"""The benchmark's upstreams, each in a process of its own: `python ci/bench_standins.py KIND`.

KIND is `anthropic`, `platform`, `langsmith` or `mcp`: the project's stand-ins (tests/support/standins/),
run in a separate process so that neither the load generator nor the service shares a GIL with
them. `mcp` is the Seqera MCP stand-in (the `mcp` SDK's own server, streamable HTTP at `/mcp`; its
READY line gives that URL): it checks Bearer tokens against a Platform stand-in object of its own,
never started, that holds the same users as the `platform` process. The process prints `READY <url>` on stdout once it listens on 127.0.0.1, and runs until
SIGTERM/SIGINT or until its stdin reaches EOF (its parent, ci/bench.py, went away).

Secrets come from the environment, never argv: BENCH_ANTHROPIC_KEY (the API key the Anthropic
stand-in requires), BENCH_TOKEN (the bench's main Platform access token) and BENCH_MORE_TOKENS (more
tokens, comma-separated, each a user of its own: the MCP phase's, and one per turn that must find
its token's MCP tool list not cached). The Platform and MCP stand-ins accept exactly these.

Anthropic: the reply is chosen by a marker in the newest user message, so the load generator
controls each conversation's pacing through the service without any side channel:
  `[bench fast]`           ANSWER as len(ANSWER.split()) text deltas, no delay (TTFT samples);
  `[bench hold=S]`         ANSWER with S seconds between SSE events; after the first text delta the
                           stream keeps sending a text delta every S seconds until POST /bench/release,
                           then finishes the answer (a steady population of concurrent streams).
                           `POST /bench/release?spread=T` lets the held streams go in the order they
                           started holding, spread evenly over T seconds (completions paced like arrivals);
  `[bench mcp=N]`          calls the read-only Seqera MCP tool MCP_TOOL (MCP_ARGS) N times, one call
                           per model request, then ANSWER as with `[bench fast]` (the service runs the
                           calls itself; the stand-in counts the tool results sent back since the marker).
GET /bench/stats answers {"holding", "streams_in_flight", "replies"}; POST /bench/arm re-arms the hold.
GET /bench/last-request answers the body of the newest `POST /v1/messages` whose marker was `[bench fast]`
(404 before one came): the bench takes the service's upstream request from it, so that every target it
compares (direct, the service, LiteLLM, the minimal relay) sends the stand-in the same body.
The Anthropic stand-in keeps no requests (the bench sends thousands); LangSmith's keeps them, so
/bench/stats there counts runs.
"""
from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiohttp import web  # noqa: E402

from tests.support.proc import die_with_parent, stop_event  # noqa: E402
from tests.support.standins.anthropic import AnthropicStandIn, Reply  # noqa: E402
from tests.support.standins.langsmith import LangSmithStandIn  # noqa: E402
from tests.support.standins.platform import PlatformStandIn  # noqa: E402

ANSWER = "The benchmark answer streams from the stand-in model in several small text deltas, as Claude does."
HOLD_TICK = "tick "
_MARKER = re.compile(r"\[bench (fast|hold=([0-9.]+)|mcp=([0-9]+))\]")
MCP_REMOTE_TOOL = "search_nfcore_module"  # read-only: the service calls it without asking the user
MCP_TOOL = "mcp__seqera__" + MCP_REMOTE_TOOL  # as the service offers it to the model
MCP_ARGS = {"query": "fastqc"}


def _text_of(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    return ""


def _marker(body: dict[str, Any]) -> tuple[re.Match[str] | None, int]:
    """The marker of the newest user message that has text, and how many user messages of tool results
    came after it (this turn's tool calls answered so far)."""
    results = 0
    for message in reversed(body.get("messages") or []):
        if message.get("role") != "user":
            continue
        text = _text_of(message)
        if text:
            return _MARKER.search(text), results
        results += 1
    return None, results


class BenchAnthropic(AnthropicStandIn):
    keep_requests = False  # the bench sends thousands; the routes still see each one's parsed body

    def __init__(self, api_key: str) -> None:
        super().__init__(api_key=api_key, smart=False, default_answer=ANSWER)
        self.holding_now = 0
        self.replies = 0
        self._bench_release: asyncio.Event | None = None
        self._hold_seq = 0          # order in which streams started holding (since the last arm)
        self._released_at = 0.0     # loop time of the release
        self._spread = 0.0
        self._held_at_release = 1
        self.last_fast_body: dict[str, Any] | None = None

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/bench/release", self._release_route)
        app.router.add_post("/bench/arm", self._arm_route)
        app.router.add_get("/bench/stats", self._stats_route)
        app.router.add_get("/bench/last-request", self._last_request_route)
        super().routes(app)

    async def _last_request_route(self, request: web.Request) -> web.Response:
        if self.last_fast_body is None:
            return web.json_response({"error": "no [bench fast] request yet"}, status=404)
        return web.json_response(self.last_fast_body)

    def _event(self) -> asyncio.Event:
        if self._bench_release is None:
            self._bench_release = asyncio.Event()
        return self._bench_release

    async def _release_route(self, request: web.Request) -> web.Response:
        self._spread = float(request.query.get("spread", "0") or 0)
        self._released_at = asyncio.get_running_loop().time()
        self._held_at_release = max(self._hold_seq, 1)
        self._event().set()
        return web.json_response({"released": self.holding_now})

    async def _arm_route(self, request: web.Request) -> web.Response:
        self._event().clear()
        self._hold_seq = 0
        return web.json_response({"armed": True})

    async def _stats_route(self, request: web.Request) -> web.Response:
        return web.json_response({"holding": self.holding_now, "streams_in_flight": self.streams_in_flight,
                                  "replies": self.replies})

    def default_reply(self, body: dict[str, Any]) -> Reply:
        self.replies += 1
        m, answered = _marker(body)
        if m and m.group(2):
            return Reply.text(ANSWER, delay=float(m.group(2)), hold_after=1)
        if m and m.group(3) and answered < int(m.group(3)):
            return Reply.tool_use(MCP_TOOL, MCP_ARGS)
        if m and m.group(1) == "fast":
            self.last_fast_body = body
        return Reply.text(ANSWER)

    async def _hold(self, send: Any, releases_at_start: int) -> None:
        """Instead of the base class's pings: a text delta per `delay` until /bench/release (the base
        class's release() count, `releases_at_start`, is not used here)."""
        ev = self._event()
        loop = asyncio.get_running_loop()
        rank = self._hold_seq
        self._hold_seq += 1
        self.holding_now += 1

        def released() -> bool:
            return ev.is_set() and loop.time() >= (
                self._released_at + self._spread * rank / self._held_at_release)

        try:
            while not released():
                # `send` sleeps the reply's delay after each event: that is the pacing.
                await send("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                   "delta": {"type": "text_delta", "text": HOLD_TICK}})
        finally:
            self.holding_now -= 1


class BenchLangSmith(LangSmithStandIn):
    def routes(self, app: web.Application) -> None:
        app.router.add_get("/bench/stats", self._stats_route)
        super().routes(app)

    async def _stats_route(self, request: web.Request) -> web.Response:
        with self._lock:
            runs = list(self.runs.values())
            self.requests.clear()  # bodies are only needed for leak checks in tests; keep memory flat
        return web.json_response({"runs": len(runs),
                                  "root_runs_ended": sum(1 for r in runs
                                                         if not r.get("parent_run_id") and r.get("end_time"))})


def bench_platform() -> PlatformStandIn:
    """A Platform stand-in (not started) that knows the bench's users: BENCH_TOKEN's and BENCH_MORE_TOKENS'."""
    platform = PlatformStandIn()
    more = [t for t in os.environ.get("BENCH_MORE_TOKENS", "").split(",") if t]
    for i, token in enumerate([os.environ["BENCH_TOKEN"], *more]):
        platform.add_user(token, f"bench-user-{i}" if i else "bench-user", orgs=[{"orgId": 1, "name": "bench"}])
    return platform


def bench_mcp() -> Any:
    """The MCP stand-in (its tokens: the bench's users)."""
    from tests.support.standins.mcp import McpStandIn  # the `mcp` SDK: only this process pays its import

    return McpStandIn(bench_platform())


KINDS = ("anthropic", "platform", "langsmith", "mcp")


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in KINDS:
        print(f"usage: bench_standins.py {'|'.join(KINDS)}", file=sys.stderr)
        return 2
    die_with_parent()  # belt and braces besides the stdin watch of stop_event()
    kind = argv[0]
    if kind == "anthropic":
        standin: Any = BenchAnthropic(api_key=os.environ["BENCH_ANTHROPIC_KEY"])
    elif kind == "platform":
        standin = bench_platform()
    elif kind == "mcp":
        standin = bench_mcp()
    else:
        standin = BenchLangSmith()
    standin.start()
    done = stop_event()
    print(f"READY {standin.url}", flush=True)
    done.wait()
    standin.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
