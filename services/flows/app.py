"""The flows consumer process: what it reads, what it stores, what handles each record."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager

from faststream import FastStream

from events.catalogue import (
    CONVERSATION_COMMANDS_TOPIC,
    CONVERSATION_EVENTS_TOPIC,
    DEAD_LETTERS,
    DIRECTORY_EVENTS_TOPIC,
    FLOW_EVENTS_TOPIC,
    HAND_OFF_REQUESTS_TOPIC,
    OUTBOUND_MESSAGES_TOPIC,
)
from events.conversation import ConversationStarted
from runtime.app import consumer_app
from runtime.postgres import open_recorder
from runtime.process import Binding, Context, Service, Subscription
from runtime.records import Record
from runtime.views import caught_up_with
from services.flows.handlers import FlowDirectoryViewHandler, FlowRunHandler
from services.flows.views import FlowsRecorder, PostgresFlowDirectory
from services.settings import Settings


@asynccontextmanager
async def start(context: Context) -> AsyncIterator[Mapping[str, Binding]]:
    directory = PostgresFlowDirectory(context.store.recorder.datastore.schema)
    async with caught_up_with(
        DIRECTORY_EVENTS_TOPIC, context.settings, context.store.position
    ) as caught_up:

        async def cover_starts(records: Sequence[Record]) -> None:
            """Before a batch's transaction: make the view's "no flow" or "no switch known"
            believable for every conversation the batch starts (one look at the directory
            topic's end for the batch), so a number without a flow does not send its
            batches down the record-by-record path the handler's ``believe`` would."""
            starts = [
                record.delivery
                for record in records
                if isinstance(record.envelope.payload, ConversationStarted)
            ]
            if starts:
                await caught_up.cover(
                    starts, what="the flows of the numbers conversations start on"
                )

        yield {
            "flows": Binding(FlowRunHandler(directory, caught_up), prepare=cover_starts),
            "flows.directory-view": Binding(FlowDirectoryViewHandler(directory)),
        }


SERVICE = Service(
    name="flows",
    open_recorder=functools.partial(open_recorder, service="flows", build=FlowsRecorder),
    subscriptions=(
        Subscription(
            "flows",
            (CONVERSATION_EVENTS_TOPIC,),
            "Conversation events advance each conversation's flow run.",
        ),
        Subscription(
            "flows.directory-view",
            (DIRECTORY_EVENTS_TOPIC,),
            "Published flow versions, active flows, agent-conversations switches and"
            " workspace time zones.",
        ),
    ),
    start=start,
    emits=(
        FLOW_EVENTS_TOPIC,
        OUTBOUND_MESSAGES_TOPIC,
        HAND_OFF_REQUESTS_TOPIC,
        CONVERSATION_COMMANDS_TOPIC,
        DEAD_LETTERS,
    ),
)


def create_app(settings: Settings) -> FastStream:
    return consumer_app(SERVICE, settings)
