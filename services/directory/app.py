"""Composition root of the directory consumer process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from faststream import FastStream

from events.catalogue import DIRECTORY_COMMANDS_TOPIC, build_registry
from runtime.kafka import ensure_topics
from runtime.legacy import TrackedRuntime, subscribe_tracked
from runtime.legacy import legacy_broker as new_broker
from runtime.postgres import open_datastore
from runtime.store import EventStore
from services.directory.credentials import carry_over_legacy_credentials
from services.directory.handlers import DirectoryHandler
from services.settings import Settings


def create_app(settings: Settings) -> FastStream:
    registry = build_registry()
    broker = new_broker(settings, client_id="switchboard-directory")
    commands = TrackedRuntime("directory", registry)
    subscribe_tracked(
        broker,
        commands,
        topics=[DIRECTORY_COMMANDS_TOPIC.qualified(settings.topic_prefix)],
        group_id=settings.group_id("directory"),
        title="directory",
        description="Admin commands become directory events (workspaces, numbers, members).",
    )

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        await ensure_topics(settings)
        datastore = await anyio.to_thread.run_sync(
            lambda: open_datastore(settings, settings.schema("directory"))
        )
        store = await anyio.to_thread.run_sync(EventStore.create, settings, datastore, registry)
        await anyio.to_thread.run_sync(carry_over_legacy_credentials, store)
        commands.bind(DirectoryHandler(store))
        try:
            yield
        finally:
            datastore.close()

    return FastStream(broker, lifespan=lifespan)
