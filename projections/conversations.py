"""Pure folds of conversation, flow and outbound events into the conversation list and history.

Keyed by conversation id. History lines carry no arrival-dependent column: they are ordered
by (occurred_at, rank, seq) — the customer's message first, then the bot's replies in the
order the bot queued them, then system lines — so a rebuild yields exactly the same rows
whatever order the topics are read in. The API numbers them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from uuid import UUID

from events.conversation import (
    BusinessMessageEchoed,
    ConversationClosed,
    ConversationStarted,
    CustomerMessageReceived,
    MessageEdited,
    MessageRevoked,
    MessageStatusUpdated,
)
from events.envelope import Envelope
from events.flows import ExpirationRequested, FlowFailed, HandOffRequested, HandOffWithheld
from events.notes import NoteAdded
from events.outbound import (
    OutboundMessageFailed,
    OutboundMessageQueued,
    OutboundMessageRefused,
    OutboundMessageSent,
    OutboundOutcomeUnknown,
    RetryOutboundMessage,
)

# "unknown" ranks below "sent": a definite result recorded later (another replica's) wins.
# "played" (a voice message listened to) comes after "read"; a status Meta adds later ranks 0.
STATUS_RANK = {
    "queued": 0,
    "unknown": 1,
    "sent": 2,
    "delivered": 3,
    "read": 4,
    "played": 5,
    "refused": 6,
    "failed": 7,
    "deleted": 8,
}
RANK_CUSTOMER, RANK_REPLY, RANK_SYSTEM, RANK_STATUS = 0, 1, 2, 3


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
    contact_user_id: str | None = None
    contact_username: str | None = None
    contact_country_code: str | None = None


@dataclass(frozen=True)
class HistoryEntry:
    """One line of a conversation's history: a message (either way) or a system line.

    A message line also says what Meta said around it: the message it replies to
    (``reply_to``, with Meta's whole ``context``), whether it was forwarded, the ad it came
    from (``referral``), its group; and what happened to it since: ``edited_at`` with the
    earlier versions in ``previous``, ``revoked_at`` once its author deleted it.
    """

    conversation_id: UUID
    event_id: UUID
    occurred_at: datetime
    rank: int
    seq: int
    kind: str  # "message", "status", "system", "closed", "note" (members only, never sent)
    author_kind: str  # customer, bot, member, meta, system
    author_id: str | None
    author_name: str | None
    message_id: UUID | None
    wamid: str | None
    message_type: str | None
    text: str | None
    reply_id: str | None
    content: dict[str, Any] | None
    status: str | None
    errors: list[dict[str, Any]] | None
    reply_to: str | None = None
    forwarded: bool = False
    frequently_forwarded: bool = False
    context: dict[str, Any] | None = None
    referral: dict[str, Any] | None = None
    group_id: str | None = None
    edited_at: datetime | None = None
    previous: list[dict[str, Any]] | None = None
    revoked_at: datetime | None = None
    # Ids the text mentions, and what they name ("group" or "member"): the history API shows
    # their names (projections/naming.py). Names are not written here: a rebuild reads the
    # topics in any order, and a line must not depend on whether its names were read first.
    refs: dict[str, str] | None = None


@dataclass(frozen=True)
class DeliveryUpdate:
    """What the dispatcher did with an outbound message, to show on its history line."""

    message_id: UUID
    status: str
    wamid: str | None
    errors: list[dict[str, Any]] | None
    workspace_id: UUID | None = None


@dataclass(frozen=True)
class LineEdit:
    """A message line's new version: its text and content change, the old ones are kept."""

    conversation_id: UUID
    wamid: str
    message_type: str
    text: str | None
    content: dict[str, Any]
    edited_at: datetime


@dataclass(frozen=True)
class LineRevoke:
    """A message line its author deleted: shown as deleted, its text no longer shown."""

    conversation_id: UUID
    wamid: str
    revoked_at: datetime


@dataclass(frozen=True)
class LineVersion:
    """What a message line shows now, as stored."""

    message_type: str | None
    text: str | None
    content: dict[str, Any] | None
    previous: list[dict[str, Any]] | None


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
                contact_user_id=started.contact_user_id,
                contact_username=started.contact_username,
                contact_country_code=started.contact_country_code,
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
    line = _Line(envelope)
    match envelope.payload:
        case CustomerMessageReceived() as message:
            return line(
                message.conversation_id,
                message.sent_at,
                RANK_CUSTOMER,
                seq=message.sequence,
                kind="message",
                author_kind="customer",
                author_id=row.contact_wa_id if row else envelope.actor.id,
                author_name=row.contact_name if row else None,
                wamid=message.wamid,
                message_type=message.kind,
                text=message.text,
                reply_id=message.reply_id,
                content=message.content,
                errors=message.errors or None,
                **around(message.context, message.context_wamid),
                referral=message.referral,
                group_id=message.group_id,
            )
        case BusinessMessageEchoed() as echo:
            return line(
                echo.conversation_id,
                echo.sent_at,
                RANK_REPLY,
                kind="message",
                author_kind="business",
                author_id=row.phone_number_id if row else None,
                wamid=echo.wamid,
                message_type=echo.kind,
                text=echo.text,
                content=echo.content,
                **around(echo.context, None),
            )
        case OutboundMessageQueued() as queued:
            return line(
                queued.conversation_id,
                queued.queued_at,
                RANK_REPLY,
                seq=queued.sequence,
                kind="message",
                author_kind=queued.author,
                author_id=queued.author_id,
                message_id=queued.message_id,
                message_type=queued.kind,
                text=queued.text,
                content={"options": [o.model_dump() for o in queued.options]}
                if queued.options
                else None,
                status="queued",
            )
        case NoteAdded() as note:
            # A member's private note: a line of its own kind, which nothing sends and the
            # inbox's last message and unread counts (kind 'message') never count.
            return line(
                note.conversation_id,
                note.added_at,
                RANK_REPLY,
                kind="note",
                author_kind="member",
                author_id=str(note.author_id),
                text=note.text,
                content={"note_id": str(note.note_id)},
            )
        case MessageStatusUpdated(conversation_id=UUID() as conversation_id) as status:
            return line(
                conversation_id,
                status.status_at,
                RANK_STATUS,
                kind="status",
                author_kind="meta",
                wamid=status.wamid,
                content=status.pricing,
                status=status.status,
                errors=status.errors,
            )
        case HandOffRequested() as hand_off:
            where = (
                f"group {hand_off.group_id}"
                if hand_off.group_id is not None
                else "the workspace queue"
            )
            named = f", member {hand_off.member_id}" if hand_off.member_id is not None else ""
            return line(
                hand_off.conversation_id,
                hand_off.requested_at,
                RANK_SYSTEM,
                kind="system",
                author_kind="bot",
                text=f"handed to agents: {where}, rotation {hand_off.rotation}{named}"
                f" ({hand_off.reason})",
                content=hand_off.model_dump(
                    mode="json", include={"group_id", "rotation", "member_id", "reason"}
                ),
                refs=refs(groups=[hand_off.group_id], members=[hand_off.member_id]),
            )
        case HandOffWithheld() as withheld:
            then = f"going on at {withheld.fallback!r}" if withheld.fallback else "no fallback"
            return line(
                withheld.conversation_id,
                withheld.withheld_at,
                RANK_SYSTEM,
                kind="system",
                author_kind="bot",
                text=f"not handed to agents at {withheld.block_id}: {withheld.reason}; {then}",
                content=withheld.model_dump(mode="json", include={"block_id", "fallback"}),
            )
        case FlowFailed() as failed:
            return line(
                failed.conversation_id,
                failed.failed_at,
                RANK_SYSTEM,
                kind="system",
                author_kind="bot",
                text=f"flow failed at {failed.block_id}: {failed.reason} ({failed.recovery})",
            )
        case ExpirationRequested() as expiration:
            return line(
                expiration.conversation_id,
                expiration.requested_at,
                RANK_SYSTEM,
                kind="system",
                author_kind="bot",
                text=f"closes by itself at {expiration.expires_at.isoformat()}",
            )
        case ConversationClosed() as closed:
            return line(
                closed.conversation_id,
                closed.closed_at,
                RANK_SYSTEM,
                seq=1_000_000,
                kind="closed",
                author_kind=envelope.actor.kind,
                author_id=envelope.actor.id,
                text=closed.reason,
            )
        case _:
            return None


def around(context: dict[str, Any] | None, reply_to: str | None) -> dict[str, Any]:
    """The line's fields from Meta's ``context``: the message replied to, forwarding."""
    context = context or {}
    replied = context.get("id")
    return {
        "context": context or None,
        "reply_to": replied if isinstance(replied, str) else reply_to,
        "forwarded": context.get("forwarded") is True,
        "frequently_forwarded": context.get("frequently_forwarded") is True,
    }


def line_change(envelope: Envelope) -> LineEdit | LineRevoke | None:
    """An edit or a deletion of an existing message line."""
    match envelope.payload:
        case MessageEdited() as edited:
            return LineEdit(
                edited.conversation_id,
                edited.wamid,
                edited.kind,
                edited.text,
                edited.content,
                edited.edited_at,
            )
        case MessageRevoked() as revoked:
            return LineRevoke(revoked.conversation_id, revoked.wamid, revoked.revoked_at)
        case _:
            return None


def edited_line(current: LineVersion, edit: LineEdit) -> LineVersion:
    """The line after an edit: the new version shows, the one it replaces joins ``previous``
    (oldest first), as WhatsApp keeps an edited message's history."""
    replaced = {
        "message_type": current.message_type,
        "text": current.text,
        "content": current.content,
        "replaced_at": edit.edited_at.isoformat(),
    }
    return LineVersion(
        message_type=edit.message_type,
        text=edit.text,
        content=edit.content,
        previous=[*(current.previous or []), replaced],
    )


def refs(
    *, groups: Iterable[UUID | None] = (), members: Iterable[UUID | None] = ()
) -> dict[str, str] | None:
    """The ``refs`` of a line that mentions these groups and members (None: none)."""
    found = {str(g): "group" for g in groups if g is not None}
    found.update({str(m): "member" for m in members if m is not None})
    return found or None


def delivery_update(envelope: Envelope) -> DeliveryUpdate | None:
    """The dispatcher's word on a message (or a retry asked for it), in the order it spoke."""
    workspace = envelope.workspace_id
    match envelope.payload:
        case RetryOutboundMessage(message_id=message_id):
            return DeliveryUpdate(message_id, "queued", None, None, workspace)
        case OutboundMessageSent(message_id=message_id, wamid=wamid):
            return DeliveryUpdate(message_id, "sent", wamid, None, workspace)
        case OutboundMessageFailed(message_id=message_id, reason=reason, error=error):
            return DeliveryUpdate(
                message_id, "failed", None, [{"reason": reason, "error": error}], workspace
            )
        case OutboundMessageRefused(message_id=message_id, reason=reason):
            return DeliveryUpdate(message_id, "refused", None, [{"reason": reason}], workspace)
        case OutboundOutcomeUnknown(message_id=message_id, reason=reason):
            return DeliveryUpdate(message_id, "unknown", None, [{"reason": reason}], workspace)
        case _:
            return None


def line_status(dispatcher: str, meta: str | None) -> str:
    """A message line's status from what the dispatcher and Meta said, in whatever order.

    Once the dispatcher has sent it, Meta's word (delivered, read, failed) is the later one;
    before that, or after a failure or refusal, the dispatcher's stands.
    """
    if dispatcher == "sent" and meta is not None:
        return meta
    return dispatcher


def later_status(current: str | None, new: str) -> str:
    """Statuses arrive out of order (read before delivered); keep the furthest one."""
    if current is None or STATUS_RANK.get(new, 0) > STATUS_RANK.get(current, 0):
        return new
    return current


class _Line:
    """Builds a history line with the envelope's id and the fields a line leaves empty."""

    def __init__(self, envelope: Envelope) -> None:
        self.envelope = envelope

    def __call__(
        self,
        conversation_id: UUID,
        occurred_at: datetime,
        rank: int,
        *,
        seq: int = 0,
        kind: str,
        author_kind: str,
        author_id: str | None = None,
        author_name: str | None = None,
        message_id: UUID | None = None,
        wamid: str | None = None,
        message_type: str | None = None,
        text: str | None = None,
        reply_id: str | None = None,
        content: dict[str, Any] | None = None,
        status: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        reply_to: str | None = None,
        forwarded: bool = False,
        frequently_forwarded: bool = False,
        context: dict[str, Any] | None = None,
        referral: dict[str, Any] | None = None,
        group_id: str | None = None,
        refs: dict[str, str] | None = None,
    ) -> HistoryEntry:
        return HistoryEntry(
            conversation_id=conversation_id,
            event_id=self.envelope.event_id,
            occurred_at=occurred_at,
            rank=rank,
            seq=seq,
            kind=kind,
            author_kind=author_kind,
            author_id=author_id,
            author_name=author_name,
            message_id=message_id,
            wamid=wamid,
            message_type=message_type,
            text=text,
            reply_id=reply_id,
            content=content,
            status=status,
            errors=errors,
            reply_to=reply_to,
            forwarded=forwarded,
            frequently_forwarded=frequently_forwarded,
            context=context,
            referral=referral,
            group_id=group_id,
            refs=refs,
        )
