"""Time travel's pure parts: which records count at a moment, in which order, for whom."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID, uuid4

import pytest

from events.catalogue import build_registry
from events.codec import encode
from events.envelope import Actor, Envelope
from events.reads import ConversationRead
from projections.as_of import TimedRecord, in_record_time, moment_ms, of_workspace
from services.operations.as_of_commands import Refused, parse_moment

pytestmark = pytest.mark.unit
REGISTRY = build_registry()
WORKSPACE = UUID("0b0e1c52-7d64-4b8e-9a57-4a3f3c5b7a10")
NOW = datetime(2026, 11, 29, 14, 2, tzinfo=UTC)


def read_marker(workspace_id: UUID | None) -> Envelope:
    conversation, member = uuid4(), uuid4()
    return Envelope.wrap(
        ConversationRead(conversation_id=conversation, member_id=member, up_to=1, read_at=NOW),
        event_id=uuid4(),
        stream_id=str(conversation),
        workspace_id=workspace_id,
        occurred_at=NOW,
        correlation_id=uuid4(),
        causation_id=None,
        actor=Actor(kind="member", id=str(member)),
    )


def record(topic: str, partition: int, offset: int, timestamp_ms: int) -> TimedRecord:
    return TimedRecord(topic, partition, offset, timestamp_ms, read_marker(WORKSPACE))


def test_partitions_merge_by_record_time_each_in_its_own_order() -> None:
    a = [record("a", 0, 0, 10), record("a", 0, 1, 30), record("a", 0, 2, 31)]
    b = [record("b", 0, 0, 20), record("b", 0, 1, 30)]
    # A producer's clock may step back within a partition: its order still wins.
    c = [record("a", 1, 0, 25), record("a", 1, 1, 5)]
    merged = [(r.topic, r.partition, r.offset) for r in in_record_time([a, b, c, []])]
    assert merged == [
        ("a", 0, 0),
        ("b", 0, 0),
        ("a", 1, 0),
        ("a", 1, 1),
        ("a", 0, 1),
        ("b", 0, 1),
        ("a", 0, 2),
    ]


def test_the_position_of_a_record_is_the_projectors_tracking() -> None:
    tracked = record("t.assignment.events", 4, 41, 0).tracking
    assert (tracked.application_name, tracked.notification_id) == ("t.assignment.events#4", 42)


def test_a_moment_counts_in_whole_milliseconds_as_kafka_does() -> None:
    assert moment_ms(datetime(1970, 1, 1, 0, 0, 1, 999_999, tzinfo=UTC)) == 1999
    assert moment_ms(datetime(1970, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=1)))) == 0
    assert moment_ms(datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC)) == -1000
    # Far outside Kafka's time and with an offset near the limits: a number, no overflow.
    assert moment_ms(datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14)))) < 0


def test_only_the_workspaces_own_decodable_events_are_kept() -> None:
    mine = read_marker(WORKSPACE)
    assert of_workspace(encode(mine), WORKSPACE, REGISTRY) == mine
    assert of_workspace(encode(read_marker(uuid4())), WORKSPACE, REGISTRY) is None
    assert of_workspace(encode(read_marker(None)), WORKSPACE, REGISTRY) is None
    assert of_workspace(None, WORKSPACE, REGISTRY) is None  # a tombstone
    # Naming the workspace is not enough: the record must decode (else the projector parks it).
    assert of_workspace(f'{{"x": "{WORKSPACE}"}}'.encode(), WORKSPACE, REGISTRY) is None


def test_the_operators_moment_is_rfc_3339_with_an_offset_and_already_past() -> None:
    assert parse_moment(None, NOW) is None
    assert parse_moment("2026-11-29T14:02:00Z", NOW) == NOW
    assert parse_moment("2026-11-29T09:02:00-05:00", NOW) == NOW
    with pytest.raises(Refused, match="offset") as naive:
        parse_moment("2026-11-29T14:02:00", NOW)
    assert naive.value.code == 2
    with pytest.raises(Refused, match="future"):
        parse_moment("2026-11-29T14:02:01Z", NOW)
    for typo in ("yesterday", "1.5", "1764424920", "2026-11-29 14:02:00Z", "2026-11-29T14:02Z\n"):
        with pytest.raises(Refused, match="not an RFC 3339"):
            parse_moment(typo, NOW)
