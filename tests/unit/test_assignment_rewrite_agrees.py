"""The rewritten assignment decider against the one it replaces, on generated scenarios:
the same records on the same views give the same events, byte for byte."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import get_args
from uuid import UUID

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from events.assignment import (
    ClaimConversation,
    ConversationTransferred,
    GroupNudged,
    NudgeCause,
    TransferConversation,
    ViewPosition,
)
from events.base import Payload
from events.directory import AgentStatus
from events.flows import HandOffRequested, Rotation
from services.assignment.decide import (
    Group,
    GroupFacts,
    GroupState,
    Holding,
    MemberFacts,
    World,
    decide,
    evolve,
)
from tests.unit.legacy_assignment_decide import legacy_decide

pytestmark = pytest.mark.unit

WORKSPACE = UUID("7d0c3a52-2f5b-4a55-9d8e-6c1b0f3e9a11")
T0 = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
STATUSES: tuple[AgentStatus, ...] = get_args(AgentStatus)
ROTATIONS: tuple[Rotation, ...] = get_args(Rotation)
CAUSES: tuple[NudgeCause, ...] = get_args(NudgeCause)


@dataclass
class Scene:
    members: dict[UUID, MemberFacts] = field(default_factory=dict)
    groups: dict[UUID, GroupFacts] = field(default_factory=dict)
    states: dict[UUID | None, GroupState] = field(
        default_factory=lambda: {None: GroupState(WORKSPACE, None)}
    )
    closed: set[UUID] = field(default_factory=set)
    conversations: list[UUID] = field(default_factory=list)
    now: datetime = T0
    view: ViewPosition | None = None
    counter: int = 0

    def new_id(self) -> UUID:
        self.counter += 1
        return UUID(int=self.counter)

    def group(self, group_id: UUID | None) -> Group:
        if group_id is None:
            return Group(self.states[None], GroupFacts.workspace_queue())
        facts = self.groups.get(group_id) or GroupFacts(group_id, str(group_id), False, False, ())
        state = self.states.setdefault(group_id, GroupState(WORKSPACE, group_id))
        return Group(state, facts)

    def load(self, member_id: UUID) -> int:
        return sum(
            1
            for state in self.states.values()
            for entry in state.entries.values()
            if entry.state == "assigned"
            and entry.member_id == member_id
            and entry.conversation_id not in self.closed
        )

    def holding(self, conversation: UUID) -> Holding | None:
        for group_id, state in self.states.items():
            entry = state.entries.get(conversation)
            if entry is not None:
                name = self.groups[group_id].name if group_id in self.groups else "another group"
                return Holding(group_id, entry.state, entry.member_id, name)
        return None

    def run(self, command: Payload, here: UUID | None, target: UUID | None = None) -> None:
        conversation = getattr(command, "conversation_id", None)
        world = World(
            here=self.group(here),
            workspace_queue=self.group(None),
            members={m: replace(f, load=self.load(m)) for m, f in self.members.items()},
            closed=frozenset(self.closed),
            holding=self.holding(conversation) if conversation else None,
            target=self.group(target) if target is not None else None,
            directory_view=self.view,
        )
        command_id = self.new_id()
        new = decide(command, world, at=self.now, command_id=command_id)
        old = legacy_decide(command, world, at=self.now, command_id=command_id)
        assert [(type(e), e.model_dump_json()) for e in new] == [
            (type(e), e.model_dump_json()) for e in old
        ]
        for made in new:
            event(type(made).__name__)
            decision = getattr(made, "decision", None)
            if decision is not None:
                event(f"{type(made).__name__} {decision.rotation} {getattr(made, 'via', '')}")
            if (reason := getattr(made, "reason", None)) is not None:
                event(f"{type(made).__name__} {reason[:30]}")
            stream_group = (
                made.from_group_id
                if isinstance(made, ConversationTransferred)
                else getattr(made, "group_id", "none")
            )
            if stream_group != "none":
                assert isinstance(stream_group, UUID | None)
                self.states[stream_group] = evolve(self.group(stream_group).state, made)


def step(scene: Scene, data: st.DataObject) -> None:
    draw = data.draw
    group_id: UUID | None
    members = list(scene.members)
    groups = list(scene.groups)
    unknown = scene.new_id()
    a_group = st.sampled_from([*groups, None, unknown])
    a_member = st.sampled_from([*members, unknown])
    kind = draw(
        st.sampled_from(
            ["hand_off"] * 4
            + ["change", "close", "nudge", "nudge", "claim", "claim"]
            + [
                "transfer",
                "transfer",
                "delete",
                "roster",
                "tick",
                "view",
                "leave",
                "leave",
                "free",
                "free",
            ]
        )
    )
    if kind == "tick":
        scene.now += timedelta(seconds=draw(st.integers(0, 2)))
    elif kind == "view":
        scene.view = ViewPosition(topic="directory.events", partition=0, offset=scene.counter)
    elif kind == "change" and members:
        member_id = draw(st.sampled_from(members))
        scene.members[member_id] = replace(
            scene.members[member_id],
            status=draw(st.sampled_from(STATUSES)),
            active=draw(st.booleans()) or draw(st.booleans()),
            capacity=draw(st.integers(0, 3)),
        )
    elif kind == "close" and scene.conversations:
        scene.closed.add(draw(st.sampled_from(scene.conversations)))
    elif kind == "delete" and groups:
        group_id = draw(st.sampled_from(groups))
        scene.groups[group_id] = replace(scene.groups[group_id], deleted=True)
    elif kind == "roster" and groups and members:
        group_id = draw(st.sampled_from(groups))
        member_id = draw(st.sampled_from(members))
        roster = scene.groups[group_id].roster
        roster = (
            tuple(m for m in roster if m != member_id)
            if member_id in roster
            else (*roster, member_id)
        )
        scene.groups[group_id] = replace(scene.groups[group_id], roster=roster)
    elif kind == "free" and members and groups:
        # A member becomes available with room, and a group is nudged to drain its queue.
        member_id = draw(st.sampled_from(members))
        before = scene.members[member_id]
        scene.members[member_id] = replace(before, status="available", capacity=before.capacity + 1)
        group_id = draw(st.sampled_from(groups))
        scene.run(
            GroupNudged(
                workspace_id=WORKSPACE,
                group_id=group_id,
                cause="member_available",
                member_id=member_id,
                conversation_id=None,
                detail="generated",
                nudged_at=scene.now,
            ),
            group_id,
        )
    elif kind == "leave":
        # A member holding a conversation leaves its group (or is deactivated), and the
        # router nudges the group about it.
        held = [
            (group_id, entry.member_id)
            for group_id, state in scene.states.items()
            for entry in state.entries.values()
            if entry.member_id is not None
        ]
        if not held:
            return
        group_id, member_id = draw(st.sampled_from(held))
        cause: NudgeCause
        if group_id is not None and draw(st.booleans()):
            cause = "member_removed_from_group"
            roster = scene.groups[group_id].roster
            scene.groups[group_id] = replace(
                scene.groups[group_id], roster=tuple(m for m in roster if m != member_id)
            )
        else:
            cause = "member_deactivated"
            scene.members[member_id] = replace(scene.members[member_id], active=False)
        scene.run(
            GroupNudged(
                workspace_id=WORKSPACE,
                group_id=group_id,
                cause=cause,
                member_id=member_id,
                conversation_id=None,
                detail="generated",
                nudged_at=scene.now,
            ),
            group_id,
        )
    elif kind == "hand_off":
        new = scene.new_id()
        conversation = draw(st.sampled_from([new, new, *scene.conversations]))
        if conversation == new:
            scene.conversations.append(new)
        group_id = draw(a_group)
        request = HandOffRequested(
            conversation_id=conversation,
            workspace_id=WORKSPACE,
            phone_number_id="480112093385611",
            contact_wa_id="573001112233",
            group_id=group_id,
            rotation=draw(st.sampled_from(ROTATIONS)),
            member_id=draw(st.one_of(st.none(), a_member)),
            reason="the flow asked for an agent",
            requested_at=scene.now,
        )
        scene.run(request, group_id)
    elif kind == "nudge":
        group_id = draw(a_group)
        nudge = GroupNudged(
            workspace_id=WORKSPACE,
            group_id=group_id,
            cause=draw(st.sampled_from(CAUSES)),
            member_id=draw(st.one_of(st.none(), a_member)),
            conversation_id=draw(
                st.one_of(st.none(), st.sampled_from([unknown, *scene.conversations]))
            ),
            detail="generated",
            nudged_at=scene.now,
        )
        scene.run(nudge, group_id)
    elif kind == "claim" and scene.conversations:
        conversation = draw(st.sampled_from(scene.conversations))
        holding = scene.holding(conversation)
        group_id = holding.group_id if holding and draw(st.booleans()) else draw(a_group)
        claim = ClaimConversation(
            conversation_id=conversation, workspace_id=WORKSPACE, member_id=draw(a_member)
        )
        scene.run(claim, group_id)
    elif kind == "transfer" and scene.conversations:
        conversation = draw(st.sampled_from(scene.conversations))
        holding = scene.holding(conversation)
        group_id = holding.group_id if holding and draw(st.booleans()) else draw(a_group)
        by = (
            holding.member_id
            if holding and holding.member_id and draw(st.booleans())
            else draw(a_member)
        )
        to_member = draw(st.one_of(st.none(), a_member))
        to_group = (
            draw(st.one_of(st.none(), a_group))
            if to_member is None or draw(st.booleans())
            else None
        )
        transfer = TransferConversation(
            conversation_id=conversation,
            workspace_id=WORKSPACE,
            to_member_id=to_member,
            to_group_id=to_group,
            requested_by=by,
            note="generated",
        )
        scene.run(transfer, group_id, target=to_group)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["available", "available", "unavailable", "offline"]),
            st.integers(0, 4),
            st.sampled_from(["agent", "agent", "admin"]),
        ),
        min_size=1,
        max_size=5,
    ),
    st.integers(1, 3),
    st.data(),
)
def test_the_rewrite_decides_as_the_old_decider(
    people: list[tuple[AgentStatus, int, str]], group_count: int, data: st.DataObject
) -> None:
    scene = Scene()
    names = "ABCDEFGH"
    for index, (status, capacity, role) in enumerate(people):
        member_id = uuid.UUID(int=1000 + index)
        scene.members[member_id] = MemberFacts(
            member_id,
            names[index],
            "admin" if role == "admin" else "agent",
            True,
            status,
            capacity,
            0,
        )
    for index in range(group_count):
        group_id = uuid.UUID(int=2000 + index)
        roster = data.draw(st.lists(st.sampled_from(list(scene.members)), unique=True))
        scene.groups[group_id] = GroupFacts(group_id, f"G{index}", True, False, tuple(roster))
        scene.states[group_id] = GroupState(WORKSPACE, group_id)
    for _ in range(data.draw(st.integers(5, 40))):
        step(scene, data)
