"""Meta's WhatsApp Cloud API webhook: signature check and splitting into records (pure).

A delivery batches entries, each with changes; a ``messages`` change carries messages
and/or statuses of one business number. Each message and status becomes one record keyed
by business number and contact, so one customer's records stay in order on one partition.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid5

import orjson

from events.base import Payload
from events.envelope import Actor, Envelope
from events.whatsapp import WhatsAppChangeReceived, WhatsAppMessageReceived, WhatsAppStatusReceived

RECORD_NAMESPACE = UUID("2b6f9d1e-4c3a-4e8b-b7f0-1d2c3b4a5e6f")


class WebhookError(ValueError):
    """A body that is not a WhatsApp webhook; the message says exactly where and why."""


def signature_valid(secret: str, body: bytes, header: str | None) -> bool:
    """Check ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`` (constant time)."""
    if not secret or not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header.removeprefix("sha256=").strip().lower())


def sign(secret: str, body: bytes) -> str:
    """The header value Meta would send for ``body`` (for tests, the demo and tools)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class OutgoingRecord:
    key: str
    envelope: Envelope


def split_webhook(body: bytes, *, received_at: datetime) -> list[OutgoingRecord]:
    """One record per message, status or other change, in the order Meta listed them."""
    try:
        document: Any = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise WebhookError(f"body is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise WebhookError("body must be a JSON object")
    if document.get("object") != "whatsapp_business_account":
        raise WebhookError(
            f"'object' must be 'whatsapp_business_account', got {document.get('object')!r}"
        )
    entries = _list(document, "entry", "body")
    records: list[OutgoingRecord] = []
    for e, entry in enumerate(entries):
        where = f"entry[{e}]"
        entry = _object(entry, where)
        waba_id = _text(entry, "id", where)
        for c, change in enumerate(_list(entry, "changes", where)):
            here = f"{where}.changes[{c}]"
            change = _object(change, here)
            field = _text(change, "field", here)
            value = _object(change.get("value"), f"{here}.value")
            if field == "messages":
                records.extend(_messages_change(waba_id, value, here, received_at))
            else:
                records.append(
                    _record(
                        f"{waba_id}:{field}",
                        WhatsAppChangeReceived(
                            waba_id=waba_id, field=field, value=value, received_at=received_at
                        ),
                        identity=orjson.dumps(change, option=orjson.OPT_SORT_KEYS).decode(),
                        actor_id=waba_id,
                        received_at=received_at,
                    )
                )
    return records


def _messages_change(
    waba_id: str, value: dict[str, Any], where: str, received_at: datetime
) -> list[OutgoingRecord]:
    metadata = _object(value.get("metadata"), f"{where}.value.metadata")
    phone_number_id = _text(metadata, "phone_number_id", f"{where}.value.metadata")
    display = str(metadata.get("display_phone_number", ""))
    names = {
        str(contact.get("wa_id")): (contact.get("profile") or {}).get("name")
        for contact in value.get("contacts", []) or []
        if isinstance(contact, dict)
    }
    records: list[OutgoingRecord] = []
    for m, message in enumerate(value.get("messages", []) or []):
        here = f"{where}.value.messages[{m}]"
        message = _object(message, here)
        wamid = _text(message, "id", here)
        sender = _text(message, "from", here)
        _timestamp(message, here)
        _text(message, "type", here)
        name = names.get(sender)
        records.append(
            _record(
                f"{phone_number_id}:{sender}",
                WhatsAppMessageReceived(
                    waba_id=waba_id,
                    phone_number_id=phone_number_id,
                    display_phone_number=display,
                    contact_wa_id=sender,
                    contact_name=name if isinstance(name, str) else None,
                    message=message,
                    received_at=received_at,
                ),
                identity=f"message:{wamid}",
                actor_id=sender,
                received_at=received_at,
            )
        )
    for s, status in enumerate(value.get("statuses", []) or []):
        here = f"{where}.value.statuses[{s}]"
        status = _object(status, here)
        wamid = _text(status, "id", here)
        state = _text(status, "status", here)
        recipient = _text(status, "recipient_id", here)
        timestamp = _timestamp(status, here)
        records.append(
            _record(
                f"{phone_number_id}:{recipient}",
                WhatsAppStatusReceived(
                    waba_id=waba_id,
                    phone_number_id=phone_number_id,
                    display_phone_number=display,
                    status=status,
                    received_at=received_at,
                ),
                identity=f"status:{wamid}:{state}:{timestamp}",
                actor_id=recipient,
                received_at=received_at,
            )
        )
    if not records and not value.get("errors"):
        raise WebhookError(f"{where}.value has no messages, statuses or errors")
    if value.get("errors") and not records:
        records.append(
            _record(
                f"{phone_number_id}:errors",
                WhatsAppChangeReceived(
                    waba_id=waba_id, field="messages", value=value, received_at=received_at
                ),
                identity=orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode(),
                actor_id=waba_id,
                received_at=received_at,
            )
        )
    return records


def _record(
    key: str, payload: Payload, *, identity: str, actor_id: str, received_at: datetime
) -> OutgoingRecord:
    # Meta's retries of one message carry the same identity, hence the same event id.
    event_id = uuid5(RECORD_NAMESPACE, identity)
    envelope = Envelope.wrap(
        payload,
        event_id=event_id,
        stream_id=key,
        workspace_id=None,
        occurred_at=received_at,
        correlation_id=event_id,
        causation_id=None,
        actor=Actor(kind="meta", id=actor_id),
    )
    return OutgoingRecord(key=key, envelope=envelope)


def _object(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise WebhookError(f"{where} must be an object")
    return value


def _list(container: dict[str, Any], name: str, where: str) -> list[Any]:
    value = container.get(name)
    if not isinstance(value, list) or not value:
        raise WebhookError(f"{where}.{name} must be a non-empty list")
    return value


def _text(container: dict[str, Any], name: str, where: str) -> str:
    value = container.get(name)
    if not isinstance(value, str) or not value:
        raise WebhookError(f"{where}.{name} must be a non-empty string")
    return value


def _timestamp(container: dict[str, Any], where: str) -> str:
    value = _text(container, "timestamp", where)
    if not value.isdigit():
        raise WebhookError(f"{where}.timestamp must be Unix seconds, got {value!r}")
    return value
