"""SIGTERM: stop accepting, let streams in flight finish within the grace period, then exit 0."""
from __future__ import annotations

import asyncio
import signal

import aiohttp

from tests.service.cli import Cli, start_held_turn

ANSWER = "an answer that is still streaming when SIGTERM arrives"


async def test_sigterm_lets_a_stream_in_flight_finish(service_process, sentinels, anthropic_standin):
    proc = service_process()
    async with aiohttp.ClientSession() as http:
        alice = Cli(http, proc.url, sentinels.alice_token)
        stream = (await start_held_turn(alice, anthropic_standin, ANSWER, hold_after=2, message="long one")).stream

        proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.5)
        assert proc.proc.poll() is None, "exited with a stream in flight"
        # New work is refused while draining.
        async with aiohttp.ClientSession() as fresh:
            try:
                r = await Cli(fresh, proc.url, sentinels.alice_token).create_session(expect=None)
                accepted = r is not None
            except aiohttp.ClientError:
                accepted = False
        assert not accepted, "a new session was created after SIGTERM"
        async with aiohttp.ClientSession() as fresh:
            try:
                async with fresh.get(proc.url + "/health?ready=1") as r:
                    ready = r.status == 200
            except aiohttp.ClientError:
                ready = False
        assert not ready, "readiness still says ready while draining"

        anthropic_standin.release()
        end = await stream.until_type("finish", "error")
        await stream.close()
        assert end.type == "finish"
        assert stream.text() == ANSWER
    assert await asyncio.to_thread(proc.wait, 60) == 0


async def test_sigterm_when_idle_exits_cleanly(service_process):
    proc = service_process()
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(proc.wait, 60) == 0
