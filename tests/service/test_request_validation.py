"""Bodies have a size limit; malformed JSON or fields answer 400 with a `detail` naming the problem."""
from __future__ import annotations

import pytest

GOOD_SESSION = {"cwd": "/work/p", "approval_mode": "auto", "local_execution": True, "headless": True,
                "directory_context": {"cwd": "/work/p"}}


async def test_body_too_large_is_413(service, alice):
    sid = await alice.create_session()
    big = "x" * (service.config.max_body_bytes + 1024)
    r = await alice.send(sid, big)
    assert r.status == 413, r.status
    assert service.anthropic.message_requests == []
    # a message just under the limit is fine
    ok = await alice.turn(sid, "y" * (service.config.max_body_bytes // 2))
    assert ok.terminal["type"] == "finish"


@pytest.mark.parametrize("path", ["/v1/cli/sessions", "/v1/cli/sessions/{sid}/messages",
                                  "/v1/cli/sessions/{sid}/tool-results"])
@pytest.mark.parametrize("body", ["{not json", "", "[1, 2]", "\"text\"", "null"])
async def test_malformed_json_is_400(service, alice, path, body):
    sid = await alice.create_session()
    r = await alice.request("POST", path.format(sid=sid), data=body)
    assert r.status == 400, r.text
    assert r.detail and "Traceback" not in r.text


@pytest.mark.parametrize("path", ["/v1/cli/sessions", "/v1/cli/sessions/{sid}/messages"])
async def test_deeply_nested_json_is_400(service, alice, path):
    sid = await alice.create_session()
    depth = 50_000
    r = await alice.request("POST", path.format(sid=sid), data='{"cwd": ' + "[" * depth + "]" * depth + "}")
    assert r.status == 400, r.text
    assert "nested" in r.detail


async def test_deep_nesting_with_an_escape_is_400_not_500(service, alice):
    """Nested as deep as the JSON parser allows, with a \\u escape that makes the service look at every
    string: still a 400 about the field, never a 500."""
    depth = 900
    body = '{"cwd": "/w", "directory_context": ' + "[" * depth + '"\\u00e9"' + "]" * depth + "}"
    r = await alice.request("POST", "/v1/cli/sessions", data=body)
    assert r.status == 400, r.text
    assert "directory_context" in r.detail


@pytest.mark.parametrize("path, body, field", [
    ("/v1/cli/sessions", '{"cwd": "/work/\\ud800", "headless": true}', "cwd"),
    ("/v1/cli/sessions/{sid}/messages", '{"type": "user_message", "content": "hi \\udfff"}', "content"),
    ("/v1/cli/sessions/{sid}/tool-results",
     '{"request_id": "r1", "result": {"stdout": "\\ud83d", "stderr": "", "exit_code": 0}}', "result"),
])
async def test_lone_surrogate_escape_is_400_naming_the_field(service, alice, path, body, field):
    """Valid JSON, but text no database column can store: refused up front, never a 500."""
    sid = await alice.create_session()
    r = await alice.request("POST", path.format(sid=sid), data=body)
    assert r.status == 400, r.text
    assert field in r.detail and "Unicode" in r.detail
    # A character outside the BMP escaped as a surrogate pair is valid text.
    pair = await alice.request("POST", "/v1/cli/sessions", data='{"cwd": "/work/\\ud83d\\ude00", "headless": true}')
    assert pair.status < 300, pair.text


@pytest.mark.parametrize("field, value", [
    ("cwd", 123),
    ("approval_mode", 5),
    ("local_execution", "yes"),
    ("headless", "no"),
    ("directory_context", "a string"),
    ("instruction_context", {"not": "text"}),
    ("organization_id", ["42"]),
])
async def test_bad_session_field_is_named(service, alice, field, value):
    r = await alice.post("/v1/cli/sessions", {**GOOD_SESSION, field: value})
    assert r.status == 400, r.text
    assert field in r.detail


@pytest.mark.parametrize("change, field", [
    ({"content": None}, "content"),
    ({"content": 42}, "content"),
    ({"type": "shout"}, "type"),
    ({"type": None}, "type"),
    ({"run_id": 7}, "run_id"),
    ({"mode": "yolo"}, "mode"),
    ({"verbose": "very"}, "verbose"),
])
async def test_bad_message_field_is_named(service, alice, change, field):
    sid = await alice.create_session()
    body = {**alice.user_message("hello"), **change}
    body = {k: v for k, v in body.items() if v is not None}
    r = await alice.post(f"/v1/cli/sessions/{sid}/messages", body)
    assert r.status == 400, r.text
    assert field in r.detail
    assert service.anthropic.message_requests == []


@pytest.mark.parametrize("body, field", [
    ({"result": {"stdout": "", "stderr": "", "exit_code": 0}}, "request_id"),
    ({"request_id": "r1"}, "result"),
    ({"request_id": "r1", "result": "text"}, "result"),
    ({"request_id": "r1", "result": {"stdout": 1, "stderr": "", "exit_code": 0}}, "stdout"),
    ({"request_id": "r1", "result": {"stdout": "", "stderr": "", "exit_code": "zero"}}, "exit_code"),
])
async def test_bad_tool_result_is_named(service, alice, body, field):
    sid = await alice.create_session()
    r = await alice.post(f"/v1/cli/sessions/{sid}/tool-results", body)
    assert r.status == 400, r.text
    assert field in r.detail


@pytest.mark.parametrize("query, field", [("limit=abc", "limit"), ("limit=-1", "limit"), ("status=bogus", "status")])
async def test_bad_list_query_is_named(service, alice, query, field):
    r = await alice.get(f"/v1/cli/sessions?{query}")
    assert r.status == 400, r.text
    assert field in r.detail


async def test_bad_cursor_is_named(service, alice):
    sid = await alice.create_session()
    r = await alice.get(f"/v1/cli/sessions/{sid}/events?cursor=abc")
    assert r.status == 400, r.text
    assert "cursor" in r.detail


async def test_unknown_tool_request_id_is_not_a_500(service, alice):
    sid = await alice.create_session()
    r = await alice.tool_result(sid, "no-such-request")
    assert r.status in (404, 409), r.text
    assert r.detail


async def test_service_still_serves_after_bad_requests(service, alice):
    sid = await alice.create_session()
    await alice.request("POST", f"/v1/cli/sessions/{sid}/messages", data="{broken")
    await alice.send(sid, "z" * (service.config.max_body_bytes + 10))
    turn = await alice.turn(sid, "fine now?")
    assert turn.terminal["type"] == "finish"
