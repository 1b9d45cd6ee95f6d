"""The inbound consumer process: what it reads, what it stores, what handles each record."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from faststream import FastStream

from events.catalogue import (
    CONVERSATION_COMMANDS_TOPIC,
    CONVERSATION_EVENTS_TOPIC,
    CONVERSATION_NOTES_TOPIC,
    DEAD_LETTERS,
    DIRECTORY_EVENTS_TOPIC,
    WHATSAPP_INBOUND,
    WHATSAPP_UNROUTED,
)
from runtime.app import consumer_app
from runtime.postgres import open_recorder
from runtime.process import Binding, Context, Service, Subscription
from runtime.views import caught_up_with
from services.inbound.handlers import DirectoryViewHandler, InboundHandler
from services.inbound.routes import InboundRecorder, PostgresNumberRoutes
from services.settings import Settings


@asynccontextmanager
async def start(context: Context) -> AsyncIterator[Mapping[str, Binding]]:
    routes = PostgresNumberRoutes(context.store.recorder.datastore.schema)
    async with caught_up_with(
        DIRECTORY_EVENTS_TOPIC, context.settings, context.store.position
    ) as directory:
        yield {
            "inbound": Binding(InboundHandler(routes, directory)),
            "inbound.directory-view": Binding(DirectoryViewHandler(routes)),
        }


SERVICE = Service(
    name="inbound",
    open_recorder=functools.partial(open_recorder, service="inbound", build=InboundRecorder),
    subscriptions=(
        Subscription(
            "inbound",
            (WHATSAPP_INBOUND, CONVERSATION_COMMANDS_TOPIC),
            "Webhook records and conversation commands (closes, notes) become conversation events.",
        ),
        Subscription(
            "inbound.directory-view",
            (DIRECTORY_EVENTS_TOPIC,),
            "Which workspace owns which business number, for routing.",
        ),
    ),
    start=start,
    emits=(CONVERSATION_EVENTS_TOPIC, CONVERSATION_NOTES_TOPIC, WHATSAPP_UNROUTED, DEAD_LETTERS),
)


def create_app(settings: Settings) -> FastStream:
    return consumer_app(SERVICE, settings)
