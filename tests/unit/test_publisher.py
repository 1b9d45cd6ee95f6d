"""The gateway's publisher: what it hands Kafka, and how a failed publish answers over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest

from events.envelope import Actor, Envelope
from events.whatsapp import WhatsAppChangeReceived
from runtime.producer import (
    BrokerUnavailable,
    PublishFailed,
    RecordTooLarge,
    RecordUnencodable,
)
from services.gateway.dependencies import kafka_record, publish_refused
from services.gateway.webhook import OutgoingRecord

pytestmark = pytest.mark.unit
AT = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


def record(value: dict[str, Any]) -> OutgoingRecord:
    envelope = Envelope.wrap(
        WhatsAppChangeReceived(waba_id="318400117223051", field="x", value=value, received_at=AT),
        event_id=UUID(int=1),
        stream_id="480112093385611:changes",
        workspace_id=None,
        occurred_at=AT,
        correlation_id=UUID(int=1),
        causation_id=None,
        actor=Actor(kind="meta", id="318400117223051"),
    )
    return OutgoingRecord(key=envelope.stream_id, envelope=envelope)


def test_a_record_carries_its_key_and_the_documented_headers() -> None:
    made = kafka_record("t.whatsapp.business", record({"a": 1}))
    assert made.topic == "t.whatsapp.business"
    assert made.key == b"480112093385611:changes"
    assert dict(made.headers) == {
        "event_type": b"whatsapp.change_received",
        "schema_version": b"1",
        "event_id": str(UUID(int=1)).encode(),
        "content-type": b"application/json",
    }


def test_a_record_nested_deeper_than_the_encoder_goes_is_unencodable_not_a_crash() -> None:
    deep: dict[str, Any] = {"bottom": True}
    for _ in range(300):  # the encoders stop at 254 levels or so
        deep = {"a": deep}
    with pytest.raises(RecordUnencodable, match="cannot be encoded"):
        kafka_record("t.whatsapp.business", record(deep))


@pytest.mark.parametrize(
    ("failure", "status"),
    [
        (RecordTooLarge("MessageSizeTooLargeError"), 413),
        (RecordUnencodable("Recursion limit reached"), 400),
        (BrokerUnavailable("not acknowledged within 3s"), 503),
    ],
)
def test_only_a_failure_that_may_pass_answers_503_with_retry_after(
    failure: PublishFailed, status: int
) -> None:
    answer = publish_refused(failure)
    assert answer.status_code == status
    assert (answer.headers or {}).get("Retry-After") == ("5" if status == 503 else None)
