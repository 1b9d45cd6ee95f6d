"""Pure folds of assignment decisions into who holds each conversation, and why.

Keyed by conversation id. ``conversation_assignments`` is a table of its own (not columns of
``conversations``): decisions come on ``assignment.events`` and may be projected before the
conversation's start arrives on ``conversation.events``. Within one conversation the
decisions arrive in order (the topic is keyed by conversation id), which the release rule
relies on.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from uuid import UUID

from events.assignment import (
    AssignmentCommandRejected,
    ClaimConversation,
    ConversationAssigned,
    ConversationQueued,
    ConversationReleased,
    ConversationTransferred,
    HandOffDeclined,
    ReleaseReason,
    TransferConversation,
)
from events.envelope import Envelope
from projections.conversations import RANK_SYSTEM, HistoryEntry, refs
from projections.directory import OutcomeRow

# History lines of one decision share an instant: their ``seq`` keeps a transfer's lines in
# the order it happened (released, transferred, then the new group's decision), after the
# bot's hand-off line (seq 0). A release because the conversation closed follows the
# "closed" line (seq 1_000_000).
SEQ_RELEASED, SEQ_TRANSFERRED, SEQ_DECIDED, SEQ_AFTER_CLOSE = 10, 20, 30, 1_000_001

RELEASE_WORDS: dict[ReleaseReason, str] = {
    "closed": "the conversation closed",
    "member_deactivated": "its member was deactivated",
    "removed_from_group": "its member left the group",
    "group_deleted": "the group was deleted",
    "transferred": "it was transferred",
}


@dataclass(frozen=True)
class AssignmentRow:
    conversation_id: UUID
    workspace_id: UUID
    group_id: UUID | None  # None: the workspace's queue
    state: str  # queued, assigned, released
    assignee_id: UUID | None
    rotation: str | None
    claim_only: bool
    # Its place in the queue, as the decider serves it: waiting since, then arrival.
    queued_at: datetime | None
    queue_arrival: int | None
    assigned_at: datetime | None
    updated_at: datetime


def apply_assignment(row: AssignmentRow | None, envelope: Envelope) -> AssignmentRow | None:
    """Who holds the conversation after ``envelope`` (None: no decision yet)."""
    match envelope.payload:
        case ConversationQueued() as queued:
            return AssignmentRow(
                conversation_id=queued.conversation_id,
                workspace_id=queued.workspace_id,
                group_id=queued.group_id,
                state="queued",
                assignee_id=None,
                rotation=queued.rotation,
                claim_only=queued.claim_only,
                queued_at=queued.waiting_since,
                queue_arrival=queued.arrival,
                assigned_at=None,
                updated_at=queued.queued_at,
            )
        case ConversationAssigned() as assigned:
            # Waiting in this very group until now: keep when it started waiting.
            waited = row is not None and row.state == "queued" and row.group_id == assigned.group_id
            return AssignmentRow(
                conversation_id=assigned.conversation_id,
                workspace_id=assigned.workspace_id,
                group_id=assigned.group_id,
                state="assigned",
                assignee_id=assigned.member_id,
                rotation=assigned.decision.rotation,
                claim_only=False,
                queued_at=row.queued_at if waited and row is not None else None,
                queue_arrival=None,
                assigned_at=assigned.assigned_at,
                updated_at=assigned.assigned_at,
            )
        case ConversationReleased() as released if (
            row is not None
            and row.state != "released"
            and row.group_id == released.group_id
            and row.assignee_id == released.member_id
        ):
            # Only a release of what the row holds: a transfer releases the old group and
            # decides in the new one, and the new decision must not be undone.
            return replace(row, state="released", assignee_id=None, updated_at=released.released_at)
        case _:
            return row


def assignment_entry(envelope: Envelope) -> HistoryEntry | None:
    """The history line of a decision: what happened in words, and the decision as JSON.

    Only the event's own content goes in (no names looked up in other tables), so a
    rebuild writes the same lines whatever order the topics are read in. Groups and members
    are written by id, listed in ``refs``; the history API shows their names.
    """
    match envelope.payload:
        case ConversationQueued() as queued:
            return _line(
                envelope,
                queued.conversation_id,
                queued.queued_at,
                SEQ_DECIDED,
                queued.decision.outcome,
                queued.decision.model_dump(mode="json"),
            )
        case ConversationAssigned() as assigned:
            return _line(
                envelope,
                assigned.conversation_id,
                assigned.assigned_at,
                SEQ_DECIDED,
                assigned.decision.outcome,
                {**assigned.decision.model_dump(mode="json"), "via": assigned.via},
            )
        case ConversationReleased() as released:
            if released.member_id is not None:
                held = f"member {released.member_id}"
            elif released.group_id is not None:
                held = f"the queue of group {released.group_id}"
            else:
                held = "the workspace queue"
            return _line(
                envelope,
                released.conversation_id,
                released.released_at,
                SEQ_AFTER_CLOSE if released.reason == "closed" else SEQ_RELEASED,
                f"Released from {held}: {RELEASE_WORDS[released.reason]}.",
                released.model_dump(mode="json", include={"reason", "group_id", "member_id"}),
                refs(groups=[released.group_id], members=[released.member_id]),
            )
        case ConversationTransferred() as transferred:
            if transferred.to_member_id is not None:
                target = f"member {transferred.to_member_id}"
            elif transferred.to_group_id is not None:
                target = f"group {transferred.to_group_id}"
            else:
                target = "the workspace queue"
            note = f": {transferred.note}" if transferred.note.strip() else ""
            return _line(
                envelope,
                transferred.conversation_id,
                transferred.transferred_at,
                SEQ_TRANSFERRED,
                f"Transferred to {target} by {transferred.requested_by}{note}.",
                transferred.model_dump(
                    mode="json",
                    include={
                        "from_group_id",
                        "from_member_id",
                        "to_group_id",
                        "to_member_id",
                        "requested_by",
                        "note",
                    },
                ),
                refs(
                    groups=[transferred.to_group_id],
                    members=[transferred.to_member_id, transferred.requested_by],
                ),
            )
        case HandOffDeclined() as declined:
            return _line(
                envelope,
                declined.conversation_id,
                declined.declined_at,
                SEQ_DECIDED,
                f"Hand-off declined: {declined.reason}.",
                declined.model_dump(mode="json", include={"reason", "group_id"}),
            )
        case _:
            return None


def assignment_outcome(envelope: Envelope) -> OutcomeRow | None:
    """The verdict on an agent's claim or transfer, keyed by the command's event id.

    A claim is answered by the assignment it caused (``via="claim"``), a transfer by its
    ConversationTransferred (or its ConversationAssigned ``via="transfer"``: the first one
    projected is kept); refusals by AssignmentCommandRejected.
    """
    at = envelope.occurred_at
    cause = envelope.causation_id
    match envelope.payload:
        case ConversationAssigned(via="claim" | "transfer" as via) as assigned if cause:
            command_type = (
                ClaimConversation.event_type if via == "claim" else TransferConversation.event_type
            )
            result = _present(
                conversation_id=assigned.conversation_id,
                member_id=assigned.member_id,
                group_id=assigned.group_id,
            )
            return OutcomeRow(cause, command_type, "accepted", "", at, result)
        case ConversationTransferred() as transferred if cause:
            result = _present(
                conversation_id=transferred.conversation_id,
                member_id=transferred.to_member_id,
                group_id=transferred.to_group_id,
            )
            return OutcomeRow(cause, TransferConversation.event_type, "accepted", "", at, result)
        case AssignmentCommandRejected() as rejected:
            return OutcomeRow(
                rejected.command_id,
                rejected.command_type,
                "rejected",
                rejected.reason,
                at,
                {"conflict": rejected.conflict},
            )
        case _:
            return None


def assignment_change(envelope: Envelope) -> tuple[UUID, UUID | None, UUID | None] | None:
    """The conversation, group and member whose screens a decision changes, if it shows.

    A release names what was let go (the old group or member sees it leave); a transfer
    names where it goes.
    """
    match envelope.payload:
        case ConversationQueued(conversation_id=conversation_id, group_id=group_id):
            return conversation_id, group_id, None
        case (
            ConversationAssigned(
                conversation_id=conversation_id, group_id=group_id, member_id=member_id
            )
            | ConversationReleased(
                conversation_id=conversation_id, group_id=group_id, member_id=member_id
            )
        ):
            return conversation_id, group_id, member_id
        case ConversationTransferred() as moved:
            return (
                moved.conversation_id,
                moved.to_group_id or moved.from_group_id,
                moved.to_member_id or moved.from_member_id,
            )
        case HandOffDeclined(conversation_id=conversation_id, group_id=group_id):
            return conversation_id, group_id, None
        case _:
            return None


def change_cause(envelope: Envelope) -> UUID | None:
    """The member whose own action an event records, if any: no one is notified of what
    they did themselves. A claim names its claimer and a transfer its requester (decisions
    are the assignment service's, so their actor is the system); otherwise a member actor."""
    match envelope.payload:
        case ConversationAssigned(via="claim", member_id=member_id):
            return member_id
        case ConversationTransferred(requested_by=requested_by):
            return requested_by
        case _:
            if envelope.actor.kind == "member" and envelope.actor.id is not None:
                try:
                    return UUID(envelope.actor.id)
                except ValueError:
                    return None
            return None


def _present(**values: UUID | None) -> dict[str, Any]:
    return {key: str(value) for key, value in values.items() if value is not None}


def _line(
    envelope: Envelope,
    conversation_id: UUID,
    occurred_at: datetime,
    seq: int,
    text: str,
    content: dict[str, Any],
    mentioned: dict[str, str] | None = None,
) -> HistoryEntry:
    return HistoryEntry(
        conversation_id=conversation_id,
        event_id=envelope.event_id,
        occurred_at=occurred_at,
        rank=RANK_SYSTEM,
        seq=seq,
        kind="assignment",
        author_kind="system",
        author_id=None,
        author_name=None,
        message_id=None,
        wamid=None,
        message_type=None,
        text=text,
        reply_id=None,
        content=content,
        status=None,
        errors=None,
        refs=mentioned,
    )
