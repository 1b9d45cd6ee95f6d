"""Properties of the webhook parser over any input (hypothesis)."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.whatsapp import WebhookItemRejected, WhatsAppMessageReceived
from services.gateway.webhook import WebhookError, split_webhook
from tests.webhook_strategies import MixedDelivery, json_values, mixed_deliveries

pytestmark = pytest.mark.unit
NOW = datetime(2026, 11, 24, tzinfo=UTC)


@settings(max_examples=300)
@given(document=json_values)
def test_any_json_is_split_or_refused_as_not_a_webhook(document: Any) -> None:
    with contextlib.suppress(WebhookError):
        split_webhook(orjson.dumps(document), received_at=NOW)


@settings(max_examples=200)
@given(body=st.binary(max_size=200))
def test_any_bytes_are_split_or_refused_as_not_a_webhook(body: bytes) -> None:
    with contextlib.suppress(WebhookError):
        split_webhook(body, received_at=NOW)


@settings(max_examples=300)
@given(delivery=mixed_deliveries())
def test_a_valid_message_is_never_lost_beside_invalid_neighbours(delivery: MixedDelivery) -> None:
    split = split_webhook(orjson.dumps(delivery.body), received_at=NOW)
    kept = [
        record.envelope.payload.message
        for record in split.inbound
        if isinstance(record.envelope.payload, WhatsAppMessageReceived)
    ]
    for message in delivery.valid:
        assert message in kept
    parked = [
        record.envelope.payload
        for record in split.rejected
        if isinstance(record.envelope.payload, WebhookItemRejected)
        and record.envelope.payload.path.startswith("entry[0].changes[0].value.messages[")
    ]
    # Every item of the list is accounted for: kept, or parked whole with its reason.
    assert len(kept) + len(parked) == len(delivery.valid) + len(delivery.others)
    for payload in parked:
        assert payload.reason
        assert orjson.loads(payload.item) in delivery.others
