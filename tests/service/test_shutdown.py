"""SIGTERM: refuse new work (503) while streams in flight finish within the grace period, then exit 0."""
from __future__ import annotations

import asyncio
import signal

import aiohttp

from tests.support.cli import Cli, eventually, start_held_turn

ANSWER = "an answer that is still streaming when SIGTERM arrives"


async def not_ready(url: str) -> bool:
    """Whether readiness (`/health?ready=1`) fails: 503 while draining, or no connection once stopped."""
    async with aiohttp.ClientSession() as fresh:
        try:
            async with fresh.get(url + "/health?ready=1") as r:
                return r.status != 200
        except aiohttp.ClientError:
            return True


async def test_sigterm_lets_a_stream_in_flight_finish(service_process, sentinels, anthropic_standin):
    proc = service_process()
    async with aiohttp.ClientSession() as http:
        alice = Cli(http, proc.url, sentinels.alice_token)
        held = await start_held_turn(alice, anthropic_standin, ANSWER, hold_after=2, message="long one")
        stream, stream_sid = held.stream, held.sid

        proc.send_signal(signal.SIGTERM)
        await eventually(lambda: not_ready(proc.url), what="the service to notice SIGTERM (readiness 503)")
        assert proc.proc.poll() is None, "exited with a stream in flight"
        # New work is refused while draining, at once and saying why; the stream in flight goes on.
        async with aiohttp.ClientSession() as fresh:
            late = Cli(fresh, proc.url, sentinels.alice_token)
            r = await late.post("/v1/cli/sessions", {"cwd": "/x", "local_execution": True})
            assert r.status == 503 and r.headers.get("Retry-After") and "shutting down" in r.detail, r.text
            r = await late.send(stream_sid, "one more?")
            assert r.status == 503 and "shutting down" in r.detail, r.text
        assert await not_ready(proc.url), "readiness says ready again while draining"

        anthropic_standin.release()
        end = await stream.until_type("finish", "error")
        await stream.close()
        assert end.type == "finish", end.data
        assert stream.text() == ANSWER
    assert await asyncio.to_thread(proc.wait, 60) == 0


async def test_sigterm_when_idle_exits_cleanly(service_process):
    proc = service_process()
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(proc.wait, 60) == 0
