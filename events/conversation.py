"""Conversation events (inbound service) and the commands other services send it.

A conversation is one contact with one business number, from its first message until it
is closed. Its id is the Kafka key of every event here.

``contact_wa_id`` (and ``recipient_wa_id``) hold the customer's *contact id*: its WhatsApp
id (phone number) when WhatsApp shares it, otherwise its business-scoped user id (BSUID,
``US.1349...``) for a customer who adopted a username. The name stayed for compatibility;
``contact_user_id`` always carries the BSUID when Meta sent one.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from events.base import Id, Instant, JsonObject, Payload

MessageAuthor = Literal["customer", "business"]

CloseReason = Literal["agent", "flow_ended", "expired", "admin"]


class ConversationStarted(Payload):
    """A customer's message (or the business app's echo) opened a conversation.

    ``started_at`` is the message's own time (Meta's timestamp, whole seconds, possibly
    long before it reached us, never later than its arrival); version 2 adds
    ``received_at``, when the gateway received it (None when read from a version 1 record,
    which did not say). What a conversation runs is decided by arrival: a flow chosen
    before the message arrived applies to it. Version 3 adds what Meta tells of the contact
    besides its id and profile name: ``contact_user_id`` (its BSUID), ``contact_username``,
    ``contact_country_code`` (None when read from older versions, or not sent).
    """

    event_type = "conversation.started"
    schema_version = 3

    conversation_id: Id
    phone_number_id: str
    display_phone_number: str
    contact_wa_id: str
    contact_name: str | None
    started_at: Instant
    received_at: Instant | None = None
    contact_user_id: str | None = None
    contact_username: str | None = None
    contact_country_code: str | None = None


class CustomerMessageReceived(Payload):
    """A message from the customer.

    Version 2 keeps every message type: ``kind`` is Meta's type (text, interactive, image,
    audio, location, reaction, ...), ``text`` the human-readable part when there is one
    (a text body, a reply's title, a caption), ``reply_id`` the id of a chosen button or list
    row, and ``content`` Meta's type-specific object as sent. Version 1 carried only ``text``.

    Version 3 keeps what Meta says around the content: ``context`` (the message replied to,
    ``forwarded``/``frequently_forwarded``, a referred product), the click-to-WhatsApp ad
    ``referral``, a group message's ``group_id``, message-level ``errors`` (an
    ``unsupported`` message, error 131051), and ``received_at``: when the gateway received
    it. ``sent_at`` is Meta's timestamp, clamped to ``received_at`` when it lies in the
    future. Older versions are upcast with None and [] (no arrival time was recorded).
    """

    event_type = "conversation.customer_message_received"
    schema_version = 3

    conversation_id: Id
    wamid: str
    # The n-th customer message of the conversation (1, 2, ...): orders messages Meta
    # stamped with the same second.
    sequence: int
    kind: str
    text: str | None
    reply_id: str | None
    content: JsonObject
    context_wamid: str | None
    sent_at: Instant
    context: JsonObject | None = None
    referral: JsonObject | None = None
    group_id: str | None = None
    errors: list[JsonObject] = Field(default_factory=list)
    received_at: Instant | None = None


class BusinessMessageEchoed(Payload):
    """A message the business sent from the WhatsApp Business app on the same number (Meta's
    ``smb_message_echoes``): a line of the business in the conversation."""

    event_type = "conversation.business_message_echoed"

    conversation_id: Id
    wamid: str
    kind: str
    text: str | None
    content: JsonObject
    context: JsonObject | None
    sent_at: Instant
    received_at: Instant


class MessageEdited(Payload):
    """The customer (or the business, from its app) edited a message of the conversation.

    ``wamid`` is the edited message; ``edit_wamid`` the edit's own id. ``kind``, ``text`` and
    ``content`` are the new version, as for a received message.
    """

    event_type = "conversation.message_edited"

    conversation_id: Id
    wamid: str
    edit_wamid: str
    author: MessageAuthor
    kind: str
    text: str | None
    content: JsonObject
    edited_at: Instant


class MessageRevoked(Payload):
    """The customer (or the business) deleted a message of the conversation for everyone."""

    event_type = "conversation.message_revoked"

    conversation_id: Id
    wamid: str
    revoke_wamid: str
    author: MessageAuthor
    revoked_at: Instant


class MessageStatusUpdated(Payload):
    """Meta's delivery status for a message the business sent (``wamid``).

    ``conversation_id`` is the conversation that sent the message (named by the
    ``biz_opaque_callback_data`` switchboard sends with every message, or known from the
    business app's echo), None when the thread never saw it. Version 2 takes any status
    Meta sends (``played`` for a voice message, ...); version 1 allowed five.
    """

    event_type = "conversation.message_status_updated"
    schema_version = 2

    conversation_id: Id | None
    wamid: str
    status: str
    recipient_wa_id: str
    status_at: Instant
    errors: list[JsonObject]
    pricing: JsonObject | None


class ConversationClosed(Payload):
    event_type = "conversation.closed"

    conversation_id: Id
    reason: CloseReason
    closed_at: Instant


class CloseConversation(Payload):
    """Command: close a conversation (an agent, the flow's end block, or the expiry timer)."""

    event_type = "conversation.close"

    conversation_id: Id
    workspace_id: Id
    phone_number_id: str
    contact_wa_id: str
    reason: CloseReason


def upcast_conversation_started_v1(data: JsonObject) -> JsonObject:
    """v1 did not record when the gateway received the first message."""
    return {**data, "received_at": None}


def upcast_conversation_started_v2(data: JsonObject) -> JsonObject:
    """v2 had no contact details besides the id and the profile name."""
    return {
        **data,
        "contact_user_id": None,
        "contact_username": None,
        "contact_country_code": None,
    }


def upcast_customer_message_v2(data: JsonObject) -> JsonObject:
    """v2 kept only the reply-to wamid of the context, and had no arrival time."""
    return {
        **data,
        "context": {"id": data["context_wamid"]} if data.get("context_wamid") else None,
        "referral": None,
        "group_id": None,
        "errors": [],
        "received_at": None,  # not recorded before v3
    }


def upcast_status_v1(data: JsonObject) -> JsonObject:
    """v1's five statuses are all valid v2 statuses."""
    return dict(data)


def upcast_customer_message_v1(data: JsonObject) -> JsonObject:
    """v1 ``{conversation_id, wamid, text, sent_at}`` was text only; v2 names the kind."""
    text = data["text"]
    return {
        "conversation_id": data["conversation_id"],
        "wamid": data["wamid"],
        "sequence": 0,  # v1 did not number messages; 0 sorts them by time alone
        "kind": "text",
        "text": text,
        "reply_id": None,
        "content": {"body": text},
        "context_wamid": None,
        "sent_at": data["sent_at"],
    }


CONVERSATION_EVENTS: tuple[type[Payload], ...] = (
    ConversationStarted,
    CustomerMessageReceived,
    BusinessMessageEchoed,
    MessageEdited,
    MessageRevoked,
    MessageStatusUpdated,
    ConversationClosed,
)
CONVERSATION_COMMANDS: tuple[type[Payload], ...] = (CloseConversation,)
