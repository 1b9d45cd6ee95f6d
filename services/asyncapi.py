"""The AsyncAPI document of the consumer processes: the contract for analytics subscribers.

Built from the process registry: each consumer's subscribers (topics and the envelope of
the events they carry) and, as publishers, the topics its store's events go to. Those are
published by the relay through ``runtime.producer``'s healing producer rather than through
FastStream's (which cannot replace a producer whose idempotent sequence broke), so the
publishers are declared for the document only.
"""

from __future__ import annotations

from typing import Any, cast

from faststream._internal.broker import BrokerUsecase
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

from runtime.app import consumer_app
from runtime.kafka import envelope_of
from runtime.process import Service
from services import registry
from services.settings import Settings


def asyncapi_document(settings: Settings) -> dict[str, Any]:
    """Build every consumer app (nothing connects) and describe their brokers together."""
    brokers: list[BrokerUsecase[Any, Any, Any]] = []
    for declared in registry.PROCESSES:
        if declared.kind != "consumer":
            continue
        target = declared.load()
        if not isinstance(target, Service):
            broker = target(settings).broker
            assert broker is not None
            brokers.append(broker)
            continue
        # consumer_app builds a KafkaBroker; FastStream types the app's broker generically.
        broker = cast(KafkaBroker, consumer_app(target, settings).broker)
        assert broker is not None
        for topic in target.emits:
            broker.publisher(
                topic.qualified(settings.topic_prefix),
                title=f"{declared.name}:{topic.name}",
                description=f"{topic.description} Published by the relay from the"
                f" {declared.store} store (key: {topic.key}).",
                schema=envelope_of((topic,)),
            )
        brokers.append(broker)
    specification = AsyncAPI(
        *brokers,
        title="switchboard",
        version="0.1.0",
        description="Event topics of switchboard. Payloads are enveloped JSON (see events/).",
    ).to_specification()
    document: dict[str, Any] = specification.to_jsonable()
    return document
