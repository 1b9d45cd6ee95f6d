"""Pure decisions of the inbound service about one contact thread.

A *thread* is one customer (WhatsApp id) writing to one business number of one workspace.
It holds at most one open conversation; a message with no open conversation starts one.
Meta retries deliveries for days, so a wamid (or a status of a wamid) seen before changes
nothing. Times come from the records (Meta's timestamps), never from a clock.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from uuid import UUID, uuid5

from events.base import JsonObject, Payload
from events.conversation import (
    CloseConversation,
    ConversationClosed,
    ConversationStarted,
    CustomerMessageReceived,
    MessageStatusUpdated,
)
from events.whatsapp import WhatsAppMessageReceived, WhatsAppStatusReceived

THREAD_NAMESPACE = UUID("0f5e2c8e-3f0a-4d7b-9a55-2d1f6f1c9e01")
STATUSES = ("sent", "delivered", "read", "failed", "deleted")


def thread_id(workspace_id: UUID, phone_number_id: str, contact_wa_id: str) -> UUID:
    return uuid5(THREAD_NAMESPACE, f"{workspace_id}:{phone_number_id}:{contact_wa_id}")


@dataclass(frozen=True)
class ThreadState:
    thread_id: UUID
    conversations: int = 0
    open_conversation: UUID | None = None
    last_conversation: UUID | None = None
    seen_messages: frozenset[str] = frozenset()
    seen_statuses: frozenset[tuple[str, str]] = frozenset()
    messages_in_open: int = 0


def conversation_id(thread: UUID, number: int) -> UUID:
    """The n-th conversation of a thread has a derived id, so a replay yields the same ids."""
    return uuid5(thread, f"conversation/{number}")


def evolve(state: ThreadState, event: Payload) -> ThreadState:
    match event:
        case ConversationStarted(conversation_id=started):
            return replace(
                state,
                conversations=state.conversations + 1,
                open_conversation=started,
                last_conversation=started,
                messages_in_open=0,
            )
        case CustomerMessageReceived(wamid=wamid):
            return replace(
                state,
                seen_messages=state.seen_messages | {wamid},
                messages_in_open=state.messages_in_open + 1,
            )
        case MessageStatusUpdated(wamid=wamid, status=status):
            return replace(state, seen_statuses=state.seen_statuses | {(wamid, status)})
        case ConversationClosed(conversation_id=closed) if closed == state.open_conversation:
            return replace(state, open_conversation=None)
        case _:
            return state


def decide(record: Payload, state: ThreadState, *, now: datetime | None = None) -> list[Payload]:
    """The events a record causes in a thread (``now`` is the command's own event time)."""
    match record:
        case WhatsAppMessageReceived():
            return _receive_message(record, state)
        case WhatsAppStatusReceived():
            return _receive_status(record, state)
        case CloseConversation(conversation_id=target, reason=reason):
            if target != state.open_conversation:
                return []  # already closed (or never this thread's): closing is idempotent
            if now is None:
                raise ValueError("closing needs the command's event time")
            return [ConversationClosed(conversation_id=target, reason=reason, closed_at=now)]
        case _:
            raise TypeError(f"inbound cannot decide on {type(record).__name__}")


def _receive_message(record: WhatsAppMessageReceived, state: ThreadState) -> list[Payload]:
    message = record.message
    wamid = str(message["id"])
    if wamid in state.seen_messages:
        return []
    sent_at = from_meta_timestamp(message["timestamp"])
    events: list[Payload] = []
    current = state.open_conversation
    sequence = state.messages_in_open + 1
    if current is None:
        sequence = 1
        current = conversation_id(state.thread_id, state.conversations + 1)
        events.append(
            ConversationStarted(
                conversation_id=current,
                phone_number_id=record.phone_number_id,
                display_phone_number=record.display_phone_number,
                contact_wa_id=record.contact_wa_id,
                contact_name=record.contact_name,
                started_at=sent_at,
                received_at=record.received_at,
            )
        )
    kind = str(message.get("type", "unknown"))
    text, reply_id = readable_parts(kind, message)
    content = message.get(kind)
    context = message.get("context")
    events.append(
        CustomerMessageReceived(
            conversation_id=current,
            wamid=wamid,
            sequence=sequence,
            kind=kind,
            text=text,
            reply_id=reply_id,
            content=content if isinstance(content, dict) else {"value": content},
            context_wamid=str(context["id"])
            if isinstance(context, dict) and "id" in context
            else None,
            sent_at=sent_at,
        )
    )
    return events


def _receive_status(record: WhatsAppStatusReceived, state: ThreadState) -> list[Payload]:
    status = record.status
    wamid = str(status["id"])
    name = str(status["status"])
    if (wamid, name) in state.seen_statuses or name not in STATUSES:
        return []
    errors = status.get("errors")
    pricing = status.get("pricing")
    return [
        MessageStatusUpdated(
            conversation_id=state.open_conversation or state.last_conversation,
            wamid=wamid,
            status=name,  # type: ignore[arg-type]  # checked against STATUSES above
            recipient_wa_id=str(status["recipient_id"]),
            status_at=from_meta_timestamp(status["timestamp"]),
            errors=[error for error in errors if isinstance(error, dict)]
            if isinstance(errors, list)
            else [],
            pricing=pricing if isinstance(pricing, dict) else None,
        )
    ]


def readable_parts(kind: str, message: JsonObject) -> tuple[str | None, str | None]:
    """The human-readable text and the chosen reply id of a message, where it has them."""
    content = message.get(kind)
    if not isinstance(content, dict):
        return None, None
    match kind:
        case "text":
            return _str(content.get("body")), None
        case "interactive":
            reply = content.get(str(content.get("type")))
            if isinstance(reply, dict):
                return _str(reply.get("title")), _str(reply.get("id"))
            return None, None
        case "button":
            return _str(content.get("text")), _str(content.get("payload"))
        case "reaction":
            return _str(content.get("emoji")), None
        case _:
            return _str(content.get("caption")), None


def from_meta_timestamp(raw: object) -> datetime:
    """Meta sends Unix seconds as a string."""
    return datetime.fromtimestamp(int(str(raw)), tz=UTC)


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None
