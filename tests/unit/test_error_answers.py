"""errors.ANSWERS: each exception a request can end in has one status, detail and headers."""
from __future__ import annotations

import json

import pytest

from agent_backend import errors
from agent_backend.db import DatabaseBusy, DatabaseUnavailable, InFlightLost, SchemaMissing

RETRY = {"Retry-After": "2"}


def answered(exc: BaseException) -> tuple[int, str, dict]:
    resp = errors.answer_for(exc)
    assert resp is not None
    extra = {k: v for k, v in resp.headers.items() if k not in ("Content-Type", "Content-Length")}
    return resp.status, json.loads(resp.body)["detail"], extra


@pytest.mark.parametrize(("exc", "status", "detail", "headers"), [
    (errors.BadRequest("field 'content' is required"), 400, "field 'content' is required", {}),
    (errors.Unauthorized("Invalid or expired access token"), 401, "Invalid or expired access token",
     {"WWW-Authenticate": "Bearer"}),
    (errors.SessionNotFound(), 404, "Not found", {}),
    (errors.RunConflict(), 409, "A run is already active in this session; wait for it to finish or cancel it.", {}),
    (errors.UsageLimitReached(), 429, "Monthly token limit reached for this agent-backend installation. "
                                      "Ask your administrator to raise it.", {}),
    (errors.PlatformUnavailable("Seqera Platform is unreachable"), 503, "Seqera Platform is unreachable", {}),
    (errors.ServiceDraining(), 503, "The service is shutting down; retry in a moment.", RETRY),
    (SchemaMissing("x"), 503, "The database schema is missing: an administrator must run ./init.sh (the "
                              "migrations); retry after that.", RETRY),
    (InFlightLost("database unavailable"), 503, "The database is unavailable; retry shortly.", RETRY),
    (DatabaseUnavailable("database unavailable"), 503, "The database is unavailable; retry shortly.", RETRY),
    # A pool with no connection free is not an outage: the CLI shows when to retry, and Retry-After says so.
    (DatabaseBusy("database busy"), 503, "The service is busy; retry in 5 s.", {"Retry-After": "5"}),
], ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else None)
def test_each_error_has_its_answer(exc, status, detail, headers):
    assert answered(exc) == (status, detail, headers)


def test_an_error_that_is_not_ours_has_no_answer():
    assert errors.answer_for(ValueError("a bug")) is None


def test_no_entry_is_shadowed_by_an_earlier_one():
    kinds = [kind for kind, _ in errors.ANSWERS]
    for i, kind in enumerate(kinds):
        assert not any(issubclass(kind, earlier) for earlier in kinds[:i]), kind
