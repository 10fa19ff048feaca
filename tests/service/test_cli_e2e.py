"""The real Seqera CLI (`seqera ai --headless`, 1.12.0) against the service running as `python -m
agent_backend`, with the stand-in model asking for a local command: the CLI really runs it in its working
directory, the answer quotes the output, and `-c` resumes the conversation with the earlier turns."""
from __future__ import annotations

import asyncio
import secrets
import signal
import subprocess

import aiohttp
import pytest

from tests.service.harness import Seqera
from tests.support.cli import Cli, eventually
from tests.support.standins.anthropic import DEFAULT_ANSWER, RESULT_PREFIX, Reply, tool_result_text


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


async def held_headless_run(seqera: Seqera, url: str, anthropic) -> subprocess.Popen:
    """`seqera ai --headless` whose answer has started and is held by the model (until release())."""
    anthropic.script(Reply.held("the beginning of an answer that takes its time", hold_after=2))
    cli = seqera.start(url, "ai", "--headless", "Tell me a long story")
    held = await asyncio.to_thread(anthropic.wait_held, 60)
    assert held, f"the model was never asked; the CLI said: {cli.communicate(timeout=30)}"
    return cli


async def test_ctrl_c_then_continue_resumes_at_once(service_process, seqera, project, sentinels, anthropic_standin):
    """Headless Ctrl-C sends only an expire: it ends the run, so `-c` right after is accepted (not 409)."""
    proc = service_process()
    cli = await held_headless_run(seqera, proc.url, anthropic_standin)
    cli.send_signal(signal.SIGINT)
    await asyncio.to_thread(cli.communicate, timeout=60)
    [session] = await list_sessions(proc.url, sentinels.alice_token, project)

    again = await seqera(proc.url, "ai", "--headless", "-c", "Go on, please")
    assert again.returncode == 0, f"stdout:\n{again.stdout}\nstderr:\n{again.stderr}"
    assert "409" not in again.stderr and "No expired session found" not in again.stderr
    assert again.stdout.strip() == DEFAULT_ANSWER
    assert [s["session_id"] for s in await list_sessions(proc.url, sentinels.alice_token, project)] == \
        [session["session_id"]]
    async with aiohttp.ClientSession() as http:
        msgs = (await Cli(http, proc.url, sentinels.alice_token).messages(session["session_id"])).body["messages"]
    assert [(m["role"], m["status"]) for m in msgs][:2] == [("user", "complete"), ("assistant", "cancelled")]
    assert msgs[1]["content"].startswith("the beginning")


@pytest.mark.parametrize("restart", [False, True], ids=["same_service", "after_a_service_restart"])
async def test_closed_terminal_then_continue_resumes(service_process, seqera, project, sentinels,
                                                    anthropic_standin, restart):
    """The terminal closes mid-answer (SIGHUP: the CLI exits without expire); `-c` in that directory later,
    also after the service restarted, resumes that session rather than starting a new one."""
    proc = service_process()
    cli = await held_headless_run(seqera, proc.url, anthropic_standin)
    cli.send_signal(signal.SIGHUP)
    try:
        await asyncio.to_thread(cli.communicate, timeout=15)
    except subprocess.TimeoutExpired:  # a CLI that outlives its hang-up (pipes here, no tty to lose) is killed,
        cli.kill()                     # as a closed terminal's would be: either way no expire was sent
        await asyncio.to_thread(cli.communicate, timeout=60)
    [session] = await list_sessions(proc.url, sentinels.alice_token, project)
    anthropic_standin.release()  # the answer completes with nobody listening
    async with aiohttp.ClientSession() as http:
        alice = Cli(http, proc.url, sentinels.alice_token)
        await eventually(lambda: alice.messages(session["session_id"]),
                         lambda r: len(r.body["messages"]) == 2, what="the answer to be stored")
    assert session["expired_at"] is None  # no expire arrived
    if restart:
        assert proc.stop(grace=60) == 0
        proc.start()

    again = await seqera(proc.url, "ai", "--headless", "-c", "Where were we?")
    assert again.returncode == 0, f"stdout:\n{again.stdout}\nstderr:\n{again.stderr}"
    assert "No expired session found" not in again.stderr
    assert [s["session_id"] for s in await list_sessions(proc.url, sentinels.alice_token, project)] == \
        [session["session_id"]]
    assert "Tell me a long story" in str(anthropic_standin.message_requests[-1].json["messages"])


async def test_a_local_tool_result_is_printed_once(service_process, seqera, project):
    proc = service_process()
    marker = f"printed-once-{secrets.token_hex(6)}"
    r = await seqera(proc.url, "ai", "--headless", "--show-tool-results", f"Please run `echo {marker}`")
    assert r.returncode == 0, f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    assert r.stderr.count("[tool result]") == 1 and r.stderr.count(marker) == 1, r.stderr


async def test_a_platform_question_is_answered_through_seqera_mcp_then_continued(service_process, seqera, mcp,
                                                                                 anthropic_standin):
    proc = service_process({"SEQERA_MCP_URL": mcp.url})
    anthropic_standin.script(Reply.tool_use("mcp__seqera__platform_list_workflows", {"workspace": "acme/prod"}),
                             Reply.text("Your nightly rnaseq run failed: STAR_ALIGN ran out of memory."),
                             Reply.text("It was alice_rnaseq_nightly."))
    first = await seqera(proc.url, "ai", "--headless", "--show-tools", "--show-tool-results",
                         "Which of my runs in acme/prod failed last night, and why?")
    assert first.returncode == 0, f"stdout:\n{first.stdout}\nstderr:\n{first.stderr}"
    assert "STAR_ALIGN ran out of memory" in first.stdout
    assert "[tool] mcp__seqera__platform_list_workflows" in first.stderr  # the CLI prints the call
    assert "alice_rnaseq_nightly" in first.stderr and "[tool error]" not in first.stderr  # and its result
    assert [c.tool for c in mcp.calls] == ["platform_list_workflows"]

    second = await seqera(proc.url, "ai", "--headless", "-c", "What was that run called?")
    assert second.returncode == 0, f"stdout:\n{second.stdout}\nstderr:\n{second.stderr}"
    resumed = str(anthropic_standin.message_requests[-1].json["messages"])
    assert "alice_rnaseq_nightly" in resumed and "What was that run called?" in resumed


async def test_headless_approves_a_platform_change_as_it_does_local_commands(service_process, seqera, mcp,
                                                                            anthropic_standin):
    proc = service_process({"SEQERA_MCP_URL": mcp.url})
    launch = {"pipeline": "nf-core/rnaseq", "workspace": "acme/prod"}
    anthropic_standin.script(Reply.tool_use("mcp__seqera__platform_launch_workflow", launch), Reply.text("Launched."))
    r = await seqera(proc.url, "ai", "--headless", "--show-tool-results", "Launch nf-core/rnaseq in acme/prod")
    assert r.returncode == 0, f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    assert [(c.tool, c.args) for c in mcp.calls] == [("platform_launch_workflow", launch)]
    assert "alice-launched" in r.stderr  # the launch's result, shown by the CLI
