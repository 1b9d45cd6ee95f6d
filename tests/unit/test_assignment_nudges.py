"""The router's rules: given a directory or conversation event and what the views said, then
the groups nudged (and the questions asked of the views)."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import pytest

from events.assignment import GroupNudged
from events.conversation import ConversationClosed
from events.directory import (
    AgentStatusChanged,
    GroupCreated,
    GroupDeleted,
    GroupMemberAdded,
    GroupMemberRemoved,
    MemberAdded,
    MemberDeactivated,
    MemberUpdated,
)
from services.assignment.nudges import (
    FactsWanted,
    Holder,
    RouterFacts,
    decide_nudges,
    facts_wanted,
)

pytestmark = pytest.mark.unit

WORKSPACE = UUID(int=1)
MEMBER = UUID(int=2)
SALES, SUPPORT, BILLING = UUID(int=10), UUID(int=11), UUID(int=12)
CONVERSATION = UUID(int=20)
AT = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)


def nudged(
    group_id: UUID | None,
    cause: str,
    detail: str,
    member_id: UUID | None = MEMBER,
    conversation_id: UUID | None = None,
) -> GroupNudged:
    return GroupNudged.model_validate(
        {
            "workspace_id": WORKSPACE,
            "group_id": group_id,
            "cause": cause,
            "member_id": member_id,
            "conversation_id": conversation_id,
            "detail": detail,
            "nudged_at": AT,
        },
        strict=False,
    )


def updated(capacity: int) -> MemberUpdated:
    return MemberUpdated(
        workspace_id=WORKSPACE, member_id=MEMBER, name="Ana", role="agent", capacity=capacity
    )


def status(new: str) -> AgentStatusChanged:
    return AgentStatusChanged.model_validate(
        {
            "workspace_id": WORKSPACE,
            "member_id": MEMBER,
            "status": new,
            "previous": "offline",
            "reason": "set by the member",
        }
    )


def closed() -> ConversationClosed:
    return ConversationClosed(conversation_id=CONVERSATION, reason="agent", closed_at=AT)


# -- a member's capacity -----------------------------------------------------------------


def test_a_raised_capacity_nudges_the_members_groups_with_conversations_waiting() -> None:
    assert facts_wanted(updated(4)) == FactsWanted(capacity_of=MEMBER, waiting_groups_of=MEMBER)
    facts = RouterFacts(capacity=2, waiting_groups=(SALES, SUPPORT))
    assert decide_nudges(updated(4), facts, at=AT) == [
        nudged(SALES, "member_capacity_changed", "capacity raised to 4"),
        nudged(SUPPORT, "member_capacity_changed", "capacity raised to 4"),
    ]


@pytest.mark.parametrize("capacity", [1, 2])
def test_a_capacity_lowered_or_unchanged_nudges_nobody(capacity: int) -> None:
    facts = RouterFacts(capacity=2, waiting_groups=(SALES,))
    assert decide_nudges(updated(capacity), facts, at=AT) == []


def test_a_member_the_view_does_not_know_yet_nudges_nobody() -> None:
    assert (
        decide_nudges(updated(9), RouterFacts(capacity=None, waiting_groups=(SALES,)), at=AT) == []
    )


# -- a member's status and activity -------------------------------------------------------


def test_becoming_available_nudges_the_groups_with_conversations_waiting() -> None:
    assert facts_wanted(status("available")) == FactsWanted(waiting_groups_of=MEMBER)
    facts = RouterFacts(waiting_groups=(BILLING,))
    assert decide_nudges(status("available"), facts, at=AT) == [
        nudged(BILLING, "member_available", "now available")
    ]


@pytest.mark.parametrize("new", ["unavailable", "offline"])
def test_going_away_asks_nothing_and_nudges_nobody(new: str) -> None:
    assert facts_wanted(status(new)) == FactsWanted()
    assert decide_nudges(status(new), RouterFacts(waiting_groups=(SALES,)), at=AT) == []


def test_a_deactivated_member_nudges_every_group_where_it_holds_conversations() -> None:
    event = MemberDeactivated(workspace_id=WORKSPACE, member_id=MEMBER)
    assert facts_wanted(event) == FactsWanted(holding_groups_of=MEMBER)
    facts = RouterFacts(holding_groups=(SALES, None))
    detail = "its open conversations go back to the rotation"
    assert decide_nudges(event, facts, at=AT) == [
        nudged(SALES, "member_deactivated", detail),
        nudged(None, "member_deactivated", detail),  # the workspace queue's decider
    ]
    assert decide_nudges(event, RouterFacts(), at=AT) == []


# -- rosters and groups ---------------------------------------------------------------------


def test_a_member_added_to_a_group_nudges_it_only_when_conversations_wait() -> None:
    event = GroupMemberAdded(workspace_id=WORKSPACE, group_id=SALES, member_id=MEMBER)
    assert facts_wanted(event) == FactsWanted(waiting_in=SALES)
    assert decide_nudges(event, RouterFacts(group_waiting=True), at=AT) == [
        nudged(SALES, "member_added_to_group", "a new member may take waiting conversations")
    ]
    assert decide_nudges(event, RouterFacts(group_waiting=False), at=AT) == []


def test_a_member_removed_from_a_group_nudges_it_only_when_it_holds_conversations_there() -> None:
    event = GroupMemberRemoved(workspace_id=WORKSPACE, group_id=SALES, member_id=MEMBER)
    assert facts_wanted(event) == FactsWanted(holding_groups_of=MEMBER)
    assert decide_nudges(event, RouterFacts(holding_groups=(SUPPORT, SALES)), at=AT) == [
        nudged(
            SALES,
            "member_removed_from_group",
            "its open conversations of the group go back to the rotation",
        )
    ]
    assert decide_nudges(event, RouterFacts(holding_groups=(SUPPORT,)), at=AT) == []


def test_a_deleted_group_is_nudged_to_move_its_queue() -> None:
    event = GroupDeleted(workspace_id=WORKSPACE, group_id=SALES)
    assert facts_wanted(event) == FactsWanted()
    assert decide_nudges(event, RouterFacts(), at=AT) == [
        nudged(SALES, "group_deleted", "its queue moves to the workspace queue", member_id=None)
    ]


@pytest.mark.parametrize(
    "event",
    [
        MemberAdded(workspace_id=WORKSPACE, member_id=MEMBER, name="Ana", role="agent", capacity=3),
        GroupCreated(workspace_id=WORKSPACE, group_id=SALES, name="Ventas"),
    ],
)
def test_what_adds_no_room_and_no_work_nudges_nobody(event: MemberAdded | GroupCreated) -> None:
    assert facts_wanted(event) == FactsWanted()
    assert decide_nudges(event, RouterFacts(), at=AT) == []


# -- a conversation closing -------------------------------------------------------------------


def test_a_close_nudges_its_holder_and_the_members_other_groups_with_conversations_waiting() -> (
    None
):
    assert facts_wanted(closed()) == FactsWanted(holder_of=CONVERSATION)
    holder = Holder(WORKSPACE, SALES, MEMBER, member_waiting_groups=(SALES, SUPPORT))
    assert decide_nudges(closed(), RouterFacts(holder=holder), at=AT) == [
        nudged(SALES, "conversation_closed", "release it", conversation_id=CONVERSATION),
        nudged(
            SUPPORT,
            "conversation_closed",
            "its member has room again",
            conversation_id=CONVERSATION,
        ),
    ]


def test_a_close_of_a_queued_conversation_nudges_only_its_group() -> None:
    holder = Holder(WORKSPACE, None, None)
    assert decide_nudges(closed(), RouterFacts(holder=holder), at=AT) == [
        nudged(
            None, "conversation_closed", "release it", member_id=None, conversation_id=CONVERSATION
        )
    ]


def test_a_close_of_a_conversation_nobody_holds_nudges_nobody() -> None:
    assert decide_nudges(closed(), RouterFacts(holder=None), at=AT) == []
