"""Kafka records as the runtime hands them to handlers: where each came from, what it says.

A record's *position* (``topic#partition`` -> offset + 1, the next offset to read) is the
tracking id written in the same transaction as the record's effect, so a redelivered record
is recognised and on every partition assignment the consumer seeks to what PostgreSQL holds.
A record that cannot be handled is *parked*: a ``RecordDeadLettered`` event takes its place
in the consumer's own store, with its position, and the consumer moves on.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID, uuid5

from eventsourcing.persistence import Tracking

from events.envelope import Actor, Envelope
from events.operations import RecordDeadLettered

DEAD_LETTER_NAMESPACE = UUID("5d0c7a9e-8f61-4b0a-b2e4-7e9c1a3d5f20")


def tracking_name(topic: str, partition: int) -> str:
    return f"{topic}#{partition}"


@dataclass(frozen=True)
class Delivery:
    """One Kafka record, as fetched."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None  # None: a tombstone (Kafka allows a record without a value)
    timestamp_ms: int
    # When this process received it (time.monotonic()): a view's "not known" is believed
    # for a record received before the view was last seen caught up (see runtime.views).
    received_at: float = 0.0

    @property
    def tracking_name(self) -> str:
        return tracking_name(self.topic, self.partition)

    @property
    def position(self) -> int:
        """The next offset to read once this record is handled."""
        return self.offset + 1

    @property
    def tracking(self) -> Tracking:
        return Tracking(self.tracking_name, self.position)

    def dead_letter(self, consumer: str, reason: str) -> RecordDeadLettered:
        return RecordDeadLettered(
            consumer=consumer,
            source_topic=self.topic,
            source_partition=self.partition,
            source_offset=self.offset,
            key=self.key.decode("utf-8", "replace") if self.key is not None else None,
            value_base64=None if self.value is None else base64.b64encode(self.value).decode(),
            reason=reason[:2000],
        )


@dataclass(frozen=True)
class Record:
    """A record a handler is given: its delivery and its decoded envelope."""

    delivery: Delivery
    envelope: Envelope


@dataclass(frozen=True)
class Unreadable:
    """A record that cannot be decoded (a tombstone included): parked with ``reason``."""

    delivery: Delivery
    reason: str


Received = Record | Unreadable


def dead_letter_envelope(delivery: Delivery, dead_letter: RecordDeadLettered) -> Envelope:
    """The dead letter as an event of the consumer's own store, in a stream of its own.

    Its id derives from the consumer and the record's position, so parking the same record
    twice is one event; its time is the record's Kafka timestamp, so a replay parks it
    identically.
    """
    event_id = uuid5(
        DEAD_LETTER_NAMESPACE,
        f"{dead_letter.consumer}:{delivery.topic}:{delivery.partition}:{delivery.offset}",
    )
    return Envelope.wrap(
        dead_letter,
        event_id=event_id,
        stream_id=dead_letter.key or "",
        workspace_id=None,
        occurred_at=datetime.fromtimestamp(delivery.timestamp_ms / 1000, tz=UTC),
        correlation_id=event_id,
        causation_id=None,
        actor=Actor(kind="system", id=dead_letter.consumer),
    )
