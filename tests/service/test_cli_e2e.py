"""The real Seqera CLI (`seqera ai --headless`, 1.12.0) against the service running as `python -m
agent_backend`, with the stand-in model asking for a local command: the CLI really runs it in its working
directory, the answer quotes the output, and `-c` resumes the conversation with the earlier turns."""
from __future__ import annotations

import asyncio
import secrets
import subprocess
from pathlib import Path

import aiohttp
import pytest

from tests.service.cli import Cli
from tests.support import paths
from tests.support.standins.anthropic import DEFAULT_ANSWER, RESULT_PREFIX, Reply, tool_result_text


@pytest.fixture
def project(tmp_path) -> Path:
    p = tmp_path / "pipeline"
    p.mkdir()
    (p / "main.nf").write_text("workflow { println 'hello' }\n")
    return p


@pytest.fixture
def seqera(tmp_path, project, sentinels):
    """`seqera(*args)` runs the real CLI offline against a backend URL, in the project directory."""
    home = tmp_path / "home"
    home.mkdir()
    assert paths.SEQERA_CLI.exists(), f"{paths.SEQERA_CLI} missing: run ci/setup.sh"

    async def run(url: str, *args: str, token: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "SEQERA_AI_BACKEND_URL": url,
            "SEQERA_ACCESS_TOKEN": token or sentinels.alice_token,
            "SEQERA_NO_KEYCHAIN": "true",
            "SEQERA_LOG_FILE": str(tmp_path / "cli-events.jsonl"),
            "NO_COLOR": "1",
        }
        return await asyncio.to_thread(
            subprocess.run, [str(paths.SEQERA_CLI), *args], cwd=project, env=env, capture_output=True,
            text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    return run


async def list_sessions(url, token, cwd):
    async with aiohttp.ClientSession() as http:
        r = await Cli(http, url, token).list_sessions(limit=20, cwd=str(cwd))
        assert r.status == 200, r.text
        return r.body["sessions"]


async def test_headless_conversation_with_local_command_then_resume(service_process, seqera, project, sentinels,
                                                                    anthropic_standin):
    proc = service_process()
    marker = f"marker-{secrets.token_hex(8)}"
    (project / "marker.txt").write_text(marker + "\n")  # exists only in the CLI's working directory

    first = await seqera(proc.url, "ai", "--headless", "Please run `cat marker.txt` and tell me what it says")
    assert first.returncode == 0, f"stdout:\n{first.stdout}\nstderr:\n{first.stderr}"
    assert "I will run that command for you." in first.stdout
    assert RESULT_PREFIX + marker in first.stdout
    calls = anthropic_standin.message_requests
    assert len(calls) == 2
    result = [b for b in calls[1].json["messages"][-1]["content"] if b.get("type") == "tool_result"]
    assert marker in tool_result_text(result[0])  # the CLI ran it, in its own directory

    [session] = await list_sessions(proc.url, sentinels.alice_token, project)
    assert session["expired_at"]  # the CLI expires its session at the end of a headless run

    second = await seqera(proc.url, "ai", "--headless", "-c", "What did that file say?")
    assert second.returncode == 0, f"stdout:\n{second.stdout}\nstderr:\n{second.stderr}"
    assert "No expired session found" not in second.stderr
    assert second.stdout.strip() == DEFAULT_ANSWER
    resumed = anthropic_standin.message_requests[-1].json["messages"]
    flat = str(resumed)
    assert "cat marker.txt" in flat and marker in flat and "What did that file say?" in flat
    assert [m["role"] for m in resumed][0] == "user" and len(resumed) >= 5
    sessions = await list_sessions(proc.url, sentinels.alice_token, project)
    assert [s["session_id"] for s in sessions] == [session["session_id"]]  # resumed, not a new one


async def test_continue_picks_the_most_recent_conversation(service_process, seqera, project, sentinels,
                                                           anthropic_standin):
    proc = service_process()
    for topic in ("OLDER-TOPIC", "NEWER-TOPIC"):
        r = await seqera(proc.url, "ai", "--headless", f"Let us talk about {topic}")
        assert r.returncode == 0, r.stderr
    r = await seqera(proc.url, "ai", "--headless", "-c", "Where were we?")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == DEFAULT_ANSWER
    flat = str(anthropic_standin.message_requests[-1].json["messages"])
    assert "NEWER-TOPIC" in flat and "OLDER-TOPIC" not in flat


async def test_upstream_failure_is_reported_by_the_cli(service_process, seqera, anthropic_standin):
    proc = service_process()
    anthropic_standin.script(*[Reply.overloaded() for _ in range(20)])
    r = await seqera(proc.url, "ai", "--headless", "hello")
    assert r.returncode == 1
    assert "Error:" in r.stderr


async def test_invalid_token_is_reported_by_the_cli(service_process, seqera):
    proc = service_process()
    r = await seqera(proc.url, "ai", "--headless", "hello", token="not-a-valid-token")
    assert r.returncode == 1
    assert "401" in r.stderr
    assert "not-a-valid-token" not in proc.log()


async def test_seqera_info_reads_the_service(service_process, seqera):
    proc = service_process()
    r = await seqera(proc.url, "info")
    assert r.returncode == 0, f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    assert "alice" in r.stdout + r.stderr
