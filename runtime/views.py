"""Waiting for a service's own view of another topic to catch up before trusting a "no".

Topics are read by independent consumers, so a record can overtake the event it depends on
(a webhook before the directory event that connected its number, a conversation before the
event that chose its flow). A view that says "unknown" is believed only once it has read
everything that topic held when the record was received.

A handler asks :meth:`CaughtUp.believe` when its view says "unknown". If the view was seen
caught up after the record arrived, that is the answer; otherwise it raises
:class:`ViewUnsure`, the runtime rolls the record's unit of work back, waits outside any
transaction until the view has caught up (:meth:`CaughtUp.catch_up`), and handles the
record again, when the view's answer is to be believed. A burst of records costs one look
at the topic's end offsets, not one each.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Protocol

import anyio.to_thread
from aiokafka import AIOKafkaConsumer, TopicPartition

from events.catalogue import Topic
from runtime.config import Connections
from runtime.outages import Lagging
from runtime.records import Delivery, tracking_name

CATCH_UP_SECONDS = 15.0


class ViewBehind(Lagging, TimeoutError):
    """The view did not catch up in time; the caller retries the record later (as long as it
    takes: the view is in the same process and catches up once what holds it back passes)."""


class Catching(Protocol):
    """A view that can be waited for until it has caught up (:class:`CaughtUp`)."""

    @property
    def topic(self) -> str: ...
    async def catch_up(self, *, within: float = CATCH_UP_SECONDS, what: str = "") -> None: ...


class ViewUnsure(Exception):
    """A view said "unknown" for a record that arrived after the view was last seen caught
    up: wait for the view (outside any transaction), then handle the record again."""

    def __init__(self, view: Catching, what: str) -> None:
        super().__init__(f"cannot tell {what} until the view of {view.topic} caught up")
        self.view = view
        self.what = what


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
        # Records received (time.monotonic()) up to this instant are covered: the view had
        # read everything the topic held when they arrived.
        self.covered_until = float("-inf")

    async def __call__(self) -> bool:
        ends = await self.offsets.end_offsets(self.partitions)

        def read_positions() -> dict[TopicPartition, int]:
            return {
                tp: self.position(tracking_name(tp.topic, tp.partition)) or 0
                for tp in self.partitions
            }

        positions = await anyio.to_thread.run_sync(read_positions)
        return all(positions[tp] >= ends[tp] for tp in self.partitions)

    def covers(self, delivery: Delivery) -> bool:
        return delivery.received_at <= self.covered_until

    def believe(self, delivery: Delivery, what: str) -> None:
        """Return if the view's "unknown" about ``what`` holds for this record; else raise
        :class:`ViewUnsure` (the runtime waits for the view, then asks again)."""
        if not self.covers(delivery):
            raise ViewUnsure(self, what)

    async def catch_up(self, *, within: float = CATCH_UP_SECONDS, what: str = "") -> None:
        """Return once the view has read everything the topic holds now; every record
        received before this call is then covered."""
        asked = time.monotonic()
        deadline = asked + within
        while not await self():
            if time.monotonic() > deadline:
                raise ViewBehind(f"the view of {self.topic} is behind; cannot tell {what} yet")
            await asyncio.sleep(0.05)
        self.covered_until = max(self.covered_until, asked)

    async def believe_when(
        self, looks_known: Callable[[], Awaitable[bool]], *, within: float, what: str
    ) -> None:
        """Return once ``looks_known`` holds or the view is caught up (so its "no" is true).

        The eager form, for services not on the runtime's batches yet.
        """
        deadline = time.monotonic() + within
        while True:
            if await looks_known() or await self():
                return
            if time.monotonic() > deadline:
                raise ViewBehind(f"the view of {self.topic} is behind; cannot tell {what} yet")
            await asyncio.sleep(0.1)

    async def cover(self, deliveries: list[Delivery], *, what: str) -> None:
        """Make sure the view covers every one of ``deliveries`` (one look for them all)."""
        if any(not self.covers(delivery) for delivery in deliveries):
            await self.catch_up(what=what)


class Believer(Protocol):
    """What a handler asks when its view says "unknown": is that to be believed?"""

    def believe(self, delivery: Delivery, what: str) -> None: ...


class Complete:
    """A view known to hold everything (an in-memory test's, where the events it needs were
    applied first): its "unknown" is always believed."""

    def believe(self, delivery: Delivery, what: str) -> None:
        return None


@asynccontextmanager
async def caught_up_with(
    topic: Topic, settings: Connections, position: Callable[[str], int | None]
) -> AsyncIterator[CaughtUp]:
    """A :class:`CaughtUp` for ``topic`` with an end-offsets client of its own, closed after."""
    offsets = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None)
    await offsets.start()
    try:
        yield CaughtUp(topic, settings.topic_prefix, offsets, position)
    finally:
        await offsets.stop()
