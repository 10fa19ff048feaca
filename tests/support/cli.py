"""A client of the service that speaks the `/v1/cli` protocol exactly as the Seqera CLI 1.12.0 does; the
service tests and ci/bench.py use it.

Headers, bodies and the order of calls are the real binary's, as service/README.md ("Protocol notes")
describes them and service/agent_backend/openapi.yaml specifies the routes: the message is POSTed
before the event stream is opened; the first events GET has no cursor; a reconnect sends
`?cursor=<last id + 1>`; execute-local parts are answered with POST tool-results while the stream stays
open. The SSE reader is strict about what the CLI's live parser can read: frames are separated by
"\\n\\n" only, one `data:` line per frame holding one-line JSON (tests/support/sse.py, strict),
integer ids that increase.

    cli = Cli(http_session, base_url, token)
    sid = await cli.create_session()
    turn = await cli.turn(sid, "please run `echo hi`", tools=run_bash)   # run_bash: runs it for real
    turn.text, turn.terminal, turn.events                                  # terminal: the finish/error part

    held = await start_held_turn(cli, anthropic, "an answer the model holds")   # answer under way, paused
    await eventually(lambda: anthropic.message_requests, what="the model call")  # poll until truthy
"""
from __future__ import annotations

import asyncio
import collections
import inspect
import json
import uuid
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import aiohttp

from tests.support import sse
from tests.support.standins.anthropic import AnthropicStandIn, Reply

CLIENT_VERSION = "1.12.0"
USER_AGENT = "Bun/1.4.2"
# A bound on any single wait so that a hang fails the test with a message instead of blocking the run.
# Not a performance assertion: every wait here is expected to end far sooner.
WAIT = 30.0
TERMINAL = ("finish", "error")


@dataclass
class Response:
    status: int
    body: Any
    headers: dict[str, str]
    text: str

    @property
    def detail(self) -> str:
        return self.body.get("detail", "") if isinstance(self.body, dict) else ""


@dataclass
class Event:
    """One SSE frame: `id` (int or None), `data` (parsed JSON or None), `event` name, or a comment."""

    id: int | None = None
    data: Any = None
    event: str | None = None
    comment: str | None = None
    raw: str = ""

    @property
    def type(self) -> str | None:
        return self.data.get("type") if isinstance(self.data, dict) else None


class ProtocolError(AssertionError):
    """The service sent something the CLI could not read."""


class EventStream:
    """An open `GET .../events` response, read frame by frame."""

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self.resp = resp
        self.status = resp.status
        self.events: list[Event] = []
        self._buf = b""
        self._frames: collections.deque[str] = collections.deque()  # complete, not yet parsed
        self._eof = False
        self.last_id: int | None = None

    async def next(self, timeout: float = WAIT) -> Event | None:
        """The next frame (comments included), or None at the end of the body."""
        while not self._frames:
            if self._eof:
                if self._buf.strip():
                    raise ProtocolError(f"stream ended inside a frame: {self._buf!r}")
                return None
            try:
                async with asyncio.timeout(timeout):  # unlike wait_for, no task per read
                    chunk = await self.resp.content.readany()
            except TimeoutError:
                raise AssertionError(f"no SSE frame within {timeout}s; got so far: "
                                     f"{[e.data or e.comment for e in self.events][-10:]}") from None
            if not chunk:
                self._eof = True
            frames, self._buf = sse.take_frames(self._buf + chunk)
            self._frames.extend(frames)
        try:
            frame = sse.parse_frame(self._frames.popleft(), strict=True)
        except sse.SSEError as e:
            raise ProtocolError(str(e)) from None
        ev = Event(id=None if frame.id is None else int(frame.id), data=frame.json(), event=frame.event,
                   comment=frame.comment, raw=frame.raw)
        if ev.id is not None:
            if self.last_id is not None and ev.id <= self.last_id:
                raise ProtocolError(f"SSE id went from {self.last_id} to {ev.id}")
            self.last_id = ev.id
        self.events.append(ev)
        return ev

    async def next_part(self, timeout: float = WAIT) -> Event | None:
        """The next frame that carries data (skips comments / heartbeats)."""
        while True:
            ev = await self.next(timeout)
            if ev is None or ev.data is not None or ev.event == "done":
                return ev

    async def until(self, predicate: Callable[[Event], bool], timeout: float = WAIT) -> Event:
        while True:
            ev = await self.next_part(timeout)
            if ev is None:
                raise AssertionError(f"stream ended before the expected part; parts: {self.types()}")
            if predicate(ev):
                return ev

    async def until_type(self, *types: str, timeout: float = WAIT) -> Event:
        return await self.until(lambda e: e.type in types, timeout)

    async def read_to_end(self, timeout: float = WAIT) -> list[Event]:
        while await self.next(timeout) is not None:
            pass
        return self.events

    def parts(self) -> list[dict[str, Any]]:
        return [e.data for e in self.events if isinstance(e.data, dict)]

    def types(self) -> list[str | None]:
        return [e.type for e in self.events if e.data is not None]

    def text(self) -> str:
        return "".join(p.get("delta", "") for p in self.parts() if p.get("type") == "text-delta")

    def drop(self) -> None:
        """Close the connection abruptly, as a network failure would."""
        self.resp.close()

    async def close(self) -> None:
        self.resp.release()


@dataclass
class Turn:
    run_id: str
    events: list[Event]
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # execute-local parts answered

    @property
    def parts(self) -> list[dict[str, Any]]:
        return [e.data for e in self.events if isinstance(e.data, dict)]

    @property
    def types(self) -> list[str]:
        return [p.get("type") for p in self.parts]

    @property
    def text(self) -> str:
        return "".join(p.get("delta", "") for p in self.parts if p.get("type") == "text-delta")

    @property
    def terminal(self) -> dict[str, Any]:
        last = self.parts[-1]
        assert last.get("type") in TERMINAL, f"turn did not end with finish/error: {self.types}"
        return last


ToolRunner = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]] | dict[str, Any]]


class Cli:
    def __init__(self, http: aiohttp.ClientSession, base_url: str, token: str | None) -> None:
        self.http, self.base_url, self.token = http, base_url.rstrip("/"), token

    def headers(self, *, version: bool = True, extra: dict[str, str] | None = None) -> dict[str, str]:
        h = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        if self.token is not None:
            h["Authorization"] = f"Bearer {self.token}"
        if version:
            h["X-Client-Version"] = CLIENT_VERSION
        h.update(extra or {})
        return h

    async def request(self, method: str, path: str, *, json_body: Any = None, data: bytes | str | None = None,
                      version: bool = True, headers: dict[str, str] | None = None,
                      timeout: float = WAIT) -> Response:
        kw: dict[str, Any] = {"headers": self.headers(version=version, extra=headers),
                              "timeout": aiohttp.ClientTimeout(total=timeout)}
        if json_body is not None:
            kw["data"] = json.dumps(json_body)
        elif data is not None:
            kw["data"] = data
        async with self.http.request(method, self.base_url + path, **kw) as resp:
            text = await resp.text()
            try:
                body = json.loads(text) if text else None
            except ValueError:
                body = None
            return Response(resp.status, body, dict(resp.headers), text)

    async def get(self, path: str, **kw: Any) -> Response:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, body: Any = None, **kw: Any) -> Response:
        return await self.request("POST", path, json_body=body, **kw)

    # ---- the CLI's calls --------------------------------------------------------------------------
    def session_body(self, cwd: str = "/home/user/pipeline", **fields: Any) -> dict[str, Any]:
        """The body of `POST /v1/cli/sessions` the headless CLI sends from `cwd`; `fields` replace or add keys."""
        body = {
            "cwd": cwd,
            "approval_mode": "auto",
            "local_execution": True,
            "headless": True,
            "directory_context": {"cwd": cwd, "directory_tree": cwd, "git_status": {"is_git_repo": False},
                                  "directory_listing": ""},
        }
        body.update(fields)
        return body

    async def create_session(self, cwd: str = "/home/user/pipeline", *, expect: int | None = 200,
                             **fields: Any) -> str:
        r = await self.post("/v1/cli/sessions", self.session_body(cwd, **fields))
        if expect is not None:
            assert r.status == expect, f"create session: {r.status} {r.text}"
        sid = (r.body or {}).get("session_id") if isinstance(r.body, dict) else None
        return sid  # type: ignore[return-value]

    def user_message(self, content: str, *, run_id: str | None = None, mode: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"type": "user_message", "content": content, "run_id": run_id or str(uuid.uuid4()),
                                "verbose": False, "interaction_mode": "headless", "caller": "script"}
        if mode is not None:
            body["mode"] = mode
        return body

    async def send(self, sid: str, content: str, *, run_id: str | None = None, mode: str | None = None) -> Response:
        return await self.post(f"/v1/cli/sessions/{sid}/messages", self.user_message(content, run_id=run_id, mode=mode))

    async def cancel(self, sid: str) -> Response:
        return await self.post(f"/v1/cli/sessions/{sid}/messages", {"type": "cancel"})

    async def tool_result(self, sid: str, request_id: str, stdout: str = "", stderr: str = "",
                          exit_code: int = 0) -> Response:
        return await self.post(f"/v1/cli/sessions/{sid}/tool-results", {
            "request_id": request_id, "result": {"stdout": stdout, "stderr": stderr, "exit_code": exit_code}})

    async def expire(self, sid: str) -> Response:
        return await self.request("POST", f"/v1/cli/sessions/{sid}/expire", version=False)

    async def list_sessions(self, **query: Any) -> Response:
        qs = "&".join(f"{k}={v}" for k, v in query.items())
        return await self.get("/v1/cli/sessions" + (f"?{qs}" if qs else ""), version=False)

    async def messages(self, sid: str) -> Response:
        return await self.get(f"/v1/cli/sessions/{sid}/messages", version=False)

    async def open_events(self, sid: str, *, cursor: int | None = None, history_only: bool = False,
                          expect: int | None = 200) -> EventStream:
        params = []
        if cursor is not None:
            params.append(f"cursor={cursor}")
        if history_only:
            params.append("history_only=true")
        url = f"{self.base_url}/v1/cli/sessions/{sid}/events" + (("?" + "&".join(params)) if params else "")
        if history_only:
            headers = {"Accept": "text/event-stream", "User-Agent": USER_AGENT}
            if self.token is not None:
                headers["Authorization"] = f"Bearer {self.token}"
        else:
            headers = self.headers(extra={"Accept": "text/event-stream", "X-Client-Explicit-Cancel": "1"})
        resp = await self.http.get(url, headers=headers,
                                   timeout=aiohttp.ClientTimeout(total=None, sock_connect=WAIT))
        stream = EventStream(resp)
        if expect is not None and resp.status != expect:
            body = await resp.text()
            resp.release()
            raise AssertionError(f"events: expected {expect}, got {resp.status} {body}")
        if resp.status == 200:
            ctype = resp.headers.get("Content-Type", "")
            assert ctype.startswith("text/event-stream"), f"events Content-Type {ctype!r}"
        return stream

    async def follow(self, sid: str, stream: EventStream, tools: ToolRunner | None = None,
                     answered: list[dict[str, Any]] | None = None) -> None:
        """Read until finish/error, answering execute-local parts like the headless CLI does."""
        while True:
            ev = await stream.next_part()
            if ev is None:
                raise AssertionError(f"stream closed without finish/error; parts: {stream.types()}")
            if ev.type == "execute-local":
                part = ev.data
                assert part.get("toolName") and part.get("requestId"), f"bad execute-local part {part}"
                if tools is None:
                    result = {"stdout": "", "stderr": f"Unknown tool: {part['toolName']}", "exit_code": 1}
                else:
                    result = tools(part["toolName"], part.get("args") or {})
                    if asyncio.iscoroutine(result):
                        result = await result
                if answered is not None:
                    answered.append(part)
                r = await self.tool_result(sid, part["requestId"], **result)
                assert r.status < 300, f"tool-results: {r.status} {r.text}"
            if ev.type in TERMINAL:
                return

    async def turn(self, sid: str, content: str, *, tools: ToolRunner | None = None, run_id: str | None = None,
                   mode: str | None = None) -> Turn:
        """One user turn as the headless CLI runs it: POST the message, stream events, answer tools."""
        run_id = run_id or str(uuid.uuid4())
        r = await self.send(sid, content, run_id=run_id, mode=mode)
        assert r.status < 300, f"send message: {r.status} {r.text}"
        stream = await self.open_events(sid)
        answered: list[dict[str, Any]] = []
        try:
            await self.follow(sid, stream, tools, answered)
        finally:
            await stream.close()
        return Turn(run_id, stream.events, answered)


async def run_bash(tool: str, args: dict[str, Any]) -> dict[str, Any]:
    """Run execute_bash_local for real (like the CLI), anything else answers 'Unknown tool'."""
    if tool != "execute_bash_local":
        return {"stdout": "", "stderr": f"Unknown tool: {tool}", "exit_code": 1}
    proc = await asyncio.create_subprocess_exec("/bin/bash", "-c", args["command"],
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return {"stdout": out.decode(), "stderr": err.decode(), "exit_code": proc.returncode}


@dataclass
class HeldTurn:
    """A turn whose answer has started streaming and is held by the model (until `anthropic.release()`)."""

    sid: str
    sent: Response        # the POST .../messages answer (body: run_id)
    stream: EventStream   # open, read up to `first`
    first: Event          # the first text-delta part


async def start_held_turn(cli: Cli, anthropic: AnthropicStandIn, answer: str, *, hold_after: int = 1,
                          message: str = "go", sid: str | None = None) -> HeldTurn:
    """Script `Reply.held(answer, hold_after)`, create a session (unless `sid` is given), POST `message`,
    open the event stream and read it up to the first text-delta: the state in which a test cancels,
    drops the stream, stops the database or the service."""
    anthropic.script(Reply.held(answer, hold_after=hold_after))
    sid = sid or await cli.create_session()
    sent = await cli.send(sid, message)
    assert sent.status < 300, f"send message: {sent.status} {sent.text}"
    stream = await cli.open_events(sid)
    first = await stream.until_type("text-delta")
    return HeldTurn(sid, sent, stream, first)


async def eventually(probe: Callable[[], Any], check: Callable[[Any], Any] = bool, *, what: str,
                     timeout: float = WAIT, interval: float = 0.05) -> Any:
    """Call `probe()` (a plain or async function) until `check(result)` holds and return that result;
    fail with `what` and the last result after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = probe()
        if inspect.isawaitable(result):
            result = await result
        if check(result):
            return result
        assert asyncio.get_running_loop().time() < deadline, \
            f"timed out after {timeout:g}s waiting for {what}; last: {str(result)[:500]}"
        await asyncio.sleep(interval)
