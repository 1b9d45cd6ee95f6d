"""Operational records: what could not be routed, handled or published, kept with the reason."""

from __future__ import annotations

from events.base import Id, Instant, JsonObject, Payload


class InboundRecordUnrouted(Payload):
    """A webhook record for a business number no workspace owns; the record is kept whole."""

    event_type = "operations.inbound_record_unrouted"

    phone_number_id: str
    reason: str
    record: str  # the original record, as UTF-8 JSON text


class RecordDeadLettered(Payload):
    """A record a consumer could not handle, parked with the reason; the consumer moved on.

    v2: ``value_base64`` is None for a record that had no value at all (a tombstone), where
    v1 could only say "empty".
    """

    event_type = "operations.record_dead_lettered"
    schema_version = 2

    consumer: str
    source_topic: str
    source_partition: int
    source_offset: int
    key: str | None
    value_base64: str | None
    reason: str


def upcast_record_dead_lettered_v1(data: JsonObject) -> JsonObject:
    """v1 always had the value's bytes (a tombstone could not be parked then): the same data."""
    return dict(data)


class StoredEventDeadLettered(Payload):
    """A stored event the relay cannot publish (it cannot be read, no topic carries its type,
    or Kafka refuses it as too large), parked with the reason; the relay moved on.

    The event itself stays in its store's ``events`` table under ``notification_id``; the
    dead letter carries its bytes up to a bound (``value_bytes`` is the whole size), so that
    a record too large for Kafka does not make its dead letter too large as well.
    """

    event_type = "operations.stored_event_dead_lettered"

    store: str
    notification_id: int
    stored_type: str
    stream_id: str | None
    value_base64: str
    value_bytes: int
    reason: str


class DeadlineDeadLettered(Payload):
    """A due deadline the expiry timer failed to fire again and again, given up with the reason
    so that the timer goes on with the others; the conversation stays open."""

    event_type = "operations.deadline_dead_lettered"

    conversation_id: Id
    due_at: Instant
    reason: str


OPERATIONS_EVENTS: tuple[type[Payload], ...] = (
    InboundRecordUnrouted,
    RecordDeadLettered,
    StoredEventDeadLettered,
    DeadlineDeadLettered,
)
DEAD_LETTER_EVENTS: tuple[type[Payload], ...] = (
    RecordDeadLettered,
    StoredEventDeadLettered,
    DeadlineDeadLettered,
)
