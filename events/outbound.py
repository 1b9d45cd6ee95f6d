"""Messages the business sends to customers (bot turns now, agent replies later).

``OutboundMessageQueued`` is the request (from the flows service, later from agents); the
dispatcher answers with what became of it. Keyed by conversation id, so one conversation's
messages are sent in the order they were queued.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from events.base import Id, Instant, JsonObject, Payload

OutboundKind = Literal["text", "buttons", "list", "template"]
Author = Literal["bot", "member"]


class ReplyOption(BaseModel):
    """A button or list row the customer can pick; ``id`` comes back in the reply."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    id: str
    title: str
    description: str | None = None


class OutboundMessageQueued(Payload):
    """Send this to the customer. ``text`` is the body (or the template's name for templates)."""

    event_type = "outbound.message_queued"

    message_id: Id
    conversation_id: Id
    # The n-th message this author kind queued in the conversation: orders the history.
    sequence: int
    phone_number_id: str
    to: str
    kind: OutboundKind
    text: str
    options: list[ReplyOption]
    list_button: str | None  # the label of the list's menu button ("Choose")
    template: JsonObject | None  # Graph API template object, for kind "template"
    author: Author
    author_id: str | None
    queued_at: Instant


class RetryOutboundMessage(Payload):
    """An explicit decision to try again a message whose outcome was unknown or failed."""

    event_type = "outbound.retry_requested"

    message_id: Id
    conversation_id: Id
    requested_by: str


class OutboundSendAttempted(Payload):
    """Recorded before each call to the Graph API, so a crash cannot hide a send."""

    event_type = "outbound.send_attempted"

    message_id: Id
    conversation_id: Id
    attempt: int
    attempted_at: Instant


class OutboundMessageSent(Payload):
    event_type = "outbound.message_sent"

    message_id: Id
    conversation_id: Id
    wamid: str
    attempts: int
    sent_at: Instant


class OutboundMessageFailed(Payload):
    """Meta refused it, or retries ran out; ``reason`` says which, with Meta's error."""

    event_type = "outbound.message_failed"

    message_id: Id
    conversation_id: Id
    reason: str
    attempts: int
    http_status: int | None
    error: JsonObject | None
    failed_at: Instant


class OutboundOutcomeUnknown(Payload):
    """A send was attempted but its result never recorded (a crash, a lost response).

    It is not sent again by itself: WhatsApp has no idempotency key, and a resend could
    reach the customer twice. ``RetryOutboundMessage`` is the explicit decision to retry.
    """

    event_type = "outbound.outcome_unknown"

    message_id: Id
    conversation_id: Id
    attempts: int
    reason: str
    detected_at: Instant


class OutboundMessageRefused(Payload):
    """Not sent, by rule: free text outside the 24-hour customer-service window."""

    event_type = "outbound.message_refused"

    message_id: Id
    conversation_id: Id
    reason: str
    refused_at: Instant


OUTBOUND_REQUESTS: tuple[type[Payload], ...] = (OutboundMessageQueued, RetryOutboundMessage)
OUTBOUND_EVENTS: tuple[type[Payload], ...] = (
    OutboundSendAttempted,
    OutboundMessageSent,
    OutboundMessageFailed,
    OutboundOutcomeUnknown,
    OutboundMessageRefused,
)
