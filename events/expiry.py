"""Conversation deadlines (expiry service): when each open conversation must close, and when it did.

Every open conversation has one deadline: Meta's 24 hours from its start, or earlier when
its flow set an expiration. The expiry service records each deadline it sets or cancels,
and, when a deadline passes, that the conversation expired; the close itself is a
``conversation.close`` command to the inbound service (reason ``expired``), like every
other close. All of these are keyed by conversation id.
"""

from __future__ import annotations

from typing import Literal

from events.base import Id, Instant, Payload

DeadlineCause = Literal["meta_24h", "flow"]


class DeadlineSet(Payload):
    """The conversation closes at ``deadline`` unless it closes before.

    It carries the conversation's address (business number and contact), because the close
    command is keyed by it and the timer fires from this service's own store alone, and
    ``latest`` (the start plus the maximum age), past which no flow request can move it.
    """

    event_type = "expiry.deadline_set"

    conversation_id: Id
    workspace_id: Id
    phone_number_id: str
    contact_wa_id: str
    deadline: Instant
    latest: Instant
    cause: DeadlineCause


class FlowExpirationHeld(Payload):
    """A flow's expiration read before the start of its conversation (topics are independent).

    It becomes the deadline (capped by the maximum age) once the start is read.
    """

    event_type = "expiry.flow_expiration_held"

    conversation_id: Id
    expires_at: Instant


class DeadlineCancelled(Payload):
    """The conversation closed (an agent, the flow's end) before its deadline."""

    event_type = "expiry.deadline_cancelled"

    conversation_id: Id
    deadline: Instant
    cancelled_at: Instant


class ConversationExpired(Payload):
    """The deadline passed. ``fired_at`` is the wall clock when the timer acted (the one place
    switchboard reads it); ``deadline`` is the event time everything downstream uses."""

    event_type = "expiry.conversation_expired"

    conversation_id: Id
    deadline: Instant
    fired_at: Instant


EXPIRY_EVENTS: tuple[type[Payload], ...] = (
    DeadlineSet,
    FlowExpirationHeld,
    DeadlineCancelled,
    ConversationExpired,
)
