"""HTTP routes of the `/v1/cli` protocol (as Seqera CLI 1.12.0 speaks it) plus `/` and `/health`.

Handlers get their collaborators from the app's Context (context.py) and only raise errors: errors.py
says what each becomes.
"""
from __future__ import annotations

import json
import logging
import re
import uuid
from typing import Any

import aiohttp
from aiohttp import web

from . import queries
from .auth import USER, User, bearer_token
from .context import ctx
from .db import iso
from .errors import BadRequest, PlatformUnavailable, ServiceDraining, error
from .logs import log, strip_userinfo

logger = logging.getLogger("agent_backend.routes")
routes = web.RouteTableDef()
# How long a cancel (or an expire) waits for the run it cancelled to end; the CLI gives expire 2 s.
CANCEL_WAIT_S = 1.5
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


async def read_json(request: web.Request) -> dict:
    raw = await request.read()
    if not raw.strip():
        raise BadRequest("request body is empty; a JSON object is required")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("request body is not valid JSON") from None
    except RecursionError:
        raise BadRequest("request body is nested too deeply") from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    if b"\\u" in raw:  # only escapes can smuggle in a lone surrogate, which no database column can store
        for name, value in body.items():
            if not _encodable(value):
                raise BadRequest(f"field '{name}' contains invalid Unicode (a lone surrogate escape)")
    return body


def _encodable(value: Any) -> bool:
    """Whether every string in a parsed JSON value (keys included) is valid UTF-8 text. Iterative: a body
    as deeply nested as json.loads accepts must not exhaust the Python stack here."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return False
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


def field(body: dict, name: str, kind: type | tuple, *, required: bool = False, default: Any = None,
          max_len: int | None = None) -> Any:
    if name not in body or body[name] is None:
        if required:
            raise BadRequest(f"field '{name}' is required")
        return default
    value = body[name]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if bool not in kinds and isinstance(value, bool) and int in kinds:
        raise BadRequest(f"field '{name}' must be {_kind_name(kinds)}")
    if not isinstance(value, kinds):
        raise BadRequest(f"field '{name}' must be {_kind_name(kinds)}")
    if max_len is not None and isinstance(value, str) and len(value) > max_len:
        raise BadRequest(f"field '{name}' is longer than {max_len} characters")
    return value


def _kind_name(kinds: tuple) -> str:
    names = {str: "a string", bool: "a boolean", int: "an integer", dict: "an object", list: "an array"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def query_int(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"query parameter '{name}' must be an integer") from None
    if not lo <= value <= hi:
        raise BadRequest(f"query parameter '{name}' must be between {lo} and {hi}")
    return value


def user_of(request: web.Request) -> User:
    return request[USER]


def session_id_of(request: web.Request) -> str:
    sid = request.match_info["session_id"]
    if not _UUID.match(sid):
        raise web.HTTPNotFound()
    return sid


async def owned_session(request: web.Request) -> queries.Session:
    session = await queries.get_session(ctx(request).db, session_id_of(request), user_of(request).id)
    if session is None:
        raise web.HTTPNotFound()
    return session


# --- open routes -------------------------------------------------------------------------------

@routes.get("/")
async def root(request: web.Request) -> web.Response:
    c = ctx(request)
    # An open route: never a user:password@ a URL may carry.
    return web.json_response({"version": c.cfg.version, "platform_url": strip_userinfo(c.cfg.platform_url)})


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    """Liveness: 200 whenever the process serves requests (never touches MySQL).
    Readiness (`?ready=1`): 503 while MySQL is unreachable or its schema is missing, or while draining; the
    detail is the reason the service recorded (schema missing, cannot connect, access denied)."""
    c = ctx(request)
    database = {True: "ok", False: "unavailable", None: "unknown"}[c.db.healthy]
    draining = c.lifecycle.draining
    body = {"status": "ok", "version": c.cfg.version, "database": database, "draining": draining}
    if request.query.get("ready", "").lower() in ("1", "true", "yes"):
        if c.db.healthy is not True or draining:
            body["status"] = "unavailable"
            body["detail"] = ("draining for shutdown" if draining else
                              (c.db.healthy is False and c.db.problem) or f"database {database}")
            return web.json_response(body, status=503)
    return web.json_response(body)


# --- identity ----------------------------------------------------------------------------------

@routes.get("/v1/cli/user-info")
async def user_info(request: web.Request) -> web.Response:
    return web.json_response(user_of(request).info)


@routes.get("/v1/cli/service-info")
async def service_info(request: web.Request) -> web.Response:
    """Platform's own service-info (what `seqera info` shows under "Seqera Platform"), passed through."""
    body = await ctx(request).platform.get_ok(bearer_token(request), "/service-info", "service-info")
    if not isinstance(body, dict):
        raise PlatformUnavailable("Seqera Platform answered 200 to service-info without a JSON object")
    return web.json_response(body)


@routes.get("/v1/cli/organizations")
async def organizations(request: web.Request) -> web.Response:
    """The caller's organizations, from Platform's `GET /user/{id}/workspaces` with their own token."""
    status, data = await ctx(request).platform.get(bearer_token(request), f"/user/{user_of(request).id}/workspaces")
    if status == 404:
        return web.json_response({"organizations": []})
    if status != 200:
        raise PlatformUnavailable(f"Seqera Platform answered {status} when listing organizations")
    orgs: dict[Any, dict] = {}
    for item in (data or {}).get("orgsAndWorkspaces", []) if isinstance(data, dict) else []:
        if isinstance(item, dict) and item.get("orgId") is not None and item["orgId"] not in orgs:
            orgs[item["orgId"]] = {"org_id": item["orgId"], "org_name": item.get("orgName"),
                                   "org_type": item.get("orgType") or ("personal" if item.get("orgName") is None
                                                                       else "team")}
    return web.json_response({"organizations": list(orgs.values())})


# --- sessions ----------------------------------------------------------------------------------

def session_json(s: queries.Session) -> dict:
    return {"session_id": s.id, "title": s.title or "New conversation", "cwd": s.cwd,
            "created_at": iso(s.created_at), "last_used": iso(s.last_used), "expired_at": iso(s.expired_at)}


@routes.post("/v1/cli/sessions")
async def create_session(request: web.Request) -> web.Response:
    body = await read_json(request)
    if ctx(request).lifecycle.draining:
        raise ServiceDraining()  # 503 (errors_middleware): no new work for a replica that is stopping
    org = field(body, "organization_id", (str, int))
    dctx = field(body, "directory_context", dict)
    ictx = field(body, "instruction_context", str)
    sid = str(uuid.uuid4())
    await queries.create_session(
        ctx(request).db, session_id=sid, user_id=user_of(request).id,
        organization_id=None if org is None else str(org)[:64],
        cwd=field(body, "cwd", str, default="", max_len=1024),
        approval_mode=field(body, "approval_mode", str, max_len=32),
        local_execution=field(body, "local_execution", bool, default=True),
        headless=field(body, "headless", bool, default=False),
        directory_context=dctx, instruction_context=ictx)
    log(logger, logging.INFO, "session created", session_id=sid, user_id=user_of(request).id)
    return web.json_response({"session_id": sid})


@routes.get("/v1/cli/sessions")
async def list_sessions(request: web.Request) -> web.Response:
    limit = query_int(request, "limit", 20, 1, 100)
    status = request.query.get("status") or None
    if status not in (None, "expired", "active", "all"):
        raise BadRequest("query parameter 'status' must be one of expired, active, all")
    cwd = request.query.get("cwd")
    if cwd is not None and status == "expired":
        # This is the CLI's `-c` query; it resumes only when exactly one session comes back, so answer
        # with the directory's most recent one that has no live run.
        limit = 1
    c = ctx(request)
    sessions = await queries.list_sessions(c.db, user_of(request).id, limit=limit, cwd=cwd, status=status,
                                     stale_after_s=c.runs.stale_after)
    return web.json_response({"sessions": [session_json(s) for s in sessions]})


@routes.post("/v1/cli/sessions/{session_id}/expire")
async def expire_session(request: web.Request) -> web.Response:
    """The CLI's goodbye: after every headless run, and on Ctrl-C, where it sends nothing else. A live run
    is cancelled as by `{"type":"cancel"}` (partial answer kept, stream ends with finish `cancelled`) and
    given a moment to end, so the session takes a new message (`-c`) at once."""
    session = await owned_session(request)
    c = ctx(request)
    cancelled = await c.runs.cancel(session.id, wait=CANCEL_WAIT_S)
    await queries.expire_session(c.db, session.id, user_of(request).id)
    return web.json_response({"status": "expired", "session_id": session.id, "cancelled_run_id": cancelled})


# --- messages, runs, events --------------------------------------------------------------------

@routes.post("/v1/cli/sessions/{session_id}/messages")
async def post_message(request: web.Request) -> web.Response:
    body = await read_json(request)
    kind = field(body, "type", str, required=True)
    if kind not in ("user_message", "cancel"):
        raise BadRequest("field 'type' must be 'user_message' or 'cancel'")
    c = ctx(request)
    if kind == "cancel":
        session = await owned_session(request)
        run_id = await c.runs.cancel(session.id, wait=CANCEL_WAIT_S)
        return web.json_response({"status": "cancelled" if run_id else "idle", "run_id": run_id})
    content = field(body, "content", str, required=True)
    if not content.strip():
        raise BadRequest("field 'content' must not be empty")
    field(body, "run_id", str, max_len=64)
    field(body, "verbose", bool)
    mode = field(body, "mode", str)
    if mode not in (None, "plan", "build", "default"):
        raise BadRequest("field 'mode' must be 'plan' or 'build'")
    field(body, "interaction_mode", str)
    field(body, "caller", str)
    run = await c.runs.start_run(user_of(request), session_id_of(request), body, token=bearer_token(request))
    return web.json_response({"status": "accepted", "run_id": run.id, "session_id": run.session_id})


@routes.get("/v1/cli/sessions/{session_id}/messages")
async def get_messages(request: web.Request) -> web.Response:
    session = await owned_session(request)
    out = []
    for m in await queries.list_messages(ctx(request).db, session.id):
        text = "".join(b.get("text", "") for b in m.content if isinstance(b, dict) and b.get("type") == "text")
        if not text:
            continue  # tool plumbing (tool_use / tool_result only) is not a chat message
        out.append({"id": str(m.id), "role": m.role, "content": text, "timestamp": iso(m.created_at),
                    "status": m.status})
    return web.json_response({"messages": out})


@routes.get("/v1/cli/sessions/{session_id}/events")
async def events(request: web.Request) -> web.StreamResponse:
    c = ctx(request)
    hub = c.runs.hubs.get(request.match_info["session_id"])
    if hub is not None and hub.user_id == user_of(request).id:
        sid = hub.session_id  # the live run here proves ownership: no MySQL round trip
    else:
        sid = (await owned_session(request)).id
    raw_cursor = request.query.get("cursor")
    cursor = query_int(request, "cursor", 0, 0, 2**62) if raw_cursor not in (None, "") else None
    history_only = request.query.get("history_only", "").lower() in ("1", "true", "yes")
    start = (cursor or 0) if history_only else await c.streamer.start_seq(sid, cursor)
    # Read before the response starts: a replay MySQL cannot serve is a 503 (errors_middleware), not an
    # empty or gappy 200.
    rows = await c.streamer.first_page(sid, start, history_only=history_only)
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                       "X-Accel-Buffering": "no"})
    await resp.prepare(request)
    try:
        if history_only:
            await c.streamer.history(resp, sid, start, rows)
        else:
            await c.streamer.follow(resp, sid, start, rows)
    except (ConnectionResetError, aiohttp.ClientConnectionResetError):
        log(logger, logging.DEBUG, "event stream client went away", session_id=sid)
        return resp
    try:
        await resp.write_eof()
    except (ConnectionResetError, aiohttp.ClientConnectionResetError):
        pass
    return resp


@routes.post("/v1/cli/sessions/{session_id}/tool-results")
async def tool_results(request: web.Request) -> web.Response:
    body = await read_json(request)
    request_id = field(body, "request_id", str, required=True, max_len=256)
    result = field(body, "result", dict, required=True)
    for name, kinds in (("stdout", str), ("stderr", str), ("exit_code", int)):
        if result.get(name) is not None and (not isinstance(result[name], kinds) or isinstance(result[name], bool)):
            raise BadRequest(f"field 'result.{name}' must be {_kind_name((kinds,))}")
    session = await owned_session(request)
    if not await ctx(request).runs.tool_result(session.id, request_id, result):
        return error(404, f"No tool call is waiting for request_id {request_id!r} in this session.")
    return web.json_response({"status": "ok"})


# --- account -----------------------------------------------------------------------------------

@routes.get("/v1/cli/skills")
async def skills(request: web.Request) -> web.Response:
    return web.json_response({"skills": []})


@routes.get("/v1/cli/credits")
async def credits(request: web.Request) -> web.Response:
    usage = await queries.monthly_usage(ctx(request).db, user_of(request).id)
    return web.json_response({"org_credits_enabled": False, **usage.as_dict()})


@routes.post("/v1/cli/telemetry/crash")
async def crash_report(request: web.Request) -> web.Response:
    try:
        body = await read_json(request)
    except BadRequest:
        body = {}
    keep = {k: str(body.get(k))[:500] for k in ("client_version", "interaction_mode", "caller", "error_name",
                                                 "error_message", "session_id") if body.get(k) is not None}
    log(logger, logging.WARNING, "CLI crash report", user_id=user_of(request).id, **keep)
    return web.Response(status=204)
