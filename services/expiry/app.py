"""The expiry consumer process (``switchboard run expiry``): what it reads, what it stores,
what handles each record, and the timer beside them.

* ``conversation.events`` and ``flow.events`` -> each conversation's deadline
  (``handlers.DeadlineHandler``), a batch of records per transaction with their positions;
* the timer (``timer.ExpiryTimer``) fires due deadlines: ``expiry.conversation_expired``
  and a ``conversation.close`` command (reason ``expired``) in one transaction.

The relay publishes the store's events to ``expiry.events`` and the commands to
``conversation.commands``, where the inbound service closes the conversation.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta

from faststream import FastStream

from events.catalogue import (
    CONVERSATION_COMMANDS_TOPIC,
    CONVERSATION_EVENTS_TOPIC,
    DEAD_LETTERS,
    EXPIRY_EVENTS_TOPIC,
    FLOW_EVENTS_TOPIC,
)
from runtime.app import consumer_app
from runtime.postgres import open_recorder
from runtime.process import Binding, Context, Service, Subscription
from services.expiry.handlers import DeadlineFirer, DeadlineHandler
from services.expiry.recorder import ExpiryRecorder
from services.expiry.timer import Clock, ExpiryTimer, SystemClock
from services.settings import Settings


@asynccontextmanager
async def start(
    context: Context, *, clock: Clock | None = None
) -> AsyncIterator[Mapping[str, Binding]]:
    settings: Settings = context.settings
    recorder = context.store.recorder
    assert isinstance(recorder, ExpiryRecorder)
    timer = ExpiryTimer(recorder, DeadlineFirer(context.store), clock or SystemClock())
    handler = DeadlineHandler(
        max_age=timedelta(seconds=settings.expiry_max_age_seconds),
        deadline_set=timer.deadline_set,
    )
    lock_key = f"switchboard-expiry-timer:{settings.schema('expiry')}"
    task = asyncio.create_task(timer.run(settings.database().conninfo(), lock_key))
    try:
        yield {"expiry": Binding(handler)}
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


SERVICE = Service(
    name="expiry",
    open_recorder=functools.partial(open_recorder, service="expiry", build=ExpiryRecorder),
    subscriptions=(
        Subscription(
            "expiry",
            (CONVERSATION_EVENTS_TOPIC, FLOW_EVENTS_TOPIC),
            "Conversation starts and closes and flow expiration requests: each open"
            " conversation's deadline.",
        ),
    ),
    start=start,
    emits=(EXPIRY_EVENTS_TOPIC, CONVERSATION_COMMANDS_TOPIC, DEAD_LETTERS),
)


def create_app(settings: Settings, *, clock: Clock | None = None) -> FastStream:
    """The expiry app; ``clock`` replaces the wall clock (tests move time forward with it)."""
    return consumer_app(SERVICE, settings, clock=clock)
