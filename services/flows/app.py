"""Composition root of the flows consumer process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from faststream import FastStream

from events.catalogue import CONVERSATION_EVENTS_TOPIC, DIRECTORY_EVENTS_TOPIC, build_registry
from events.conversation import ConversationStarted
from events.envelope import Envelope
from runtime.kafka import ensure_topics
from runtime.legacy import TrackedRuntime, subscribe_tracked
from runtime.legacy import legacy_broker as new_broker
from runtime.postgres import open_recorder
from runtime.records import Delivery
from runtime.store import EventStore
from runtime.views import caught_up_with
from services.flows.decide import arrival
from services.flows.handlers import FlowDirectoryViewHandler, FlowRunHandler
from services.flows.views import FlowsRecorder
from services.settings import Settings

VIEW_WAIT_SECONDS = 15.0


def create_app(settings: Settings) -> FastStream:
    registry = build_registry()
    broker = new_broker(settings, client_id="switchboard-flows")
    runs = TrackedRuntime("flows", registry)
    directory_view = TrackedRuntime("flows.directory-view", registry)
    subscribe_tracked(
        broker,
        runs,
        topics=[CONVERSATION_EVENTS_TOPIC.qualified(settings.topic_prefix)],
        group_id=settings.group_id("flows"),
        title="flows",
        description="Conversation events advance each conversation's flow run.",
    )
    subscribe_tracked(
        broker,
        directory_view,
        topics=[DIRECTORY_EVENTS_TOPIC.qualified(settings.topic_prefix)],
        group_id=settings.group_id("flows.directory-view"),
        title="flows.directory-view",
        description="Published flow versions, active flows and workspace time zones.",
    )

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        await ensure_topics(settings)
        recorder = await anyio.to_thread.run_sync(open_recorder, settings, "flows", FlowsRecorder)
        store = EventStore(recorder, registry)
        try:
            async with caught_up_with(DIRECTORY_EVENTS_TOPIC, settings, store.position) as seen:

                async def flow_view_current(delivery: Delivery, envelope: Envelope) -> None:
                    """A conversation's number may have a flow, or an agent-conversations
                    switch, that this service has not read yet."""
                    started = envelope.payload
                    if not isinstance(started, ConversationStarted):
                        return
                    number = started.phone_number_id

                    async def known() -> bool:
                        found = await anyio.to_thread.run_sync(
                            recorder.active_flow, number, arrival(started)
                        )
                        if found is None:
                            return False
                        switches = await anyio.to_thread.run_sync(
                            recorder.agent_conversation_switches, number
                        )
                        return bool(switches)

                    await seen.believe_when(
                        known,
                        within=VIEW_WAIT_SECONDS,
                        what=f"the active flow and agent-conversations switch of {number}",
                    )

                runs.bind(FlowRunHandler(store, recorder), before_handle=flow_view_current)
                directory_view.bind(FlowDirectoryViewHandler(store, recorder))
                yield
        finally:
            recorder.datastore.close()

    return FastStream(broker, lifespan=lifespan)
