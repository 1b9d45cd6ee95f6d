"""The router's rules (pure): which groups a directory or conversation event concerns, and why.

The decider of a group acts only on records keyed by that group; a member's status, capacity
or roster changing, a group deleted or a conversation closing are not. For each such event
the router asks the service's views a few questions (:func:`facts_wanted`), and from their
answers (:class:`RouterFacts`) :func:`decide_nudges` says which groups to nudge, each with the
cause and a word on what the group should look at again. The recorder only reads the
answers, writes its view rows and stores the nudges (``AssignmentRecorder.route``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from events.assignment import GroupNudged, NudgeCause
from events.base import Payload
from events.conversation import ConversationClosed
from events.directory import (
    AgentStatusChanged,
    GroupDeleted,
    GroupMemberAdded,
    GroupMemberRemoved,
    MemberDeactivated,
    MemberUpdated,
)


@dataclass(frozen=True)
class FactsWanted:
    """What the rules need to know from the views about one event (None: not asked).

    The answers are read as the views stood *before* the event is applied to them.
    """

    capacity_of: UUID | None = None  # the member's capacity
    waiting_groups_of: UUID | None = None  # the member's groups with conversations waiting
    holding_groups_of: UUID | None = None  # the groups where the member holds conversations
    waiting_in: UUID | None = None  # whether the group has conversations waiting
    # Who holds the conversation, and the holder's groups with conversations waiting. Read
    # under the conversation's lock, the one the decider takes to queue or assign it.
    holder_of: UUID | None = None


@dataclass(frozen=True)
class Holder:
    """The group (None: the workspace queue) holding a conversation, and its member if
    assigned."""

    workspace_id: UUID
    group_id: UUID | None
    member_id: UUID | None
    # The member's groups with conversations the rotation could take, in group id order.
    member_waiting_groups: tuple[UUID, ...] = ()


@dataclass(frozen=True)
class RouterFacts:
    """The views' answers to :class:`FactsWanted`.

    "Waiting" means queued for the rotation: not waiting for a claim (``no_owner``).
    """

    capacity: int | None = None  # None: the member is not in the view
    waiting_groups: tuple[UUID, ...] = ()  # in group id order
    holding_groups: tuple[UUID | None, ...] = ()  # None: the workspace queue
    group_waiting: bool = False
    holder: Holder | None = None


def facts_wanted(event: Payload) -> FactsWanted:
    """The questions the rules ask the views about ``event``."""
    match event:
        case MemberUpdated(member_id=member_id):
            return FactsWanted(capacity_of=member_id, waiting_groups_of=member_id)
        case MemberDeactivated(member_id=member_id):
            return FactsWanted(holding_groups_of=member_id)
        case AgentStatusChanged(member_id=member_id, status="available"):
            return FactsWanted(waiting_groups_of=member_id)
        case GroupMemberAdded(group_id=group_id):
            return FactsWanted(waiting_in=group_id)
        case GroupMemberRemoved(member_id=member_id):
            return FactsWanted(holding_groups_of=member_id)
        case ConversationClosed(conversation_id=conversation_id):
            return FactsWanted(holder_of=conversation_id)
        case _:
            return FactsWanted()


def decide_nudges(event: Payload, facts: RouterFacts, *, at: datetime) -> list[GroupNudged]:
    """The groups to nudge about ``event``, in order, given the views' answers; ``at`` is
    the event's time."""
    match event:
        case MemberUpdated(workspace_id=workspace, member_id=member, capacity=capacity):
            # More room: the member's groups may give them what waits. Less room takes
            # nothing away (open conversations stay), so it nudges nobody.
            if facts.capacity is None or capacity <= facts.capacity:
                return []
            detail = f"capacity raised to {capacity}"
            return [
                _nudge(at, workspace, g, "member_capacity_changed", detail, member)
                for g in facts.waiting_groups
            ]
        case MemberDeactivated(workspace_id=workspace, member_id=member):
            detail = "its open conversations go back to the rotation"
            return [
                _nudge(at, workspace, g, "member_deactivated", detail, member)
                for g in facts.holding_groups
            ]
        case AgentStatusChanged(workspace_id=workspace, member_id=member, status="available"):
            # Going unavailable or offline keeps what the member holds: no nudge.
            return [
                _nudge(at, workspace, g, "member_available", "now available", member)
                for g in facts.waiting_groups
            ]
        case GroupDeleted(workspace_id=workspace, group_id=group):
            detail = "its queue moves to the workspace queue"
            return [_nudge(at, workspace, group, "group_deleted", detail)]
        case GroupMemberAdded(workspace_id=workspace, group_id=group, member_id=member):
            if not facts.group_waiting:
                return []
            detail = "a new member may take waiting conversations"
            return [_nudge(at, workspace, group, "member_added_to_group", detail, member)]
        case GroupMemberRemoved(workspace_id=workspace, group_id=group, member_id=member):
            if group not in facts.holding_groups:
                return []
            detail = "its open conversations of the group go back to the rotation"
            return [_nudge(at, workspace, group, "member_removed_from_group", detail, member)]
        case ConversationClosed(conversation_id=conversation):
            return _closed(facts.holder, conversation, at)
        case _:
            return []


def _closed(holder: Holder | None, conversation: UUID, at: datetime) -> list[GroupNudged]:
    """A closed conversation is released by the group holding it; its member has room
    again, which the member's other groups with conversations waiting may use."""
    if holder is None:
        return []  # nobody holds it (never handed off, or released already)
    workspace, group, member = holder.workspace_id, holder.group_id, holder.member_id
    cause: NudgeCause = "conversation_closed"
    nudges = [_nudge(at, workspace, group, cause, "release it", member, conversation)]
    if member is not None:
        detail = "its member has room again"
        nudges.extend(
            _nudge(at, workspace, g, cause, detail, member, conversation)
            for g in holder.member_waiting_groups
            if g != group
        )
    return nudges


def _nudge(
    at: datetime,
    workspace_id: UUID,
    group_id: UUID | None,
    cause: NudgeCause,
    detail: str,
    member_id: UUID | None = None,
    conversation_id: UUID | None = None,
) -> GroupNudged:
    return GroupNudged(
        workspace_id=workspace_id,
        group_id=group_id,
        cause=cause,
        member_id=member_id,
        conversation_id=conversation_id,
        detail=detail,
        nudged_at=at,
    )
