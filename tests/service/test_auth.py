"""Every call but `GET /` and `/health` is authenticated with the caller's Platform token, checked
against Platform's user-info and cached briefly by token hash."""
from __future__ import annotations

import asyncio
import uuid

import pytest

SID = "5e55e55e-0000-4000-8000-000000000001"  # fixed: xdist workers must collect the same ids
PROTECTED = [
    ("GET", "/v1/cli/user-info"),
    ("GET", "/v1/cli/service-info"),
    ("GET", "/v1/cli/organizations"),
    ("GET", "/v1/cli/sessions"),
    ("POST", "/v1/cli/sessions"),
    ("GET", "/v1/cli/skills"),
    ("GET", "/v1/cli/credits"),
    ("POST", "/v1/cli/telemetry/crash"),
    ("GET", f"/v1/cli/sessions/{SID}/messages"),
    ("POST", f"/v1/cli/sessions/{SID}/messages"),
    ("GET", f"/v1/cli/sessions/{SID}/events"),
    ("POST", f"/v1/cli/sessions/{SID}/tool-results"),
    ("POST", f"/v1/cli/sessions/{SID}/expire"),
]


async def test_open_routes_need_no_token(service):
    anon = service.cli(None)
    root = await anon.get("/")
    assert root.status == 200
    assert root.body["platform_url"] == service.platform.url
    assert isinstance(root.body["version"], str) and root.body["version"]
    assert (await anon.get("/health")).status == 200
    assert service.platform.user_info_calls() == 0


@pytest.mark.parametrize("method, path", PROTECTED)
async def test_no_token_is_401(service, method, path):
    r = await service.cli(None).request(method, path, json_body={})
    assert r.status == 401, r.text
    assert r.detail
    assert service.platform.user_info_calls() == 0  # rejected without asking Platform


@pytest.mark.parametrize("header", ["Basic YWxpY2U6cGFzcw==", "Bearer", "Bearer ", "bearer"])
async def test_malformed_authorization_is_401(service, header):
    r = await service.cli(None).get("/v1/cli/user-info", headers={"Authorization": header})
    assert r.status == 401, r.text
    assert r.detail


@pytest.mark.parametrize("method, path", PROTECTED)
async def test_invalid_token_is_401(service, method, path):
    r = await service.cli("not-a-valid-token").request(method, path, json_body={})
    assert r.status == 401, r.text
    assert r.detail
    assert service.platform.user_info_calls("not-a-valid-token") == 1


async def test_valid_token_is_checked_with_platform(service, alice):
    r = await alice.get("/v1/cli/user-info")
    assert r.status == 200, r.text
    assert r.body["user"]["userName"] == "alice"
    assert r.body["user"]["email"] == "alice@example.org"
    [call] = service.platform.requests_to("/api/user-info")
    assert call.header("authorization") == f"Bearer {service.sentinels.alice_token}"


async def test_answers_are_cached_per_token(service, alice, bob):
    for _ in range(3):
        assert (await alice.get("/v1/cli/user-info")).status == 200
    assert service.platform.user_info_calls(service.sentinels.alice_token) == 1
    r = await bob.get("/v1/cli/user-info")
    assert r.body["user"]["userName"] == "bob"  # a cached answer never leaks to another token
    assert service.platform.user_info_calls(service.sentinels.bob_token) == 1


async def test_concurrent_first_calls_share_one_platform_check(service, alice):
    results = await asyncio.gather(*(alice.get("/v1/cli/user-info") for _ in range(20)))
    assert {r.status for r in results} == {200}
    assert service.platform.user_info_calls(service.sentinels.alice_token) == 1


async def test_cache_expires(make_service, sentinels):
    svc = await make_service(auth_cache_ttl=0.2)
    alice = svc.cli(sentinels.alice_token)
    assert (await alice.get("/v1/cli/user-info")).status == 200
    svc.platform.remove_user(sentinels.alice_token)  # the token is revoked on Platform
    await asyncio.sleep(0.5)
    r = await alice.get("/v1/cli/user-info")
    assert r.status == 401, r.text
    assert svc.platform.user_info_calls(sentinels.alice_token) == 2


async def test_a_rejected_token_does_not_stay_rejected(service):
    token = "tok-created-later-" + uuid.uuid4().hex
    assert (await service.cli(token).get("/v1/cli/user-info")).status == 401
    service.platform.add_user(token, "carol")
    r = await service.cli(token).get("/v1/cli/user-info")
    assert r.status == 200, r.text
    assert r.body["user"]["userName"] == "carol"


@pytest.mark.parametrize("mode", ["refuse", "5xx"])
async def test_platform_down_is_503_not_401(service, alice, mode):
    service.platform.go_down(mode)
    r = await alice.get("/v1/cli/user-info")
    assert r.status == 503, r.text  # a 401 would make the CLI throw away a good token
    assert r.detail
    service.platform.come_up()
    r = await alice.get("/v1/cli/user-info")
    assert r.status == 200, r.text


async def test_slow_platform_is_503_not_a_hang(make_service, sentinels):
    svc = await make_service(auth_timeout=0.5)
    svc.platform.add_user("tok-slow", "slowpoke", delay=120)
    r = await svc.cli("tok-slow").get("/v1/cli/user-info")
    assert r.status == 503, r.text
    # Other users are not held up by the slow check.
    assert (await svc.cli(sentinels.alice_token).get("/v1/cli/user-info")).status == 200
