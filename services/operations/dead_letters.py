"""Dead letters as an operator sees them: which, where from, why, and what replaying sends.

Pure: the reader (``services/operations/dead_letter_io.py``) hands in the records of the
``operations.dead_letters`` topic and, for a stored event, its bytes; this module decides
how each reads and which record a replay puts back.

A dead letter is identified by its event id. That id derives from what was parked (a
record's consumer and source position, a stored event's store and notification id, a
deadline's conversation and due time), so the same dead letter published twice by the
relay (a re-send at a new offset) is one dead letter, listed once; its offsets on the topic
are shown beside it.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import orjson

from events.catalogue import topic_of
from events.codec import CodecError, read_header
from events.envelope import Envelope
from events.operations import DeadlineDeadLettered, RecordDeadLettered, StoredEventDeadLettered
from runtime.producer import KafkaRecord


@dataclass(frozen=True)
class DeadLetter:
    """One dead letter and where the topic holds it (every offset, when re-sent)."""

    envelope: Envelope
    partition: int
    offsets: tuple[int, ...]

    @property
    def id(self) -> UUID:
        return self.envelope.event_id


class NotReplayable(Exception):
    """This dead letter has nothing a replay could put back, or its cause is not fixed."""


def collect(records: list[tuple[int, int, Envelope]]) -> list[DeadLetter]:
    """Dead letters from ``(partition, offset, envelope)`` records, each once, in topic order."""
    found: dict[UUID, DeadLetter] = {}
    for partition, offset, envelope in sorted(records, key=lambda r: (r[0], r[1])):
        known = found.get(envelope.event_id)
        if known is None:
            found[envelope.event_id] = DeadLetter(envelope, partition, (offset,))
        else:
            found[envelope.event_id] = DeadLetter(
                known.envelope, known.partition, (*known.offsets, offset)
            )
    return sorted(found.values(), key=lambda d: (d.envelope.occurred_at, d.partition, d.offsets))


@dataclass(frozen=True)
class Row:
    """What ``dead-letters list`` shows of one dead letter."""

    id: UUID
    at: str  # a record: its own Kafka time (a replay parks it alike); else when parked
    kind: str
    consumer: str
    source: str
    reason: str


def row(dead_letter: DeadLetter) -> Row:
    envelope = dead_letter.envelope
    at = envelope.occurred_at.isoformat(timespec="seconds")
    match envelope.payload:
        case RecordDeadLettered() as parked:
            source = f"{parked.source_topic}#{parked.source_partition}@{parked.source_offset}"
            return Row(dead_letter.id, at, "record", parked.consumer, source, parked.reason)
        case StoredEventDeadLettered() as parked:
            source = f"store {parked.store} #{parked.notification_id} ({parked.stored_type})"
            return Row(dead_letter.id, at, "stored event", "relay", source, parked.reason)
        case DeadlineDeadLettered() as parked:
            source = f"deadline {parked.due_at.isoformat()} of {parked.conversation_id}"
            return Row(dead_letter.id, at, "deadline", "expiry timer", source, parked.reason)
        case other:
            return Row(dead_letter.id, at, other.event_type, "?", envelope.stream_id, "")


def line(dead_letter: DeadLetter) -> str:
    shown = row(dead_letter)
    reason = shown.reason.replace("\n", " ")
    reason = reason if len(reason) <= 120 else reason[:119] + "…"
    return (
        f"{shown.id}  {shown.at}  {shown.kind:<12} {shown.consumer:<12} {shown.source}  — {reason}"
    )


def original_value(payload: RecordDeadLettered) -> bytes | None:
    """The parked record's bytes as the consumer read them (None: it was a tombstone)."""
    if payload.value_base64 is None:
        return None
    try:
        return base64.b64decode(payload.value_base64, validate=True)
    except binascii.Error as error:
        raise NotReplayable(f"the dead letter's bytes are not base64: {error}") from None


def headers_for(value: bytes) -> tuple[tuple[str, bytes], ...]:
    """The headers every switchboard record carries, read back from its envelope.

    Dead letters keep the key and the value but not the headers; every producer derives
    them from the envelope (``events.codec.RecordHeader``), so they are derived the same way
    again. A value that is not an envelope (what made it undecodable) gets none, as such a
    record could only have been written without switchboard's producer.
    """
    try:
        return read_header(value).kafka_headers()
    except CodecError:
        return ()


def replay_record(payload: RecordDeadLettered) -> KafkaRecord:
    """The parked record, to put back on its source topic: same key, value and headers."""
    value = original_value(payload)
    if value is None:
        raise NotReplayable("a tombstone (a record without a value) carries nothing to handle")
    key = b"" if payload.key is None else payload.key.encode()
    return KafkaRecord(payload.source_topic, key, value, headers_for(value))


def replay_stored_event(stored_type: str, state: bytes, topic_prefix: str) -> KafkaRecord:
    """A stored event the relay parked, published as the relay would: to its type's topic,
    keyed by its stream id, with its headers. ``stored_type`` and ``state`` are the row as it
    is now (an operator may have repaired it). Raises when the cause still holds."""
    try:
        header = read_header(state)
    except CodecError as error:
        raise NotReplayable(f"the stored event still cannot be read: {error}") from None
    if header.event_type != stored_type:
        raise NotReplayable(f"stored as {stored_type!r} but reads {header.event_type!r}")
    try:
        topic = topic_of(header.event_type)
    except LookupError as error:
        raise NotReplayable(f"{error}: the cause is not fixed") from None
    return KafkaRecord(
        topic.qualified(topic_prefix), header.stream_id.encode(), state, header.kafka_headers()
    )


def details(dead_letter: DeadLetter) -> dict[str, Any]:
    """Everything ``dead-letters show`` prints: the dead letter and what it parked, readable."""
    document: dict[str, Any] = {
        "id": str(dead_letter.id),
        "partition": dead_letter.partition,
        "offsets": list(dead_letter.offsets),
        "dead_letter": dead_letter.envelope.model_dump(mode="json"),
    }
    payload = dead_letter.envelope.payload
    if isinstance(payload, RecordDeadLettered):
        try:
            value = original_value(payload)
        except NotReplayable as error:
            document["original"] = {"error": str(error)}
            return document
        document["original"] = readable(value)
        if value is not None:
            document["replay_headers"] = {k: v.decode() for k, v in headers_for(value)}
    elif isinstance(payload, StoredEventDeadLettered):
        value = base64.b64decode(payload.value_base64)
        document["original"] = readable(value)
        document["original"]["whole_size"] = payload.value_bytes
    return document


def readable(value: bytes | None) -> dict[str, Any]:
    """Bytes shown as JSON when they are, else as text, else base64."""
    if value is None:
        return {"tombstone": True}
    try:
        return {"json": orjson.loads(value)}
    except orjson.JSONDecodeError:
        pass
    try:
        return {"text": value.decode("utf-8")}
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(value).decode()}
