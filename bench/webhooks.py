"""Signed webhook bodies shaped like Meta's (``shared/fixtures/whatsapp``), built ahead of a run.

Each delivery carries one message, as Meta sends them under ordinary load, and is signed
the way Meta signs: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>``.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

import orjson

WABA_ID = "318400117223051"
DISPLAY_NUMBER = "573001112233"


@dataclass(frozen=True)
class SignedBody:
    body: bytes
    signature: str


def sign(secret: str, body: bytes) -> SignedBody:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return SignedBody(body, f"sha256={digest}")


def _delivery(phone_number_id: str, contact: str, name: str, message: dict[str, Any]) -> bytes:
    return orjson.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": WABA_ID,
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {
                                    "display_phone_number": DISPLAY_NUMBER,
                                    "phone_number_id": phone_number_id,
                                },
                                "contacts": [{"profile": {"name": name}, "wa_id": contact}],
                                "messages": [message],
                            },
                        }
                    ],
                }
            ],
        }
    )


def text_message(
    phone_number_id: str, contact: str, wamid: str, text: str, timestamp: int
) -> bytes:
    return _delivery(
        phone_number_id,
        contact,
        "Bench Customer",
        {
            "from": contact,
            "id": wamid,
            "timestamp": str(timestamp),
            "type": "text",
            "text": {"body": text},
        },
    )


def button_reply(
    phone_number_id: str,
    contact: str,
    wamid: str,
    *,
    button_id: str,
    title: str,
    timestamp: int,
) -> bytes:
    """A tap on one of the bot's reply buttons (Meta's ``interactive.button_reply``)."""
    return _delivery(
        phone_number_id,
        contact,
        "Bench Customer",
        {
            "context": {"from": DISPLAY_NUMBER, "id": f"{wamid}.question"},
            "from": contact,
            "id": wamid,
            "timestamp": str(timestamp),
            "type": "interactive",
            "interactive": {
                "type": "button_reply",
                "button_reply": {"id": button_id, "title": title},
            },
        },
    )
