"""Running a service's handlers through the runtime against the in-memory store (no I/O).

The records go through ``runtime.consumer.Consumer`` exactly as fetched ones do (decoding,
positions, handled ids, one unit of work per batch); only the store is the eventsourcing
library's in-memory (POPO) recorder instead of PostgreSQL.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime
from uuid import UUID, uuid4

from events.base import Payload
from events.catalogue import build_registry
from events.codec import encode
from events.envelope import Actor, Envelope
from runtime.consumer import Consumer, Handler
from runtime.memory import MemoryStore
from runtime.records import Delivery, Received

REGISTRY = build_registry()
AT = datetime(2026, 11, 24, 12, tzinfo=UTC)


def envelope(
    payload: Payload,
    *,
    stream_id: str,
    workspace_id: UUID | None = None,
    event_id: UUID | None = None,
    actor: Actor | None = None,
    at: datetime = AT,
) -> Envelope:
    event_id = event_id or uuid4()
    return Envelope.wrap(
        payload,
        event_id=event_id,
        stream_id=stream_id,
        workspace_id=workspace_id,
        occurred_at=at,
        correlation_id=event_id,
        causation_id=None,
        actor=actor or Actor(kind="system", id="test"),
    )


class Topic:
    """One partition of a topic, handing out offsets in order."""

    def __init__(self, name: str, partition: int = 0) -> None:
        self.name = name
        self.partition = partition
        self._offsets = itertools.count()

    def record(self, item: Envelope | bytes | None, *, offset: int | None = None) -> Delivery:
        """A fetched record: an envelope as the relay writes it, raw bytes, or a tombstone."""
        value = encode(item) if isinstance(item, Envelope) else item
        key = item.stream_id.encode() if isinstance(item, Envelope) else b"key"
        return Delivery(
            topic=self.name,
            partition=self.partition,
            offset=next(self._offsets) if offset is None else offset,
            key=key,
            value=value,
            timestamp_ms=int(AT.timestamp() * 1000),
        )


class InMemory:
    """A consumer of a service's handler on a memory store."""

    def __init__(self, name: str, handler: Handler, store: MemoryStore | None = None) -> None:
        self.store = store or MemoryStore(REGISTRY)
        self.consumer = Consumer(name, REGISTRY)
        self.consumer.bind(self.store, handler)

    def received(self, deliveries: Sequence[Delivery]) -> list[Received]:
        return [self.consumer.received(delivery) for delivery in deliveries]

    def handle(self, *deliveries: Delivery) -> None:
        """One batch, one unit of work; raises (and writes nothing) if it fails."""
        self.consumer.commit_batch(self.received(deliveries))

    async def handle_each(self, *deliveries: Delivery) -> None:
        """What the runtime does with a batch that failed: record by record, retried, parked."""
        await self.consumer.handle_each(self.received(deliveries))

    def payloads(self) -> list[Payload]:
        return [event.payload for event in self.store.events()]
