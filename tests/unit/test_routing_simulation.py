"""What-if routing as pure functions: given a group's stored history, when it is replayed
through a rotation, then these decisions, waits and loads (worked out by hand here).

``Story`` writes the stores' events as the services would (envelopes with their event
time): the directory's members, group and statuses, the flows' hand-offs, the closes, and
when a test needs them, the assignment service's real decisions.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from events.assignment import (
    AssignmentCommandRejected,
    ClaimConversation,
    ConversationAssigned,
    ConversationQueued,
    ConversationReleased,
    ConversationTransferred,
    Decision,
)
from events.base import Payload
from events.conversation import ConversationClosed
from events.directory import (
    AgentStatus,
    AgentStatusChanged,
    GroupCreated,
    GroupMemberAdded,
    GroupMemberRemoved,
    MemberAdded,
    MemberDeactivated,
)
from events.envelope import Actor, Envelope
from events.flows import HandOffRequested, Rotation
from services.operations.routing_outcome import Outcome, percentile
from services.operations.simulate import Asked, BadRequest, check, compare, text, what_if
from services.operations.simulation import (
    Simulated,
    SimulationRefused,
    WhatIf,
    simulate,
)

pytestmark = pytest.mark.unit

T0 = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
SYSTEM = Actor(kind="system", id="test")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@dataclass
class Story:
    workspace: UUID = field(default_factory=uuid.uuid4)
    group: UUID = field(default_factory=uuid.uuid4)
    ids: dict[str, UUID] = field(default_factory=dict)
    envelopes: list[Envelope] = field(default_factory=list)
    conversations: list[UUID] = field(default_factory=list)

    def record(self, when: float, payload: Payload, stream: str, cause: UUID | None = None) -> UUID:
        event_id = uuid.uuid4()
        self.envelopes.append(
            Envelope.wrap(
                payload,
                event_id=event_id,
                stream_id=stream,
                workspace_id=self.workspace,
                occurred_at=at(when),
                correlation_id=event_id,
                causation_id=cause,
                actor=SYSTEM,
            )
        )
        return event_id

    def team(self, *names: str, capacity: int, when: float = -100) -> Story:
        group = GroupCreated(workspace_id=self.workspace, group_id=self.group, name="Support")
        self.record(when, group, str(self.workspace))
        for index, name in enumerate(names):
            member = uuid.uuid4()
            self.ids[name] = member
            added = MemberAdded(
                workspace_id=self.workspace,
                member_id=member,
                name=name,
                role="agent",
                capacity=capacity,
            )
            self.record(when + index, added, str(self.workspace))
            joined = GroupMemberAdded(
                workspace_id=self.workspace, group_id=self.group, member_id=member
            )
            self.record(when + index + 0.5, joined, str(self.workspace))
        return self

    def status(self, when: float, name: str, status: AgentStatus) -> None:
        changed = AgentStatusChanged(
            workspace_id=self.workspace,
            member_id=self.ids[name],
            status=status,
            previous="offline",
            reason="set by the agent",
        )
        self.record(when, changed, str(self.workspace))

    def hand_off(self, when: float, rotation: Rotation = "available") -> UUID:
        conversation = uuid.uuid4()
        self.conversations.append(conversation)
        request = HandOffRequested(
            conversation_id=conversation,
            workspace_id=self.workspace,
            phone_number_id="1",
            contact_wa_id=str(len(self.conversations)),
            group_id=self.group,
            rotation=rotation,
            member_id=None,
            reason="asked for a person",
            requested_at=at(when),
        )
        self.record(when, request, str(self.group))
        return conversation

    def close(self, when: float, conversation: UUID) -> None:
        closed = ConversationClosed(
            conversation_id=conversation, reason="agent", closed_at=at(when)
        )
        self.record(when, closed, str(conversation))

    def really_assigned(
        self, when: float, conversation: UUID, name: str, via: str = "rotation"
    ) -> None:
        """What the assignment service stored (only what the tests need of a decision)."""
        decision = Decision(rotation="available", rule="", candidates=[], outcome="")
        assigned = ConversationAssigned(
            conversation_id=conversation,
            workspace_id=self.workspace,
            group_id=self.group,
            member_id=self.ids[name],
            member_name=name,
            via=via,  # type: ignore[arg-type]
            decision=decision,
            assigned_at=at(when),
        )
        self.record(when, assigned, str(conversation), cause=uuid.uuid4())

    def really_transferred(
        self, when: float, conversation: UUID, by: str, to: str, group: UUID | None = None
    ) -> None:
        """A transfer the service carried out: to member ``to`` of this group, or (``group``
        given) to that group, where ``to`` really got it."""
        cause = uuid.uuid4()
        moved = ConversationTransferred(
            conversation_id=conversation,
            workspace_id=self.workspace,
            from_group_id=self.group,
            from_member_id=self.ids[by],
            to_group_id=group or self.group,
            to_member_id=None if group else self.ids[to],
            requested_by=self.ids[by],
            note="",
            transferred_at=at(when),
        )
        if group is not None:
            released = ConversationReleased(
                conversation_id=conversation,
                workspace_id=self.workspace,
                group_id=self.group,
                member_id=self.ids[by],
                reason="transferred",
                released_at=at(when),
            )
            self.record(when, released, str(conversation), cause=cause)
        self.record(when, moved, str(conversation), cause=cause)
        decision = Decision(rotation="transfer", rule="", candidates=[], outcome="")
        assigned = ConversationAssigned(
            conversation_id=conversation,
            workspace_id=self.workspace,
            group_id=group or self.group,
            member_id=self.ids[to],
            member_name=to,
            via="transfer" if group is None else "rotation",
            decision=decision,
            assigned_at=at(when),
        )
        self.record(when, assigned, str(conversation), cause=cause)

    def really_queued(self, when: float, conversation: UUID, claim_only: bool = False) -> None:
        decision = Decision(rotation="no_owner", rule="", candidates=[], outcome="")
        queued = ConversationQueued(
            conversation_id=conversation,
            workspace_id=self.workspace,
            group_id=self.group,
            rotation="no_owner" if claim_only else "available",
            claim_only=claim_only,
            decision=decision,
            queued_at=at(when),
            waiting_since=at(when),
            arrival=None,
        )
        self.record(when, queued, str(conversation), cause=uuid.uuid4())

    def run(
        self,
        rotation: Rotation,
        *,
        start: float = 0,
        end: float = 1000,
        member: str | None = None,
        capacity: int | None = None,
    ) -> tuple[Simulated, Outcome, Outcome]:
        what = WhatIf(
            self.group,
            at(start),
            at(end),
            rotation,
            self.ids[member] if member else None,
            capacity,
        )
        simulated = simulate(self.envelopes, what)
        real, mine = compare(simulated, what)
        return simulated, real, mine

    def members(self, result: Outcome) -> list[str | None]:
        names = {member: name for name, member in self.ids.items()}
        by_id = {c.conversation_id: c for c in result.conversations}
        return [names.get(by_id[c].member_id) for c in self.conversations]  # type: ignore[arg-type]

    def waits(self, result: Outcome) -> list[float | None]:
        by_id = {c.conversation_id: c for c in result.conversations}
        return [
            waited.total_seconds() if (waited := by_id[c].waited) is not None else None
            for c in self.conversations
        ]


def busy_day() -> Story:
    """Three agents of capacity 1; A and B available first, C later; B goes away."""
    story = Story().team("A", "B", "C", capacity=1)
    story.status(10, "A", "available")
    story.status(20, "B", "available")
    first = story.hand_off(30)
    second = story.hand_off(40)
    story.status(50, "C", "available")
    third = story.hand_off(60)
    fourth = story.hand_off(70)
    story.close(100, first)
    story.status(110, "B", "unavailable")
    story.close(120, second)
    fifth = story.hand_off(130)
    story.close(200, third)
    story.close(300, fourth)
    story.close(400, fifth)
    return story


def test_available_gives_the_free_member_whose_turn_is_oldest_and_queues_the_rest() -> None:
    story = busy_day()
    _, _, simulated = story.run("available")
    # A and B in roster order, C once available; the fourth waits for the first close (A);
    # the fifth finds A and C busy and B unavailable, and waits for C's close at 200.
    assert story.members(simulated) == ["A", "B", "C", "A", "C"]
    assert story.waits(simulated) == [0, 0, 0, 30, 70]
    assert (simulated.waits.p50, simulated.waits.p90, simulated.waits.max) == (
        timedelta(0),
        timedelta(seconds=70),
        timedelta(seconds=70),
    )
    loads = {a.name: (a.assigned, a.peak) for a in simulated.agents}
    assert loads == {"A": (2, 1), "B": (1, 1), "C": (2, 1)}


def test_all_takes_each_member_in_turn_whatever_their_status() -> None:
    story = busy_day()
    _, _, simulated = story.run("all")
    # A, B, C in turn; the fourth waits for A's close; the fifth goes to B at once, though
    # B is unavailable (the strict rotation ignores statuses) and B's close freed B at 120.
    assert story.members(simulated) == ["A", "B", "C", "A", "B"]
    assert story.waits(simulated) == [0, 0, 0, 30, 0]


def test_no_owner_waits_for_a_claim_and_counts_until_the_close_without_one() -> None:
    story = busy_day()
    _, _, simulated = story.run("no_owner")
    assert story.members(simulated) == [None] * 5
    assert story.waits(simulated) == [70, 80, 140, 230, 270]
    assert {c.waited_until for c in simulated.conversations} == {"closed"}
    # Every member of the group is listed, given nothing.
    assert {a.name: (a.assigned, a.peak) for a in simulated.agents} == {
        "A": (0, 0),
        "B": (0, 0),
        "C": (0, 0),
    }


def test_a_claim_that_really_happened_takes_the_conversation_in_the_simulation() -> None:
    story = Story().team("A", "B", capacity=2)
    waiting = story.hand_off(10, "no_owner")
    story.really_queued(10, waiting, claim_only=True)
    story.really_assigned(25, waiting, "B", via="claim")
    story.close(90, waiting)
    _, real, simulated = story.run("no_owner")
    assert story.members(simulated) == story.members(real) == ["B"]
    assert story.waits(simulated) == story.waits(real) == [15]


def test_a_wider_capacity_takes_what_waited() -> None:
    story = busy_day()
    _, _, simulated = story.run("available", capacity=2)
    # A (turn 1), B (turn 2), C (never given one), then A has room: its turn is oldest.
    assert story.members(simulated) == ["A", "B", "C", "A", "C"]
    assert story.waits(simulated) == [0, 0, 0, 0, 0]
    loads = {a.name: (a.assigned, a.peak) for a in simulated.agents}
    assert loads["A"] == (2, 2)


def test_specific_gives_every_hand_off_to_the_member_named_whatever_their_load() -> None:
    story = busy_day()
    _, _, simulated = story.run("specific", member="C")
    assert story.members(simulated) == ["C"] * 5
    assert {a.name: a.peak for a in simulated.agents}["C"] == 4


def test_the_period_starts_from_the_group_as_it_really_stood() -> None:
    story = Story().team("A", "B", capacity=1)
    story.status(1, "A", "available")
    story.status(2, "B", "available")
    earlier = story.hand_off(5)
    story.really_assigned(5, earlier, "A")
    later = story.hand_off(50)
    story.close(80, earlier)
    _, _, simulated = story.run("available", start=10)
    # A still holds the earlier one when the period starts: the later goes to B, and A's
    # holding counts in A's peak though it was given before the period.
    by_id = {c.conversation_id: c for c in simulated.conversations}
    assert set(by_id) == {later}
    assert by_id[later].member_id == story.ids["B"]
    assert {a.name: (a.assigned, a.peak) for a in simulated.agents} == {
        "A": (0, 1),
        "B": (1, 1),
    }


def test_replaying_a_history_the_rotation_really_decided_reproduces_it() -> None:
    story = busy_day()
    decided, _, first = story.run("available")
    # Write the simulation's decisions back as if the service had stored them.
    for timed in decided.decisions:
        if isinstance(timed.decision, ConversationAssigned):
            story.record(
                (timed.at - T0).total_seconds(),
                timed.decision,
                str(timed.decision.conversation_id),
                cause=uuid.uuid4(),
            )
    simulated, real, again = story.run("available")
    assert story.members(real) == story.members(again) == story.members(first)
    assert story.waits(real) == story.waits(again)
    assert real.agents == again.agents
    what = WhatIf(story.group, at(0), at(1000), "available")
    assert check(simulated, what, real, again) == []
    assert check(simulated, replace(what, capacity=1), real, again) is None
    assert check(simulated, replace(what, rotation="all"), real, again) is None


def test_the_report_names_where_replaying_the_real_rotation_departs_from_reality() -> None:
    story = Story().team("A", "B", capacity=1)
    story.status(1, "A", "available")
    story.status(2, "B", "available")
    first = story.hand_off(10)
    story.really_assigned(10, first, "B")  # the views had seen A go away; the events had not
    story.close(50, first)
    what = WhatIf(story.group, at(0), at(1000), "available")
    simulated = simulate(story.envelopes, what)
    real, mine = compare(simulated, what)
    assert check(simulated, what, real, mine) == [first]
    printed = text(simulated, what, real, mine)
    assert f"departs from reality for 1 of 1 conversations ({first})" in printed


def test_a_conversation_still_waiting_at_the_end_waits_until_the_end() -> None:
    story = Story().team("A", capacity=1)
    waiting = story.hand_off(10)
    _, _, simulated = story.run("available", end=60)
    [only] = simulated.conversations
    assert (only.conversation_id, only.waited, only.waited_until) == (
        waiting,
        timedelta(seconds=50),
        "period_end",
    )


def test_what_cannot_be_simulated_is_refused_with_the_reason() -> None:
    story = busy_day()
    with pytest.raises(SimulationRefused, match="no group"):
        simulate(story.envelopes, WhatIf(uuid.uuid4(), at(0), at(10), "available"))
    with pytest.raises(SimulationRefused, match="after its start"):
        simulate(story.envelopes, WhatIf(story.group, at(10), at(10), "available"))
    with pytest.raises(SimulationRefused, match="no member"):
        simulate(story.envelopes, WhatIf(story.group, at(0), at(10), "specific", uuid.uuid4()))


@pytest.mark.parametrize(
    ("asked", "says"),
    [
        (Asked("2027-03-01T10:00", "2027-03-01T09:00", str(uuid.uuid4()), "all"), "must be after"),
        (
            Asked("2027-03-01T09:00", "2027-03-01T10:00", str(uuid.uuid4()), "fast"),
            "unknown rotation",
        ),
        (Asked("yesterday", "2027-03-01T10:00", str(uuid.uuid4()), "all"), "not an ISO 8601"),
        (Asked("2027-03-01T09:00", "2027-03-01T10:00", "support", "all"), "not a group id"),
        (Asked(None, "2027-03-01T10:00", None, "all"), "missing --from, --group"),
        (Asked("2027-03-01T09:00", "2027-03-01T10:00", str(uuid.uuid4()), "specific"), "--member"),
        (
            Asked("2027-03-01T09:00", "2027-03-01T10:00", str(uuid.uuid4()), "all", capacity="0"),
            "--capacity",
        ),
    ],
)
def test_a_bad_command_line_says_what_is_wrong(asked: Asked, says: str) -> None:
    with pytest.raises(BadRequest, match=says):
        what_if(asked)


def test_an_instant_without_an_offset_is_utc() -> None:
    asked = Asked("2027-03-01T09:00", "2027-03-01T10:00+01:00", str(uuid.uuid4()), "all")
    with pytest.raises(BadRequest, match="must be after"):
        what_if(asked)  # 10:00+01:00 is 09:00 UTC


def test_percentiles_are_nearest_rank() -> None:
    waits = [timedelta(seconds=s) for s in (5, 1, 4, 2, 3, 10, 9, 8, 7, 6)]
    assert percentile(waits, 50) == timedelta(seconds=5)
    assert percentile(waits, 90) == timedelta(seconds=9)
    assert percentile(waits[:1], 90) == timedelta(seconds=5)
    assert percentile([], 50) is None


def test_a_transfer_to_a_member_moves_the_load_and_the_queue_drains_onto_who_let_it_go() -> None:
    story = Story().team("A", "B", capacity=1)
    story.status(1, "A", "available")
    first = story.hand_off(10)
    story.really_assigned(10, first, "A")
    second = story.hand_off(20)  # A is at capacity, B offline: it waits
    story.really_queued(20, second)
    story.really_transferred(50, first, by="A", to="B")
    story.close(90, first)
    story.close(95, second)
    _, _, simulated = story.run("available")
    # A let the first go at 50 and takes the second from the queue then.
    assert story.members(simulated) == ["A", "A"]
    assert story.waits(simulated) == [0, 30]
    loads = {a.name: (a.assigned, a.peak) for a in simulated.agents}
    assert loads == {"A": (2, 1), "B": (1, 1)}


def test_a_transfer_only_the_assignee_may_make_is_refused_when_someone_else_holds_it() -> None:
    story = Story().team("A", "B", capacity=1)
    story.status(1, "A", "available")
    story.status(2, "B", "available")
    first = story.hand_off(10)
    story.really_assigned(10, first, "A")
    story.really_transferred(50, first, by="A", to="B")
    story.close(90, first)
    simulated, _, _ = story.run("specific", member="B")
    # B held it from the start in the simulation: A's transfer is refused, as the service
    # would refuse it, and B keeps it.
    refused = [t.decision for t in simulated.decisions if t.at == at(50)]
    assert [type(d).__name__ for d in refused] == ["AssignmentCommandRejected"]


def test_what_another_group_gives_a_member_counts_in_their_load() -> None:
    story = Story().team("A", "B", capacity=1)
    other = uuid.uuid4()
    story.record(
        -90,
        GroupCreated(workspace_id=story.workspace, group_id=other, name="Sales"),
        str(story.workspace),
    )
    story.status(1, "A", "available")
    story.status(2, "B", "available")
    first = story.hand_off(10)
    story.really_assigned(10, first, "A")
    story.really_transferred(20, first, by="A", to="B", group=other)  # Sales gave it to B
    second = story.hand_off(30)
    story.close(90, first)
    story.close(95, second)
    _, _, simulated = story.run("available")
    # B holds the first in Sales (capacity 1): the second goes to A, free since 20.
    assert story.members(simulated) == ["A", "A"]
    assert story.waits(simulated) == [0, 0]


def test_the_comparison_reads_as_a_table_with_each_conversations_fate() -> None:
    story = busy_day()
    what = WhatIf(story.group, at(0), at(1000), "all")
    simulated = simulate(story.envelopes, what)
    printed = text(simulated, what, *compare(simulated, what)).splitlines()
    assert printed[1] == "real rotation: available; simulated: all"
    assert printed[5].split() == ["p90", "4m", "30s", "30.000s"]  # 270 s real, 30 s simulated
    assert printed[10].split() == ["B", "0,", "0", "2,", "1"]
    fourth = next(line for line in printed if line.startswith(str(story.conversations[3])))
    assert fourth.split()[1:] == [
        "nobody",
        "(closed)",
        "after",
        "3m",
        "50s",
        "A",
        "after",
        "30.000s",
    ]


def test_the_loads_list_who_was_in_the_group_during_the_period() -> None:
    story = Story().team("A", "B", "C", capacity=1)
    gone = GroupMemberRemoved(
        workspace_id=story.workspace, group_id=story.group, member_id=story.ids["C"]
    )
    story.record(-10, gone, str(story.workspace))
    dave = uuid.uuid4()
    story.ids["D"] = dave
    added = MemberAdded(
        workspace_id=story.workspace, member_id=dave, name="D", role="agent", capacity=1
    )
    story.record(20, added, str(story.workspace))
    joined = GroupMemberAdded(workspace_id=story.workspace, group_id=story.group, member_id=dave)
    story.record(21, joined, str(story.workspace))
    _, real, simulated = story.run("available")
    assert [a.name for a in simulated.agents] == [a.name for a in real.agents] == ["A", "B", "D"]


def test_a_member_becoming_available_takes_what_waits() -> None:
    story = Story().team("A", "B", capacity=1)
    waiting = story.hand_off(10)  # everyone offline
    story.status(25, "B", "available")
    story.close(90, waiting)
    _, _, simulated = story.run("available")
    assert story.members(simulated) == ["B"]
    assert story.waits(simulated) == [15]


def test_a_deactivated_members_conversations_go_back_to_the_rotation() -> None:
    story = Story().team("A", "B", capacity=1)
    story.status(1, "A", "available")
    story.status(2, "B", "available")
    first = story.hand_off(10)
    gone = MemberDeactivated(workspace_id=story.workspace, member_id=story.ids["A"])
    story.record(40, gone, str(story.workspace))
    story.close(90, first)
    simulated, _, outcome = story.run("available")
    assert story.members(outcome) == ["A"]  # its first assignment
    moved = [t.decision for t in simulated.decisions if t.at == at(40)]
    assert [type(d).__name__ for d in moved] == ["ConversationReleased", "ConversationAssigned"]
    assert isinstance(moved[1], ConversationAssigned)
    assert moved[1].member_id == story.ids["B"]
    loads = {a.name: (a.assigned, a.peak) for a in outcome.agents}
    assert loads == {"A": (1, 1), "B": (1, 1)}


def test_a_claim_the_service_refused_may_stand_in_the_simulation() -> None:
    story = Story().team("A", "B", capacity=1)
    story.status(1, "A", "available")
    first = story.hand_off(10)
    story.really_assigned(10, first, "A")
    refused = AssignmentCommandRejected(
        command_id=uuid.uuid4(),
        command_type=ClaimConversation.event_type,
        conversation_id=first,
        workspace_id=story.workspace,
        member_id=story.ids["B"],
        reason="already assigned to A",
        conflict=True,
    )
    story.record(30, refused, str(first))
    story.close(90, first)
    _, real, simulated = story.run("no_owner")
    # Nobody was given it by rotation: B's claim, refused in reality, takes it at 30.
    assert story.members(real) == ["A"]
    assert story.members(simulated) == ["B"]
    assert story.waits(simulated) == [20]
