"""A local stand-in of Seqera MCP, built with the `mcp` SDK's own server (MCPServer, streamable HTTP at
`/mcp`), served by uvicorn on 127.0.0.1 in a thread of its own.

    mcp = McpStandIn(platform).start()        # tokens are checked against the Platform stand-in's users
    service env: SEQERA_MCP_URL=mcp.url       # (= http://127.0.0.1:<port>/mcp)
    mcp.calls                                 # [Call(user, tool, args)], in order
    mcp.requests, mcp.list_requests           # how many HTTP requests came in; how many were tools/list
    McpStandIn(platform, legacy=True)         # refuses the 2026 protocol's server/discover: clients fall back
                                              # to the 2025 handshake, a stateful session a restart loses
    mcp.go_down("5xx") / go_down("hang")      # every request answers 503 / is held until come_up()
    mcp.go_down("refuse")                     # stops listening; come_up() starts a NEW server on the
                                              # same port (its sessions are gone, as after a restart)
    mcp.come_up(); mcp.stop()

An unknown token gets 401 (the SDK's bearer middleware). The tools are shaped like Seqera's, and answer
each user with that user's own data:
- read-only (readOnlyHint): `platform_list_workflows(workspace)`, `platform_describe_workflow(workflow_id)`,
  `search_nfcore_module(query)`, `search_seqera_api(query)`, `platform_get_compute_env(name)` (always
  an error result), `platform_wait_for_workflow(workflow_id)` (answers once `release()` is called);
- changing state: `platform_launch_workflow(pipeline, workspace)` (in workspace "slow": answers once
  `release()` is called), `call_seqera_api(service, api_name, parameters)`.
"""
from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass

import uvicorn
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

from .platform import PlatformStandIn

READ_ONLY = ToolAnnotations(readOnlyHint=True)
CHANGES = ToolAnnotations(readOnlyHint=False, destructiveHint=False)


@dataclass(frozen=True)
class Call:
    user: str
    tool: str
    args: dict


def workflows_of(user: str) -> list[dict]:
    """The runs the stand-in shows `user` (every user has their own)."""
    return [{"id": f"{user}-wf-1", "runName": f"{user}_rnaseq_nightly", "status": "FAILED",
             "errorMessage": "Process RNASEQ:STAR_ALIGN terminated with an error exit status (137)"},
            {"id": f"{user}-wf-2", "runName": f"{user}_sarek_weekly", "status": "SUCCEEDED", "errorMessage": None}]


def _listening_socket(port: int) -> socket.socket:
    """127.0.0.1:port (0: the OS picks), re-bindable after a stop. TCP_NODELAY is set here, and accepted
    connections inherit it: uvicorn given a socket made without IPPROTO_TCP leaves Nagle on, and then
    every response after a connection's first waits about 40 ms for the client's delayed ACK."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", port))
    return sock


class _Tokens:
    """The SDK's TokenVerifier: a token is valid when the Platform stand-in knows it."""

    def __init__(self, platform: PlatformStandIn):
        self.platform = platform

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            user = self.platform.user_for(token)
        except KeyError:
            return None
        return AccessToken(token=token, client_id=str(user["userName"]), scopes=[])


async def _plain(send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive):
    """An ASGI request's whole body, and a `receive` that hands it on to the app unchanged."""
    messages, body = [], b""
    while True:
        message = await receive()
        messages.append(message)
        body += message.get("body", b"")
        if message["type"] != "http.request" or not message.get("more_body"):
            break

    async def replay():
        return messages.pop(0) if messages else await receive()
    return body, replay


class McpStandIn:
    def __init__(self, platform: PlatformStandIn, port: int = 0, *, legacy: bool = False):
        self.platform, self.legacy = platform, legacy
        self._sock = _listening_socket(port)
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.calls: list[Call] = []
        self.requests = self.list_requests = 0
        self._released = threading.Event()
        self.mode = "up"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # --- the MCP server ---------------------------------------------------------------------------

    def _user(self) -> str:
        token = get_access_token()
        return token.client_id if token else "?"

    def _record(self, tool: str, args: dict) -> str:
        user = self._user()
        self.calls.append(Call(user, tool, args))
        return user

    def _build(self) -> MCPServer:
        origin = f"http://127.0.0.1:{self.port}"
        server = MCPServer("seqera", token_verifier=_Tokens(self.platform), log_level="WARNING",
                           auth=AuthSettings(issuer_url=origin, resource_server_url=self.url,
                                             validate_token_resource=False))
        standin = self

        @server.tool(annotations=READ_ONLY)
        def platform_list_workflows(workspace: str) -> list[dict]:
            """List the workflow runs of a Seqera Platform workspace, newest first."""
            user = standin._record("platform_list_workflows", {"workspace": workspace})
            return [dict(w, workspace=workspace) for w in workflows_of(user)]

        @server.tool(annotations=READ_ONLY)
        def platform_describe_workflow(workflow_id: str) -> dict:
            """Describe one workflow run: status, error, failed tasks."""
            user = standin._record("platform_describe_workflow", {"workflow_id": workflow_id})
            found = [w for w in workflows_of(user) if w["id"] == workflow_id]
            if not found:
                raise ValueError(f"no workflow {workflow_id}")
            return dict(found[0], failedTasks=["RNASEQ:STAR_ALIGN (sample_3)"] if found[0]["status"] == "FAILED"
                        else [])

        @server.tool(annotations=READ_ONLY)
        def search_nfcore_module(query: str) -> list[str]:
            """Search nf-core modules by name or keyword."""
            standin._record("search_nfcore_module", {"query": query})
            return [f"nf-core/{query}", f"nf-core/{query}/index"]

        @server.tool(annotations=READ_ONLY)
        def search_seqera_api(query: str) -> list[dict]:
            """Find the Seqera API operations that match a question (meta-tool)."""
            standin._record("search_seqera_api", {"query": query})
            return [{"service": "platform", "api_name": "list_workflows", "summary": "List workflow runs"}]

        @server.tool(annotations=READ_ONLY)
        def platform_get_compute_env(name: str) -> dict:
            """Describe a compute environment."""
            standin._record("platform_get_compute_env", {"name": name})
            raise ValueError(f"compute environment {name!r} is not reachable")

        @server.tool(annotations=READ_ONLY)
        async def platform_wait_for_workflow(workflow_id: str) -> str:
            """Wait until a workflow run ends."""
            standin._record("platform_wait_for_workflow", {"workflow_id": workflow_id})
            while not standin._released.is_set():
                await asyncio.sleep(0.05)
            return f"{workflow_id} ended"

        @server.tool(annotations=CHANGES)
        async def platform_launch_workflow(pipeline: str, workspace: str) -> dict:
            """Launch a pipeline in a workspace."""
            user = standin._record("platform_launch_workflow", {"pipeline": pipeline, "workspace": workspace})
            while workspace == "slow" and not standin._released.is_set():  # launched, but the answer is late
                await asyncio.sleep(0.05)
            return {"workflowId": f"{user}-launched-{len(standin.calls)}", "pipeline": pipeline}

        @server.tool(annotations=CHANGES)
        def call_seqera_api(service: str, api_name: str, parameters: dict) -> dict:
            """Call a Seqera API operation found with search_seqera_api (meta-tool)."""
            standin._record("call_seqera_api", {"service": service, "api_name": api_name, "parameters": parameters})
            return {"ok": True}

        return server

    def _asgi(self):
        app = self._build().streamable_http_app()
        standin = self

        async def gate(scope, receive, send):
            if scope["type"] == "http":
                standin.requests += 1
                while standin.mode == "hang":
                    await asyncio.sleep(0.05)
                if standin.mode == "5xx":
                    return await _plain(send, 503, b"unavailable")
                if scope.get("path") == "/mcp" and scope.get("method") == "POST":
                    body, receive = await _read_body(receive)
                    if b'"tools/list"' in body:
                        standin.list_requests += 1
                    if standin.legacy and b'"server/discover"' in body:
                        return await _plain(send, 404, b"")  # a 2025-era server: the client falls back
            await app(scope, receive, send)
        return gate

    # --- running it -------------------------------------------------------------------------------

    def start(self) -> "McpStandIn":
        self.mode = "up"
        self._sock.listen(128)
        server = self._server = uvicorn.Server(uvicorn.Config(
            self._asgi(), log_level="warning", lifespan="on",
            timeout_graceful_shutdown=1))  # a stop closes open streams (a 2025-era client keeps one) at once
        self._thread = threading.Thread(target=server.run, kwargs={"sockets": [self._sock]}, daemon=True,
                                        name="mcp-standin")
        self._thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the MCP stand-in did not start")
            time.sleep(0.02)
        return self

    def _halt(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=30)
            self._server = self._thread = None

    def go_down(self, mode: str = "refuse") -> None:
        if mode == "refuse":
            self._halt()
            self._sock.close()  # uvicorn closed it too; a new one is bound on come_up()
        self.mode = mode

    def come_up(self) -> None:
        if self._server is None:
            self._sock = _listening_socket(self.port)
            self.start()
        self.mode = "up"

    def release(self) -> None:
        """Let every platform_wait_for_workflow call answer."""
        self._released.set()

    def stop(self) -> None:
        self.mode = "up"  # releases held requests
        self._released.set()
        self._halt()
        self._sock.close()

    def __enter__(self) -> "McpStandIn":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def calls_by(self, user: str) -> list[Call]:
        return [c for c in self.calls if c.user == user]

    def wait_calls(self, n: int, timeout: float = 60) -> list[Call]:
        deadline = time.monotonic() + timeout
        while len(self.calls) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the MCP stand-in got {len(self.calls)} calls, not {n}")
            time.sleep(0.02)
        return list(self.calls)


