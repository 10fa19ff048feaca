"""lifecycle.Lifecycle: serving, then draining, then stopped; background waits end once stopped."""
from __future__ import annotations

import asyncio

from agent_backend.lifecycle import Lifecycle, Phase


def test_phases_only_move_forward():
    life = Lifecycle()
    assert (life.phase, life.draining, life.stopped) == (Phase.SERVING, False, False)
    life.drain()
    assert (life.draining, life.stopped) == (True, False)
    life.stop()
    life.drain()  # a late drain does not undo the stop
    assert (life.phase, life.draining, life.stopped) == (Phase.STOPPED, True, True)


async def test_a_pause_ends_once_stopped():
    life = Lifecycle()
    pause = asyncio.ensure_future(life.pause(3600))
    await asyncio.sleep(0)  # let it start waiting
    life.stop()
    await asyncio.wait_for(pause, timeout=60)  # a deadline, not a measurement: it must end, not time out
    await asyncio.wait_for(life.pause(3600), timeout=60)  # and once stopped, a pause returns at once
