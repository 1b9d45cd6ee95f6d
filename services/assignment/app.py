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

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import UUID

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
from services.assignment.decide import members_named
from services.assignment.handlers import DeciderHandler, RouterHandler, where
from services.assignment.recorder import AssignmentRecorder
from services.consumer import Delivery, TrackedRuntime
from services.kafka import ensure_topics, new_broker, subscribe_tracked
from services.postgres import open_recorder
from services.settings import Settings
from services.store import EventStore
from services.views import caught_up_with

VIEW_WAIT_SECONDS = 15.0


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

                async def directory_view_current(delivery: Delivery, envelope: Envelope) -> None:
                    """A record may name a group or member the router has not read yet:
                    believe "unknown" only once the view has read all of directory.events."""
                    found = where(envelope)
                    if found is None or not isinstance(
                        envelope.payload,
                        HandOffRequested | ClaimConversation | TransferConversation,
                    ):
                        return
                    workspace_id, group_id = found
                    groups: set[UUID] = {group_id} if group_id is not None else set()
                    payload = envelope.payload
                    if isinstance(payload, TransferConversation) and payload.to_group_id:
                        groups.add(payload.to_group_id)
                    members = set(members_named(payload))

                    async def known() -> bool:
                        return bool(
                            await anyio.to_thread.run_sync(
                                recorder.knows, workspace_id, groups, members
                            )
                        )

                    await seen.believe(
                        known, within=VIEW_WAIT_SECONDS, what="the groups and members named"
                    )

                router.bind(RouterHandler(store, recorder))
                decider.bind(DeciderHandler(store, recorder), before_handle=directory_view_current)
                yield
        finally:
            recorder.datastore.close()

    return FastStream(broker, lifespan=lifespan)
