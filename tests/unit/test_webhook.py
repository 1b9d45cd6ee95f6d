"""Splitting Meta's webhook bodies into records, and checking their signatures."""

from __future__ import annotations

import copy
import hmac
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from events.business import (
    AccountUpdated,
    BusinessUpdateReceived,
    MarketingPreferenceChanged,
    TemplateStatusChanged,
    WebhookErrorsReported,
)
from events.whatsapp import (
    WebhookItemRejected,
    WhatsAppMessageEchoed,
    WhatsAppMessageReceived,
    WhatsAppStatusReceived,
)
from services.gateway.webhook import (
    SplitWebhook,
    WebhookError,
    sign,
    signature_valid,
    split_webhook,
    token_matches,
)

pytestmark = pytest.mark.unit
FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "whatsapp"
NOW = datetime(2026, 11, 24, tzinfo=UTC)
NUMBER = "480112093385611"


def fixture(name: str) -> dict[str, Any]:
    document: dict[str, Any] = orjson.loads((FIXTURES / name).read_bytes())
    return document


def split(body: dict[str, Any]) -> SplitWebhook:
    return split_webhook(orjson.dumps(body), received_at=NOW)


def delivery(
    value: dict[str, Any], field: str = "messages", waba: str = "318400"
) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": waba, "changes": [{"field": field, "value": value}]}],
    }


def messages_value(*messages: Any, number: str = NUMBER, **more: Any) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "573001112233", "phone_number_id": number},
        "contacts": [{"profile": {"name": "Valentina Ruiz"}, "wa_id": "573154440021"}],
        "messages": list(messages),
        **more,
    }


def text(wamid: str, sender: str = "573154440021", **fields: Any) -> dict[str, Any]:
    return {
        "from": sender,
        "id": wamid,
        "timestamp": "1764000000",
        "type": "text",
        "text": {"body": f"text of {wamid}"},
        **fields,
    }


def rejected(result: SplitWebhook) -> list[tuple[str, str]]:
    found = []
    for record in result.rejected:
        payload = record.envelope.payload
        assert isinstance(payload, WebhookItemRejected)
        found.append((payload.path, payload.reason))
    return found


def wamids(result: SplitWebhook) -> list[str]:
    return [
        str(record.envelope.payload.message["id"])
        for record in result.inbound
        if isinstance(record.envelope.payload, WhatsAppMessageReceived)
    ]


# -- What Meta sends, kept -------------------------------------------------------------------


def test_text_message_becomes_one_record_keyed_by_number_and_contact() -> None:
    result = split(fixture("text_message.json"))
    [record] = result.inbound
    payload = record.envelope.payload
    assert isinstance(payload, WhatsAppMessageReceived)
    assert record.key == "480112093385611:573154440021"
    assert payload.contact_name == "Valentina Ruiz"
    assert (payload.contact_id, payload.contact_wa_id, payload.contact_user_id) == (
        "573154440021",
        "573154440021",
        None,
    )
    assert payload.message["text"] == {"body": "Hola, necesito ayuda con mi pedido"}
    assert record.envelope.workspace_id is None
    assert (result.business, result.rejected) == ([], [])


def test_status_and_button_reply_are_kept_as_sent() -> None:
    [status] = split(fixture("status_delivered.json")).inbound
    assert isinstance(status.envelope.payload, WhatsAppStatusReceived)
    assert status.envelope.payload.status["status"] == "delivered"
    [reply] = split(fixture("button_reply.json")).inbound
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
    records = split(body).inbound
    kinds = [type(r.envelope.payload).__name__ for r in records]
    assert kinds == ["WhatsAppMessageReceived"] * 4 + ["WhatsAppStatusReceived"]
    assert wamids(split(body)) == ["wamid.0", "wamid.1", "wamid.2", "wamid.img"]


def test_a_retried_delivery_yields_the_same_event_ids() -> None:
    body = orjson.dumps(fixture("text_message.json"))
    first = split_webhook(body, received_at=NOW).inbound
    again = split_webhook(body, received_at=datetime(2026, 11, 25, tzinfo=UTC)).inbound
    assert [r.envelope.event_id for r in first] == [r.envelope.event_id for r in again]


def test_record_ids_derive_from_the_number_and_the_contact_not_the_wamid_alone() -> None:
    """Issue 8, item 1: the same wamid to two numbers, or from two contacts, is two items."""
    on_one = split(delivery(messages_value(text("wamid.same"))))
    on_another = split(delivery(messages_value(text("wamid.same"), number="999000")))
    from_another = split(delivery(messages_value(text("wamid.same", sender="573000000001"))))
    ids = {result.inbound[0].envelope.event_id for result in (on_one, on_another, from_another)}
    assert len(ids) == 3
    status = {"id": "wamid.s", "status": "read", "timestamp": "1764000031"}
    to_one = split(delivery(messages_value(statuses=[{**status, "recipient_id": "5731"}])))
    to_two = split(delivery(messages_value(statuses=[{**status, "recipient_id": "5732"}])))
    later = split(
        delivery(
            messages_value(statuses=[{**status, "recipient_id": "5731", "timestamp": "1764000099"}])
        )
    )
    assert len({r.inbound[0].envelope.event_id for r in (to_one, to_two, later)}) == 3


def test_username_users_are_named_by_their_business_scoped_user_id() -> None:
    """Issue 8, item 3: ``from`` empty or missing, ``from_user_id``; ``recipient_user_id``."""
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": NUMBER},
        "contacts": [
            {
                "profile": {"name": "Sheena", "username": "@sheena"},
                "user_id": "US.13491208655302741918",
                "country_code": "US",
            },
            {"profile": {"name": "Valentina Ruiz"}, "wa_id": "573154440021"},
        ],
        "messages": [
            {**text("wamid.u1"), "from": "", "from_user_id": "US.13491208655302741918"},
            {key: v for key, v in text("wamid.u2").items() if key != "from"}
            | {"from_user_id": "US.13491208655302741918"},
            text("wamid.phone"),
        ],
        "statuses": [
            {
                "id": "wamid.out",
                "status": "delivered",
                "timestamp": "1764000031",
                "recipient_id": "",
                "recipient_user_id": "US.13491208655302741918",
            }
        ],
    }
    result = split(delivery(value))
    assert rejected(result) == []
    first, second, by_phone, status = result.inbound
    for record in (first, second):
        payload = record.envelope.payload
        assert isinstance(payload, WhatsAppMessageReceived)
        assert record.key == f"{NUMBER}:US.13491208655302741918"
        assert (payload.contact_id, payload.contact_wa_id, payload.contact_user_id) == (
            "US.13491208655302741918",
            None,
            "US.13491208655302741918",
        )
        assert payload.contact_name == "Sheena"
        assert payload.contact is not None
        assert payload.contact["profile"]["username"] == "@sheena"
    assert by_phone.key == f"{NUMBER}:573154440021"
    assert status.key == f"{NUMBER}:US.13491208655302741918"


def test_a_message_naming_no_sender_belongs_to_the_changes_only_contact() -> None:
    """netflie/whatsapp-cloud-api's test data: a BSUID-only contact and no ``from``."""
    value = messages_value({key: v for key, v in text("wamid.n").items() if key != "from"})
    value["contacts"] = [{"profile": {"name": "NAME"}, "user_id": "BSUID_123"}]
    [record] = split(delivery(value)).inbound
    assert record.key == f"{NUMBER}:BSUID_123"


def test_played_statuses_and_value_level_errors_are_kept() -> None:
    """Issue 8, item 3: ``played`` was dropped, errors beside messages were dropped."""
    errors = [{"code": 131051, "title": "Message type unknown"}]
    value = messages_value(
        text("wamid.e1"),
        statuses=[
            {
                "id": "wamid.voice",
                "status": "played",
                "timestamp": "1764000031",
                "recipient_id": "573154440021",
            }
        ],
        errors=errors,
    )
    result = split(delivery(value))
    assert [type(r.envelope.payload) for r in result.inbound] == [
        WhatsAppMessageReceived,
        WhatsAppStatusReceived,
    ]
    [reported] = result.business
    assert isinstance(reported.envelope.payload, WebhookErrorsReported)
    assert reported.envelope.payload.errors == errors
    assert reported.key == "318400"


def test_echoes_of_the_business_app_are_records_of_the_customer_they_went_to() -> None:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "573001112233", "phone_number_id": NUMBER},
        "message_echoes": [
            {
                "from": "573001112233",
                "to": "573154440021",
                "id": "wamid.echo",
                "timestamp": "1764000050",
                "type": "text",
                "text": {"body": "Le escribo desde la app"},
            }
        ],
    }
    [record] = split(delivery(value, field="smb_message_echoes")).inbound
    assert isinstance(record.envelope.payload, WhatsAppMessageEchoed)
    assert record.key == f"{NUMBER}:573154440021"


def test_other_changes_become_typed_business_events_keyed_by_the_account() -> None:
    """Issue 8, items 3 and 15: not raw records keyed '{waba}:{field}' on whatsapp.inbound."""
    body = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "318400",
                "changes": [
                    {"field": "account_update", "value": {"event": "ACCOUNT_DELETED"}},
                    {
                        "field": "message_template_status_update",
                        "value": {
                            "event": "APPROVED",
                            "message_template_id": 1689556908129832,
                            "message_template_name": "order_confirmation",
                            "message_template_language": "en_US",
                            "reason": "NONE",
                        },
                    },
                    {
                        "field": "user_preferences",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"phone_number_id": NUMBER},
                            "user_preferences": [
                                {
                                    "wa_id": "16505551234",
                                    "detail": "User requested to stop marketing messages",
                                    "category": "marketing_messages",
                                    "value": "stop",
                                    "timestamp": 1731705721,
                                }
                            ],
                        },
                    },
                    {"field": "calls", "value": {"calls": [{"id": "wacid.1"}]}},
                ],
            }
        ],
    }
    result = split(body)
    assert result.inbound == []
    assert {record.key for record in result.business} == {"318400"}
    account, template, preference, other = (r.envelope.payload for r in result.business)
    assert isinstance(account, AccountUpdated)
    assert account.event == "ACCOUNT_DELETED"
    assert isinstance(template, TemplateStatusChanged)
    assert (template.template_id, template.status) == ("1689556908129832", "APPROVED")
    assert isinstance(preference, MarketingPreferenceChanged)
    assert (preference.contact_id, preference.value) == ("16505551234", "stop")
    assert preference.changed_at == datetime.fromtimestamp(1731705721, tz=UTC)
    assert isinstance(other, BusinessUpdateReceived)
    assert other.update == {"calls": [{"id": "wacid.1"}]}


# -- One bad item costs nothing else ----------------------------------------------------------


def test_an_invalid_message_is_parked_whole_and_its_neighbours_go_on() -> None:
    """Issue 8, item 4: one invalid message used to refuse the whole batch with 400."""
    broken = {"id": "wamid.broken", "type": "text"}  # no sender, no timestamp
    result = split(delivery(messages_value(text("wamid.a"), broken, text("wamid.b"))))
    assert wamids(result) == ["wamid.a", "wamid.b"]
    [(path, reason)] = rejected(result)
    assert path == "entry[0].changes[0].value.messages[1]"
    assert "timestamp" in reason
    payload = result.rejected[0].envelope.payload
    assert isinstance(payload, WebhookItemRejected)
    assert orjson.loads(payload.item) == broken
    assert (payload.waba_id, payload.phone_number_id) == ("318400", NUMBER)
    assert result.rejected[0].key == NUMBER


@pytest.mark.parametrize("timestamp", ["9" * 20, "17644²", "-1", "", "1764000000.5", 1.5, None])
def test_out_of_range_or_non_ascii_timestamps_are_invalid_items(timestamp: object) -> None:
    """Issue 8, item 4: accepted with 200 before, then dead-lettered downstream."""
    result = split(
        delivery(messages_value(text("wamid.bad", timestamp=timestamp), text("wamid.good")))
    )
    assert wamids(result) == ["wamid.good"]
    assert [path for path, _ in rejected(result)] == ["entry[0].changes[0].value.messages[0]"]


def test_numeric_timestamps_are_unix_seconds_too() -> None:
    """netflie's and pywa's test data send some timestamps as JSON numbers."""
    assert wamids(split(delivery(messages_value(text("wamid.n", timestamp=1669233778))))) == [
        "wamid.n"
    ]


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ({"messages": 5}, "entry[0].changes[0].value.messages"),
        ({"statuses": 7}, "entry[0].changes[0].value.statuses"),
        ({"contacts": 3}, "entry[0].changes[0].value.contacts"),
        (
            {"contacts": [{"profile": "x", "wa_id": "573154440021"}]},
            "entry[0].changes[0].value.contacts[0]",
        ),
        ({"errors": "boom"}, "entry[0].changes[0].value.errors"),
    ],
)
def test_wrong_json_types_are_invalid_items_not_crashes(value: dict[str, Any], path: str) -> None:
    """Issue 8, item 5: these answered 500 before."""
    body = messages_value(text("wamid.kept"))
    body.update(value)
    if "messages" in value:
        body["statuses"] = [
            {"id": "w.s", "status": "sent", "timestamp": "1764000000", "recipient_id": "57"}
        ]
    result = split(delivery(body))
    assert path in [found for found, _ in rejected(result)]
    assert result.inbound, "the valid item beside the broken one is kept"


def test_identifiers_with_control_characters_are_invalid_items() -> None:
    result = split(delivery(messages_value(text("wamid.\x00nul"), text("wamid.ok"))))
    assert wamids(result) == ["wamid.ok"]
    assert "control character" in rejected(result)[0][1]


@pytest.mark.parametrize(
    "entry",
    [
        5,
        {"changes": []},
        {"id": "1", "changes": "x"},
        {"id": "1", "changes": [{"field": "messages", "value": 3}]},
        {"id": "1", "changes": [{"field": "messages", "value": {"messages": []}}]},
        {"id": "1", "changes": [{"value": {}}]},
    ],
)
def test_broken_entries_and_changes_are_parked_beside_a_valid_one(entry: Any) -> None:
    body = delivery(messages_value(text("wamid.fine")))
    body["entry"].append(entry)
    result = split(body)
    assert wamids(result) == ["wamid.fine"]
    assert len(result.rejected) == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"nope", "not JSON"),
        (b"[]", "JSON object"),
        (b'{"object": "page", "entry": []}', "whatsapp_business_account"),
        (b'{"object": "whatsapp_business_account", "entry": []}', "entry must be a non-empty"),
        (b'{"object": "whatsapp_business_account"}', "entry must be a non-empty"),
        (
            b'{"object": "whatsapp_business_account", "entry": [' + b"[" * 200 + b"]" * 200 + b"]}",
            "levels deep",
        ),
    ],
)
def test_a_body_that_is_not_a_webhook_says_why(body: bytes, message: str) -> None:
    with pytest.raises(WebhookError, match=message):
        split_webhook(body, received_at=NOW)


# -- Signatures and the verification token -----------------------------------------------------


def test_signatures() -> None:
    body = b'{"a": 1}'
    header = sign("secret", body)
    assert signature_valid("secret", body, header)
    assert not signature_valid("secret", body + b" ", header)
    assert not signature_valid("other", body, header)
    assert not signature_valid("secret", body, None)
    assert not signature_valid("secret", body, header.removeprefix("sha256="))
    assert not signature_valid("", body, sign("", body))


def test_a_non_ascii_signature_is_simply_wrong() -> None:
    """Issue 8, item 5: ``hmac.compare_digest`` raised on it, answering 500."""
    assert not signature_valid("secret", b"{}", "sha256=" + "é" * 64)
    assert not signature_valid("secret", b"{}", "sha256=\u00ff")


def test_the_verification_token_is_compared_in_constant_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 8, item 8: ``!=`` returns at the first differing character."""
    calls: list[tuple[object, object]] = []
    compare = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return compare(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert token_matches("dev-verify-token", "dev-verify-token")
    assert not token_matches("dev-verify-token", "dev-verify-tokeX")
    assert not token_matches("dev-verify-token", "ñandú")
    assert not token_matches("dev-verify-token", None)
    assert not token_matches("", "")
    assert len(calls) == 3
