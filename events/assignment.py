"""Assignment: who handles a handed-off conversation, and why.

Records for one group are keyed by the group (``assignment.requests``) so one consumer
decides for it at a time: the flows' hand-off requests, agents' claims and transfers, and the
assignment service's own nudges (a member became available, a conversation closed and freed
capacity, ...). Decisions go to ``assignment.events``, keyed by conversation id, and every
decision carries its explanation: the rule applied and every candidate considered with its
status, load and the reason it was skipped.

A ``group_id`` of None names the workspace's queue (the "default group"): hand-offs that name
no group, and the queues of deleted groups, wait there; admins see it and claim from it.
"""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from events.base import Id, Instant, JsonObject, Payload
from events.directory import AgentStatus
from events.flows import Rotation

# How a conversation reached its member.
AssignedVia = Literal["rotation", "specific", "claim", "transfer", "queue"]
ReleaseReason = Literal[
    "closed", "member_deactivated", "removed_from_group", "group_deleted", "transferred"
]
NudgeCause = Literal[
    "member_available",
    "member_capacity_changed",
    "member_added_to_group",
    "member_removed_from_group",
    "member_deactivated",
    "conversation_closed",
    "group_deleted",
]


def group_key(workspace_id: UUID, group_id: UUID | None) -> str:
    """The Kafka key of a group's records on ``assignment.requests``."""
    return f"default:{workspace_id}" if group_id is None else str(group_id)


class Candidate(BaseModel):
    """One member considered for a decision, as the decider saw it."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    member_id: Id
    name: str
    status: AgentStatus
    active: bool
    load: int  # open conversations assigned to the member, all groups together
    capacity: int
    # The member's turn: when it was last given a conversation of this group (None: never).
    last_assigned_at: Instant | None
    skipped: str | None  # why it was not chosen; None for the chosen member
    chosen: bool


class ViewPosition(BaseModel):
    """How far a view had read when a decision used it: the last record of ``topic`` (at
    ``partition``, ``offset``) it had applied for the decision's workspace."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    topic: str
    partition: int
    offset: int


class Decision(BaseModel):
    """The explanation carried by every assignment decision.

    ``directory_view`` (since ConversationQueued/ConversationAssigned v2) is the directory
    the candidates were read from: the assignment service's view had applied the
    workspace's ``directory.events`` up to that record. Statuses, loads and rosters in the
    explanation are as of that position, whatever the read models show when it is read
    later. None: read from a record written before positions were kept, or nothing of the
    workspace's directory had been read.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    rotation: Rotation | Literal["claim", "transfer"]
    rule: str  # the rule applied, in words
    candidates: list[Candidate]
    outcome: str  # what was decided and why, in words
    directory_view: ViewPosition | None = None


class ClaimConversation(Payload):
    """Command from an agent: take a queued conversation. The first claim wins."""

    event_type = "assignment.claim_conversation"

    conversation_id: Id
    workspace_id: Id
    member_id: Id


class TransferConversation(Payload):
    """Command: move a conversation to one member, or to a group's rotation (exactly one)."""

    event_type = "assignment.transfer_conversation"

    conversation_id: Id
    workspace_id: Id
    to_member_id: Id | None
    to_group_id: Id | None
    requested_by: Id
    note: str


class GroupNudged(Payload):
    """Something outside the group's records changed what it can decide (from the assignment
    service's own view of members and conversations): look at the group's queue again."""

    event_type = "assignment.group_nudged"

    workspace_id: Id
    group_id: Id | None
    cause: NudgeCause
    member_id: Id | None
    conversation_id: Id | None
    detail: str
    nudged_at: Instant


class ConversationQueued(Payload):
    """Nobody takes the conversation now; it waits in the group's queue.

    A queue is served by ``waiting_since``, then ``arrival``, and listed the same way.
    Version 2 tells apart ``queued_at`` (when this decision queued it: a move to the
    workspace queue is dated by the group's deletion) from ``waiting_since`` (when its wait
    began, which a move keeps), and adds ``arrival``: the n-th conversation to enter the
    group's queue, which orders conversations waiting since the same instant (Meta's
    timestamps are whole seconds). Version 1 had one ``queued_at`` for both, and no arrival.
    """

    event_type = "assignment.conversation_queued"
    schema_version = 2

    conversation_id: Id
    workspace_id: Id
    group_id: Id | None
    rotation: Rotation
    claim_only: bool  # no_owner: only a claim takes it out of the queue
    decision: Decision
    queued_at: Instant
    waiting_since: Instant
    arrival: int | None


class ConversationAssigned(Payload):
    """Version 2: the decision says which directory view it read (``directory_view``)."""

    event_type = "assignment.conversation_assigned"
    schema_version = 2

    conversation_id: Id
    workspace_id: Id
    group_id: Id | None
    member_id: Id
    member_name: str
    via: AssignedVia
    decision: Decision
    assigned_at: Instant


class ConversationReleased(Payload):
    """The conversation left the group's queue or its member (closed, member gone, ...)."""

    event_type = "assignment.conversation_released"

    conversation_id: Id
    workspace_id: Id
    group_id: Id | None
    member_id: Id | None
    reason: ReleaseReason
    released_at: Instant


class ConversationTransferred(Payload):
    event_type = "assignment.conversation_transferred"

    conversation_id: Id
    workspace_id: Id
    from_group_id: Id | None
    from_member_id: Id | None
    to_group_id: Id | None
    to_member_id: Id | None
    requested_by: Id
    note: str
    transferred_at: Instant


class HandOffDeclined(Payload):
    """A hand-off that could not apply (the conversation closed first, or is already held)."""

    event_type = "assignment.hand_off_declined"

    conversation_id: Id
    workspace_id: Id
    group_id: Id | None
    reason: str
    declined_at: Instant


class AssignmentCommandRejected(Payload):
    """A claim or transfer that could not be carried out; ``conflict``: someone else won."""

    event_type = "assignment.command_rejected"

    command_id: Id
    command_type: str
    conversation_id: Id
    workspace_id: Id
    member_id: Id | None
    reason: str
    conflict: bool


def upcast_conversation_queued_v1(data: JsonObject) -> JsonObject:
    """v1's ``queued_at`` was when the wait began; it had no arrival number."""
    return {
        **upcast_conversation_assigned_v1(data),
        "waiting_since": data["queued_at"],
        "arrival": None,
    }


def upcast_conversation_assigned_v1(data: JsonObject) -> JsonObject:
    """v1's decision did not say which directory view it read."""
    return {**data, "decision": {**data["decision"], "directory_view": None}}


ASSIGNMENT_COMMANDS: tuple[type[Payload], ...] = (
    ClaimConversation,
    TransferConversation,
    GroupNudged,
)
ASSIGNMENT_EVENTS: tuple[type[Payload], ...] = (
    ConversationQueued,
    ConversationAssigned,
    ConversationReleased,
    ConversationTransferred,
    HandOffDeclined,
    AssignmentCommandRejected,
)
