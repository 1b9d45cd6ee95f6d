"""The assignment service's world as a simulation keeps it (pure, frozen).

The real service reads its views (members, rosters, statuses, loads, closed conversations,
who holds what) from PostgreSQL before each decision. A simulation cannot: the loads and
holders it needs are the simulated ones. :class:`SimulatedWorld` is those views, folded from
the same events the router applies (the directory's) plus the simulated group's decisions,
and answers the same two questions the service asks them: the :class:`World` a decision
reads (:meth:`SimulatedWorld.world`) and the :class:`RouterFacts` the nudge rules read
(:meth:`SimulatedWorld.router_facts`). Every method returns a new value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from uuid import UUID

from events.assignment import ConversationAssigned, ConversationQueued, ConversationReleased
from events.base import Payload
from events.directory import (
    AgentStatus,
    AgentStatusChanged,
    GroupCreated,
    GroupDeleted,
    GroupMemberAdded,
    GroupMemberRemoved,
    GroupRenamed,
    MemberAdded,
    MemberDeactivated,
    MemberUpdated,
    Role,
)
from services.assignment.facts import Group, GroupFacts, Holding, MemberFacts, World
from services.assignment.group_state import EntryState, GroupState, evolve
from services.assignment.nudges import FactsWanted, Holder, RouterFacts

DIRECTORY_EVENTS = (
    MemberAdded,
    MemberUpdated,
    MemberDeactivated,
    AgentStatusChanged,
    GroupCreated,
    GroupRenamed,
    GroupDeleted,
    GroupMemberAdded,
    GroupMemberRemoved,
)


@dataclass(frozen=True)
class Member:
    """A member as the assignment service's ``members`` view holds it."""

    member_id: UUID
    name: str
    role: Role
    active: bool
    status: AgentStatus
    capacity: int


@dataclass(frozen=True)
class GroupRow:
    name: str
    deleted: bool = False
    # Members and when they were added: the view orders a roster by (added_at, member id).
    added: Mapping[UUID, datetime] = field(default_factory=dict)

    def roster(self) -> tuple[UUID, ...]:
        return tuple(sorted(self.added, key=lambda member: (self.added[member], str(member))))


@dataclass(frozen=True)
class Directory:
    """Members and groups of one workspace, folded from ``directory.events`` the way the
    assignment router writes its views (a new member starts ``offline``)."""

    members: Mapping[UUID, Member] = field(default_factory=dict)
    groups: Mapping[UUID, GroupRow] = field(default_factory=dict)

    def apply(self, event: Payload, at: datetime) -> Directory:
        members, groups = dict(self.members), dict(self.groups)
        match event:
            case MemberAdded():
                members.setdefault(
                    event.member_id,
                    Member(
                        event.member_id, event.name, event.role, True, "offline", event.capacity
                    ),
                )
            case MemberUpdated() if event.member_id in members:
                members[event.member_id] = replace(
                    members[event.member_id],
                    name=event.name,
                    role=event.role,
                    capacity=event.capacity,
                )
            case MemberDeactivated() if event.member_id in members:
                members[event.member_id] = replace(members[event.member_id], active=False)
            case AgentStatusChanged() if event.member_id in members:
                members[event.member_id] = replace(members[event.member_id], status=event.status)
            case GroupCreated():
                groups.setdefault(event.group_id, GroupRow(event.name))
            case GroupRenamed() if event.group_id in groups:
                groups[event.group_id] = replace(groups[event.group_id], name=event.name)
            case GroupDeleted() if event.group_id in groups:
                groups[event.group_id] = replace(groups[event.group_id], deleted=True)
            case GroupMemberAdded() if event.group_id in groups:
                row = groups[event.group_id]
                if event.member_id not in row.added:
                    groups[event.group_id] = replace(row, added={**row.added, event.member_id: at})
            case GroupMemberRemoved() if event.group_id in groups:
                row = groups[event.group_id]
                added = {m: when for m, when in row.added.items() if m != event.member_id}
                groups[event.group_id] = replace(row, added=added)
            case _:
                return self
        return Directory(members, groups)

    def group_facts(self, group_id: UUID | None) -> GroupFacts:
        if group_id is None:
            return GroupFacts.workspace_queue()
        row = self.groups.get(group_id)
        if row is None:
            return GroupFacts(group_id, str(group_id), known=False, deleted=False, roster=())
        return GroupFacts(group_id, row.name, known=True, deleted=row.deleted, roster=row.roster())


@dataclass(frozen=True)
class Elsewhere:
    """Where a group the simulation does not replay holds a conversation (as it really did)."""

    group_id: UUID | None
    state: EntryState
    member_id: UUID | None


@dataclass(frozen=True)
class SimulatedWorld:
    """The views one decision of the simulated group reads, as the simulation has them.

    ``groups`` holds the states the simulation decides for: the simulated group's and the
    workspace queue's (which takes the group's queue if it is deleted). ``elsewhere`` is
    what other groups really held, which counts in the members' loads.
    """

    workspace_id: UUID
    group_id: UUID
    directory: Directory
    groups: Mapping[UUID | None, GroupState]
    elsewhere: Mapping[UUID, Elsewhere] = field(default_factory=dict)
    closed: frozenset[UUID] = frozenset()
    capacity: int | None = None  # every member's capacity in the simulation (None: as real)

    @classmethod
    def start(
        cls, workspace_id: UUID, group_id: UUID, *, capacity: int | None = None
    ) -> SimulatedWorld:
        return cls(
            workspace_id=workspace_id,
            group_id=group_id,
            directory=Directory(),
            groups={
                group_id: GroupState(workspace_id, group_id),
                None: GroupState(workspace_id, None),
            },
            capacity=capacity,
        )

    # -- what changes it --------------------------------------------------------------

    def with_directory_event(self, event: Payload, at: datetime) -> SimulatedWorld:
        return replace(self, directory=self.directory.apply(event, at))

    def with_closed(self, conversation: UUID) -> SimulatedWorld:
        return replace(self, closed=self.closed | {conversation})

    def with_decision(self, decision: Payload) -> SimulatedWorld:
        """A decision of a group the simulation decides for, folded into its state."""
        group_id = getattr(decision, "group_id", self.group_id)
        if group_id not in self.groups:
            return self  # a transfer's target group: what it did really is in ``elsewhere``
        groups = {**self.groups, group_id: evolve(self.groups[group_id], decision)}
        elsewhere = self.elsewhere
        if isinstance(decision, ConversationQueued | ConversationAssigned):
            # Transferred here from another group: the simulation holds it now.
            conversation = decision.conversation_id
            elsewhere = {c: where for c, where in elsewhere.items() if c != conversation}
        return replace(self, groups=groups, elsewhere=elsewhere)

    def with_real_decision_elsewhere(self, decision: Payload) -> SimulatedWorld:
        """What another group really decided: it counts in its members' loads, unless the
        simulation holds that conversation itself (then the simulation's holding counts)."""
        conversation: UUID = getattr(decision, "conversation_id")  # noqa: B009
        if self.holds(conversation):
            return self
        elsewhere = dict(self.elsewhere)
        match decision:
            case ConversationAssigned(group_id=group_id, member_id=member_id):
                elsewhere[conversation] = Elsewhere(group_id, "assigned", member_id)
            case ConversationQueued(group_id=group_id):
                elsewhere[conversation] = Elsewhere(group_id, "queued", None)
            case ConversationReleased(group_id=group_id):
                held = elsewhere.get(conversation)
                if held is not None and held.group_id == group_id:
                    del elsewhere[conversation]
            case _:
                return self
        return replace(self, elsewhere=elsewhere)

    # -- what a decision and the router read ------------------------------------------

    def holds(self, conversation: UUID) -> bool:
        return any(conversation in state.entries for state in self.groups.values())

    def load(self, member_id: UUID) -> int:
        """Open conversations assigned to the member, all groups together (the views' LOAD:
        a closed conversation stops counting at once, before its group releases it)."""
        held = [
            entry.conversation_id
            for state in self.groups.values()
            for entry in state.entries.values()
            if entry.state == "assigned" and entry.member_id == member_id
        ]
        held += [c for c, where in self.elsewhere.items() if where.member_id == member_id]
        return sum(1 for conversation in held if conversation not in self.closed)

    def member_facts(self) -> dict[UUID, MemberFacts]:
        return {
            member.member_id: MemberFacts(
                member_id=member.member_id,
                name=member.name,
                role=member.role,
                active=member.active,
                status=member.status,
                capacity=self.capacity if self.capacity is not None else member.capacity,
                load=self.load(member.member_id),
            )
            for member in self.directory.members.values()
        }

    def world(
        self, here: UUID | None, conversation: UUID | None, target: UUID | None = None
    ) -> World:
        """What the service's views would give the decider for a record of ``here``."""
        holding = None
        if conversation is not None:
            for group_id, state in self.groups.items():
                entry = state.entries.get(conversation)
                if entry is not None:
                    name = self.directory.group_facts(group_id).name
                    holding = Holding(group_id, entry.state, entry.member_id, name)
            where = self.elsewhere.get(conversation)
            if where is not None and holding is None:
                name = self.directory.group_facts(where.group_id).name
                holding = Holding(where.group_id, where.state, where.member_id, name)
        target_group = None
        if target is not None:
            state = self.groups.get(target, GroupState(self.workspace_id, target))
            target_group = Group(state, self.directory.group_facts(target))
        return World(
            here=Group(self.groups[here], self.directory.group_facts(here)),
            workspace_queue=Group(self.groups[None], GroupFacts.workspace_queue()),
            members=self.member_facts(),
            closed=self.closed,
            holding=holding,
            target=target_group,
        )

    def router_facts(self, wanted: FactsWanted) -> RouterFacts:
        """The views' answers to the nudge rules' questions (before the event applies).

        Only the groups the simulation decides for can have something waiting or held in
        it; what the rules would nudge elsewhere is not replayed.
        """
        capacity = None
        if wanted.capacity_of is not None:
            member = self.directory.members.get(wanted.capacity_of)
            if member is not None:
                capacity = self.capacity if self.capacity is not None else member.capacity
        waiting_groups = (
            self.waiting_groups(wanted.waiting_groups_of)
            if wanted.waiting_groups_of is not None
            else ()
        )
        holding_groups: tuple[UUID | None, ...] = ()
        if wanted.holding_groups_of is not None:
            holding_groups = tuple(
                group_id
                for group_id, state in sorted(self.groups.items(), key=lambda g: str(g[0]))
                if any(
                    e.state == "assigned" and e.member_id == wanted.holding_groups_of
                    for e in state.entries.values()
                )
            )
        group_waiting = wanted.waiting_in is not None and self._waiting(wanted.waiting_in)
        holder = None
        if wanted.holder_of is not None:
            world = self.world(self.group_id, wanted.holder_of)
            if world.holding is not None:
                holder_id = world.holding.member_id
                holder = Holder(
                    self.workspace_id,
                    world.holding.group_id,
                    holder_id,
                    self.waiting_groups(holder_id) if holder_id is not None else (),
                )
        return RouterFacts(capacity, waiting_groups, holding_groups, group_waiting, holder)

    def waiting_groups(self, member_id: UUID) -> tuple[UUID, ...]:
        """The member's groups with conversations the rotation could take."""
        roster = self.directory.group_facts(self.group_id).roster
        return (self.group_id,) if member_id in roster and self._waiting(self.group_id) else ()

    def _waiting(self, group_id: UUID) -> bool:
        state = self.groups.get(group_id)
        return state is not None and any(not e.claim_only for e in state.queued())
