"""One record's decisions in the making (pure, frozen).

A record may lead to several decisions (a release, then the queue drained onto the member
who has room again). Each is folded at once into its group's state and into the members'
loads, so a later step sees what an earlier one did: :meth:`Draft.emit` returns a new draft
with the event appended and folded, and never changes the one it was called on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal
from uuid import UUID

from events.assignment import (
    AssignedVia,
    AssignmentCommandRejected,
    Candidate,
    ClaimConversation,
    ConversationAssigned,
    ConversationQueued,
    ConversationReleased,
    Decision,
    HandOffDeclined,
    ReleaseReason,
    TransferConversation,
)
from events.base import Payload
from events.flows import Rotation
from services.assignment.facts import Group, World, name_of
from services.assignment.group_state import Entry, evolve
from services.assignment.rotations import Lineup


@dataclass(frozen=True)
class Draft:
    """The decisions so far, the groups they touched and the members' loads after them."""

    world: World
    at: datetime  # the record's time: every decision is dated by it, never by a clock
    groups: Mapping[UUID | None, Group]
    loads: Mapping[UUID, int]
    out: tuple[Payload, ...] = ()

    @classmethod
    def start(cls, world: World, at: datetime) -> Draft:
        groups: dict[UUID | None, Group] = {None: world.workspace_queue}
        for group in (world.here, world.target):
            if group is not None:
                groups[group.facts.group_id] = group
        loads = {member_id: m.load for member_id, m in world.members.items()}
        return cls(world=world, at=at, groups=groups, loads=loads)

    @property
    def workspace_id(self) -> UUID:
        return self.world.here.state.workspace_id

    def group(self, group_id: UUID | None) -> Group:
        return self.groups[group_id]

    def lineup(self, group_id: UUID | None) -> Lineup:
        return Lineup(self.group(group_id), self.world.members, self.loads)

    def name(self, member_id: UUID | None) -> str:
        return name_of(self.world.members, member_id)

    def emit(self, event: Payload) -> Draft:
        """The draft with ``event`` appended and folded into its group and the loads."""
        out = (*self.out, event)
        loads = dict(self.loads)
        match event:
            case ConversationAssigned(group_id=group_id, member_id=member_id):
                before = self.group(group_id).state.entries.get(event.conversation_id)
                if before is not None and before.member_id is not None:
                    loads[before.member_id] = loads.get(before.member_id, 0) - 1
                loads[member_id] = loads.get(member_id, 0) + 1
            case ConversationReleased(group_id=group_id, member_id=member_id):
                # A closed conversation's load was never counted (the views exclude it).
                if member_id is not None and event.conversation_id not in self.world.closed:
                    loads[member_id] = loads.get(member_id, 0) - 1
            case ConversationQueued(group_id=group_id):
                pass
            case _:
                return replace(self, out=out)
        group = self.group(group_id)
        groups = {**self.groups, group_id: replace(group, state=evolve(group.state, event))}
        return replace(self, out=out, loads=loads, groups=groups)

    # -- the decisions ---------------------------------------------------------------

    def explain(
        self,
        *,
        rotation: Rotation | Literal["claim", "transfer"],
        rule: str,
        candidates: Iterable[Candidate],
        outcome: str,
    ) -> Decision:
        """A decision's explanation, with the directory view it was decided on."""
        return Decision(
            rotation=rotation,
            rule=rule,
            candidates=list(candidates),
            outcome=outcome,
            directory_view=self.world.directory_view,
        )

    def assign(
        self,
        group_id: UUID | None,
        conversation: UUID,
        member_id: UUID,
        *,
        via: AssignedVia,
        decision: Decision,
    ) -> Draft:
        return self.emit(
            ConversationAssigned(
                conversation_id=conversation,
                workspace_id=self.workspace_id,
                group_id=group_id,
                member_id=member_id,
                member_name=self.name(member_id),
                via=via,
                decision=decision,
                assigned_at=self.at,
            )
        )

    def queue(
        self,
        group_id: UUID | None,
        conversation: UUID,
        rotation: Rotation,
        *,
        claim_only: bool,
        waiting_since: datetime,
        decision: Decision,
    ) -> Draft:
        return self.emit(
            ConversationQueued(
                conversation_id=conversation,
                workspace_id=self.workspace_id,
                group_id=group_id,
                rotation=rotation,
                claim_only=claim_only,
                decision=decision,
                queued_at=self.at,
                waiting_since=waiting_since,
                # What ``evolve`` numbers it: its place among the group's arrivals.
                arrival=self.group(group_id).state.order + 1,
            )
        )

    def release(self, group_id: UUID | None, entry: Entry, reason: ReleaseReason) -> Draft:
        return self.emit(
            ConversationReleased(
                conversation_id=entry.conversation_id,
                workspace_id=self.workspace_id,
                group_id=group_id,
                member_id=entry.member_id,
                reason=reason,
                released_at=self.at,
            )
        )

    def decline(self, group: Group, conversation: UUID, reason: str) -> Draft:
        return self.emit(
            HandOffDeclined(
                conversation_id=conversation,
                workspace_id=self.workspace_id,
                group_id=group.facts.group_id,
                reason=reason,
                declined_at=self.at,
            )
        )

    def reject(
        self,
        command: ClaimConversation | TransferConversation,
        command_id: UUID,
        reason: str,
        *,
        conflict: bool,
    ) -> Draft:
        return self.emit(
            AssignmentCommandRejected(
                command_id=command_id,
                command_type=command.event_type,
                conversation_id=command.conversation_id,
                workspace_id=self.workspace_id,
                member_id=command.member_id
                if isinstance(command, ClaimConversation)
                else command.requested_by,
                reason=reason,
                conflict=conflict,
            )
        )
