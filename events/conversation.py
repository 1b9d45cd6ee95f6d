"""Conversation events (inbound service) and the commands other services send it.

A conversation is one contact with one business number, from its first message until it
is closed. Its id is the Kafka key of every event here.
"""

from __future__ import annotations

from typing import Literal

from events.base import Id, Instant, JsonObject, Payload

MessageStatus = Literal["sent", "delivered", "read", "failed", "deleted"]
CloseReason = Literal["agent", "flow_ended", "expired", "admin"]


class ConversationStarted(Payload):
    """A customer's message opened a conversation.

    ``started_at`` is the message's own time (Meta's timestamp, whole seconds, possibly
    long before it reached us); version 2 adds ``received_at``, when the gateway received
    it (None when read from a version 1 record, which did not say). What a conversation
    runs is decided by arrival: a flow chosen before the message arrived applies to it.
    """

    event_type = "conversation.started"
    schema_version = 2

    conversation_id: Id
    phone_number_id: str
    display_phone_number: str
    contact_wa_id: str
    contact_name: str | None
    started_at: Instant
    received_at: Instant | None = None


class CustomerMessageReceived(Payload):
    """A message from the customer.

    Version 2 keeps every message type: ``kind`` is Meta's type (text, interactive, image,
    audio, location, reaction, ...), ``text`` the human-readable part when there is one
    (a text body, a reply's title, a caption), ``reply_id`` the id of a chosen button or list
    row, and ``content`` Meta's type-specific object as sent. Version 1 carried only ``text``.
    """

    event_type = "conversation.customer_message_received"
    schema_version = 2

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


class MessageStatusUpdated(Payload):
    """Meta's delivery status for a message the business sent (``wamid``)."""

    event_type = "conversation.message_status_updated"

    conversation_id: Id | None
    wamid: str
    status: MessageStatus
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
    MessageStatusUpdated,
    ConversationClosed,
)
CONVERSATION_COMMANDS: tuple[type[Payload], ...] = (CloseConversation,)
