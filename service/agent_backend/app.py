"""create_app(config): one aiohttp Application with its Context (context.py), its middlewares and routes.

Each resource is set up, in order, and torn down, in reverse, by one aiohttp cleanup context: the MySQL
pool, the Platform client, Claude, LangSmith, Seqera MCP, the event log with the run manager, the database
monitor.
Shutdown: SIGTERM/SIGINT start `drain_then_stop` (handlers installed by __main__); an in-process server
that simply closes drains in on_shutdown instead. Where the process is in that is the Lifecycle's.
"""
from __future__ import annotations

import asyncio
import logging
from typing import AsyncIterator

import aiohttp
from aiohttp import web

from .auth import Authenticator
from .config import Config
from .context import CTX, Context
from .db import Database, DatabaseUnavailable
from .events import EventStreamer, EventWriter
from .lifecycle import Lifecycle
from .llm import LLM
from .logs import log, strip_userinfo
from .middlewares import authenticate, errors
from .migrate import discover
from .platform_api import Platform
from .routes import routes
from .runs import RunManager
from .tracing import Tracer

logger = logging.getLogger("agent_backend.app")


async def _announced(app: web.Application) -> AsyncIterator[None]:
    yield
    log(logger, logging.INFO, "agent-backend stopped")


async def _database(app: web.Application) -> AsyncIterator[None]:
    c = app[CTX]
    await c.db.start()
    yield
    await c.db.close()


async def _platform(app: web.Application) -> AsyncIterator[None]:
    c = app[CTX]
    c.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200, ttl_dns_cache=300),
                                   timeout=aiohttp.ClientTimeout(total=c.cfg.auth_timeout))
    c.platform = Platform(c.http, c.cfg.platform_api_url, c.cfg.auth_timeout)
    c.auth = Authenticator(c.platform, c.cfg.auth_cache_ttl)
    yield
    await c.http.close()


async def _model(app: web.Application) -> AsyncIterator[None]:
    c = app[CTX]
    c.llm = LLM(c.cfg)
    yield
    await c.llm.close()


async def _tracing(app: web.Application) -> AsyncIterator[None]:
    c = app[CTX]
    c.tracer = Tracer(c.cfg)
    yield
    await c.tracer.close()


async def _mcp(app: web.Application) -> AsyncIterator[None]:
    """Seqera MCP, when SEQERA_MCP_URL is set (the `mcp` SDK is imported only then)."""
    c = app[CTX]
    if c.cfg.mcp_url:
        from .seqera_mcp import SeqeraMcp
        c.mcp = SeqeraMcp(c.cfg)
    yield
    if c.mcp is not None:
        await c.mcp.close()


async def _runs(app: web.Application) -> AsyncIterator[None]:
    """The event writer and the run manager: torn down once the runs are over (drained, or interrupted now)."""
    c = app[CTX]
    c.writer = EventWriter(c.db, c.cfg.db_write_retry, c.lifecycle)
    c.writer.start()
    c.runs = RunManager(c.cfg, c.db, c.llm, c.tracer, c.writer, c.lifecycle, c.mcp)
    c.runs.start()
    c.streamer = EventStreamer(c.db, c.runs.hubs, c.runs.wait_run_started, c.runs.remote_run_active,
                               c.cfg.sse_ping_interval or c.cfg.heartbeat_interval, c.lifecycle)
    yield
    if not c.lifecycle.stopped:
        await c.runs.shutdown(0)
    await c.writer.close()


async def _db_monitor(app: web.Application) -> AsyncIterator[None]:
    """Keeps c.db.healthy and c.db.problem current for /health readiness: MySQL reachable, schema migrated."""
    c = app[CTX]

    async def monitor() -> None:
        while True:
            try:
                await c.db.check(c.schema_version)
            except DatabaseUnavailable:
                pass  # healthy, problem and the log line are the Database's (db.py)
            await asyncio.sleep(5.0 if c.db.healthy else 1.0)

    task = asyncio.get_running_loop().create_task(monitor(), name="db-monitor")
    yield
    task.cancel()
    await asyncio.wait((task,))


async def _started(app: web.Application) -> None:
    # __main__ has bound the listening socket by now. A URL may carry user:password@: never logged.
    cfg = app[CTX].cfg
    log(logger, logging.INFO, "agent-backend started", version=cfg.version, port=cfg.port,
        environment=cfg.environment, model=cfg.anthropic_model, tracing=cfg.tracing_enabled,
        platform=strip_userinfo(cfg.platform_api_url), mcp_url=cfg.mcp_url and strip_userinfo(cfg.mcp_url),
        public_url=cfg.public_url and strip_userinfo(cfg.public_url),
        database=f"{strip_userinfo(cfg.db.host)}:{cfg.db.port}/{cfg.db.name}")


def drain_then_stop(app: web.Application) -> None:
    """SIGTERM/SIGINT (handlers installed by __main__): drain while still serving, then stop the server.
    Draining refuses new sessions and messages (503) and readiness, while streams in flight, their
    reconnects, tool results and cancels are served; once the runs have ended (or were interrupted after
    `shutdown_grace`), aiohttp's own shutdown runs. Stopping the server first instead left a connection
    accepted just before the signal unanswered for the whole grace period."""
    c = app[CTX]
    if c.lifecycle.drain_task is None and c.runs is not None:
        c.lifecycle.drain_task = asyncio.get_running_loop().create_task(_drain(c), name="drain")


async def _drain(c: Context) -> None:
    log(logger, logging.INFO, "shutting down: draining runs", grace_s=c.cfg.shutdown_grace)
    await c.runs.shutdown(c.cfg.shutdown_grace)
    asyncio.get_running_loop().call_soon(_graceful_exit)


def _graceful_exit() -> None:
    raise web.GracefulExit()  # as aiohttp's own signal handler does: run_app then cleans up and returns


async def _on_shutdown(app: web.Application) -> None:
    c = app[CTX]
    if c.runs and not c.lifecycle.stopped:  # not drained yet (e.g. an in-process test server closing)
        log(logger, logging.INFO, "shutting down: draining runs", grace_s=c.cfg.shutdown_grace)
        await c.runs.shutdown(c.cfg.shutdown_grace)


def create_app(cfg: Config) -> web.Application:
    app = web.Application(client_max_size=cfg.max_body_bytes, middlewares=[errors, authenticate])
    app[CTX] = Context(cfg=cfg, db=Database(cfg.db), lifecycle=Lifecycle(), schema_version=discover()[-1].version)
    app.add_routes(routes)
    app.cleanup_ctx.extend([_announced, _database, _platform, _model, _tracing, _mcp, _runs, _db_monitor])
    app.on_startup.append(_started)
    app.on_shutdown.append(_on_shutdown)
    return app
