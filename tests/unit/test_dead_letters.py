"""Dead letters as an operator sees them, and the record a replay would put back."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from events.base import Payload
from events.codec import encode
from events.directory import WorkspaceCreated
from events.envelope import Actor, Envelope
from events.operations import DeadlineDeadLettered, RecordDeadLettered, StoredEventDeadLettered
from services.operations.dead_letters import (
    NotReplayable,
    collect,
    details,
    headers_for,
    line,
    replay_record,
    replay_stored_event,
    row,
)

pytestmark = pytest.mark.unit

AT = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
WORKSPACE = UUID(int=1)


def wrapped(payload: Payload, number: int, *, at: datetime = AT, stream: str = "k") -> Envelope:
    return Envelope.wrap(
        payload,
        event_id=UUID(int=number),
        stream_id=stream,
        workspace_id=WORKSPACE,
        occurred_at=at,
        correlation_id=UUID(int=number),
        causation_id=None,
        actor=Actor(kind="system", id="test"),
    )


ORIGINAL = encode(
    wrapped(WorkspaceCreated(workspace_id=WORKSPACE, name="Acme", time_zone="UTC"), 50)
)


def parked_record(value: bytes | None = ORIGINAL, key: str | None = "ws-key") -> RecordDeadLettered:
    return RecordDeadLettered(
        consumer="projector",
        source_topic="p.directory.events",
        source_partition=2,
        source_offset=41,
        key=key,
        value_base64=None if value is None else base64.b64encode(value).decode(),
        reason="KeyError: 'x' (after 3 attempts)",
    )


def test_a_dead_letter_published_twice_is_one_with_both_offsets() -> None:
    first = wrapped(parked_record(), 1)
    second = wrapped(parked_record(), 2, at=AT - timedelta(minutes=1))
    found = collect([(0, 7, first), (0, 3, second), (0, 9, first)])
    assert [(d.id, d.offsets) for d in found] == [(second.event_id, (3,)), (first.event_id, (7, 9))]


def test_each_kind_lists_its_consumer_source_and_reason() -> None:
    record = collect([(0, 0, wrapped(parked_record(), 1))])[0]
    assert row(record).consumer == "projector"
    assert row(record).source == "p.directory.events#2@41"
    assert line(record).startswith(f"{UUID(int=1)}  2027-03-01T09:00:00+00:00  record ")
    assert line(record).endswith("— KeyError: 'x' (after 3 attempts)")
    stored = StoredEventDeadLettered(
        store="flows",
        notification_id=12,
        stored_type="nobody.carries_this",
        stream_id="s",
        value_base64="e30=",
        value_bytes=2,
        reason="no topic",
    )
    shown = row(collect([(0, 1, wrapped(stored, 2))])[0])
    assert (shown.kind, shown.consumer, shown.source) == (
        "stored event",
        "relay",
        "store flows #12 (nobody.carries_this)",
    )
    deadline = DeadlineDeadLettered(conversation_id=UUID(int=9), due_at=AT, reason="boom")
    shown = row(collect([(0, 2, wrapped(deadline, 3))])[0])
    assert (shown.kind, shown.consumer) == ("deadline", "expiry timer")


def test_a_replay_puts_back_the_same_key_value_and_the_envelopes_headers() -> None:
    record = replay_record(parked_record())
    assert (record.topic, record.key, record.value) == ("p.directory.events", b"ws-key", ORIGINAL)
    assert dict(record.headers) == {
        "event_type": b"directory.workspace_created",
        "schema_version": b"1",
        "event_id": str(UUID(int=50)).encode(),
        "content-type": b"application/json",
    }
    # Bytes that were never an envelope (why they were parked) go back as they were, bare.
    garbage = replay_record(parked_record(value=b"\xff{not json", key=None))
    assert (garbage.key, garbage.value, garbage.headers) == (b"", b"\xff{not json", ())


def test_a_tombstone_or_broken_bytes_cannot_be_replayed() -> None:
    with pytest.raises(NotReplayable, match="tombstone"):
        replay_record(parked_record(value=None))
    broken = parked_record().model_copy(update={"value_base64": "***"})
    with pytest.raises(NotReplayable, match="not base64"):
        replay_record(broken)


def test_a_stored_event_goes_where_the_relay_would_send_it_once_its_cause_is_gone() -> None:
    record = replay_stored_event("directory.workspace_created", ORIGINAL, "p.")
    assert (record.topic, record.key, record.value) == ("p.directory.events", b"k", ORIGINAL)
    assert record.headers == headers_for(ORIGINAL)
    with pytest.raises(NotReplayable, match="stored as 'wrong' but reads"):
        replay_stored_event("wrong", ORIGINAL, "p.")
    with pytest.raises(NotReplayable, match="cannot be read"):
        replay_stored_event("directory.workspace_created", b"{not json", "p.")
    unknown = ORIGINAL.replace(b"directory.workspace_created", b"nobody.carries_this")
    with pytest.raises(NotReplayable, match=r"no topic carries 'nobody\.carries_this'"):
        replay_stored_event("nobody.carries_this", unknown, "p.")


def test_show_decodes_what_was_parked() -> None:
    shown = details(collect([(0, 5, wrapped(parked_record(), 1))])[0])
    assert shown["offsets"] == [5]
    assert shown["original"]["json"]["event_type"] == "directory.workspace_created"
    assert shown["replay_headers"]["event_type"] == "directory.workspace_created"
    text = details(collect([(0, 5, wrapped(parked_record(value=b"plain"), 1))])[0])
    assert text["original"] == {"text": "plain"}
    tombstone = details(collect([(0, 5, wrapped(parked_record(value=None), 1))])[0])
    assert tombstone["original"] == {"tombstone": True}
