"""A small real HTTP server on 127.0.0.1, run in its own thread and event loop.

Every stand-in (anthropic, langsmith, platform) is a `StandIn`: build it, `start()` it, read `.url`,
`stop()` it. It runs in a thread of its own so that it works the same from a pytest fixture (sync or
async test), from a script (`ci/demo.py`, `ci/bench_standins.py`) and from `python -m`, and so that a
test that blocks its own loop never blocks the stand-in.

    with PlatformStandIn() as platform:        # or: p = PlatformStandIn().start(); ...; p.stop()
        requests.get(platform.url + "/api/user-info", headers=...)

`go_down("refuse")` closes the listening socket and every open connection (a client then gets
"connection refused"); `go_down("5xx")` answers every request 503; `come_up()` listens again on the same
port. Every request is kept in `.requests` (a list of `Recorded`) unless `keep_requests` is False.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import socket
import threading
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from aiohttp import web

from tests.support.proc import stop_event


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Recorded:
    """One request as the stand-in received it (headers keep their original case-insensitive lookup)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any = None
    # Filled in by stand-ins that have more to say (e.g. anthropic: the reply it sent, a disconnect).
    extra: dict[str, Any] = field(default_factory=dict)

    def header(self, name: str, default: str | None = None) -> str | None:
        lname = name.lower()
        for k, v in self.headers.items():
            if k.lower() == lname:
                return v
        return default


RECORDED = web.RequestKey("recorded", Recorded)


class StandIn:
    """Base class: subclasses implement `routes(app)`."""

    name = "standin"
    # Extra keyword arguments for aiohttp's AppRunner (e.g. auto_decompress=False).
    runner_kwargs: dict[str, Any] = {}
    # False: requests are recorded for the handlers (request[RECORDED]) but not kept in `.requests`.
    keep_requests = True

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port or free_port()
        self.requests: list[Recorded] = []
        self._lock = threading.RLock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._down: str | None = None  # None, "refuse" or "5xx"
        self._started = threading.Event()
        self._start_error: BaseException | None = None

    # ---- to implement -------------------------------------------------------------------------
    def routes(self, app: web.Application) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # ---- public API ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "StandIn":
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._run, name=f"{self.name}-standin", daemon=True)
        self._thread.start()
        self._started.wait(10)
        if self._start_error is not None:
            raise RuntimeError(f"{self.name} stand-in failed to start") from self._start_error
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
        try:
            fut.result(10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._thread = None
            self._loop = None

    def __enter__(self) -> "StandIn":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def go_down(self, mode: str = "refuse") -> None:
        """`refuse`: close the listening socket and open connections; `5xx`: answer 503 to everything."""
        if mode not in ("refuse", "5xx"):
            raise ValueError(mode)
        self._down = mode
        if mode == "refuse":
            self.call(self._close_site())

    def come_up(self) -> None:
        was = self._down
        self._down = None
        if was == "refuse":
            self.call(self._open_site())

    def call(self, coro: Awaitable[Any], timeout: float = 10) -> Any:
        """Run a coroutine on the stand-in's loop from any other thread and return its result."""
        assert self._loop is not None, "stand-in not started"
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)  # type: ignore[arg-type]

    def requests_to(self, path_prefix: str, method: str | None = None) -> list[Recorded]:
        with self._lock:
            return [
                r for r in self.requests
                if r.path.startswith(path_prefix) and (method is None or r.method == method)
            ]

    # ---- internals ----------------------------------------------------------------------------
    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._startup())
        except BaseException as e:  # noqa: BLE001 - reported to start()
            self._start_error = e
            self._started.set()
            return
        self._started.set()
        loop.run_forever()
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    async def _startup(self) -> None:
        app = web.Application(middlewares=[self._record_middleware], client_max_size=64 * 1024 * 1024)
        self.routes(app)
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None, **self.runner_kwargs)
        await self._runner.setup()
        await self._open_site()

    async def _open_site(self) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await self._site.start()

    async def _close_site(self) -> None:
        if self._site is not None:
            await self._site.stop()
            self._site = None
        assert self._runner is not None
        server = self._runner.server
        if server is not None:
            for conn in list(server.connections):
                conn.force_close()

    async def _shutdown(self) -> None:
        if self._runner is not None:
            server = self._runner.server
            if server is not None:
                for conn in list(server.connections):
                    conn.force_close()
            await self._runner.cleanup()

    @web.middleware
    async def _record_middleware(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        if self._down == "5xx":
            body = await request.read()
            self._record(request, body)
            return web.json_response({"detail": f"{self.name} stand-in is down"}, status=503)
        body = await request.read()
        rec = self._record(request, body)
        request[RECORDED] = rec
        return await handler(request)

    def _record(self, request: web.Request, body: bytes) -> Recorded:
        parsed: Any = None
        if body and "json" in (request.content_type or ""):
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
        rec = Recorded(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers=dict(request.headers),
            body=body,
            json=parsed,
        )
        if self.keep_requests:
            with self._lock:
                self.requests.append(rec)
        return rec


def serve_forever(standin: StandIn, argv: list[str] | None = None) -> None:
    """`python -m tests.support.standins.<name> --port N`: run until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(description=f"Run the {standin.name} stand-in on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    args = parser.parse_args(argv)
    if args.port:
        standin.port = args.port
    standin.start()
    print(f"{standin.name} stand-in listening on {standin.url}", flush=True)
    stop_event(watch_stdin=False).wait()
    standin.stop()
