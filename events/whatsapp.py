"""Raw inbound records: what the gateway takes from Meta's webhook, one record per item.

The gateway cannot know the workspace (routing is the inbound consumer's decision), so
these envelopes carry ``workspace_id = None``. Each keeps Meta's object exactly as sent in
``message``/``status``/``value``, so no type Meta adds later is lost on the way in.

A customer is named by its *contact id*: its WhatsApp id (``wa_id``, a phone number) when
WhatsApp shares it, otherwise its business-scoped user id (BSUID, ``user_id``), which is all
Meta sends for a customer who adopted a username and hides the number.
"""

from __future__ import annotations

from events.base import Instant, JsonObject, Payload


class WhatsAppMessageReceived(Payload):
    """One entry of ``value.messages`` of a webhook, with the business number it came to.

    Version 2 names the customer by ``contact_id`` (wa_id, else BSUID) and keeps both ids
    and Meta's whole ``contacts`` entry (username, country code...); version 1 had only
    ``contact_wa_id`` and ``contact_name``.
    """

    event_type = "whatsapp.message_received"
    schema_version = 2

    waba_id: str
    phone_number_id: str
    display_phone_number: str
    contact_id: str
    contact_wa_id: str | None
    contact_user_id: str | None
    contact_name: str | None
    contact: JsonObject | None  # Meta's ``contacts`` entry for the sender, as sent
    message: JsonObject
    received_at: Instant


class WhatsAppMessageEchoed(Payload):
    """One entry of ``value.message_echoes`` (field ``smb_message_echoes``): a message the
    business sent to the customer from the WhatsApp Business app on the same number."""

    event_type = "whatsapp.message_echoed"

    waba_id: str
    phone_number_id: str
    display_phone_number: str
    contact_id: str  # the customer the business wrote to
    contact_wa_id: str | None
    contact_user_id: str | None
    contact_name: str | None
    contact: JsonObject | None
    message: JsonObject
    received_at: Instant


class WhatsAppStatusReceived(Payload):
    """One entry of ``value.statuses``: sent, delivered, read, played, failed... for a message
    the business sent."""

    event_type = "whatsapp.status_received"

    waba_id: str
    phone_number_id: str
    display_phone_number: str
    status: JsonObject
    received_at: Instant


class WhatsAppChangeReceived(Payload):
    """A webhook change that was neither messages nor statuses, as the gateway kept it until
    business updates got typed events of their own (``events/business.py``).

    Still readable on ``whatsapp.inbound`` (its history is kept); no longer written.
    """

    event_type = "whatsapp.change_received"

    waba_id: str
    field: str
    value: JsonObject
    received_at: Instant


class WebhookItemRejected(Payload):
    """A part of a webhook delivery that is not what Meta documents, kept whole with the
    reason, while the valid items of the same delivery went on (``whatsapp.rejected``).

    ``path`` says where it was (``entry[0].changes[1].value.messages[2]``), ``item`` is the
    offending JSON value as text. The business number and account are given when known.
    """

    event_type = "whatsapp.item_rejected"

    waba_id: str | None
    phone_number_id: str | None
    path: str
    reason: str
    item: str
    received_at: Instant


def status_recipient(status: JsonObject) -> str | None:
    """The customer a status is about: ``recipient_id`` (a wa_id, or a group id), else the
    BSUID in ``recipient_user_id`` (Meta sends an empty ``recipient_id`` for username users).
    """
    for name in ("recipient_id", "recipient_user_id"):
        value = status.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def upcast_message_received_v1(data: JsonObject) -> JsonObject:
    """v1 named the customer by ``contact_wa_id`` alone; v2 by ``contact_id`` with both ids."""
    return {
        **data,
        "contact_id": data["contact_wa_id"],
        "contact_user_id": None,
        "contact": None,
    }


RAW_RECORDS: tuple[type[Payload], ...] = (
    WhatsAppMessageReceived,
    WhatsAppMessageEchoed,
    WhatsAppStatusReceived,
    WhatsAppChangeReceived,
)
REJECTED_RECORDS: tuple[type[Payload], ...] = (WebhookItemRejected,)
