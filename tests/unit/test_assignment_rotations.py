"""Each rotation strategy on its own: given a group's roster, statuses, loads, capacities and
turns, then the member chosen (or nobody), every candidate's reason and the outcome's words.
And the draft that carries one record's decisions: pure, folding each into loads and groups.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import get_args
from uuid import UUID

import pytest

from events.assignment import ConversationAssigned, ConversationQueued, ConversationReleased
from events.directory import AgentStatus
from events.flows import Rotation
from services.assignment.draft import Draft
from services.assignment.facts import Group, GroupFacts, MemberFacts, World
from services.assignment.group_state import Entry, GroupState, Turn
from services.assignment.placing import drain, place
from services.assignment.rotations import (
    ROTATIONS,
    RULES,
    Choice,
    Lineup,
    available,
    drained_by,
    no_owner,
    specific,
    strict_rotation,
)

pytestmark = pytest.mark.unit

WORKSPACE = UUID(int=1)
GROUP = UUID(int=2)
A, B, C, OUTSIDER = UUID(int=11), UUID(int=12), UUID(int=13), UUID(int=14)
T0 = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)


def member(
    member_id: UUID,
    name: str,
    *,
    status: AgentStatus = "available",
    capacity: int = 2,
    active: bool = True,
) -> MemberFacts:
    return MemberFacts(member_id, name, "agent", active, status, capacity, 0)


def lineup(
    *members: MemberFacts,
    roster: tuple[UUID, ...] = (A, B, C),
    loads: dict[UUID, int] | None = None,
    turns: dict[UUID, Turn] | None = None,
    cursor: UUID | None = None,
) -> Lineup:
    state = GroupState(WORKSPACE, GROUP, turns=turns or {}, all_cursor=cursor)
    facts = GroupFacts(GROUP, "Ventas", True, False, roster)
    return Lineup(Group(state, facts), {m.member_id: m for m in members}, loads or {})


ABC = (member(A, "A"), member(B, "B"), member(C, "C"))


def reasons(choice: Choice) -> dict[str, str | None]:
    return {c.name: c.skipped for c in choice.candidates}


def test_every_rotation_has_a_strategy() -> None:
    assert set(ROTATIONS) == set(get_args(Rotation))


# -- available ----------------------------------------------------------------------------


def test_available_takes_the_member_whose_last_turn_is_oldest() -> None:
    turns = {A: Turn(3, T0 + timedelta(seconds=3)), B: Turn(1, T0), C: Turn(2, T0)}
    choice = available(lineup(*ABC, turns=turns, loads={B: 1}))
    assert choice.member_id == B
    assert choice.rule == RULES["available"]
    assert choice.reason == (
        f"available, with room (1/2), and last given one at {T0.isoformat()} in this group"
    )
    assert reasons(choice) == {
        "A": "not their turn: given a conversation of this group more recently than B"
        f" (the group's assignment #3 at {(T0 + timedelta(seconds=3)).isoformat()};"
        f" B's #1 at {T0.isoformat()})",
        "B": None,
        "C": "not their turn: given a conversation of this group more recently than B"
        f" (the group's assignment #2 at {T0.isoformat()}; B's #1 at {T0.isoformat()})",
    }


def test_available_between_two_never_given_one_the_roster_decides() -> None:
    choice = available(lineup(*ABC, roster=(C, A, B), turns={B: Turn(1, T0)}))
    assert choice.member_id == C
    assert reasons(choice)["A"] == (
        "not their turn: neither they nor C were given a conversation of this group yet,"
        " and C comes first in the group"
    )
    assert reasons(choice)["B"] == (
        f"not their turn: given a conversation of this group at {T0.isoformat()}; C never was"
    )
    assert choice.reason == "available, with room (0/2), and never given one in this group"


def test_available_skips_status_capacity_and_deactivated_saying_so() -> None:
    members = (
        member(A, "A", status="offline"),
        member(B, "B", capacity=1),
        member(C, "C", active=False),
    )
    choice = available(lineup(*members, loads={B: 1}))
    assert choice.member_id is None
    assert not choice.claim_only
    assert choice.reason == (
        "nobody can take it now (A: status offline, B: at capacity (1/1), C: deactivated)"
    )
    assert [c.chosen for c in choice.candidates] == [False, False, False]


def test_a_roster_member_the_views_do_not_know_is_left_out() -> None:
    choice = available(lineup(member(B, "B"), roster=(A, B)))
    assert [c.name for c in choice.candidates] == ["B"]
    assert choice.member_id == B


def test_an_empty_group_says_it_has_no_members() -> None:
    for strategy in (available, strict_rotation):
        choice = strategy(lineup(roster=()), None)
        assert (choice.member_id, choice.reason) == (None, "group Ventas has no members")
        assert choice.candidates == ()


# -- all ----------------------------------------------------------------------------------


def test_all_goes_on_after_the_member_chosen_last_whatever_the_status() -> None:
    members = (member(A, "A"), member(B, "B", status="offline"), member(C, "C"))
    choice = strict_rotation(lineup(*members, cursor=A, loads={B: 1}))
    assert choice.member_id == B
    assert choice.rule == RULES["all"]
    assert choice.reason == "next in the strict rotation (load 1/2)"
    assert reasons(choice) == {
        "A": "after B in the rotation",
        "B": None,
        "C": "after B in the rotation",
    }


def test_all_passes_over_members_at_capacity_and_wraps_around() -> None:
    members = (member(A, "A"), member(B, "B", capacity=1), member(C, "C", active=False))
    choice = strict_rotation(lineup(*members, cursor=A, loads={B: 1}))
    assert choice.member_id == A
    assert reasons(choice) == {"A": None, "B": "at capacity (1/1)", "C": "deactivated"}


def test_all_with_nobody_lists_the_reasons_in_the_rotations_order() -> None:
    members = (member(A, "A", capacity=0), member(B, "B", active=False), member(C, "C", capacity=0))
    choice = strict_rotation(lineup(*members, cursor=A))
    assert choice.reason == (
        "nobody can take it now (B: deactivated, C: at capacity (0/0), A: at capacity (0/0))"
    )


# -- specific and no_owner ------------------------------------------------------------------


def test_specific_takes_the_member_named_whatever_the_status_and_load() -> None:
    members = (member(A, "A"), member(B, "B", status="offline", capacity=1), member(C, "C"))
    choice = specific(lineup(*members, loads={B: 1}), B)
    assert (choice.member_id, choice.reason) == (B, "the member named")
    assert reasons(choice) == {"A": "not the member named", "B": None, "C": "not the member named"}


@pytest.mark.parametrize(
    ("named", "why"),
    [
        (None, "no member was named"),
        (OUTSIDER, "member Zoe is not in group Ventas"),
        (UUID(int=99), f"member {UUID(int=99)} is not in group Ventas"),
        (C, "member C is deactivated"),
    ],
)
def test_specific_without_a_member_to_take_it_waits_for_the_available_rule(
    named: UUID | None, why: str
) -> None:
    members = (*ABC[:2], member(C, "C", active=False), member(OUTSIDER, "Zoe"))
    choice = specific(lineup(*members), named)
    assert choice.member_id is None
    assert not choice.claim_only
    assert choice.reason == f"{why}; the available rule takes it from the queue"
    expected_c = why if named == C else "not the member named"
    assert reasons(choice) == {
        "A": "not the member named",
        "B": "not the member named",
        "C": expected_c,
    }


def test_no_owner_chooses_nobody_and_waits_for_a_claim() -> None:
    choice = no_owner(lineup(*ABC), A)
    assert (choice.member_id, choice.claim_only) == (None, True)
    assert choice.reason == "it waits until a member claims it"
    assert set(reasons(choice).values()) == {"no_owner: nobody is chosen"}


def test_a_queue_is_drained_by_all_for_what_came_under_all_else_by_available() -> None:
    assert [drained_by(r) for r in get_args(Rotation)] == [
        "available",
        "all",
        "available",
        "available",
    ]


# -- the draft ------------------------------------------------------------------------------


def draft(*members: MemberFacts, state: GroupState | None = None) -> Draft:
    facts = GroupFacts(GROUP, "Ventas", True, False, (A, B, C))
    here = Group(state or GroupState(WORKSPACE, GROUP), facts)
    world = World(
        here=here,
        workspace_queue=Group(GroupState(WORKSPACE, None), GroupFacts.workspace_queue()),
        members={m.member_id: m for m in members},
        closed=frozenset(),
    )
    return Draft.start(world, T0)


def test_placing_folds_the_decision_into_the_group_and_the_loads_and_changes_nothing_else() -> None:
    before = draft(*ABC)
    after = place(before, GROUP, UUID(int=500), "available", named=None, waiting_since=T0, note="")
    assert before.out == ()
    assert before.loads == {A: 0, B: 0, C: 0}
    [assigned] = after.out
    assert isinstance(assigned, ConversationAssigned)
    assert (assigned.member_id, assigned.via, assigned.assigned_at) == (A, "rotation", T0)
    assert after.loads == {A: 1, B: 0, C: 0}
    assert after.group(GROUP).state.turns[A] == Turn(1, T0)
    again = place(after, GROUP, UUID(int=501), "available", named=None, waiting_since=T0, note="")
    assert [e.member_id for e in again.out if isinstance(e, ConversationAssigned)] == [A, B]


def test_a_release_frees_the_members_load_and_a_drain_serves_the_longest_waiting() -> None:
    entries = {
        UUID(int=600): Entry(UUID(int=600), "assigned", "available", False, A, T0, 1),
        UUID(int=601): Entry(UUID(int=601), "queued", "available", False, None, T0, 3),
        UUID(int=602): Entry(UUID(int=602), "queued", "no_owner", True, None, T0, 2),
        UUID(int=603): Entry(
            UUID(int=603), "queued", "available", False, None, T0 - timedelta(seconds=1), 4
        ),
    }
    state = GroupState(WORKSPACE, GROUP, entries=entries, order=4, sequence=1)
    start = draft(replace(ABC[0], capacity=1, load=1), state=state)
    released = start.release(GROUP, entries[UUID(int=600)], "member_deactivated")
    assert isinstance(released.out[-1], ConversationReleased)
    assert released.loads == {A: 0}
    drained = drain(released, GROUP)
    [served] = drained.out[1:]
    assert isinstance(served, ConversationAssigned)
    # Waiting since a second earlier: served before the one that arrived first.
    assert (served.conversation_id, served.via) == (UUID(int=603), "queue")
    assert served.decision.outcome == (
        f"assigned to A from the queue: waiting since {(T0 - timedelta(seconds=1)).isoformat()};"
        " available, with room (0/1), and never given one in this group"
    )
    assert drained.loads == {A: 1}


def test_a_queued_decision_says_its_arrival_in_the_group() -> None:
    start = draft(member(A, "A", capacity=0))
    first = place(start, GROUP, UUID(int=700), "available", named=None, waiting_since=T0, note="")
    second = place(first, GROUP, UUID(int=701), "all", named=None, waiting_since=T0, note="x; ")
    queued = [e for e in second.out if isinstance(e, ConversationQueued)]
    assert [q.arrival for q in queued] == [1, 2]
    assert queued[1].decision.outcome == "queued: x; nobody can take it now (A: at capacity (0/0))"
