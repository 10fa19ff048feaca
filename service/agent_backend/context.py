"""The app's state: one Context on the aiohttp Application (no module globals), which handlers, the
middlewares and the background tasks read through `ctx(request)` / `app[CTX]`. app.py fills it in as each
resource starts (aiohttp's cleanup_ctx) and empties nothing: teardown closes the resources themselves."""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from .auth import Authenticator
from .config import Config
from .db import Database
from .events import EventStreamer, EventWriter
from .lifecycle import Lifecycle
from .llm import LLM
from .platform_api import Platform
from .runs import RunManager
from .tracing import Tracer

if TYPE_CHECKING:
    from .seqera_mcp import SeqeraMcp


@dataclasses.dataclass
class Context:
    cfg: Config
    db: Database
    lifecycle: Lifecycle
    schema_version: int  # the newest migration packaged with this image: readiness wants the database there
    http: aiohttp.ClientSession | None = None
    platform: Platform | None = None
    auth: Authenticator | None = None
    llm: LLM | None = None
    tracer: Tracer | None = None
    mcp: SeqeraMcp | None = None  # None: SEQERA_MCP_URL not set
    writer: EventWriter | None = None
    runs: RunManager | None = None
    streamer: EventStreamer | None = None


CTX = web.AppKey("agent_backend_context", Context)


def ctx(request: web.Request) -> Context:
    return request.app[CTX]
