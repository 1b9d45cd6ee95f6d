"""Splitting Meta's webhook bodies into records, and checking their signatures."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from events.whatsapp import WhatsAppChangeReceived, WhatsAppMessageReceived, WhatsAppStatusReceived
from services.gateway.webhook import WebhookError, sign, signature_valid, split_webhook

pytestmark = pytest.mark.unit
FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "whatsapp"
NOW = datetime(2026, 11, 24, tzinfo=UTC)


def fixture(name: str) -> dict[str, Any]:
    document: dict[str, Any] = orjson.loads((FIXTURES / name).read_bytes())
    return document


def test_text_message_becomes_one_record_keyed_by_number_and_contact() -> None:
    [record] = split_webhook(orjson.dumps(fixture("text_message.json")), received_at=NOW)
    payload = record.envelope.payload
    assert isinstance(payload, WhatsAppMessageReceived)
    assert record.key == "480112093385611:573154440021"
    assert payload.contact_name == "Valentina Ruiz"
    assert payload.message["text"] == {"body": "Hola, necesito ayuda con mi pedido"}
    assert record.envelope.workspace_id is None


def test_status_and_button_reply_are_kept_as_sent() -> None:
    [status] = split_webhook(orjson.dumps(fixture("status_delivered.json")), received_at=NOW)
    assert isinstance(status.envelope.payload, WhatsAppStatusReceived)
    assert status.envelope.payload.status["status"] == "delivered"
    [reply] = split_webhook(orjson.dumps(fixture("button_reply.json")), received_at=NOW)
    assert isinstance(reply.envelope.payload, WhatsAppMessageReceived)
    assert reply.envelope.payload.message["interactive"]["button_reply"]["id"] == "talk_to_agent"


def test_several_messages_and_statuses_keep_meta_order() -> None:
    body = fixture("text_message.json")
    value = body["entry"][0]["changes"][0]["value"]
    first = value["messages"][0]
    value["messages"] = [dict(first, id=f"wamid.{n}") for n in range(3)]
    value["messages"].append(
        {
            "from": first["from"],
            "id": "wamid.img",
            "timestamp": "1764000001",
            "type": "image",
            "image": {"id": "media-1", "mime_type": "image/jpeg", "caption": "mi pedido"},
        }
    )
    value["statuses"] = copy.deepcopy(
        fixture("status_delivered.json")["entry"][0]["changes"][0]["value"]["statuses"]
    )
    records = split_webhook(orjson.dumps(body), received_at=NOW)
    kinds = [type(r.envelope.payload).__name__ for r in records]
    assert kinds == ["WhatsAppMessageReceived"] * 4 + ["WhatsAppStatusReceived"]
    assert [r.envelope.payload.message["id"] for r in records[:4]] == [  # type: ignore[attr-defined]
        "wamid.0",
        "wamid.1",
        "wamid.2",
        "wamid.img",
    ]


def test_a_retried_delivery_yields_the_same_event_ids() -> None:
    body = orjson.dumps(fixture("text_message.json"))
    first = split_webhook(body, received_at=NOW)
    again = split_webhook(body, received_at=datetime(2026, 11, 25, tzinfo=UTC))
    assert [r.envelope.event_id for r in first] == [r.envelope.event_id for r in again]


def test_other_fields_are_kept_not_dropped() -> None:
    body = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "account_update", "value": {"event": "X"}}]}],
    }
    [record] = split_webhook(orjson.dumps(body), received_at=NOW)
    assert isinstance(record.envelope.payload, WhatsAppChangeReceived)
    assert record.envelope.payload.value == {"event": "X"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"nope", "not JSON"),
        (b"[]", "JSON object"),
        (b'{"object": "page", "entry": []}', "whatsapp_business_account"),
        (b'{"object": "whatsapp_business_account", "entry": []}', "entry must be a non-empty"),
        (
            b'{"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": '
            b'[{"field": "messages", "value": {"metadata": {"phone_number_id": "9"}, '
            b'"messages": [{"id": "w", "from": "1", "type": "text", "timestamp": "x"}]}}]}]}',
            r"entry\[0\].changes\[0\].value.messages\[0\].timestamp",
        ),
        (
            b'{"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": '
            b'[{"field": "messages", "value": {"metadata": {}}}]}]}',
            "phone_number_id",
        ),
    ],
)
def test_a_body_that_is_not_a_webhook_says_where(body: bytes, message: str) -> None:
    with pytest.raises(WebhookError, match=message):
        split_webhook(body, received_at=NOW)


def test_signatures() -> None:
    body = b'{"a": 1}'
    header = sign("secret", body)
    assert signature_valid("secret", body, header)
    assert not signature_valid("secret", body + b" ", header)
    assert not signature_valid("other", body, header)
    assert not signature_valid("secret", body, None)
    assert not signature_valid("secret", body, header.removeprefix("sha256="))
    assert not signature_valid("", body, sign("", body))
