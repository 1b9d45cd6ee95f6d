"""What one assignment decision may read: the groups it may touch and the views' facts.

What a group's stream does not know (its roster, each member's status, capacity and load
across groups, closed conversations, who else holds a conversation) comes from the service's
views (``AssignmentRecorder.facts``), read in one snapshot before deciding.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from uuid import UUID

from events.assignment import ViewPosition
from events.directory import AgentStatus, Role
from services.assignment.group_state import EntryState, GroupState


@dataclass(frozen=True)
class MemberFacts:
    member_id: UUID
    name: str
    role: Role
    active: bool
    status: AgentStatus
    capacity: int
    load: int  # open conversations assigned to the member, all groups together


@dataclass(frozen=True)
class GroupFacts:
    group_id: UUID | None
    name: str
    known: bool  # in the directory view (the workspace queue always is)
    deleted: bool
    roster: tuple[UUID, ...]  # in the order members were added

    @classmethod
    def workspace_queue(cls) -> GroupFacts:
        return cls(group_id=None, name="the workspace queue", known=True, deleted=False, roster=())


@dataclass(frozen=True)
class Holding:
    """Where another group holds the record's conversation (from the assignments view)."""

    group_id: UUID | None
    state: EntryState
    member_id: UUID | None
    group_name: str = "another group"


@dataclass(frozen=True)
class Group:
    state: GroupState
    facts: GroupFacts


@dataclass(frozen=True)
class World:
    """Everything one decision may read: the groups it may touch and the views' facts."""

    here: Group  # the group the record is keyed by
    workspace_queue: Group
    members: Mapping[UUID, MemberFacts]  # every roster member, and every member named
    closed: frozenset[UUID]  # which of the conversations concerned are closed
    holding: Holding | None = None  # the record's conversation, held by another group
    target: Group | None = None  # a transfer's target group
    # How far the views had read the workspace's directory: every decision records it.
    directory_view: ViewPosition | None = None


def name_of(members: Mapping[UUID, MemberFacts], member_id: UUID | None) -> str:
    """A member as explanations name it: by name, by id when the views do not know it."""
    if member_id is None:
        return "nobody"
    member = members.get(member_id)
    return member.name if member is not None else str(member_id)
