"""Pure decisions of the assignment service: who takes a conversation of a group, and why.

The truth of a group is its stream of decisions, folded by :func:`evolve` into a
:class:`GroupState` (:mod:`services.assignment.group_state`). What the stream does not know
(the roster, each member's status, capacity and load across groups, closed conversations)
comes from the service's views as a :class:`World` (:mod:`services.assignment.facts`), read
before deciding; the append transaction re-checks what two replicas could race on (a
member's capacity, a conversation closing meanwhile).

:func:`decide` is given one record (a hand-off, a claim, a transfer or a nudge), the groups
it may touch and the event time, and returns the decisions, each carrying a
:class:`~events.assignment.Decision` that lists every member of the roster with the reason it
was or was not chosen. The rules are in small pure functions: one per record
(:mod:`services.assignment.requests`), placing and draining (:mod:`services.assignment.placing`),
and one strategy per rotation (:mod:`services.assignment.rotations`), all passing a frozen
:class:`~services.assignment.draft.Draft` along. No I/O, no clock: the same inputs always give
the same decisions.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from uuid import UUID, uuid5

from events.assignment import (
    ClaimConversation,
    GroupNudged,
    TransferConversation,
    group_key,
)
from events.base import Payload
from events.flows import HandOffRequested
from services.assignment import requests
from services.assignment.draft import Draft
from services.assignment.facts import Group, GroupFacts, Holding, MemberFacts, World
from services.assignment.group_state import Entry, GroupState, Turn, evolve
from services.assignment.rotations import RULES

__all__ = [
    "RULES",
    "Entry",
    "Group",
    "GroupFacts",
    "GroupState",
    "Holding",
    "MemberFacts",
    "Turn",
    "World",
    "decide",
    "evolve",
    "group_of_key",
    "group_stream",
    "members_named",
    "rejection_stream",
]

ASSIGNMENT_NAMESPACE = UUID("3f6c1e0a-94d2-4b7e-8a15-c2d9e7f40b63")


def group_stream(workspace_id: UUID, group_id: UUID | None) -> UUID:
    """The store's stream of a group's decisions: the group id, or one per workspace queue."""
    if group_id is not None:
        return group_id
    return uuid5(ASSIGNMENT_NAMESPACE, group_key(workspace_id, None))


def rejection_stream(command_id: UUID) -> UUID:
    """A refused claim or transfer is kept in a stream of its own (one per command)."""
    return uuid5(ASSIGNMENT_NAMESPACE, f"rejection:{command_id}")


def group_of_key(key: str) -> UUID | None:
    """The group a record of ``assignment.requests`` is about, from its Kafka key."""
    return None if key.startswith("default:") else UUID(key)


def decide(command: Payload, world: World, *, at: datetime, command_id: UUID) -> list[Payload]:
    """The decisions one record of ``assignment.requests`` leads to, in order."""
    draft = Draft.start(world, at)
    match command:
        case HandOffRequested():
            draft = requests.hand_off(draft, command)
        case GroupNudged():
            draft = requests.nudge(draft, command)
        case ClaimConversation():
            draft = requests.claim(draft, command, command_id)
        case TransferConversation():
            draft = requests.transfer(draft, command, command_id)
        case _:
            pass
    return list(draft.out)


def members_named(command: Payload) -> Iterator[UUID]:
    """The members a record names (beside the rosters), whose facts the decision needs."""
    match command:
        case HandOffRequested(member_id=member_id) if member_id is not None:
            yield member_id
        case ClaimConversation(member_id=member_id):
            yield member_id
        case TransferConversation(requested_by=requested_by, to_member_id=to_member_id):
            yield requested_by
            if to_member_id is not None:
                yield to_member_id
        case GroupNudged(member_id=member_id) if member_id is not None:
            yield member_id
        case _:
            return
