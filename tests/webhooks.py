"""Builders of WhatsApp webhook bodies shaped exactly like Meta's (see shared/fixtures)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from services.gateway.webhook import sign


@dataclass(frozen=True)
class Text:
    contact: str
    wamid: str
    body: str
    timestamp: int = 1764000000
    name: str = "Valentina Ruiz"


def messages_webhook(phone_number_id: str, messages: Sequence[Text]) -> bytes:
    """One delivery carrying ``messages`` (in this order) to one business number."""
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "573001112233", "phone_number_id": phone_number_id},
        "contacts": [
            {"profile": {"name": m.name}, "wa_id": m.contact}
            for m in {m.contact: m for m in messages}.values()
        ],
        "messages": [
            {
                "from": m.contact,
                "id": m.wamid,
                "timestamp": str(m.timestamp),
                "type": "text",
                "text": {"body": m.body},
            }
            for m in messages
        ],
    }
    return orjson.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {"id": "318400117223051", "changes": [{"field": "messages", "value": value}]}
            ],
        }
    )


def signed_headers(secret: str, body: bytes) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Hub-Signature-256": sign(secret, body)}


def webhook(*changes: tuple[str, dict[str, Any]], waba_id: str = "318400117223051") -> bytes:
    """One delivery of the given ``(field, value)`` changes, as Meta batches them."""
    return orjson.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": waba_id,
                    "changes": [{"field": field, "value": value} for field, value in changes],
                }
            ],
        }
    )


def messages_value(
    phone_number_id: str,
    *,
    contacts: Sequence[dict[str, Any]] = (),
    messages: Sequence[Any] = (),
    statuses: Sequence[Any] = (),
    **more: Any,
) -> dict[str, Any]:
    """The value of a ``messages`` change for one business number."""
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "573001112233", "phone_number_id": phone_number_id},
        **more,
    }
    for name, items in (("contacts", contacts), ("messages", messages), ("statuses", statuses)):
        if items:
            value[name] = list(items)
    return value
