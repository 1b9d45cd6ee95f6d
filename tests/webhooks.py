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
