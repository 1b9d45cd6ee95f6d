"""Waiting for a service's own view of another topic to catch up before trusting a "no".

Topics are read by independent consumers, so a record can overtake the event it depends on
(a webhook before the directory event that connected its number, a conversation before the
event that chose its flow). A view that says "unknown" is believed only once it has read
everything that topic held when we asked.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio.to_thread
from aiokafka import AIOKafkaConsumer, TopicPartition

from events.catalogue import Topic
from services.consumer import tracking_name
from services.outages import Lagging
from services.settings import Settings


class ViewBehind(Lagging, TimeoutError):
    """The view did not catch up in time; the caller retries the record later (as long as it
    takes: the view is in the same process and catches up once what holds it back passes)."""


class CaughtUp:
    """Whether the positions recorded for ``topic`` reach the topic's end offsets."""

    def __init__(
        self,
        topic: Topic,
        topic_prefix: str,
        offsets: AIOKafkaConsumer,
        position: Callable[[str], int | None],
    ) -> None:
        name = topic.qualified(topic_prefix)
        self.topic = name
        self.partitions = [TopicPartition(name, index) for index in range(topic.partitions)]
        self.offsets = offsets
        self.position = position

    async def __call__(self) -> bool:
        ends = await self.offsets.end_offsets(self.partitions)

        def read_positions() -> dict[TopicPartition, int]:
            return {
                tp: self.position(tracking_name(tp.topic, tp.partition)) or 0
                for tp in self.partitions
            }

        positions = await anyio.to_thread.run_sync(read_positions)
        return all(positions[tp] >= ends[tp] for tp in self.partitions)

    async def believe(
        self, looks_known: Callable[[], Awaitable[bool]], *, within: float, what: str
    ) -> None:
        """Return once ``looks_known`` holds or the view is caught up (so its "no" is true)."""
        deadline = time.monotonic() + within
        while True:
            if await looks_known() or await self():
                return
            if time.monotonic() > deadline:
                raise ViewBehind(f"the view of {self.topic} is behind; cannot tell {what} yet")
            await asyncio.sleep(0.1)


@asynccontextmanager
async def caught_up_with(
    topic: Topic, settings: Settings, position: Callable[[str], int | None]
) -> AsyncIterator[CaughtUp]:
    """A :class:`CaughtUp` for ``topic`` with an end-offsets client of its own, closed after."""
    offsets = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None)
    await offsets.start()
    try:
        yield CaughtUp(topic, settings.topic_prefix, offsets, position)
    finally:
        await offsets.stop()
