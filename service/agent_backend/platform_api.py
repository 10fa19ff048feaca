"""Seqera Platform's API, called with the caller's own access token (the service holds no Platform
credential of its own): the token check, service-info and the caller's workspaces. A token Platform
rejects is Unauthorized; a Platform that cannot be reached, or answers without JSON, is
PlatformUnavailable. The token is never logged."""
from __future__ import annotations

import logging
from typing import Any

import aiohttp

from .errors import PlatformUnavailable, Unauthorized
from .logs import log

logger = logging.getLogger("agent_backend.platform")


class Platform:
    def __init__(self, http: aiohttp.ClientSession, api_url: str, timeout: float):
        self._http, self._url = http, api_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def get(self, token: str, path: str) -> tuple[int, Any]:
        """GET {api_url}{path} -> (status, JSON body, or None unless 200)."""
        try:
            async with self._http.get(f"{self._url}{path}",
                                      headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                                      timeout=self._timeout, allow_redirects=False) as resp:
                if resp.status in (401, 403):
                    raise Unauthorized("Invalid or expired access token")
                return resp.status, (await resp.json(content_type=None) if resp.status == 200 else None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log(logger, logging.WARNING, "Seqera Platform unreachable", path=path.split("?")[0],
                error=type(exc).__name__)
            raise PlatformUnavailable("Seqera Platform is unreachable") from None

    async def get_ok(self, token: str, path: str, what: str) -> Any:
        """The JSON body of a 200 answer; any other status is PlatformUnavailable naming `what` was asked."""
        status, body = await self.get(token, path)
        if status != 200:
            log(logger, logging.WARNING, "Seqera Platform answered unexpectedly", path=path.split("?")[0],
                status=status)
            raise PlatformUnavailable(f"Seqera Platform answered {status} to {what}")
        return body
