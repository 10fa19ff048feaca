"""The two middlewares: `errors` (every exception becomes its answer from errors.ANSWERS, or a logged
500; one access-log line per request) and `authenticate` (a bearer token, checked with Platform, on all
but the open routes)."""
from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web

from .auth import OPEN_ROUTES, USER, bearer_token
from .context import ctx
from .errors import Unauthorized, answer_for, error
from .logs import log

logger = logging.getLogger("agent_backend.app")
access = logging.getLogger("agent_backend.access")


@web.middleware
async def errors(request: web.Request, handler):
    started = time.monotonic()
    status = 500
    try:
        resp = await handler(request)
        status = resp.status
        return resp
    except web.HTTPRequestEntityTooLarge:
        status = 413
        return error(413, f"Request body too large (limit {ctx(request).cfg.max_body_bytes} bytes).")
    except web.HTTPException as exc:
        status = exc.status
        if exc.status >= 400:
            detail = {404: "Not found", 405: "Method not allowed"}.get(exc.status, exc.reason)
            return error(exc.status, detail, {k: v for k, v in exc.headers.items() if k == "Allow"})
        raise
    except asyncio.CancelledError:
        status = 499
        raise
    except Exception as exc:
        resp = answer_for(exc)
        if resp is None:
            logger.exception("unhandled error", extra={"fields": {"path": request.path, "method": request.method}})
            resp = error(500, "Internal error.")
        status = resp.status
        return resp
    finally:
        if access.isEnabledFor(logging.INFO) or (request.path == "/health" and access.isEnabledFor(logging.DEBUG)):
            level = logging.DEBUG if request.path == "/health" else logging.INFO
            user = request.get(USER)
            log(access, level, "request", method=request.method, path=request.path, status=status,
                duration_ms=round((time.monotonic() - started) * 1000, 2),
                user_id=user.id if user else None, client_version=request.headers.get("X-Client-Version"))


@web.middleware
async def authenticate(request: web.Request, handler):
    route = request.match_info.route
    if request.match_info.http_exception is not None or (request.method, route.resource.canonical
                                                         if route.resource else "") in OPEN_ROUTES:
        return await handler(request)
    token = bearer_token(request)
    if token is None:
        raise Unauthorized("Missing bearer token (Authorization: Bearer <Seqera Platform access token>)")
    request[USER] = await ctx(request).auth.authenticate(token)
    return await handler(request)
