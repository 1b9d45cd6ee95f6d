"""Pure folds of conversation events into the conversation list and its history.

Keyed by conversation id. A history row's ``position`` is its place in the conversation
(1, 2, 3, ...), assigned in event order, so a rebuild yields exactly the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from uuid import UUID

from events.conversation import (
    ConversationClosed,
    ConversationStarted,
    CustomerMessageReceived,
    MessageStatusUpdated,
)
from events.envelope import Envelope

STATUS_RANK = {"sent": 1, "delivered": 2, "read": 3, "failed": 4, "deleted": 5}


@dataclass(frozen=True)
class ConversationRow:
    conversation_id: UUID
    workspace_id: UUID
    phone_number_id: str
    display_phone_number: str
    contact_wa_id: str
    contact_name: str | None
    status: str
    started_at: datetime
    closed_at: datetime | None
    close_reason: str | None
    last_activity_at: datetime
    message_count: int


@dataclass(frozen=True)
class HistoryEntry:
    """One line of a conversation's history: a message (either way) or a status change."""

    conversation_id: UUID
    event_id: UUID
    kind: str  # "message", "status", "closed"
    author_kind: str  # customer, bot, member, meta, system
    author_id: str | None
    author_name: str | None
    wamid: str | None
    message_type: str | None
    text: str | None
    reply_id: str | None
    content: dict[str, Any] | None
    status: str | None
    errors: list[dict[str, Any]] | None
    occurred_at: datetime


def apply_conversation(row: ConversationRow | None, envelope: Envelope) -> ConversationRow | None:
    """The conversation's list row after ``envelope`` (None: not a conversation yet)."""
    match envelope.payload:
        case ConversationStarted() as started:
            if row is not None:
                return row
            assert envelope.workspace_id is not None
            return ConversationRow(
                conversation_id=started.conversation_id,
                workspace_id=envelope.workspace_id,
                phone_number_id=started.phone_number_id,
                display_phone_number=started.display_phone_number,
                contact_wa_id=started.contact_wa_id,
                contact_name=started.contact_name,
                status="open",
                started_at=started.started_at,
                closed_at=None,
                close_reason=None,
                last_activity_at=started.started_at,
                message_count=0,
            )
        case CustomerMessageReceived(sent_at=sent_at) if row is not None:
            return replace(
                row,
                message_count=row.message_count + 1,
                last_activity_at=max(row.last_activity_at, sent_at),
            )
        case ConversationClosed(reason=reason, closed_at=closed_at) if row is not None:
            return replace(row, status="closed", closed_at=closed_at, close_reason=reason)
        case _:
            return row


def history_entry(envelope: Envelope, row: ConversationRow | None) -> HistoryEntry | None:
    """The history line an event adds, if any."""
    match envelope.payload:
        case CustomerMessageReceived() as message:
            return HistoryEntry(
                conversation_id=message.conversation_id,
                event_id=envelope.event_id,
                kind="message",
                author_kind="customer",
                author_id=row.contact_wa_id if row else envelope.actor.id,
                author_name=row.contact_name if row else None,
                wamid=message.wamid,
                message_type=message.kind,
                text=message.text,
                reply_id=message.reply_id,
                content=message.content,
                status=None,
                errors=None,
                occurred_at=message.sent_at,
            )
        case MessageStatusUpdated(conversation_id=UUID() as conversation_id) as status:
            return HistoryEntry(
                conversation_id=conversation_id,
                event_id=envelope.event_id,
                kind="status",
                author_kind="meta",
                author_id=None,
                author_name=None,
                wamid=status.wamid,
                message_type=None,
                text=None,
                reply_id=None,
                content=status.pricing,
                status=status.status,
                errors=status.errors,
                occurred_at=status.status_at,
            )
        case ConversationClosed() as closed:
            return HistoryEntry(
                conversation_id=closed.conversation_id,
                event_id=envelope.event_id,
                kind="closed",
                author_kind=envelope.actor.kind,
                author_id=envelope.actor.id,
                author_name=None,
                wamid=None,
                message_type=None,
                text=closed.reason,
                reply_id=None,
                content=None,
                status=None,
                errors=None,
                occurred_at=closed.closed_at,
            )
        case _:
            return None


def later_status(current: str | None, new: str) -> str:
    """Statuses arrive out of order (read before delivered); keep the furthest one."""
    if current is None or STATUS_RANK.get(new, 0) > STATUS_RANK.get(current, 0):
        return new
    return current
