"""Pure folds behind the agent suite's inbox and conversation view, beside the history's.

- **Read markers**, keyed by (conversation id, member id): how many of the conversation's
  customer messages the member has seen; unread = customer messages - marker. The furthest
  marker wins, so markers read late or twice change nothing.
- **Deadlines**, keyed by conversation id: when the expiry service will close the conversation
  (24 h after its start or its flow's expiration). Its events are keyed by conversation, so
  the last one projected is the last one set.
- **Last assignments**, keyed by (group id, member id): when the member was last given a
  conversation of the group (a roster column). The latest wins.
- **Flow steps**: history lines for the answers a flow captured or rejected and the branch each
  condition took, with its reason. They share the customer's instant (the flow decides at the
  message's time): they sort after that message (rank of the customer's lines, a high seq) and
  before the bot's replies to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from events.assignment import ConversationAssigned
from events.envelope import Envelope
from events.expiry import DeadlineSet
from events.flows import (
    AnswerCaptured,
    AnswerRejected,
    ConditionEvaluated,
    FlowEnded,
    FlowRunStarted,
)
from events.reads import ConversationRead
from projections.conversations import RANK_CUSTOMER, RANK_SYSTEM, HistoryEntry

# After every customer message of the same instant (their seq is their number, 1, 2, ...).
SEQ_FLOW_STEP = 500_000


@dataclass(frozen=True)
class ReadMarker:
    conversation_id: UUID
    member_id: UUID
    workspace_id: UUID
    up_to: int
    read_at: datetime


@dataclass(frozen=True)
class DeadlineRow:
    conversation_id: UUID
    deadline: datetime
    cause: str


@dataclass(frozen=True)
class LastAssignment:
    group_id: UUID
    member_id: UUID
    assigned_at: datetime


def read_marker(envelope: Envelope) -> ReadMarker | None:
    match envelope.payload:
        case ConversationRead() as read if envelope.workspace_id is not None:
            return ReadMarker(
                read.conversation_id,
                read.member_id,
                envelope.workspace_id,
                max(read.up_to, 0),
                read.read_at,
            )
        case _:
            return None


def later_marker(current: ReadMarker | None, new: ReadMarker) -> ReadMarker:
    """The furthest of two markers of one member and conversation."""
    if current is None or new.up_to > current.up_to:
        return new
    return current


def deadline_row(envelope: Envelope) -> DeadlineRow | None:
    match envelope.payload:
        case DeadlineSet(conversation_id=conversation_id, deadline=deadline, cause=cause):
            return DeadlineRow(conversation_id, deadline, cause)
        case _:
            return None


def last_assignment(envelope: Envelope) -> LastAssignment | None:
    match envelope.payload:
        case ConversationAssigned(group_id=UUID() as group_id) as assigned:
            return LastAssignment(group_id, assigned.member_id, assigned.assigned_at)
        case _:
            return None


def flow_step_entry(envelope: Envelope) -> HistoryEntry | None:
    """The history line of a flow's step, if the event is one an agent should see."""
    match envelope.payload:
        case FlowRunStarted(flow_id=UUID() as flow_id) as started:
            # After the customer's first message (which started the conversation) and before
            # what the bot does about it. No line without a flow: the hand-off says why.
            return _step(
                envelope,
                started.conversation_id,
                started.conversation_started_at,
                f"Flow version {started.version} started.",
                {"step": "started", "flow_id": str(flow_id), "version": started.version},
                seq=SEQ_FLOW_STEP - 1,
            )
        case AnswerCaptured() as captured:
            # The value is a chosen option's id (what conditions compare), the title what
            # the customer saw and picked; for a typed answer they are the same text.
            shown = captured.title
            if captured.value != captured.title:
                shown = f"{captured.title} ({captured.value})"
            return _step(
                envelope,
                captured.conversation_id,
                captured.captured_at,
                f"Answer to {captured.block_id!r} captured: {captured.variable} = {shown}.",
                {
                    "step": "answer_captured",
                    "block_id": captured.block_id,
                    "variable": captured.variable,
                    "value": captured.value,
                    "title": captured.title,
                },
            )
        case AnswerRejected() as rejected:
            return _step(
                envelope,
                rejected.conversation_id,
                rejected.rejected_at,
                f"Answer to {rejected.block_id!r} not accepted (attempt {rejected.attempt}):"
                f" {rejected.reason}.",
                {
                    "step": "answer_rejected",
                    "block_id": rejected.block_id,
                    "answer": rejected.answer,
                    "attempt": rejected.attempt,
                    "reason": rejected.reason,
                },
            )
        case ConditionEvaluated() as evaluated:
            return _step(
                envelope,
                evaluated.conversation_id,
                evaluated.evaluated_at,
                f"Branch at {evaluated.block_id!r}: to {evaluated.next_block!r}"
                f" — {evaluated.reason}.",
                {
                    "step": "condition_evaluated",
                    "block_id": evaluated.block_id,
                    "rule": evaluated.rule,
                    "next_block": evaluated.next_block,
                    "reason": evaluated.reason,
                },
                seq=SEQ_FLOW_STEP + 1,
            )
        case FlowEnded() as ended:
            return _step(
                envelope,
                ended.conversation_id,
                ended.ended_at,
                f"Flow ended at {ended.block_id!r}.",
                {"step": "ended", "block_id": ended.block_id},
                rank=RANK_SYSTEM,
                seq=0,
            )
        case _:
            return None


def _step(
    envelope: Envelope,
    conversation_id: UUID,
    occurred_at: datetime,
    text: str,
    content: dict[str, object],
    *,
    rank: int = RANK_CUSTOMER,
    seq: int = SEQ_FLOW_STEP,
) -> HistoryEntry:
    return HistoryEntry(
        conversation_id=conversation_id,
        event_id=envelope.event_id,
        occurred_at=occurred_at,
        rank=rank,
        seq=seq,
        kind="flow",
        author_kind="bot",
        author_id=None,
        author_name=None,
        message_id=None,
        wamid=None,
        message_type=None,
        text=text,
        reply_id=None,
        content=dict(content),
        status=None,
        errors=None,
    )
