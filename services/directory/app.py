"""The directory consumer process: what it reads, what it stores, what handles each record."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import anyio.to_thread
from faststream import FastStream

from events.catalogue import (
    DEAD_LETTERS,
    DIRECTORY_COMMANDS_TOPIC,
    DIRECTORY_CREDENTIALS_TOPIC,
    DIRECTORY_EVENTS_TOPIC,
)
from runtime.app import consumer_app
from runtime.postgres import open_recorder
from runtime.process import Binding, Context, Service, Subscription
from runtime.store import StoreRecorder
from services.directory.credentials import carry_over_legacy_credentials
from services.directory.handlers import DirectoryHandler
from services.settings import Settings


@asynccontextmanager
async def start(context: Context) -> AsyncIterator[Mapping[str, Binding]]:
    # Members added before member_added v2 get their credentials once, before any command.
    await anyio.to_thread.run_sync(carry_over_legacy_credentials, context.store)
    yield {"directory": Binding(DirectoryHandler())}


SERVICE = Service(
    name="directory",
    open_recorder=functools.partial(open_recorder, service="directory", build=StoreRecorder),
    subscriptions=(
        Subscription(
            "directory",
            (DIRECTORY_COMMANDS_TOPIC,),
            "Admin commands become directory events (workspaces, numbers, members).",
        ),
    ),
    start=start,
    emits=(DIRECTORY_EVENTS_TOPIC, DIRECTORY_CREDENTIALS_TOPIC, DEAD_LETTERS),
)


def create_app(settings: Settings) -> FastStream:
    return consumer_app(SERVICE, settings)
