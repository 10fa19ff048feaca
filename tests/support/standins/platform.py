"""A local stand-in of the Seqera Platform API endpoints the service (and the CLI) call.

    platform = PlatformStandIn().start()
    alice = platform.add_user("tok-alice", "alice")            # -> the user dict Platform would return
    platform.add_user("tok-slow", "slowpoke", delay=30)       # answers after 30 s (or when the client leaves)
    service env: SEQERA_PLATFORM_API_URL=platform.api_url  (= platform.url + "/api")
    platform.user_info_calls("tok-alice")                     # how many GET /api/user-info carried that token
    platform.go_down("refuse") / platform.go_down("5xx") / platform.come_up()
    platform.stop()

Routes (Platform's shapes, Bearer token in `Authorization`; unknown token -> 401 like Platform):
- `GET /api/user-info`                   -> {"user": {"id", "userName", "email", ...}, "needConsent": false,
                                             "defaultWorkspaceId": null}
- `GET /api/service-info`                -> {"serviceInfo": {"version", "apiVersion", ...}}
- `GET /api/orgs`                        -> {"organizations": [{"orgId", "name", "fullName", ...}], "totalSize"}
- `GET /api/user/{userId}/workspaces`    -> {"orgsAndWorkspaces": [...]}
A token's user can be given organizations with `add_user(..., orgs=[{"orgId": 1, "name": "acme"}])`.

Run standalone: `python -m tests.support.standins.platform --port 8901 --user TOKEN=NAME ...`.
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
from typing import Any

from aiohttp import web

from ._server import StandIn, serve_forever

PLATFORM_VERSION = "25.3.0-standin"


class PlatformStandIn(StandIn):
    name = "platform"

    def __init__(self, port: int = 0) -> None:
        super().__init__(port)
        self._users: dict[str, dict[str, Any]] = {}  # token -> {"user":..., "delay":..., "orgs":...}
        self._ids = itertools.count(1001)

    @property
    def api_url(self) -> str:
        """What the service's SEQERA_PLATFORM_API_URL should be."""
        return self.url + "/api"

    def add_user(self, token: str, user_name: str, *, email: str | None = None, delay: float = 0.0,
                 orgs: list[dict[str, Any]] | None = None, user_id: int | None = None) -> dict[str, Any]:
        """Make `token` valid for a new user; returns the `user` object Platform will answer."""
        uid = user_id if user_id is not None else next(self._ids)
        user = {
            "id": uid,
            "userName": user_name,
            "email": email or f"{user_name}@example.org",
            "firstName": None,
            "lastName": None,
            "organization": None,
            "description": None,
            "avatar": None,
            "avatarId": None,
            "notification": True,
            "termsOfUseConsent": True,
            "marketingConsent": False,
            "lastAccess": "2026-11-28T00:00:00Z",
            "dateCreated": "2026-01-01T00:00:00Z",
            "lastUpdated": "2026-01-01T00:00:00Z",
            "deleted": False,
            "trusted": True,
        }
        orgs = [
            {"orgId": o.get("orgId", i + 1), "name": o.get("name", f"org{i + 1}"),
             "fullName": o.get("fullName", o.get("name", f"Organization {i + 1}")), "description": None,
             "location": None, "website": None, "logoId": None, "logoUrl": None, "memberId": uid * 10 + i,
             "memberRole": o.get("memberRole", "owner"), "paying": o.get("paying", False), "type": "academic"}
            for i, o in enumerate(orgs or [])
        ]
        with self._lock:
            self._users[token] = {"user": user, "delay": delay, "orgs": orgs}
        return user

    def user_for(self, token: str) -> dict[str, Any]:
        """The user object a valid token stands for."""
        with self._lock:
            return self._users[token]["user"]

    def remove_user(self, token: str) -> None:
        """Revoke a token (it answers 401 from now on)."""
        with self._lock:
            self._users.pop(token, None)

    def user_info_calls(self, token: str | None = None) -> int:
        """How many GET /api/user-info arrived (with this bearer token, if given)."""
        return sum(
            1 for r in self.requests_to("/api/user-info", "GET")
            if token is None or r.header("authorization") == f"Bearer {token}"
        )

    # ---- HTTP -------------------------------------------------------------------------------------
    def routes(self, app: web.Application) -> None:
        app.router.add_get("/api/user-info", self._user_info)
        app.router.add_get("/api/service-info", self._service_info)
        app.router.add_get("/api/orgs", self._orgs)
        app.router.add_get("/api/user/{user_id}/workspaces", self._workspaces)
        app.router.add_route("*", "/{tail:.*}", self._not_found)

    async def _authenticate(self, request: web.Request) -> dict[str, Any] | None:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return None
        with self._lock:
            entry = self._users.get(auth[7:])
        if entry is None:
            return None
        if entry["delay"]:
            await asyncio.sleep(entry["delay"])
        return entry

    @staticmethod
    def _unauthorized() -> web.Response:
        return web.json_response({"message": "Unauthorized"}, status=401)

    async def _user_info(self, request: web.Request) -> web.Response:
        entry = await self._authenticate(request)
        if entry is None:
            return self._unauthorized()
        return web.json_response({"user": entry["user"], "needConsent": False, "defaultWorkspaceId": None})

    async def _service_info(self, request: web.Request) -> web.Response:
        return web.json_response({"serviceInfo": {
            "version": PLATFORM_VERSION, "apiVersion": "1.40.0", "commitId": "standin",
            "authTypes": ["github"], "loginPath": "/login", "navbar": None, "heartbeatInterval": 60,
            "userWorkspaceEnabled": True, "allowInstanceCredentials": False, "landingUrl": None,
            "termsOfUseUrl": None, "contentUrl": None, "analytics": None, "allowLocalRepos": False,
            "contentMaxFileSize": 0, "waveEnabled": False, "groundswellEnabled": False,
            "groundswellAllowedWorkspaces": None, "waveAllowedWorkspaces": None, "forgePrefix": None,
            "seqeraCloud": False, "evalWorkspaceIds": [], "contactEmail": "support@example.org",
            "allowNextflowCliLogs": False,
        }})

    async def _orgs(self, request: web.Request) -> web.Response:
        entry = await self._authenticate(request)
        if entry is None:
            return self._unauthorized()
        return web.json_response({"organizations": entry["orgs"], "totalSize": len(entry["orgs"])})

    async def _workspaces(self, request: web.Request) -> web.Response:
        entry = await self._authenticate(request)
        if entry is None:
            return self._unauthorized()
        if str(entry["user"]["id"]) != request.match_info["user_id"]:
            return web.json_response({"message": "Forbidden"}, status=403)
        return web.json_response({"orgsAndWorkspaces": [
            {"orgId": o["orgId"], "orgName": o["name"], "orgLogoUrl": None, "workspaceId": None,
             "workspaceName": None, "workspaceFullName": None, "visibility": None, "roles": [o["memberRole"]]}
            for o in entry["orgs"]
        ]})

    async def _not_found(self, request: web.Request) -> web.Response:
        return web.json_response({"message": f"stand-in has no route {request.method} {request.path}"},
                                 status=404)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--user", action="append", default=[], help="TOKEN=NAME (repeatable)")
    known, rest = parser.parse_known_args(argv)
    standin = PlatformStandIn()
    for spec in known.user:
        token, _, name = spec.partition("=")
        standin.add_user(token, name or "user")
    serve_forever(standin, rest)


if __name__ == "__main__":
    main()
