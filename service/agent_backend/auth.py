"""Caller authentication: the Platform access token, checked with Platform's own user-info.

`GET {SEQERA_PLATFORM_API_URL}/user-info` is called with the caller's bearer token (platform_api.py).
Answers are cached for `auth_cache_ttl` seconds keyed by the sha256 of the token (the token itself is
never stored or logged); concurrent checks of one token share a single Platform call.
"""
from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import time

from aiohttp import web

from .errors import PlatformUnavailable
from .platform_api import Platform

OPEN_ROUTES = {("GET", "/"), ("GET", "/health"), ("HEAD", "/"), ("HEAD", "/health")}
MAX_CACHE = 10_000


@dataclasses.dataclass(frozen=True)
class User:
    id: str
    name: str | None
    info: dict  # Platform's user-info answer, passed through to /v1/cli/user-info


class Authenticator:
    def __init__(self, platform: Platform, ttl: float):
        self._platform, self._ttl = platform, ttl
        self._cache: dict[str, tuple[float, User]] = {}
        self._inflight: dict[str, asyncio.Future] = {}

    async def authenticate(self, token: str) -> User:
        key = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit and hit[0] > now:
            return hit[1]
        fut = self._inflight.get(key)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self._inflight[key] = fut
            try:
                user = await self._check(token)
                self._store(key, user)
                fut.set_result(user)
            except BaseException as exc:
                fut.set_exception(exc)
                fut.exception()  # mark retrieved: waiters (if any) re-raise it themselves
                raise
            finally:
                self._inflight.pop(key, None)
            return user
        return await asyncio.shield(fut)

    def _store(self, key: str, user: User) -> None:
        if len(self._cache) >= MAX_CACHE:
            now = time.monotonic()
            for k in [k for k, (exp, _) in self._cache.items() if exp <= now]:
                del self._cache[k]
            while len(self._cache) >= MAX_CACHE:
                self._cache.pop(next(iter(self._cache)))
        self._cache[key] = (time.monotonic() + self._ttl, user)

    async def _check(self, token: str) -> User:
        body = await self._platform.get_ok(token, "/user-info", "the token check")
        user = body.get("user") if isinstance(body, dict) else None
        if not isinstance(user, dict) or user.get("id") is None:
            raise PlatformUnavailable("Seqera Platform user-info answer has no user id")
        return User(id=str(user["id"]), name=user.get("userName") or user.get("email"), info=body)


USER = web.RequestKey("agent_backend_user", User)


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
