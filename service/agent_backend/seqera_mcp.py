"""Seqera MCP (SEQERA_MCP_URL): the user's own Seqera Platform as tools the model can call, run here on
the service with the caller's own access token (official `mcp` SDK, streamable HTTP).

- The tool list comes from the server (`tools/list`, every page), cached per token (by its sha256) for
  `mcp_tools_ttl` seconds, and is offered to the model as `mcp__seqera__<tool>`.
- Each run has its own `McpSession`: the token lives there, in memory, for the run only; the connection
  is opened when first needed, reconnected once when it dies (`mcp_connections_per_run`), and closed
  when the run ends (a cancel or an expire included).
- The SDK's client lives in a task of its own (`_Connection`): a server that dies then fails the run's
  request (MCPError) instead of cancelling the run itself.
- Trouble never takes a run down: it becomes a `problem` (one line the model is told) or an error
  result; an outage is logged once, when it starts, and for `mcp_retry_after` seconds no run tries
  again (a token MCP rejects: not for `mcp_tools_ttl`). A call that may already have changed something
  is never repeated.
The token goes to SEQERA_MCP_URL only: never to the model, logs, traces or MySQL. Tool arguments and
results are logged at DEBUG at most.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import re
import time
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from .config import Config
from .logs import log, strip_userinfo

logger = logging.getLogger("agent_backend.mcp")
PREFIX = "mcp__seqera__"
MAX_NAME = 64       # Anthropic's limit on a tool name (^[a-zA-Z0-9_-]{1,64}$)
MAX_PAGES = 50      # tools/list pages read at most
MAX_CACHE = 10_000
MAX_SHARED = 64     # distinct tool lists kept for sharing (one, usually: every user sees the same tools)
MAX_RESULT = 60_000  # characters of a result the model sees


def model_name(remote: str) -> str:
    """The name the model (and the CLI's TUI, which titles `mcp__<server>__<tool>`) sees for a tool."""
    return (PREFIX + re.sub(r"[^A-Za-z0-9_-]", "_", remote))[:MAX_NAME]


@dataclasses.dataclass(frozen=True)
class McpTool:
    name: str          # as the model sees it (model_name)
    remote: str        # as the server named it
    description: str
    input_schema: dict
    read_only: bool    # the server annotated it readOnlyHint

    def spec(self) -> dict:
        return {"name": self.name, "description": self.description, "input_schema": self.input_schema}


def tools_from_listing(listed: list[Any]) -> list[McpTool]:
    """The server's tools (SDK Tool objects) as the model is offered them; a name that collides after
    sanitising with an earlier one is left out."""
    out: dict[str, McpTool] = {}
    for t in listed:
        name = model_name(t.name)
        if name in out:
            log(logger, logging.DEBUG, "MCP tool left out: its name collides", tool=t.name)
            continue
        schema = t.input_schema if isinstance(t.input_schema, dict) and t.input_schema else {"type": "object"}
        annotations = getattr(t, "annotations", None)
        out[name] = McpTool(name, t.name, (t.description or t.title or t.name)[:4000], schema,
                            bool(annotations is not None and annotations.read_only_hint))
    return list(out.values())


def result_text(result: Any) -> str:
    """What the model sees of a CallToolResult: its text items, else its structured content as JSON."""
    texts = [c.text for c in (result.content or []) if getattr(c, "type", None) == "text"]
    if texts:
        text = "\n".join(texts)
    elif result.structured_content is not None:
        text = json.dumps(result.structured_content, ensure_ascii=False)
    else:
        text = "(no output)"
    return text if len(text) <= MAX_RESULT else text[:MAX_RESULT] + "\n... (truncated)"


class McpFailure(Exception):
    """MCP could not be used; the message says why in one line (never the token)."""


def describe(exc: BaseException, status: int | None, timeout: float | None = None) -> str:
    """One line for a failure: what HTTP said (the SDK words a 401 as a generic error), else the cause."""
    if status in (401, 403):
        return f"Seqera MCP rejected the access token (HTTP {status})"
    if status is not None and status >= 500:
        return f"Seqera MCP answered HTTP {status}"
    leaf = _leaf(exc)
    if isinstance(leaf, TimeoutError | httpx2.TimeoutException):
        return f"Seqera MCP did not answer within {timeout:g} s" if timeout else "Seqera MCP timed out"
    if isinstance(leaf, httpx2.ConnectError | OSError):
        return "Seqera MCP is unreachable"
    if status is not None and status >= 400:
        return f"Seqera MCP answered HTTP {status}"
    code = getattr(leaf, "code", None)  # an MCPError's JSON-RPC code; its message is the server's, not shown
    return f"Seqera MCP failed ({type(leaf).__name__}{f' {code}' if isinstance(code, int) else ''})"


def _leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


class _SharedTransport(httpx2.AsyncBaseTransport):
    """One connection pool for every token's client; closing a client leaves it open."""

    def __init__(self) -> None:
        self.inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request):
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        pass


class SeqeraMcp:
    """App-wide: the shared transport, the per-token tool cache, the outage state."""

    def __init__(self, cfg: Config):
        self.cfg, self.url = cfg, cfg.mcp_url
        self.transport = _SharedTransport()
        # sha256(token) -> (until, its tools, or why MCP rejected it)
        self._cache: dict[str, tuple[float, list[McpTool] | str]] = {}
        self._problem: str | None = None
        self._down_until = 0.0
        self.open_connections = 0
        self.listing: dict[str, asyncio.Future] = {}  # sha256(token) -> the list in flight for it
        self._shared: dict[tuple, list[McpTool]] = {}   # identical lists (every user's, usually) kept once

    def session(self, token: str, span: Any) -> "McpSession":
        return McpSession(self, token, span)

    async def close(self) -> None:
        await self.transport.inner.aclose()

    def cached(self, key: str) -> list[McpTool] | str | None:
        """A token's tools, or the problem to report instead (MCP rejected the token, or is down)."""
        hit = self._cache.get(key)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        if time.monotonic() < self._down_until:
            return self._problem
        return None

    def remember(self, key: str, tools: list[McpTool] | str, ttl: float | None = None) -> list[McpTool] | str:
        """Cache a token's tools, or why it has none, for `ttl` (mcp_tools_ttl); returns the list as kept
        (shared when identical)."""
        if len(self._cache) >= MAX_CACHE:
            now = time.monotonic()
            for k in [k for k, (exp, _) in self._cache.items() if exp <= now] or list(self._cache)[:MAX_CACHE // 10]:
                del self._cache[k]
        if len(self._shared) >= MAX_SHARED:
            self._shared.clear()
        if not isinstance(tools, str):
            fingerprint = tuple((t.name, t.remote, t.description, json.dumps(t.input_schema, sort_keys=True),
                                 t.read_only) for t in tools)
            tools = self._shared.setdefault(fingerprint, tools)
        self._cache[key] = (time.monotonic() + (self.cfg.mcp_tools_ttl if ttl is None else ttl), tools)
        return tools

    def up(self) -> None:
        if self._problem is not None:
            log(logger, logging.INFO, "Seqera MCP available again")
            self._problem = None

    def down(self, problem: str) -> None:
        """Logged once when it starts (or its reason changes), not per run."""
        self._down_until = time.monotonic() + self.cfg.mcp_retry_after
        if problem != self._problem:
            log(logger, logging.WARNING, "Seqera MCP unavailable", reason=problem, url=strip_userinfo(self.url))
            self._problem = problem


class _Connection:
    """One MCP client session, entered and exited in a task of its own."""

    def __init__(self, mcp: SeqeraMcp, token: str):
        self.mcp = mcp
        self.status: int | None = None  # the last HTTP error status seen (the SDK hides it)
        self._http = httpx2.AsyncClient(
            transport=mcp.transport, headers={"Authorization": f"Bearer {token}"},
            timeout=httpx2.Timeout(mcp.cfg.mcp_call_timeout, connect=mcp.cfg.mcp_connect_timeout),
            event_hooks={"response": [self._seen]})
        self._ready: asyncio.Future = asyncio.get_running_loop().create_future()
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.client: Client | None = None

    async def _seen(self, response) -> None:
        if response.status_code >= 400:
            self.status = response.status_code

    @property
    def alive(self) -> bool:
        return self.client is not None and self._task is not None and not self._task.done()

    async def open(self) -> Client:
        self.mcp.open_connections += 1
        self._task = asyncio.get_running_loop().create_task(self._own(), name="mcp-connection")
        try:
            async with asyncio.timeout(self.mcp.cfg.mcp_connect_timeout):
                return await asyncio.shield(self._ready)
        except BaseException:
            await self.close(wait=0)  # nothing to finish gracefully: the run goes on without it at once
            raise

    async def _own(self) -> None:
        try:
            async with Client(streamable_http_client(self.mcp.url, http_client=self._http), mode="auto") as client:
                self.client = client
                self._ready.set_result(client)
                await self._stop.wait()
        except BaseException as exc:
            if not self._ready.done():
                self._ready.set_exception(exc)
                self._ready.exception()
            if not isinstance(exc, Exception):
                raise
        finally:
            self.client = None

    async def close(self, wait: float = 2.0) -> None:
        """End the session (given `wait` seconds to say goodbye), once."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._task is not None:
            if wait > 0:
                await asyncio.wait((self._task,), timeout=wait)
            self._task.cancel()
        with contextlib.suppress(Exception):
            await self._http.aclose()
        self.mcp.open_connections -= 1


@dataclasses.dataclass(frozen=True)
class CallResult:
    text: str
    is_error: bool


class McpSession:
    """One run's use of MCP, with the caller's token."""

    def __init__(self, mcp: SeqeraMcp, token: str, span: Any):
        self.mcp, self._token, self._span = mcp, token, span
        self._key = hashlib.sha256(token.encode()).hexdigest()
        self._conn: _Connection | None = None
        self._connections = 0
        self._status: int | None = None  # the HTTP error status of the last failure
        self._down = False               # whether the last failure was an outage (recorded app-wide)
        self.problem: str | None = None  # why the Platform tools are unavailable to this run, if they are
        self.tools: dict[str, McpTool] = {}

    async def list_tools(self) -> list[McpTool]:
        """The server's tools (cached per token; runs of one token that start together share one list); []
        with `problem` set when MCP cannot be used."""
        tools = self.mcp.cached(self._key)
        if tools is None and (leader := self.mcp.listing.get(self._key)) is not None:
            tools = await asyncio.shield(leader)  # None: the run listing it ended first; list here
        if tools is None:
            fut = self.mcp.listing[self._key] = asyncio.get_running_loop().create_future()
            try:
                tools = await self._list()
            finally:
                self.mcp.listing.pop(self._key, None)
                if not fut.done():
                    fut.set_result(tools)
        if isinstance(tools, str):
            self.problem = tools
            return []
        self.tools = {t.name: t for t in tools}
        return tools

    async def _list(self) -> list[McpTool] | str:
        """tools/list, every page, on this run's connection: the tools, or why there are none."""
        child = self._span.child("mcp.tools/list", "tool", {"server": "seqera"})
        try:
            try:
                client = await self._client()
            except Exception as exc:
                return self._no_list(self._failed(exc, self.mcp.cfg.mcp_connect_timeout), child)
            listed, cursor = [], None
            try:
                async with asyncio.timeout(self.mcp.cfg.mcp_list_timeout):
                    for _ in range(MAX_PAGES):
                        page = await client.list_tools(cursor=cursor)
                        listed += page.tools
                        cursor = page.next_cursor
                        if not cursor:
                            break
            except Exception as exc:
                problem = self._failed(exc, self.mcp.cfg.mcp_list_timeout)
                if isinstance(exc, TimeoutError) and not self._down:  # it answers, but never lists: no use
                    self._down = True
                    self.mcp.down(problem)
                return self._no_list(problem, child)
        except BaseException:
            child.end(error="cancelled")
            raise
        tools = tools_from_listing(listed)
        child.end(outputs={"tools": len(tools)})
        self.mcp.up()
        return self.mcp.remember(self._key, tools)

    def _no_list(self, problem: str, child: Any) -> str:
        """A failed list. An outage (recorded by _failed) makes every run skip MCP for a while; anything
        else is this token's alone: a rejected token for mcp_tools_ttl, an error answer for mcp_retry_after."""
        child.end(error=problem)
        if self._down:
            return problem
        ttl = None if self._rejected() else self.mcp.cfg.mcp_retry_after
        return self.mcp.remember(self._key, problem, ttl=ttl)

    async def call(self, tool: McpTool, args: dict) -> CallResult:
        """Call `tool` on the server. A failure is an error result saying whether it may have taken effect;
        only a read-only call is retried, once, on a new connection."""
        child = self._span.child(f"mcp.{tool.remote}", "tool", {"tool": tool.remote})
        started = time.monotonic()
        try:
            result = await self._call_once(tool, args)
        except McpFailure as exc:
            result = CallResult(str(exc), True)
        except BaseException:
            child.end(error="cancelled")
            raise
        log(logger, logging.DEBUG, "MCP tool called", tool=tool.remote, is_error=result.is_error,
            duration_ms=round((time.monotonic() - started) * 1000, 2))
        child.end(outputs={"is_error": result.is_error}, error="tool error" if result.is_error else None)
        return result

    async def _call_once(self, tool: McpTool, args: dict) -> CallResult:
        timeout, retry = self.mcp.cfg.mcp_call_timeout, tool.read_only
        while True:
            try:
                client = await self._client()
            except Exception as exc:
                raise McpFailure(f"{self._failed(exc, self.mcp.cfg.mcp_connect_timeout)}; "
                                 f"{tool.remote} was not called.") from None
            try:
                async with asyncio.timeout(timeout):
                    result = await client.call_tool(tool.remote, args)
            except Exception as exc:
                problem = self._failed(exc, timeout)
                # A timeout leaves the session usable but the call's fate unknown: never repeated. Anything
                # else (a dead connection, a session the server lost in a restart) ends this connection.
                if not isinstance(exc, TimeoutError):
                    await self._drop()
                    if retry and self._connections < self.mcp.cfg.mcp_connections_per_run:
                        retry = False
                        continue
                if tool.read_only:
                    raise McpFailure(f"{problem}; {tool.remote} could not be completed.") from None
                raise McpFailure(f"{problem} during {tool.remote}: the call may have taken effect; check "
                                 "before trying again.") from None
            self.mcp.up()
            return CallResult(result_text(result), bool(result.is_error))

    async def _drop(self) -> None:
        if self._conn is not None:
            await self._conn.close(wait=0)
            self._conn = None

    @property
    def _outage(self) -> bool:
        """The last failure is the server's or the network's (no live connection, or a 5xx), not the token's."""
        return (self._conn is None or not self._conn.alive or (self._status or 0) >= 500) and not self._rejected()

    async def _client(self) -> Client:
        if self._conn is not None and self._conn.alive:
            return self._conn.client
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
        if self._connections >= self.mcp.cfg.mcp_connections_per_run:
            raise McpFailure(self.problem or "Seqera MCP connection lost")
        self._connections += 1
        conn = self._conn = _Connection(self.mcp, self._token)  # kept when open fails: its HTTP status tells why
        await conn.open()
        return conn.client

    def _rejected(self) -> bool:
        return self._status in (401, 403)

    def _failed(self, exc: BaseException, timeout: float) -> str:
        """Why `exc` happened, in one line. A lost or refused connection is an outage, the app's to record;
        a rejected token, an error answer on a live connection or a slow call is not."""
        if isinstance(exc, McpFailure):
            return str(exc)
        self._status = self._conn.status if self._conn is not None else None  # a dead one: closed by _client()
        problem = describe(exc, self._status, timeout)
        self._down = self._outage
        if self._down:
            self.mcp.down(problem)
        return problem

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
