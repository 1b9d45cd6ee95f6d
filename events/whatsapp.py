"""Raw inbound records: what the gateway takes from Meta's webhook, one record per item.

The gateway cannot know the workspace (routing is the inbound consumer's decision), so
these envelopes carry ``workspace_id = None``. Each keeps Meta's object exactly as sent in
``message``/``status``/``value``, so no type Meta adds later is lost on the way in.
"""

from __future__ import annotations

from events.base import Instant, JsonObject, Payload


class WhatsAppMessageReceived(Payload):
    """One entry of ``value.messages`` of a webhook, with the business number it came to."""

    event_type = "whatsapp.message_received"

    waba_id: str
    phone_number_id: str
    display_phone_number: str
    contact_wa_id: str
    contact_name: str | None
    message: JsonObject
    received_at: Instant


class WhatsAppStatusReceived(Payload):
    """One entry of ``value.statuses``: sent, delivered, read or failed for an outbound message."""

    event_type = "whatsapp.status_received"

    waba_id: str
    phone_number_id: str
    display_phone_number: str
    status: JsonObject
    received_at: Instant


class WhatsAppChangeReceived(Payload):
    """A webhook change that is neither messages nor statuses (account, template updates...).

    Kept on the inbound topic for whoever needs it; no switchboard consumer acts on it yet.
    """

    event_type = "whatsapp.change_received"

    waba_id: str
    field: str
    value: JsonObject
    received_at: Instant


RAW_RECORDS: tuple[type[Payload], ...] = (
    WhatsAppMessageReceived,
    WhatsAppStatusReceived,
    WhatsAppChangeReceived,
)
