"""Composition root of the assignment process (``switchboard run assignment``).

Two subscribers, one store (schema ``assignment``):

* the router (``assignment-router``): ``directory.events`` and ``conversation.events`` into
  the service's views of members, groups, rosters and closed conversations, and the
  ``GroupNudged`` records they call for, with the record's position, in one transaction;
* the decider (``assignment``): ``assignment.requests`` (hand-offs, claims, transfers,
  nudges), keyed by group so one consumer decides for a group at a time, into each group's
  stream of decisions.

The relay publishes the nudges to ``assignment.requests`` (keyed by group) and the decisions
to ``assignment.events`` (keyed by conversation).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from faststream import FastStream

from events.assignment import ClaimConversation, TransferConversation
from events.catalogue import (
    CONVERSATION_EVENTS_TOPIC,
    DIRECTORY_EVENTS_TOPIC,
    HAND_OFF_REQUESTS_TOPIC,
    build_registry,
)
from events.envelope import Envelope
from events.flows import HandOffRequested
from runtime.kafka import ensure_topics
from runtime.legacy import TrackedRuntime, subscribe_tracked
from runtime.legacy import legacy_broker as new_broker
from runtime.postgres import open_recorder
from runtime.records import Delivery
from runtime.store import EventStore
from runtime.views import CaughtUp, ViewBehind, caught_up_with
from services.assignment.handlers import DeciderHandler, RouterHandler
from services.assignment.recorder import AssignmentRecorder
from services.settings import Settings

VIEW_WAIT_SECONDS = 15.0
# Producers' clocks (the gateway's, the relay's) may be a little ahead of this host's.
CLOCK_MARGIN_MS = 1000.0
DECIDED_ON_THE_ROSTER = (HandOffRequested, ClaimConversation, TransferConversation)


def create_app(settings: Settings) -> FastStream:
    registry = build_registry()
    broker = new_broker(settings, client_id="switchboard-assignment")
    router = TrackedRuntime("assignment-router", registry)
    decider = TrackedRuntime("assignment", registry)
    subscribe_tracked(
        broker,
        router,
        topics=[
            DIRECTORY_EVENTS_TOPIC.qualified(settings.topic_prefix),
            CONVERSATION_EVENTS_TOPIC.qualified(settings.topic_prefix),
        ],
        group_id=settings.group_id("assignment-router"),
        title="assignment-router",
        description="Members, groups, statuses and closed conversations: the assignment"
        " service's views, and nudges to the groups whose queue they may move.",
    )
    subscribe_tracked(
        broker,
        decider,
        topics=[HAND_OFF_REQUESTS_TOPIC.qualified(settings.topic_prefix)],
        group_id=settings.group_id("assignment"),
        title="assignment",
        description="Hand-offs, claims, transfers and nudges, one group at a time: who takes"
        " each conversation, and why.",
    )

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        await ensure_topics(settings)
        recorder = await anyio.to_thread.run_sync(
            open_recorder, settings, "assignment", AssignmentRecorder
        )
        store = EventStore(recorder, registry)
        try:
            async with caught_up_with(DIRECTORY_EVENTS_TOPIC, settings, store.position) as seen:
                router.bind(RouterHandler(store, recorder))
                decider.bind(DeciderHandler(store, recorder), before_handle=DirectoryCaughtUp(seen))
                yield
        finally:
            recorder.datastore.close()

    return FastStream(broker, lifespan=lifespan)


class DirectoryCaughtUp:
    """Before a hand-off, claim or transfer is decided, the router's view has read all that
    ``directory.events`` held when the record was published.

    The two topics are read independently, so a hand-off may overtake the roster, statuses
    or group published just before it; deciding on such a view would assign by a roster
    that is already out of date (or send the conversation to the workspace queue for a
    group not read yet). One look at the topic's end offsets covers every record published
    before the look, so a burst of hand-offs costs one look, not one each. Nudges need no
    look: the router made them from its view.
    """

    def __init__(self, seen: CaughtUp) -> None:
        self.seen = seen
        self.covered_until_ms = 0.0  # records published before this instant are covered

    async def __call__(self, delivery: Delivery, envelope: Envelope) -> None:
        if not isinstance(envelope.payload, DECIDED_ON_THE_ROSTER):
            return
        if delivery.timestamp_ms < self.covered_until_ms:
            return
        asked_ms = time.time() * 1000 - CLOCK_MARGIN_MS
        deadline = time.monotonic() + VIEW_WAIT_SECONDS
        while not await self.seen():
            if time.monotonic() > deadline:
                raise ViewBehind("the view of directory.events is behind; cannot decide yet")
            await asyncio.sleep(0.05)
        self.covered_until_ms = max(self.covered_until_ms, asked_ms)
