"""The dispatcher consumer process (``switchboard run dispatcher``): what it reads, what it
stores, what handles each record.

Two subscriptions, one store (schema ``dispatcher``):

* ``dispatcher``: ``outbound.messages`` (queued messages, retry requests) -> the send
  protocol (``handlers.OutboundHandler``); on every partition assignment, the sends a crash
  left without a result are settled first;
* ``dispatcher.windows``: ``conversation.events`` -> the ``windows`` view.

The relay publishes the store's events to ``outbound.events``.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import anyio.to_thread
from faststream import FastStream

from events.catalogue import (
    CONVERSATION_EVENTS_TOPIC,
    DEAD_LETTERS,
    OUTBOUND_EVENTS_TOPIC,
    OUTBOUND_MESSAGES_TOPIC,
)
from runtime.app import consumer_app
from runtime.postgres import open_recorder
from runtime.process import Binding, Context, Service, Subscription
from runtime.views import caught_up_with
from services.dispatcher.graph import GraphApi
from services.dispatcher.handlers import OutboundHandler, WindowViewHandler
from services.dispatcher.recorder import DispatcherRecorder
from services.settings import Settings

# Every attempt of a batch commits before the batch's first Graph API call, so a crash
# leaves every attempt of the batch without a result (unknown, not resent). Sends are one
# HTTP call each anyway: batches of one keep that to the message being sent, as before.
SEND_BATCH_MAX_RECORDS = 1


@asynccontextmanager
async def start(context: Context) -> AsyncIterator[Mapping[str, Binding]]:
    settings: Settings = context.settings
    recorder = context.store.recorder
    assert isinstance(recorder, DispatcherRecorder)
    client = GraphApi.client_for(settings)
    try:
        async with caught_up_with(
            CONVERSATION_EVENTS_TOPIC, settings, context.store.position
        ) as windows_seen:
            outbound = OutboundHandler(
                context.store,
                recorder,
                GraphApi(client),
                windows_seen,
                max_attempts=settings.dispatch_max_attempts,
                backoff_seconds=settings.dispatch_backoff_seconds,
            )

            async def settle(tracking_names: list[str]) -> None:
                # After the seek, before any record of these partitions is handled: a
                # message attempted before a crash is called unknown before anything else
                # happens to it.
                await anyio.to_thread.run_sync(outbound.settle, tracking_names)

            yield {
                "dispatcher": Binding(outbound, on_assigned=settle),
                "dispatcher.windows": Binding(WindowViewHandler(recorder)),
            }
    finally:
        client.close()


SERVICE = Service(
    name="dispatcher",
    open_recorder=functools.partial(open_recorder, service="dispatcher", build=DispatcherRecorder),
    subscriptions=(
        Subscription(
            "dispatcher",
            (OUTBOUND_MESSAGES_TOPIC,),
            "Queued outbound messages and retry requests, sent to the WhatsApp Cloud API at"
            " most once each.",
            max_records=SEND_BATCH_MAX_RECORDS,
        ),
        Subscription(
            "dispatcher.windows",
            (CONVERSATION_EVENTS_TOPIC,),
            "When each customer last wrote: the 24-hour customer-service window.",
        ),
    ),
    start=start,
    emits=(OUTBOUND_EVENTS_TOPIC, DEAD_LETTERS),
)


def create_app(settings: Settings) -> FastStream:
    return consumer_app(SERVICE, settings)
