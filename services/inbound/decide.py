"""Pure decisions of the inbound service about one contact thread.

A *thread* is one customer (its contact id: wa_id, else BSUID) writing to one business number
of one workspace. It holds at most one open conversation; a message with no open
conversation starts one. Meta retries deliveries for days, so a wamid (or a status of a
wamid) seen before changes nothing. Times come from the records (Meta's timestamps, never
later than when the gateway received them), never from a clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import MappingProxyType
from uuid import UUID, uuid5

from events.base import JsonObject, Payload
from events.conversation import (
    BusinessMessageEchoed,
    CloseConversation,
    ConversationClosed,
    ConversationStarted,
    CustomerMessageReceived,
    MessageAuthor,
    MessageEdited,
    MessageRevoked,
    MessageStatusUpdated,
)
from events.notes import MAX_NOTE_LENGTH, AddNote, NoteAdded, NoteRefused
from events.text_rules import control_character_problem
from events.whatsapp import (
    WhatsAppMessageEchoed,
    WhatsAppMessageReceived,
    WhatsAppStatusReceived,
    status_recipient,
)

THREAD_NAMESPACE = UUID("0f5e2c8e-3f0a-4d7b-9a55-2d1f6f1c9e01")
NOTHING: Mapping[str, UUID] = MappingProxyType({})


def thread_id(workspace_id: UUID, phone_number_id: str, contact_id: str) -> UUID:
    return uuid5(THREAD_NAMESPACE, f"{workspace_id}:{phone_number_id}:{contact_id}")


@dataclass(frozen=True)
class ThreadState:
    thread_id: UUID
    conversations: int = 0
    open_conversation: UUID | None = None
    last_conversation: UUID | None = None
    # Every wamid the thread saw (the customer's messages, the business app's echoes, edits
    # and revokes), with the conversation it belongs to: repeats are recognised, edits and
    # statuses find their conversation.
    messages: Mapping[str, UUID] = field(default_factory=lambda: NOTHING)
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
        case CustomerMessageReceived(wamid=wamid, conversation_id=conversation):
            return replace(
                state,
                messages=_with(state.messages, wamid, conversation),
                messages_in_open=state.messages_in_open + 1,
            )
        case BusinessMessageEchoed(wamid=wamid, conversation_id=conversation):
            return replace(state, messages=_with(state.messages, wamid, conversation))
        case (
            MessageEdited(edit_wamid=wamid, conversation_id=conversation)
            | MessageRevoked(revoke_wamid=wamid, conversation_id=conversation)
        ):
            return replace(state, messages=_with(state.messages, wamid, conversation))
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
        case WhatsAppMessageEchoed():
            return _receive_echo(record, state)
        case WhatsAppStatusReceived():
            return _receive_status(record, state)
        case CloseConversation(conversation_id=target, reason=reason):
            if target != state.open_conversation:
                return []  # already closed (or never this thread's): closing is idempotent
            if now is None:
                raise ValueError("closing needs the command's event time")
            return [ConversationClosed(conversation_id=target, reason=reason, closed_at=now)]
        case AddNote():
            if now is None:
                raise ValueError("a note needs the command's event time")
            return add_note(record, state, now)
        case _:
            raise TypeError(f"inbound cannot decide on {type(record).__name__}")


def add_note(command: AddNote, state: ThreadState, now: datetime) -> list[Payload]:
    """A private note on one of the thread's conversations, open or closed (a member may
    write down what happened after the close too), or the reason it is refused."""
    problem = note_problem(command, state)
    if problem is not None:
        return [
            NoteRefused(
                conversation_id=command.conversation_id,
                note_id=command.note_id,
                author_id=command.author_id,
                reason=problem,
            )
        ]
    return [
        NoteAdded(
            conversation_id=command.conversation_id,
            note_id=command.note_id,
            author_id=command.author_id,
            text=command.text.strip(),
            added_at=now,
        )
    ]


def note_problem(command: AddNote, state: ThreadState) -> str | None:
    """Why the note cannot be added (None: it can)."""
    mine = {conversation_id(state.thread_id, n) for n in range(1, state.conversations + 1)}
    if command.conversation_id not in mine:
        return f"conversation {command.conversation_id} is not this contact's on this number"
    text = command.text.strip()
    if not text:
        return "a note needs some text"
    if len(text) > MAX_NOTE_LENGTH:
        return f"a note holds at most {MAX_NOTE_LENGTH} characters (got {len(text)})"
    problem = control_character_problem(text, free_text=True)
    return f"the note {problem}" if problem else None


def _receive_message(record: WhatsAppMessageReceived, state: ThreadState) -> list[Payload]:
    message = record.message
    wamid = str(message["id"])
    if wamid in state.messages:
        return []
    sent_at = arrival_clamped(message["timestamp"], record.received_at)
    kind = str(message.get("type", "unknown"))
    changed = _change_of_known_message(wamid, kind, message, sent_at, "customer", state)
    if changed is not None:
        return [changed]
    events: list[Payload] = []
    current = state.open_conversation
    sequence = state.messages_in_open + 1
    if current is None:
        sequence = 1
        current = conversation_id(state.thread_id, state.conversations + 1)
        events.append(_started(record, current, sent_at))
    text, reply_id = readable_parts(kind, message)
    context = message.get("context")
    referral = message.get("referral")
    group_id = message.get("group_id")
    errors = message.get("errors")
    events.append(
        CustomerMessageReceived(
            conversation_id=current,
            wamid=wamid,
            sequence=sequence,
            kind=kind,
            text=text,
            reply_id=reply_id,
            content=content_of(kind, message),
            context_wamid=str(context["id"])
            if isinstance(context, dict) and isinstance(context.get("id"), str)
            else None,
            sent_at=sent_at,
            context=context if isinstance(context, dict) else None,
            referral=referral if isinstance(referral, dict) else None,
            group_id=group_id if isinstance(group_id, str) else None,
            errors=[error for error in errors if isinstance(error, dict)]
            if isinstance(errors, list)
            else [],
            received_at=record.received_at,
        )
    )
    return events


def _receive_echo(record: WhatsAppMessageEchoed, state: ThreadState) -> list[Payload]:
    """The business wrote from its app: a line of the business in the open conversation, or
    in a new one (the customer's answer then joins it, as on the phone)."""
    message = record.message
    wamid = str(message["id"])
    if wamid in state.messages:
        return []
    sent_at = arrival_clamped(message["timestamp"], record.received_at)
    kind = str(message.get("type", "unknown"))
    changed = _change_of_known_message(wamid, kind, message, sent_at, "business", state)
    if changed is not None:
        return [changed]
    events: list[Payload] = []
    current = state.open_conversation
    if current is None:
        current = conversation_id(state.thread_id, state.conversations + 1)
        events.append(_started(record, current, sent_at))
    text, _ = readable_parts(kind, message)
    context = message.get("context")
    events.append(
        BusinessMessageEchoed(
            conversation_id=current,
            wamid=wamid,
            kind=kind,
            text=text,
            content=content_of(kind, message),
            context=context if isinstance(context, dict) else None,
            sent_at=sent_at,
            received_at=record.received_at,
        )
    )
    return events


def _change_of_known_message(
    wamid: str,
    kind: str,
    message: JsonObject,
    at: datetime,
    author: MessageAuthor,
    state: ThreadState,
) -> Payload | None:
    """An edit or a revoke of a message the thread knows changes that message's line.

    One whose original the thread never saw stays a message of its own (kind ``edit`` or
    ``revoke``), so nothing Meta sent is lost.
    """
    if kind not in ("edit", "revoke"):
        return None
    change = message.get(kind)
    original = change.get("original_message_id") if isinstance(change, dict) else None
    target = state.messages.get(original) if isinstance(original, str) else None
    if target is None or not isinstance(change, dict) or not isinstance(original, str):
        return None
    if kind == "revoke":
        return MessageRevoked(
            conversation_id=target,
            wamid=original,
            revoke_wamid=wamid,
            author=author,
            revoked_at=at,
        )
    edited = change.get("message")
    edited = edited if isinstance(edited, dict) else {}
    edited_kind = str(edited.get("type", "unknown"))
    text, _ = readable_parts(edited_kind, edited)
    return MessageEdited(
        conversation_id=target,
        wamid=original,
        edit_wamid=wamid,
        author=author,
        kind=edited_kind,
        text=text,
        content=content_of(edited_kind, edited),
        edited_at=at,
    )


def _started(
    record: WhatsAppMessageReceived | WhatsAppMessageEchoed, current: UUID, at: datetime
) -> ConversationStarted:
    contact = record.contact or {}
    profile = contact.get("profile")
    username = (profile.get("username") if isinstance(profile, dict) else None) or contact.get(
        "username"
    )
    country = contact.get("country_code")
    return ConversationStarted(
        conversation_id=current,
        phone_number_id=record.phone_number_id,
        display_phone_number=record.display_phone_number,
        contact_wa_id=record.contact_id,
        contact_name=record.contact_name,
        started_at=at,
        contact_user_id=record.contact_user_id,
        contact_username=username if isinstance(username, str) else None,
        contact_country_code=country if isinstance(country, str) else None,
        received_at=record.received_at,
    )


def _receive_status(record: WhatsAppStatusReceived, state: ThreadState) -> list[Payload]:
    status = record.status
    wamid = str(status["id"])
    name = str(status["status"])
    if (wamid, name) in state.seen_statuses:
        return []
    recipient = status_recipient(status)
    if recipient is None:
        raise ValueError(f"status of {wamid} names no recipient")
    errors = status.get("errors")
    pricing = status.get("pricing")
    return [
        MessageStatusUpdated(
            conversation_id=_sending_conversation(status, wamid, state),
            wamid=wamid,
            status=name,
            recipient_wa_id=recipient,
            status_at=arrival_clamped(status["timestamp"], record.received_at),
            errors=[error for error in errors if isinstance(error, dict)]
            if isinstance(errors, list)
            else [],
            pricing=pricing if isinstance(pricing, dict) else None,
        )
    ]


def _sending_conversation(status: JsonObject, wamid: str, state: ThreadState) -> UUID | None:
    """The conversation that sent the message a status is about, never merely the current one.

    switchboard sends every message with its conversation id as Meta's
    ``biz_opaque_callback_data``, which Meta returns in each status; a message the business
    sent from its app is known from its echo. A message the thread never saw (sent by
    another tool on the number) belongs to no conversation: its status is kept, unattached.
    """
    callback = status.get("biz_opaque_callback_data")
    if isinstance(callback, str):
        try:
            named = UUID(callback)
        except ValueError:
            named = None
        if named is not None and any(
            named == conversation_id(state.thread_id, number)
            for number in range(1, state.conversations + 1)
        ):
            return named
    return state.messages.get(wamid)


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
                return _str(reply.get("title")) or _str(reply.get("body")), _str(reply.get("id"))
            return None, None
        case "button":
            return _str(content.get("text")), _str(content.get("payload"))
        case "reaction":
            return _str(content.get("emoji")), None
        case "system" | "order":
            return _str(content.get("body")) or _str(content.get("text")), None
        case "edit":
            inner = content.get("message")
            if isinstance(inner, dict):
                return readable_parts(str(inner.get("type")), inner)
            return None, None
        case _:
            return _str(content.get("caption")), None


def content_of(kind: str, message: JsonObject) -> JsonObject:
    """Meta's object for the message's type, as sent ({} when the type carries none, as an
    ``unsupported`` message; ``{"value": ...}`` when it is not an object, as ``contacts``)."""
    content = message.get(kind)
    if isinstance(content, dict):
        return content
    if content is None:
        return {}
    return {"value": content}


def arrival_clamped(raw: object, received_at: datetime) -> datetime:
    """Meta's Unix seconds (a string, sometimes a number), never later than the arrival:
    a clock ahead must not date a message in the future."""
    return min(datetime.fromtimestamp(int(str(raw)), tz=UTC), received_at)


def from_meta_timestamp(raw: object) -> datetime:
    """Meta sends Unix seconds as a string."""
    return datetime.fromtimestamp(int(str(raw)), tz=UTC)


def _with(messages: Mapping[str, UUID], wamid: str, conversation: UUID) -> Mapping[str, UUID]:
    return MappingProxyType({**messages, wamid: conversation})


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None
