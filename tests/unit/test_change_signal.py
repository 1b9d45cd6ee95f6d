"""The streams' wake-up on the projector's notifications, without a database: what a
notification does to the waiting streams of its workspace, and of the others."""

from __future__ import annotations

import asyncio
import random
from uuid import UUID

import pytest

from services.gateway.change_signal import ChangeSignal

pytestmark = pytest.mark.unit
OURS, THEIRS = UUID(int=1), UUID(int=2)


def signal() -> ChangeSignal:
    return ChangeSignal("host=nowhere", "projections")


async def test_a_change_wakes_the_streams_of_its_workspace_only() -> None:
    changes = signal()
    ours = [asyncio.create_task(changes.wait(OURS, changes.mark(OURS), 60)) for _ in range(3)]
    theirs = asyncio.create_task(changes.wait(THEIRS, changes.mark(THEIRS), 60))
    await asyncio.sleep(0)
    changes._changed(str(OURS))
    await asyncio.wait_for(asyncio.gather(*ours), 5)  # woken, long before their 60 s
    assert not theirs.done()
    theirs.cancel()


async def test_a_change_while_the_feed_was_read_is_not_waited_for() -> None:
    changes = signal()
    mark = changes.mark(OURS)
    changes._changed(str(OURS))  # between reading the feed and waiting
    await asyncio.wait_for(changes.wait(OURS, mark, 60), 5)
    assert changes.mark(OURS) == mark + 1


async def test_streams_ending_while_changes_arrive_break_nothing() -> None:
    """Browsers leave (their stream is cancelled) while time limits run out and changes
    arrive. With an asyncio.Condition this once left its lock released under a stream (a
    RuntimeError ended it); with asyncio.wait_for as the time limit a stream's cancellation
    could be swallowed, and it went on for ever."""
    changes = signal()
    rng = random.Random(7)
    problems: list[str] = []

    async def stream() -> None:
        try:
            while True:
                await changes.wait(OURS, changes.mark(OURS), rng.choice((0.0005, 0.001)))
        except asyncio.CancelledError:
            raise
        except Exception as error:
            problems.append(repr(error))

    async def projector() -> None:
        for _ in range(3000):
            changes._changed(str(OURS))
            await asyncio.sleep(0)

    streams = [asyncio.create_task(stream()) for _ in range(50)]
    notifying = asyncio.create_task(projector())
    for task in streams:
        await asyncio.sleep(rng.choice((0, 0.0005, 0.001)))
        task.cancel()
    # A stream whose cancellation was swallowed never ends: fail then, rather than hang.
    async with asyncio.timeout(60):
        await asyncio.gather(*streams, return_exceptions=True)
        await notifying
    assert problems == []
    assert changes.mark(OURS) == 3000
