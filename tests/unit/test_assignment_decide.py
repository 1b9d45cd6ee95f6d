"""The assignment rules as pure functions: given the groups' decisions and the views, when a
record arrives, then these decisions (with their explanation).

``Desk`` plays the store and the views: it keeps each group's state by folding the decisions
it is given back, and counts loads the way the views do (open assigned conversations, all
groups, closed ones excluded).
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar
from uuid import UUID

import pytest

from events.assignment import (
    AssignmentCommandRejected,
    ClaimConversation,
    ConversationAssigned,
    ConversationQueued,
    ConversationReleased,
    ConversationTransferred,
    GroupNudged,
    HandOffDeclined,
    NudgeCause,
    TransferConversation,
    ViewPosition,
)
from events.base import Payload
from events.directory import AgentStatus, Role
from events.flows import HandOffRequested, Rotation
from services.assignment.decide import Group as DecidingGroup
from services.assignment.decide import (
    GroupFacts,
    GroupState,
    Holding,
    MemberFacts,
    World,
    decide,
    evolve,
    group_stream,
)

pytestmark = pytest.mark.unit

P = TypeVar("P", bound=Payload)
WORKSPACE = uuid.uuid4()
T0 = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)


class Desk:
    def __init__(self) -> None:
        self.members: dict[UUID, MemberFacts] = {}
        self.groups: dict[UUID, GroupFacts] = {}
        self.states: dict[UUID | None, GroupState] = {None: GroupState(WORKSPACE, None)}
        self.closed: set[UUID] = set()
        self.now = T0
        self.log: list[Payload] = []
        self.directory_view: ViewPosition | None = None

    # -- the directory ---------------------------------------------------------------

    def member(
        self,
        name: str,
        *,
        status: AgentStatus = "available",
        capacity: int = 3,
        role: Role = "agent",
    ) -> UUID:
        member_id = uuid.uuid4()
        self.members[member_id] = MemberFacts(member_id, name, role, True, status, capacity, 0)
        return member_id

    def group(self, name: str, *roster: UUID) -> UUID:
        group_id = uuid.uuid4()
        self.groups[group_id] = GroupFacts(group_id, name, True, False, tuple(roster))
        self.states[group_id] = GroupState(WORKSPACE, group_id)
        return group_id

    def change(self, member_id: UUID, **changes: object) -> None:
        self.members[member_id] = replace(self.members[member_id], **changes)  # type: ignore[arg-type]

    def change_group(self, group_id: UUID, **changes: object) -> None:
        self.groups[group_id] = replace(self.groups[group_id], **changes)  # type: ignore[arg-type]

    def name(self, member_id: UUID) -> str:
        return self.members[member_id].name

    # -- records ---------------------------------------------------------------------

    def run(
        self, command: Payload, group_id: UUID | None, *, target: UUID | None = None
    ) -> list[Payload]:
        self.now += timedelta(seconds=1)
        conversation = getattr(command, "conversation_id", None)
        world = World(
            here=self._group(group_id),
            workspace_queue=self._group(None),
            members={m: replace(f, load=self._load(m)) for m, f in self.members.items()},
            closed=frozenset(self.closed),
            holding=self._holding(conversation) if conversation else None,
            target=self._group(target) if target is not None else None,
            directory_view=self.directory_view,
        )
        events = decide(command, world, at=self.now, command_id=uuid.uuid4())
        for event in events:
            stream_group = (
                event.from_group_id
                if isinstance(event, ConversationTransferred)
                else getattr(event, "group_id", "none")
            )
            if stream_group != "none":
                assert isinstance(stream_group, UUID | None)
                self.states[stream_group] = evolve(self.states[stream_group], event)
        self.log.extend(events)
        return events

    def hand_off(
        self,
        group_id: UUID | None,
        rotation: Rotation = "available",
        member: UUID | None = None,
        conversation: UUID | None = None,
    ) -> tuple[UUID, list[Payload]]:
        conversation = conversation or uuid.uuid4()
        request = HandOffRequested(
            conversation_id=conversation,
            workspace_id=WORKSPACE,
            phone_number_id="480112093385611",
            contact_wa_id="573001112233",
            group_id=group_id,
            rotation=rotation,
            member_id=member,
            reason="the flow asked for an agent",
            requested_at=self.now,
        )
        return conversation, self.run(request, group_id)

    def nudge(
        self,
        group_id: UUID | None,
        cause: NudgeCause,
        member: UUID | None = None,
        conversation: UUID | None = None,
    ) -> list[Payload]:
        nudge = GroupNudged(
            workspace_id=WORKSPACE,
            group_id=group_id,
            cause=cause,
            member_id=member,
            conversation_id=conversation,
            detail="test",
            nudged_at=self.now,
        )
        return self.run(nudge, group_id)

    def claim(self, group_id: UUID | None, conversation: UUID, member: UUID) -> list[Payload]:
        claim = ClaimConversation(
            conversation_id=conversation, workspace_id=WORKSPACE, member_id=member
        )
        return self.run(claim, group_id)

    def transfer(
        self,
        group_id: UUID,
        conversation: UUID,
        by: UUID,
        *,
        to_member: UUID | None = None,
        to_group: UUID | None = None,
    ) -> list[Payload]:
        transfer = TransferConversation(
            conversation_id=conversation,
            workspace_id=WORKSPACE,
            to_member_id=to_member,
            to_group_id=to_group,
            requested_by=by,
            note="please take it",
        )
        return self.run(transfer, group_id, target=to_group)

    def close(self, conversation: UUID) -> None:
        self.closed.add(conversation)

    # -- what the views would say ------------------------------------------------------

    def _group(self, group_id: UUID | None) -> DecidingGroup:
        if group_id is None:
            return DecidingGroup(self.states[None], GroupFacts.workspace_queue())
        facts = self.groups.get(group_id) or GroupFacts(group_id, str(group_id), False, False, ())
        state = self.states.setdefault(group_id, GroupState(WORKSPACE, group_id))
        return DecidingGroup(state, facts)

    def _load(self, member_id: UUID) -> int:
        return sum(
            1
            for state in self.states.values()
            for entry in state.entries.values()
            if entry.state == "assigned"
            and entry.member_id == member_id
            and entry.conversation_id not in self.closed
        )

    def _holding(self, conversation: UUID) -> Holding | None:
        """Like the assignments view: whichever group holds it, the record's own too."""
        for group_id, state in self.states.items():
            entry = state.entries.get(conversation)
            if entry is not None:
                name = self.groups[group_id].name if group_id is not None else ""
                return Holding(group_id, entry.state, entry.member_id, name)
        return None


def assigned_to(desk: Desk, events: list[Payload]) -> list[str]:
    return [desk.name(e.member_id) for e in events if isinstance(e, ConversationAssigned)]


def only(events: list[Payload], kind: type[P]) -> P:
    [found] = [e for e in events if isinstance(e, kind)]
    return found


@pytest.fixture
def desk() -> Desk:
    return Desk()


@pytest.fixture
def abc(desk: Desk) -> tuple[UUID, UUID, UUID, UUID]:
    """A fresh group A, B, C (in that order) with B unavailable."""
    a = desk.member("A")
    b = desk.member("B", status="unavailable")
    c = desk.member("C")
    return desk.group("Ventas", a, b, c), a, b, c


# -- the acceptance sequence ------------------------------------------------------------


def test_available_three_times_gives_a_c_a(desk: Desk, abc: tuple[UUID, ...]) -> None:
    group, _a, _b, _c = abc
    chosen = [assigned_to(desk, desk.hand_off(group)[1]) for _ in range(3)]
    assert chosen == [["A"], ["C"], ["A"]]
    third = only(desk.log[-1:], ConversationAssigned)
    assert third.via == "rotation"
    candidates = {desk.name(x.member_id): x for x in third.decision.candidates}
    assert list(candidates) == ["A", "B", "C"]  # every member of the roster, in order
    assert candidates["A"].chosen
    assert candidates["A"].skipped is None
    assert candidates["B"].skipped == "status unavailable"
    assert candidates["B"].status == ("unavailable")
    assert candidates["C"].skipped is not None
    assert "not their turn" in candidates["C"].skipped
    assert candidates["A"].load == 1
    assert candidates["C"].load == 1
    assert candidates["C"].last_assigned_at is not None
    assert third.decision.outcome.startswith("assigned to A")
    assert "available" in third.decision.rule


def test_all_three_times_gives_a_b_c_whatever_the_status(desk: Desk, abc: tuple[UUID, ...]) -> None:
    group = abc[0]
    chosen = [assigned_to(desk, desk.hand_off(group, "all")[1]) for _ in range(3)]
    assert chosen == [["A"], ["B"], ["C"]]
    fourth = assigned_to(desk, desk.hand_off(group, "all")[1])
    assert fourth == ["A"]  # the rotation wraps around


def test_all_keeps_its_own_cursor_apart_from_the_available_turns(
    desk: Desk, abc: tuple[UUID, ...]
) -> None:
    group = abc[0]
    assert assigned_to(desk, desk.hand_off(group, "available")[1]) == ["A"]
    assert assigned_to(desk, desk.hand_off(group, "all")[1]) == ["A"]  # all starts at roster[0]
    assert assigned_to(desk, desk.hand_off(group, "all")[1]) == ["B"]
    assert assigned_to(desk, desk.hand_off(group, "available")[1]) == ["C"]  # never assigned


def test_specific_goes_to_the_member_named(desk: Desk, abc: tuple[UUID, ...]) -> None:
    group, _, _, c = abc
    desk.change(c, status="offline", capacity=1)
    desk.hand_off(group, "specific", member=c)
    conversation, events = desk.hand_off(group, "specific", member=c)
    assigned = only(events, ConversationAssigned)
    assert (desk.name(assigned.member_id), assigned.via) == ("C", "specific")
    assert assigned.conversation_id == conversation  # offline and at capacity: it was named
    assert assigned.decision.rotation == "specific"


def test_specific_to_someone_outside_the_group_waits_saying_why(
    desk: Desk, abc: tuple[UUID, ...]
) -> None:
    group, _, _, c = abc
    outsider = desk.member("Zoe")
    queued = only(desk.hand_off(group, "specific", member=outsider)[1], ConversationQueued)
    assert "member Zoe is not in group Ventas" in queued.decision.outcome
    assert not queued.claim_only
    desk.change(c, active=False)
    queued = only(desk.hand_off(group, "specific", member=c)[1], ConversationQueued)
    assert "member C is deactivated" in queued.decision.outcome


def test_no_owner_waits_for_a_claim_and_the_second_claim_conflicts(
    desk: Desk, abc: tuple[UUID, ...]
) -> None:
    group, a, b, _ = abc
    conversation, events = desk.hand_off(group, "no_owner")
    queued = only(events, ConversationQueued)
    assert queued.claim_only
    assert queued.rotation == "no_owner"
    assert all(not c.chosen for c in queued.decision.candidates)
    assert desk.nudge(group, "member_available", member=a) == []  # a nudge leaves it queued
    claimed = only(desk.claim(group, conversation, b), ConversationAssigned)
    assert (desk.name(claimed.member_id), claimed.via) == ("B", "claim")
    assert claimed.decision.rotation == "claim"
    assert [c.chosen for c in claimed.decision.candidates] == [False, True, False]
    rejected = only(desk.claim(group, conversation, a), AssignmentCommandRejected)
    assert rejected.conflict
    assert rejected.reason == "already assigned to B"
    assert rejected.command_type == ClaimConversation.event_type


def test_claims_are_for_members_of_the_group_or_admins(desk: Desk, abc: tuple[UUID, ...]) -> None:
    group = abc[0]
    outsider = desk.member("Zoe")
    admin = desk.member("Ada", role="admin")
    conversation, _ = desk.hand_off(group, "no_owner")
    rejected = only(desk.claim(group, conversation, outsider), AssignmentCommandRejected)
    assert not rejected.conflict
    assert "not a member of Ventas" in rejected.reason
    assert assigned_to(desk, desk.claim(group, conversation, admin)) == ["Ada"]


def test_admins_claim_from_the_workspace_queue(desk: Desk) -> None:
    admin = desk.member("Ada", role="admin")
    agent = desk.member("Bo")
    conversation, events = desk.hand_off(None, "available")
    queued = only(events, ConversationQueued)
    assert queued.group_id is None
    assert "an admin claims it" in queued.decision.outcome
    assert only(desk.claim(None, conversation, agent), AssignmentCommandRejected).conflict is False
    assert assigned_to(desk, desk.claim(None, conversation, admin)) == ["Ada"]


def test_at_capacity_the_fourth_waits_until_a_conversation_closes(desk: Desk) -> None:
    a, b, c = (desk.member(n, capacity=1) for n in "ABC")
    group = desk.group("Soporte", a, b, c)
    handed = [desk.hand_off(group) for _ in range(4)]
    assert [assigned_to(desk, events) for _, events in handed[:3]] == [["A"], ["B"], ["C"]]
    fourth, events = handed[3]
    queued = only(events, ConversationQueued)
    reasons = {desk.name(x.member_id): x.skipped for x in queued.decision.candidates}
    assert reasons == dict.fromkeys("ABC", "at capacity (1/1)")
    assert "nobody can take it now" in queued.decision.outcome
    desk.close(handed[1][0])  # B's conversation closes
    events = desk.nudge(group, "conversation_closed", member=b, conversation=handed[1][0])
    released = only(events, ConversationReleased)
    assert (released.conversation_id, released.reason) == (handed[1][0], "closed")
    assigned = only(events, ConversationAssigned)
    assert (assigned.conversation_id, desk.name(assigned.member_id)) == (fourth, "B")
    assert assigned.via == "queue"


def test_capacity_counts_every_group(desk: Desk) -> None:
    a = desk.member("A", capacity=1)
    b = desk.member("B")
    one, two = desk.group("One", a), desk.group("Two", a, b)
    assert assigned_to(desk, desk.hand_off(one)[1]) == ["A"]
    assert assigned_to(desk, desk.hand_off(two)[1]) == ["B"]


def test_the_queue_drains_longest_waiting_first_when_a_member_becomes_available(
    desk: Desk,
) -> None:
    a = desk.member("A", status="offline")
    group = desk.group("Ventas", a)
    first, _ = desk.hand_off(group)
    second, _ = desk.hand_off(group)
    claim_only, _ = desk.hand_off(group, "no_owner")
    desk.change(a, status="available")
    events = desk.nudge(group, "member_available", member=a)
    assigned = [e for e in events if isinstance(e, ConversationAssigned)]
    assert assigned == events
    assert [e.conversation_id for e in assigned] == [first, second]
    assert all(e.via == "queue" for e in assigned)
    assert claim_only in desk.states[group].entries  # still waiting for a claim


def test_nobody_available_queues_with_every_reason(desk: Desk) -> None:
    a = desk.member("A", status="offline")
    b = desk.member("B", status="unavailable")
    c = desk.member("C")
    desk.change(c, active=False)
    group = desk.group("Ventas", a, b, c)
    queued = only(desk.hand_off(group)[1], ConversationQueued)
    assert queued.decision.outcome == (
        "queued: nobody can take it now (A: status offline, B: status unavailable, C: deactivated)"
    )


# -- fallbacks ----------------------------------------------------------------------------


def test_a_hand_off_to_a_deleted_or_unknown_group_waits_in_the_workspace_queue(
    desk: Desk, abc: tuple[UUID, ...]
) -> None:
    group = abc[0]
    desk.change_group(group, deleted=True)
    queued = only(desk.hand_off(group)[1], ConversationQueued)
    assert queued.group_id is None
    assert queued.decision.outcome.startswith("queued in the workspace queue: group Ventas was")
    unknown = uuid.uuid4()
    queued = only(desk.hand_off(unknown)[1], ConversationQueued)
    assert queued.group_id is None
    assert f"group {unknown} is unknown" in queued.decision.outcome


def test_a_hand_off_is_declined_when_closed_or_already_held(
    desk: Desk, abc: tuple[UUID, ...]
) -> None:
    group = abc[0]
    conversation, _ = desk.hand_off(group)
    declined = only(desk.hand_off(group, conversation=conversation)[1], HandOffDeclined)
    assert declined.reason == "already assigned to A in Ventas"
    other = desk.group("Otra", abc[1])
    declined = only(desk.hand_off(other, conversation=conversation)[1], HandOffDeclined)
    assert declined.reason == "already assigned to A in Ventas"
    closed = uuid.uuid4()
    desk.close(closed)
    declined = only(desk.hand_off(group, conversation=closed)[1], HandOffDeclined)
    assert declined.reason == "the conversation closed before it was handed off"


# -- members leaving, groups deleted, transfers --------------------------------------------


def test_a_deactivated_members_conversations_are_decided_again(
    desk: Desk, abc: tuple[UUID, ...]
) -> None:
    group, a, _, _ = abc
    conversation, _ = desk.hand_off(group)  # A
    desk.change(a, active=False)
    events = desk.nudge(group, "member_deactivated", member=a)
    assert [type(e) for e in events] == [ConversationReleased, ConversationAssigned]
    assert only(events, ConversationReleased).reason == "member_deactivated"
    assigned = only(events, ConversationAssigned)
    assert (assigned.conversation_id, desk.name(assigned.member_id)) == (conversation, "C")
    assert "its member was deactivated" in assigned.decision.outcome


def test_a_member_removed_from_the_group_releases_its_conversations(
    desk: Desk, abc: tuple[UUID, ...]
) -> None:
    group, a, b, c = abc
    desk.hand_off(group)  # A
    desk.change_group(group, roster=(b, c))
    desk.change(c, status="offline")
    events = desk.nudge(group, "member_removed_from_group", member=a)
    assert only(events, ConversationReleased).reason == "removed_from_group"
    assert only(events, ConversationQueued).rotation == "available"


def test_a_member_going_unavailable_keeps_its_conversations(
    desk: Desk, abc: tuple[UUID, ...]
) -> None:
    group, a, _, _ = abc
    desk.hand_off(group)
    desk.change(a, status="unavailable")
    assert desk.nudge(group, "member_available", member=a) == []


def test_a_deleted_groups_queue_moves_to_the_workspace_queue(desk: Desk) -> None:
    a = desk.member("A", capacity=1)
    group = desk.group("Ventas", a)
    held, _ = desk.hand_off(group)
    waiting, events = desk.hand_off(group)
    queued_at = only(events, ConversationQueued).queued_at
    desk.change_group(group, deleted=True)
    events = desk.nudge(group, "group_deleted")
    assert [type(e) for e in events] == [ConversationReleased, ConversationQueued]
    released = only(events, ConversationReleased)
    assert (released.reason, released.released_at) == ("group_deleted", desk.now)
    moved = only(events, ConversationQueued)
    assert (moved.conversation_id, moved.group_id) == (waiting, None)
    # It keeps its place (it has waited since then), but the move happened at the deletion:
    # the history must not date it before the group was deleted.
    assert moved.waiting_since == queued_at
    assert moved.queued_at == desk.now > queued_at
    assert held in desk.states[group].entries  # assigned ones stay with their members


def test_a_transfer_to_a_member(desk: Desk, abc: tuple[UUID, ...]) -> None:
    group, a, b, c = abc
    conversation, _ = desk.hand_off(group)  # A
    rejected = only(desk.transfer(group, conversation, c, to_member=b), AssignmentCommandRejected)
    assert rejected.reason == "only the conversation's assignee or an admin may transfer it"
    events = desk.transfer(group, conversation, a, to_member=b)
    assert [type(e) for e in events] == [ConversationTransferred, ConversationAssigned]
    assigned = only(events, ConversationAssigned)
    assert (desk.name(assigned.member_id), assigned.via) == ("B", "transfer")
    assert desk.states[group].entries[conversation].member_id == b


def test_a_transfer_to_a_group_uses_its_available_rule(desk: Desk, abc: tuple[UUID, ...]) -> None:
    group, _a, _, _ = abc
    admin = desk.member("Ada", role="admin")
    d = desk.member("D")
    other = desk.group("Cobros", d)
    conversation, _ = desk.hand_off(group)  # A
    events = desk.transfer(group, conversation, admin, to_group=other)
    assert [type(e) for e in events] == [
        ConversationReleased,
        ConversationTransferred,
        ConversationAssigned,
    ]
    assert only(events, ConversationReleased).reason == "transferred"
    assigned = only(events, ConversationAssigned)
    assert (assigned.group_id, desk.name(assigned.member_id)) == (other, "D")
    assert conversation not in desk.states[group].entries
    assert group_stream(WORKSPACE, None) != group_stream(WORKSPACE, group) == group


def test_conversations_held_from_outside_the_roster_stay_on_a_nudge(
    desk: Desk, abc: tuple[UUID, ...]
) -> None:
    group, a, _, _ = abc
    admin = desk.member("Ada", role="admin")
    claimed, _ = desk.hand_off(group, "no_owner")
    desk.claim(group, claimed, admin)
    moved, _ = desk.hand_off(group)  # A
    zoe = desk.member("Zoe")
    desk.transfer(group, moved, a, to_member=zoe)
    assert desk.nudge(group, "member_available", member=a) == []
    assert desk.nudge(group, "member_removed_from_group", member=a) == []
    assert desk.states[group].entries[claimed].member_id == admin
    assert desk.states[group].entries[moved].member_id == zoe
    in_queue, _ = desk.hand_off(None)
    desk.claim(None, in_queue, admin)
    assert desk.nudge(None, "member_available", member=a) == []


# -- explanations that stay true -----------------------------------------------------------


def test_members_never_assigned_are_not_told_they_had_one_more_recently(desk: Desk) -> None:
    a, b, c = desk.member("A"), desk.member("B"), desk.member("C")
    group = desk.group("Ventas", a, b, c)
    first = only(desk.hand_off(group)[1], ConversationAssigned)
    skipped = {desk.name(x.member_id): x.skipped for x in first.decision.candidates}
    assert skipped["A"] is None
    for name in ("B", "C"):
        reason = skipped[name]
        assert reason is not None
        assert "more recently" not in reason
        assert reason == (
            "not their turn: neither they nor A were given a conversation of this group yet,"
            " and A comes first in the group"
        )
    second = only(desk.hand_off(group)[1], ConversationAssigned)
    skipped = {desk.name(x.member_id): x.skipped for x in second.decision.candidates}
    assert desk.name(second.member_id) == "B"
    assert skipped["A"] == (
        f"not their turn: given a conversation of this group at {first.assigned_at.isoformat()};"
        " B never was"
    )
    assert skipped["C"] is not None
    assert skipped["C"].startswith("not their turn: neither they nor B")
    desk.hand_off(group)  # C
    fourth = only(desk.hand_off(group)[1], ConversationAssigned)
    skipped = {desk.name(x.member_id): x.skipped for x in fourth.decision.candidates}
    assert desk.name(fourth.member_id) == "A"
    assert skipped["B"] is not None
    assert skipped["B"].startswith(
        "not their turn: given a conversation of this group more recently than A"
        " (the group's assignment #2 at "
    )


def test_a_queue_is_served_by_waiting_time_then_arrival_which_each_decision_records(
    desk: Desk,
) -> None:
    """Meta's timestamps are whole seconds: conversations queued in one second are served in
    the order they arrived, and each queued decision says its arrival, so a list of the
    queue can show that order (not the order of their ids)."""
    a = desk.member("A", status="offline")
    group = desk.group("Ventas", a)
    later_id, earlier_id = UUID(int=1), UUID(int=2)  # ids sort against the arrival order
    _, first = desk.hand_off(group, conversation=earlier_id)
    desk.now -= timedelta(seconds=1)  # the next hand-off is decided in the same second
    _, second = desk.hand_off(group, conversation=later_id)
    queued = [only(first, ConversationQueued), only(second, ConversationQueued)]
    assert queued[0].waiting_since == queued[1].waiting_since
    assert [q.arrival for q in queued] == [1, 2]
    desk.change(a, status="available")
    served = [
        e.conversation_id
        for e in desk.nudge(group, "member_available", member=a)
        if isinstance(e, ConversationAssigned)
    ]
    listed = sorted(queued, key=lambda q: (q.waiting_since, q.arrival or 0, q.conversation_id))
    assert served == [q.conversation_id for q in listed] == [earlier_id, later_id]


def test_every_decision_records_the_directory_view_it_read(
    desk: Desk, abc: tuple[UUID, ...]
) -> None:
    group, a, _b, c = abc
    desk.directory_view = ViewPosition(topic="directory.events", partition=2, offset=41)
    assigned = only(desk.hand_off(group)[1], ConversationAssigned)
    desk.change(a, status="offline")
    desk.change(c, status="offline")
    desk.directory_view = ViewPosition(topic="directory.events", partition=2, offset=43)
    queued = only(desk.hand_off(group)[1], ConversationQueued)
    assert assigned.decision.directory_view == ViewPosition(
        topic="directory.events", partition=2, offset=41
    )
    assert queued.decision.directory_view is not None
    assert queued.decision.directory_view.offset == 43
