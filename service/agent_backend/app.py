"""create_app(config): wires config, MySQL pool, Platform auth, Claude, LangSmith, the event log and
the run manager into one aiohttp Application. All state lives on the app (no module globals)."""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

import aiohttp
from aiohttp import web

from .auth import OPEN_ROUTES, USER, AuthError, Authenticator, bearer_token
from .config import Config
from .db import Database, DatabaseUnavailable, SchemaMissing
from .events import EventStreamer, EventWriter
from .llm import LLM
from .logs import log, strip_userinfo
from .migrate import discover
from .routes import BadRequest, error, routes
from .runs import RunManager, ServiceDraining
from .tracing import Tracer

logger = logging.getLogger("agent_backend.app")
access = logging.getLogger("agent_backend.access")


@dataclasses.dataclass
class Context:
    cfg: Config
    db: Database
    http: aiohttp.ClientSession | None = None
    auth: Authenticator | None = None
    llm: LLM | None = None
    tracer: Tracer | None = None
    writer: EventWriter | None = None
    runs: RunManager | None = None
    streamer: EventStreamer | None = None
    monitor: asyncio.Task | None = None
    drain: asyncio.Task | None = None  # the SIGTERM drain (drain_then_stop), once started
    stopping: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    # The newest migration packaged with this image: readiness wants the database at least there.
    schema_version: int = dataclasses.field(default_factory=lambda: discover()[-1].version)


CTX = web.AppKey("agent_backend_context", Context)


@web.middleware
async def errors_middleware(request: web.Request, handler):
    started = time.monotonic()
    status = 500
    try:
        resp = await handler(request)
        status = resp.status
        return resp
    except BadRequest as exc:
        status = 400
        return error(400, str(exc))
    except AuthError as exc:
        status = exc.status
        return error(exc.status, exc.detail, {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None)
    except ServiceDraining:
        status = 503
        return error(503, "The service is shutting down; retry in a moment.", {"Retry-After": "2"})
    except SchemaMissing:
        status = 503  # logged once by the Database, not per request
        return error(503, "The database schema is missing: an administrator must run ./init.sh (the migrations);"
                          " retry after that.", {"Retry-After": "2"})
    except DatabaseUnavailable as exc:
        status = 503
        detail = ("The service is busy; retry shortly." if str(exc) == "database busy"
                  else "The database is unavailable; retry shortly.")
        return error(503, detail, {"Retry-After": "2"})
    except web.HTTPRequestEntityTooLarge:
        status = 413
        return error(413, f"Request body too large (limit {request.app[CTX].cfg.max_body_bytes} bytes).")
    except web.HTTPException as exc:
        status = exc.status
        if exc.status >= 400:
            detail = {404: "Not found", 405: "Method not allowed"}.get(exc.status, exc.reason)
            return error(exc.status, detail, {k: v for k, v in exc.headers.items() if k == "Allow"})
        raise
    except asyncio.CancelledError:
        status = 499
        raise
    except Exception:
        logger.exception("unhandled error", extra={"fields": {"path": request.path, "method": request.method}})
        return error(500, "Internal error.")
    finally:
        if access.isEnabledFor(logging.INFO) or (request.path == "/health" and access.isEnabledFor(logging.DEBUG)):
            level = logging.DEBUG if request.path == "/health" else logging.INFO
            user = request.get(USER)
            log(access, level, "request", method=request.method, path=request.path, status=status,
                duration_ms=round((time.monotonic() - started) * 1000, 2),
                user_id=user.id if user else None, client_version=request.headers.get("X-Client-Version"))


@web.middleware
async def auth_middleware(request: web.Request, handler):
    route = request.match_info.route
    if request.match_info.http_exception is not None or (request.method, route.resource.canonical
                                                         if route.resource else "") in OPEN_ROUTES:
        return await handler(request)
    token = bearer_token(request)
    if token is None:
        raise AuthError(401, "Missing bearer token (Authorization: Bearer <Seqera Platform access token>)")
    request[USER] = await request.app[CTX].auth.authenticate(token)
    return await handler(request)


async def _monitor_db(c: Context) -> None:
    """Keeps c.db.healthy and c.db.problem current for /health readiness: MySQL reachable, schema migrated."""
    while not c.stopping.is_set():
        try:
            await c.db.check(c.schema_version)
        except DatabaseUnavailable:
            pass  # healthy, problem and the log line are the Database's (db.py)
        stop = asyncio.ensure_future(c.stopping.wait())
        await asyncio.wait((stop,), timeout=5.0 if c.db.healthy else 1.0)
        stop.cancel()


async def _on_startup(app: web.Application) -> None:
    c = app[CTX]
    cfg = c.cfg
    c.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200, ttl_dns_cache=300),
                                   timeout=aiohttp.ClientTimeout(total=cfg.auth_timeout))
    c.auth = Authenticator(c.http, cfg.platform_api_url, cfg.auth_cache_ttl, cfg.auth_timeout)
    await c.db.start()
    c.llm = LLM(cfg)
    c.tracer = Tracer(cfg)
    c.writer = EventWriter(c.db, cfg.db_write_retry)
    c.writer.start()
    c.runs = RunManager(cfg, c.db, c.llm, c.tracer, c.writer)
    await c.runs.start()
    c.streamer = EventStreamer(c.db, c.runs.hubs, c.runs.wait_run_started, c.runs.remote_run_active,
                               cfg.sse_ping_interval or cfg.heartbeat_interval, c.runs.closing)
    c.monitor = asyncio.get_running_loop().create_task(_monitor_db(c), name="db-monitor")
    # __main__ has bound the listening socket by now. A URL may carry user:password@: never logged.
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
    if c.drain is None and c.runs is not None:
        c.drain = asyncio.get_running_loop().create_task(_drain(c), name="drain")


async def _drain(c: Context) -> None:
    log(logger, logging.INFO, "shutting down: draining runs", grace_s=c.cfg.shutdown_grace)
    await c.runs.shutdown(c.cfg.shutdown_grace)
    asyncio.get_running_loop().call_soon(_graceful_exit)


def _graceful_exit() -> None:
    raise web.GracefulExit()  # as aiohttp's own signal handler does: run_app then cleans up and returns


async def _on_shutdown(app: web.Application) -> None:
    c = app[CTX]
    if c.runs and not c.runs.closing.is_set():  # not drained yet (e.g. an in-process test server closing)
        log(logger, logging.INFO, "shutting down: draining runs", grace_s=c.cfg.shutdown_grace)
        await c.runs.shutdown(c.cfg.shutdown_grace)


async def _on_cleanup(app: web.Application) -> None:
    c = app[CTX]
    c.stopping.set()
    if c.monitor:
        await asyncio.wait((c.monitor,), timeout=2)
        c.monitor.cancel()
    if c.runs and not c.runs.closing.is_set():
        await c.runs.shutdown(0)
    if c.writer:
        await c.writer.close()
    if c.tracer:
        await c.tracer.close()
    if c.llm:
        await c.llm.close()
    if c.http:
        await c.http.close()
    await c.db.close()
    log(logger, logging.INFO, "agent-backend stopped")


def create_app(cfg: Config) -> web.Application:
    app = web.Application(client_max_size=cfg.max_body_bytes, middlewares=[errors_middleware, auth_middleware])
    app[CTX] = Context(cfg=cfg, db=Database(cfg.db))
    app.add_routes(routes)
    app.on_startup.append(_on_startup)
    app.on_shutdown.append(_on_shutdown)
    app.on_cleanup.append(_on_cleanup)
    return app
