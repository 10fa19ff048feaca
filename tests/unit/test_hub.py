"""events.Hub: the published frames a live run keeps in memory (a bounded window of the newest), and the
wait of the streams that follow it."""
from __future__ import annotations

import asyncio

from agent_backend.events import HELD_FRAMES, Framed, Hub, frame


def published(hub: Hub, n: int) -> None:
    """Publish n text deltas, one at a time, numbered as the writer numbers them."""
    for _ in range(n):
        seq = hub.next_seq
        hub.next_seq += 1
        hub.publish([Framed(seq, False, True, frame(seq, '{"type":"text-delta","delta":"x"}'))])


async def test_a_long_run_keeps_only_its_newest_frames_contiguous():
    hub = Hub("s", "r", first_seq=7)
    published(hub, 10 * HELD_FRAMES)
    assert HELD_FRAMES <= len(hub.frames) <= 2 * HELD_FRAMES
    assert [f.seq for f in hub.frames] == list(range(hub.held_from, hub.next_seq))
    assert hub.first_seq == 7  # where the run began is kept: a live stream still starts there (from MySQL)
    assert hub.frames_from(hub.held_from) == hub.frames
    assert [f.seq for f in hub.frames_from(hub.next_seq - 1)] == [hub.next_seq - 1]
    assert hub.frames_from(hub.next_seq) == []


async def test_a_short_run_keeps_every_frame():
    hub = Hub("s", "r", first_seq=1)
    published(hub, HELD_FRAMES)
    assert hub.held_from == 1 and [f.seq for f in hub.frames_from(1)] == list(range(1, HELD_FRAMES + 1))


async def test_streams_wake_on_publish_and_a_cancelled_one_leaves_the_others_waiting():
    hub = Hub("s", "r", first_seq=1)
    first, second = (asyncio.ensure_future(hub.wait(3600)) for _ in range(2))
    await asyncio.sleep(0)  # both waiting
    first.cancel()
    await asyncio.wait((first,))
    assert first.cancelled() and not second.done()
    published(hub, 1)
    await asyncio.wait_for(second, timeout=60)  # a deadline, not a measurement: it must wake, not time out
    assert hub._waiters == []


async def test_a_wait_ends_at_its_timeout_and_is_forgotten():
    hub = Hub("s", "r", first_seq=1)
    await asyncio.wait_for(hub.wait(0.01), timeout=60)
    assert hub._waiters == []
    await hub.wait(0)  # nothing to wait for
