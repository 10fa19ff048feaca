"""The real Seqera CLI's interactive TUI (`seqera ai`, 1.12.0), driven through tmux against the service
running as `python -m agent_backend`: what a user types and what the screen then shows."""
from __future__ import annotations

import asyncio
import contextlib
import secrets
import shlex
import subprocess
from pathlib import Path

import aiohttp
import pytest

from tests.service.harness import Seqera
from tests.support import paths
from tests.support.cli import Cli, eventually
from tests.support.standins.anthropic import Reply

SCREEN_WAIT = 90.0  # a bound on each wait for the screen, not a timing assertion


class Tui:
    """`seqera ai [args]` in a detached tmux session of its own (its own tmux server socket)."""

    def __init__(self, seqera: Seqera, url: str, workdir: Path, *args: str) -> None:
        self.socket = f"ab-tui-{secrets.token_hex(4)}"
        script = workdir / f"{self.socket}.sh"
        # The environment is set with shell builtins (the token never appears on a process's argv): first
        # everything tmux passed on is unset, then only the CLI's own variables are exported.
        exports = "".join(f"export {k}={shlex.quote(v)}\n"
                          for k, v in {**seqera.env(url), "TERM": "xterm-256color"}.items())
        script.write_text("#!/bin/bash\nfor v in $(compgen -e); do unset \"$v\"; done\n" + exports +
                          f"cd {shlex.quote(str(seqera.project))}\n"
                          f"exec {shlex.quote(str(paths.SEQERA_CLI))} ai {shlex.join(args)}\n")
        script.chmod(0o700)
        self._tmux("new-session", "-d", "-x", "160", "-y", "50", str(script))

    def _tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-f", "/dev/null", "-L", self.socket, *args], check=True,
                              capture_output=True, text=True, timeout=30).stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-J")

    def keys(self, *keys: str) -> None:
        self._tmux("send-keys", *keys)

    async def shows(self, text: str, what: str) -> str:
        try:
            return await eventually(lambda: asyncio.to_thread(self.screen), lambda screen: text in screen,
                                    what=what, timeout=SCREEN_WAIT, interval=0.2)
        except AssertionError:
            raise AssertionError(f"the screen never showed {what} ({text!r}); it shows:\n{self.screen()}") from None

    async def type_line(self, line: str) -> None:
        await self.shows("shift+enter newline", "the prompt")
        self.keys("-l", line)
        self.keys("Enter")

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=30)


@pytest.fixture
def tui(seqera, tmp_path):
    opened: list[Tui] = []

    def start(url: str, *args: str) -> Tui:
        t = Tui(seqera, url, tmp_path, *args)
        opened.append(t)
        return t

    yield start
    for t in opened:
        t.close()


async def test_after_esc_esc_the_next_answer_shows(service_process, tui, anthropic_standin, sentinels, project):
    proc = service_process()
    anthropic_standin.script(Reply.text("TUI-FIRST-ANSWER"),
                             Reply.held("TUI-INTERRUPTED words and then much more", hold_after=1),
                             Reply.text("TUI-THIRD-ANSWER after the interruption"))
    screen = tui(proc.url)
    await screen.type_line("first question")
    await screen.shows("TUI-FIRST-ANSWER", "the first answer")
    await screen.type_line("second question")
    await screen.shows("TUI-INTERRUPTED", "the start of the second answer")
    async with aiohttp.ClientSession() as http:
        alice = Cli(http, proc.url, sentinels.alice_token)
        [session] = (await alice.list_sessions(limit=10, cwd=str(project))).body["sessions"]

        async def cancelled() -> bool:
            r = await alice.messages(session["session_id"])
            return [m["status"] for m in r.body["messages"]][-1:] == ["cancelled"]

        # Esc arms the interrupt for 5 s ("Press ESC again to interrupt"), a second Esc sends the cancel; on a
        # machine slow enough to miss that window, arm it again (an Esc with nothing running is ignored).
        for _ in range(3):
            if await cancelled():
                break
            screen.keys("Escape")
            await screen.shows("Press ESC again to interrupt", "the TUI asking for the second Esc")
            screen.keys("Escape")
            with contextlib.suppress(AssertionError):
                await eventually(cancelled, what="the interrupted answer to be stored as cancelled", timeout=15)
                break
        assert await cancelled(), "Esc-Esc never cancelled the run"
    await screen.type_line("third question")
    await screen.shows("TUI-THIRD-ANSWER", "the answer after the interruption")


async def test_a_resumed_session_shows_the_local_tool_result(service_process, seqera, tui, anthropic_standin):
    proc = service_process()
    output = f"tool-output-{secrets.token_hex(4)}"
    # printf's arguments do not contain its output: only the tool's result can put it on the screen.
    anthropic_standin.script(Reply.tool_use("execute_bash_local", {"command": f"printf 'tool-%s' {output[5:]}"}),
                             Reply.text("TUI-RESUMED: the command ran."))
    first = await seqera(proc.url, "ai", "--headless", "run the command")
    assert first.returncode == 0, first.stderr
    screen = tui(proc.url, "-c")
    await screen.shows("TUI-RESUMED", "the resumed conversation")
    screen.keys("C-o")  # the TUI folds a tool's output: show it
    await screen.shows(output, "the tool's result in the resumed history")


@pytest.mark.parametrize(("choice", "shown"), [("1", "alice-launched"), ("3", "user denied approval")])
async def test_a_platform_change_waits_for_the_users_answer(service_process, tui, anthropic_standin, mcp, choice,
                                                            shown):
    proc = service_process({"SEQERA_MCP_URL": mcp.url})
    anthropic_standin.script(
        Reply.tool_use("mcp__seqera__platform_launch_workflow", {"pipeline": "nf-core/rnaseq", "workspace": "acme"}),
        Reply.text("TUI-AFTER-APPROVAL"))
    screen = tui(proc.url)
    await screen.type_line("launch nf-core/rnaseq in acme")
    await screen.shows("APPROVAL REQUIRED", "the approval prompt")
    await screen.shows("mcp__seqera__platform_launch_workflow", "the tool it asks about")
    assert mcp.calls == []  # nothing runs before the answer
    screen.keys(choice)  # [1] Yes, approve this command / [3] No, reject: selects it (or answers at once)
    await eventually(lambda: asyncio.to_thread(screen.screen),
                     lambda s: f"> [{choice}]" in s or "APPROVAL REQUIRED" not in s, what="the choice selected",
                     timeout=SCREEN_WAIT, interval=0.2)
    if "APPROVAL REQUIRED" in screen.screen():
        screen.keys("Enter")
    await screen.shows("TUI-AFTER-APPROVAL", "the answer after the approval")
    screen.keys("C-o")  # unfold the tool's output
    await screen.shows(shown, "the launch's result, or the refusal")
    assert [c.tool for c in mcp.calls] == (["platform_launch_workflow"] if choice == "1" else [])


async def test_a_platform_question_shows_the_tool_and_its_answer(service_process, tui, anthropic_standin, mcp):
    proc = service_process({"SEQERA_MCP_URL": mcp.url})
    anthropic_standin.script(Reply.tool_use("mcp__seqera__platform_list_workflows", {"workspace": "acme/prod"}),
                             Reply.text("TUI-PLATFORM-ANSWER: the nightly run failed."))
    screen = tui(proc.url)
    await screen.type_line("which of my runs failed last night?")
    await screen.shows("Platform List Workflows", "the Seqera MCP tool, titled by the TUI")
    await screen.shows("TUI-PLATFORM-ANSWER", "the answer")
    screen.keys("C-o")  # unfold the tool's output
    await screen.shows("alice_rnaseq_nightly", "the tool's result, from the user's own Platform")
    assert "APPROVAL REQUIRED" not in screen.screen()  # a read-only tool needs no approval


async def test_a_resumed_session_shows_the_platform_tool_call(service_process, seqera, tui, anthropic_standin, mcp):
    proc = service_process({"SEQERA_MCP_URL": mcp.url})
    anthropic_standin.script(Reply.tool_use("mcp__seqera__platform_list_workflows", {"workspace": "acme/prod"}),
                             Reply.text("TUI-RESUMED-PLATFORM: one run failed."))
    first = await seqera(proc.url, "ai", "--headless", "which of my runs failed?")
    assert first.returncode == 0, first.stderr
    screen = tui(proc.url, "-c")
    await screen.shows("TUI-RESUMED-PLATFORM", "the resumed conversation")
    await screen.shows("Platform List Workflows", "the Platform tool call in the resumed history")
    screen.keys("C-o")
    await screen.shows("alice_rnaseq_nightly", "its result in the resumed history")
