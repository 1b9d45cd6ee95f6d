"""What members have read: the per-member "read up to" marker behind unread counts.

A member reading a conversation is a fact observed at the edge, like a webhook: the gateway
records it when the agent suite shows a conversation's messages (``POST
/api/conversations/{id}/read``). No service has anything to decide about it; the projector
keeps the furthest marker per member and conversation, so markers arriving late or twice
change nothing. Keyed by conversation id.
"""

from __future__ import annotations

from uuid import UUID, uuid5

from events.base import Id, Instant, Payload

READ_NAMESPACE = UUID("6c0d9b1e-4f7a-4c3e-8d21-93a5b0e7f412")


class ConversationRead(Payload):
    """``member_id`` has seen the conversation's customer messages up to the ``up_to``-th."""

    event_type = "conversation.read"

    conversation_id: Id
    member_id: Id
    up_to: int
    read_at: Instant


def read_event_id(workspace_id: UUID, conversation_id: UUID, member_id: UUID, up_to: int) -> UUID:
    """The same member reading the same messages again is the same fact (one id)."""
    return uuid5(READ_NAMESPACE, f"{workspace_id}:{conversation_id}:{member_id}:{up_to}")


READ_EVENTS: tuple[type[Payload], ...] = (ConversationRead,)
