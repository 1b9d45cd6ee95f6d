"""The codec and the envelope: round trips, strict validation, clear errors, upcasting."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from events.catalogue import TOPICS, build_registry, topic_of
from events.codec import CodecError, RecordHeader, decode, encode, read_header
from events.conversation import ConversationStarted, CustomerMessageReceived, MessageStatusUpdated
from events.envelope import Actor, Envelope
from events.expiry import DeadlineSet
from events.flows import FlowRunStarted
from events.operations import RecordDeadLettered
from events.whatsapp import WhatsAppMessageReceived
from runtime.records import Delivery

pytestmark = pytest.mark.unit
REGISTRY = build_registry()
AT = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


def message_envelope(text: str | None = "hola", **overrides: object) -> Envelope:
    payload = CustomerMessageReceived(
        conversation_id=UUID(int=7),
        wamid="wamid.1",
        sequence=1,
        kind="text",
        text=text,
        reply_id=None,
        content={"body": text},
        context_wamid=None,
        sent_at=AT,
    )
    fields: dict[str, object] = {
        "event_id": UUID(int=1),
        "stream_id": str(UUID(int=7)),
        "workspace_id": UUID(int=2),
        "occurred_at": AT,
        "correlation_id": UUID(int=3),
        "causation_id": UUID(int=4),
        "actor": Actor(kind="customer", id="573154440021"),
    }
    fields.update(overrides)
    return Envelope.wrap(payload, **fields)  # type: ignore[arg-type]


def test_round_trip_keeps_every_field() -> None:
    envelope = message_envelope()
    assert decode(encode(envelope), REGISTRY) == envelope


@given(text=st.text(max_size=200) | st.none())
def test_round_trip_any_text(text: str | None) -> None:
    envelope = message_envelope(text)
    assert decode(encode(envelope), REGISTRY) == envelope


def test_envelope_carries_the_contract_fields() -> None:
    wire = orjson.loads(encode(message_envelope()))
    assert set(wire) == {
        "event_id",
        "event_type",
        "schema_version",
        "stream_id",
        "workspace_id",
        "occurred_at",
        "correlation_id",
        "causation_id",
        "actor",
        "payload",
    }
    assert wire["event_type"] == "conversation.customer_message_received"
    assert wire["schema_version"] == 3
    assert wire["occurred_at"] == "2026-11-24T15:00:00Z"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xff\xfe not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"schema_version": 1, "payload": {}}', "event_type"),
        (b'{"event_type": "nope.happened", "schema_version": 1, "payload": {}}', "unknown event"),
    ],
)
def test_bad_bytes_raise_a_clear_codec_error(data: bytes, reason: str) -> None:
    with pytest.raises(CodecError, match=reason):
        decode(data, REGISTRY)


def test_strict_validation_names_the_field() -> None:
    wire = orjson.loads(encode(message_envelope()))
    wire["payload"]["text"] = 12
    with pytest.raises(CodecError, match=r"text"):
        decode(orjson.dumps(wire), REGISTRY)
    wire = orjson.loads(encode(message_envelope()))
    wire["payload"]["surprise"] = True
    with pytest.raises(CodecError, match=r"surprise"):
        decode(orjson.dumps(wire), REGISTRY)


def test_naive_timestamps_are_rejected() -> None:
    wire = orjson.loads(encode(message_envelope()))
    wire["occurred_at"] = "2026-11-24T15:00:00"
    with pytest.raises(CodecError, match="occurred_at"):
        decode(orjson.dumps(wire), REGISTRY)


def test_version_1_message_is_read_as_version_3() -> None:
    """A v1 record (text only) is upcast: kind 'text', content with the body."""
    wire = orjson.loads(encode(message_envelope()))
    wire["schema_version"] = 1
    wire["payload"] = {
        "conversation_id": str(UUID(int=7)),
        "wamid": "wamid.old",
        "text": "an old message",
        "sent_at": "2025-01-01T10:00:00Z",
    }
    envelope = decode(orjson.dumps(wire), REGISTRY)
    assert envelope.schema_version == 3
    assert envelope.payload == CustomerMessageReceived(
        conversation_id=UUID(int=7),
        wamid="wamid.old",
        sequence=0,
        kind="text",
        text="an old message",
        reply_id=None,
        content={"body": "an old message"},
        context_wamid=None,
        sent_at=datetime(2025, 1, 1, 10, tzinfo=UTC),
        received_at=None,  # not recorded before v3
    )


def old_record(event_type: str, version: int, payload: dict[str, object]) -> bytes:
    wire = orjson.loads(encode(message_envelope()))
    return orjson.dumps(
        {**wire, "event_type": event_type, "schema_version": version, "payload": payload}
    )


def test_records_written_before_issue_8_are_read_as_their_current_versions() -> None:
    """The reply-to wamid, the contact's wa_id and the five statuses of older versions."""
    message = decode(
        old_record(
            "conversation.customer_message_received",
            2,
            {
                "conversation_id": str(UUID(int=7)),
                "wamid": "w2",
                "sequence": 3,
                "kind": "text",
                "text": "hola",
                "reply_id": None,
                "content": {"body": "hola"},
                "context_wamid": "w1",
                "sent_at": "2025-01-01T10:00:00Z",
            },
        ),
        REGISTRY,
    ).payload
    assert isinstance(message, CustomerMessageReceived)
    assert (message.context, message.errors, message.received_at) == ({"id": "w1"}, [], None)
    started = decode(
        old_record(
            "conversation.started",
            1,
            {
                "conversation_id": str(UUID(int=7)),
                "phone_number_id": "4801",
                "display_phone_number": "57300",
                "contact_wa_id": "5731",
                "contact_name": None,
                "started_at": "2025-01-01T10:00:00Z",
            },
        ),
        REGISTRY,
    ).payload
    assert isinstance(started, ConversationStarted)
    assert (started.contact_user_id, started.received_at) == (None, None)
    raw = decode(
        old_record(
            "whatsapp.message_received",
            1,
            {
                "waba_id": "1",
                "phone_number_id": "4801",
                "display_phone_number": "57300",
                "contact_wa_id": "5731",
                "contact_name": "Valentina",
                "message": {"id": "w1"},
                "received_at": "2025-01-01T10:00:00Z",
            },
        ),
        REGISTRY,
    ).payload
    assert isinstance(raw, WhatsAppMessageReceived)
    assert (raw.contact_id, raw.contact_wa_id, raw.contact_user_id) == ("5731", "5731", None)
    status = decode(
        old_record(
            "conversation.message_status_updated",
            1,
            {
                "conversation_id": None,
                "wamid": "out",
                "status": "read",
                "recipient_wa_id": "5731",
                "status_at": "2025-01-01T10:00:00Z",
                "errors": [],
                "pricing": None,
            },
        ),
        REGISTRY,
    ).payload
    assert isinstance(status, MessageStatusUpdated)
    assert status.status == "read"


def test_a_version_newer_than_the_reader_is_refused() -> None:
    wire = orjson.loads(encode(message_envelope()))
    wire["schema_version"] = 4
    with pytest.raises(CodecError, match="newer"):
        decode(orjson.dumps(wire), REGISTRY)


def test_caused_events_derive_ids_and_keep_the_correlation() -> None:
    cause = message_envelope()
    first = cause.caused(
        [cause.payload, cause.payload],
        stream_of=lambda _: "s",
        workspace_id=uuid4(),
        occurred_at=AT,
        actor=Actor(kind="bot"),
    )
    again = cause.caused(
        [cause.payload, cause.payload],
        stream_of=lambda _: "s",
        workspace_id=first[0].workspace_id,
        occurred_at=AT,
        actor=Actor(kind="bot"),
    )
    assert [e.event_id for e in first] == [e.event_id for e in again]
    assert first[0].event_id != first[1].event_id
    assert {e.correlation_id for e in first} == {cause.correlation_id}
    assert {e.causation_id for e in first} == {cause.event_id}


def test_two_services_reacting_to_one_event_make_different_ids() -> None:
    """The flows service's run start and the expiry service's deadline are both the first
    event a conversation's start causes: they once shared an id, and the projector, which
    recognises re-sent events by id, dropped whichever came second."""
    cause = message_envelope()
    conversation = uuid4()
    run = FlowRunStarted(
        conversation_id=conversation,
        flow_id=None,
        version=None,
        phone_number_id="1",
        contact_wa_id="57",
        contact_name=None,
        time_zone="UTC",
        conversation_started_at=AT,
        agent_conversations=True,
    )
    deadline = DeadlineSet(
        conversation_id=conversation,
        workspace_id=uuid4(),
        phone_number_id="1",
        contact_wa_id="57",
        deadline=AT,
        latest=AT,
        cause="meta_24h",
    )
    [by_flows] = cause.caused(
        [run], stream_of=lambda _: "s", workspace_id=None, occurred_at=AT, actor=Actor(kind="bot")
    )
    [by_expiry] = cause.caused(
        [deadline],
        stream_of=lambda _: "s",
        workspace_id=None,
        occurred_at=AT,
        actor=Actor(kind="system"),
    )
    assert by_flows.event_id != by_expiry.event_id


def test_every_catalogued_type_has_one_topic() -> None:
    for topic in TOPICS:
        for payload in topic.carries:
            assert topic_of(payload.event_type) is topic
            assert payload.event_type in REGISTRY
        assert topic.retention_ms == -1, f"{topic.name} must keep its history"


def test_every_producer_writes_the_documented_headers() -> None:
    envelope = message_envelope()
    header = RecordHeader.of(envelope)
    assert dict(header.kafka_headers()) == {
        "event_type": b"conversation.customer_message_received",
        "schema_version": str(CustomerMessageReceived.schema_version).encode(),
        "event_id": str(UUID(int=1)).encode(),
        "content-type": b"application/json",
    }
    # The relay reads the same from the stored bytes, without validating the payload.
    assert read_header(encode(envelope)) == header


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xff", "not JSON"),
        (b"[]", "JSON object"),
        (b'{"schema_version": 1, "event_id": "e", "stream_id": "s"}', "event_type"),
        (
            b'{"event_type": "x", "schema_version": true, "event_id": "e", "stream_id": "s"}',
            "schema",
        ),
        (b'{"event_type": "x", "schema_version": 1, "stream_id": "s"}', "event_id"),
        (b'{"event_type": "x", "schema_version": 1, "event_id": "e", "stream_id": 5}', "stream_id"),
    ],
)
def test_a_stored_record_without_a_readable_header_says_which_field(
    data: bytes, reason: str
) -> None:
    with pytest.raises(CodecError, match=reason):
        read_header(data)


def test_a_version_1_dead_letter_is_read_as_version_2_with_its_bytes() -> None:
    envelope = Envelope.wrap(
        RecordDeadLettered(
            consumer="inbound",
            source_topic="whatsapp.inbound",
            source_partition=2,
            source_offset=41,
            key="480112093385611:573154440021",
            value_base64="e30=",
            reason="undecodable record",
        ),
        event_id=UUID(int=9),
        stream_id="480112093385611:573154440021",
        workspace_id=None,
        occurred_at=AT,
        correlation_id=UUID(int=9),
        causation_id=None,
        actor=Actor(kind="system", id="inbound"),
    )
    v1 = orjson.loads(encode(envelope))
    v1["schema_version"] = 1
    read = decode(orjson.dumps(v1), REGISTRY)
    assert read.schema_version == 2
    assert read.payload == envelope.payload


def test_a_tombstone_is_dead_lettered_without_a_value_not_an_empty_one() -> None:
    tombstone = Delivery("whatsapp.inbound", 3, 17, b"480112093385611:5731", None, 1764000000000)
    empty = Delivery("whatsapp.inbound", 3, 18, b"480112093385611:5731", b"", 1764000000000)
    assert tombstone.dead_letter("inbound", "tombstone").value_base64 is None
    assert empty.dead_letter("inbound", "not JSON").value_base64 == ""
