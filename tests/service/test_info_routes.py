"""The small routes `seqera info`, `seqera org` and the TUI read, in the shapes the CLI parses."""
from __future__ import annotations


async def test_root_reports_version_and_platform(service):
    r = await service.cli(None).get("/")
    assert r.status == 200
    assert r.body["version"] == service.config.version
    assert r.body["platform_url"] == service.platform.url


async def test_health_is_open_and_cheap(service):
    r = await service.cli(None).get("/health")
    assert r.status == 200
    assert service.platform.user_info_calls() == 0
    assert service.anthropic.requests == []


async def test_user_info_is_platforms_shape(alice):
    r = await alice.get("/v1/cli/user-info")
    assert r.status == 200
    user = r.body["user"]
    for key in ("userName", "email", "firstName", "lastName"):
        assert key in user  # `seqera info` prints these
    assert user["userName"] == "alice"


async def test_service_info_is_platforms_shape(alice):
    r = await alice.get("/v1/cli/service-info")
    assert r.status == 200, r.text
    info = r.body["serviceInfo"]
    assert isinstance(info["version"], str) and info["version"]
    assert "apiVersion" in info


async def test_organizations(alice, bob):
    r = await alice.get("/v1/cli/organizations")
    assert r.status == 200, r.text
    orgs = r.body["organizations"]
    assert any(str(o.get("org_id")) == "42" and o.get("org_name") == "acme" for o in orgs), orgs
    r = await bob.get("/v1/cli/organizations")
    assert r.status == 200 and r.body["organizations"] == []


async def test_skills(alice):
    r = await alice.get("/v1/cli/skills")
    assert r.status == 200
    assert isinstance(r.body["skills"], list)
    for s in r.body["skills"]:
        assert s["name"] and "description" in s


async def test_credits_shape(alice):
    r = await alice.get("/v1/cli/credits")
    assert r.status == 200, r.text
    assert r.body["org_credits_enabled"] is False
    for key in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens"):
        assert r.body[key] == 0


async def test_crash_telemetry_is_accepted(alice):
    body = {"client_version": "1.12.0", "runtime_version": "1.4.2", "platform": "linux",
            "interaction_mode": "headless", "caller": "script", "session_id": None, "org_id": None,
            "cwd": "/home/alice", "error_message": "boom", "error_name": "Error", "stack": "at x"}
    r = await alice.post("/v1/cli/telemetry/crash", body)
    assert r.status == 204, r.text


async def test_root_never_shows_credentials_in_the_platform_url(make_service, platform_standin):
    """GET / is open: a user:password@ in the configured Platform URL stays out of its answer."""
    url = platform_standin.url.replace("://", "://svc:S3CRET-url-pw@", 1)
    svc = await make_service(env_overrides={"SEQERA_PLATFORM_URL": url})
    r = await svc.cli(None).get("/")
    assert r.status == 200 and "S3CRET" not in r.text, r.text
