"""The service's HTTP error vocabulary: the exceptions a request can end in, and the one table
(`ANSWERS`) that says which status, detail and headers each becomes. Errors are JSON `{"detail": "..."}`.
The middleware (middlewares.py) answers with `answer_for`; handlers only raise.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from aiohttp import web

from .db import DatabaseBusy, DatabaseUnavailable, SchemaMissing


class BadRequest(Exception):
    """The request is malformed; the message says which field or parameter, and why."""


class Unauthorized(Exception):
    """No bearer token, or one Seqera Platform rejects."""


class PlatformUnavailable(Exception):
    """Seqera Platform cannot be reached, or answered something unusable; the message says what."""


class SessionNotFound(Exception):
    """No such session of this user (another user's session is never revealed to exist)."""


class RunConflict(Exception):
    """The session has a live run."""


class UsageLimitReached(Exception):
    """The installation's monthly token limit is used up."""


class ServiceDraining(Exception):
    """This replica is shutting down: no new sessions or messages."""


RETRY = {"Retry-After": "2"}
# An overloaded replica (no pooled connection free in time) asks for a longer pause than an outage does.
BUSY_RETRY_AFTER_S = 5
BUSY_MESSAGE = f"The service is busy; retry in {BUSY_RETRY_AFTER_S} s."


@dataclasses.dataclass(frozen=True)
class Answer:
    status: int
    detail: str | Callable[[BaseException], str]  # a fixed text, or one made from the exception
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


# First match wins: a subclass comes before its base (SchemaMissing and DatabaseBusy are DatabaseUnavailable).
ANSWERS: tuple[tuple[type[BaseException], Answer], ...] = (
    (BadRequest, Answer(400, str)),
    (Unauthorized, Answer(401, str, {"WWW-Authenticate": "Bearer"})),
    (SessionNotFound, Answer(404, "Not found")),
    (RunConflict, Answer(409, "A run is already active in this session; wait for it to finish or cancel it.")),
    (UsageLimitReached, Answer(429, "Monthly token limit reached for this agent-backend installation. "
                                    "Ask your administrator to raise it.")),
    (PlatformUnavailable, Answer(503, str)),
    (ServiceDraining, Answer(503, "The service is shutting down; retry in a moment.", RETRY)),
    # Logged once by the Database when it starts, not per request.
    (SchemaMissing, Answer(503, "The database schema is missing: an administrator must run ./init.sh (the "
                                "migrations); retry after that.", RETRY)),
    # Logged by the Database ("database pool busy"), at most every few seconds.
    (DatabaseBusy, Answer(503, BUSY_MESSAGE, {"Retry-After": str(BUSY_RETRY_AFTER_S)})),
    (DatabaseUnavailable, Answer(503, "The database is unavailable; retry shortly.", RETRY)),
)


def error(status: int, detail: str, headers: dict | None = None) -> web.Response:
    return web.json_response({"detail": detail}, status=status, headers=headers)


def answer_for(exc: BaseException) -> web.Response | None:
    """The error response `exc` stands for, or None when it is not one of ours (a bug: a 500)."""
    for kind, answer in ANSWERS:
        if isinstance(exc, kind):
            detail = answer.detail if isinstance(answer.detail, str) else answer.detail(exc)
            return error(answer.status, detail, answer.headers or None)
    return None
