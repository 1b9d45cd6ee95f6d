"""What-if routing (pure): one group's period replayed through another rotation.

Given every stored event of the group's workspace (the directory's, the flows' hand-offs,
the conversations' closes, the assignment service's decisions), :func:`simulate` starts from
the group as it really stood at the period's start and replays, in event time:

* directory events (statuses, capacities, rosters, deactivations), which the router's rules
  (:func:`~services.assignment.nudges.decide_nudges`) turn into nudges for the group;
* the period's hand-offs to the group, their rotation replaced by the one simulated;
* the claims and transfers agents really made, rebuilt from the decisions they caused;
* closes, at the time they really happened, whoever holds the conversation then;
* what other groups really assigned and released (it counts in their members' loads).

Each record goes to the assignment service's own decider
(:func:`~services.assignment.decide.decide`: the same rotations, placing and draining), with
a world the simulation keeps (:mod:`services.operations.simulated_world`). No I/O, no clock:
the same history gives the same decisions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import reduce
from typing import Literal
from uuid import UUID, uuid5

from events.assignment import (
    AssignmentCommandRejected,
    ClaimConversation,
    ConversationAssigned,
    ConversationQueued,
    ConversationReleased,
    ConversationTransferred,
    HandOffDeclined,
    TransferConversation,
)
from events.base import Payload
from events.conversation import ConversationClosed
from events.directory import (
    GroupCreated,
    GroupMemberAdded,
    GroupMemberRemoved,
    MemberAdded,
    MemberUpdated,
)
from events.envelope import Envelope
from events.flows import HandOffRequested, Rotation
from services.assignment.decide import decide
from services.assignment.draft import Draft
from services.assignment.group_state import GroupState, evolve
from services.assignment.nudges import decide_nudges, facts_wanted
from services.assignment.placing import place
from services.operations.simulated_world import DIRECTORY_EVENTS, SimulatedWorld

DECISIONS = (
    ConversationQueued,
    ConversationAssigned,
    ConversationReleased,
    ConversationTransferred,
    HandOffDeclined,
    AssignmentCommandRejected,
)
# Nudges and rebuilt commands are given ids of their own, derived from their cause.
SIMULATION_NAMESPACE = UUID("6d0f3b8e-2a41-4c7d-9e15-b83f0c6a2d94")


class SimulationRefused(ValueError):
    """The request cannot be simulated (an unknown group, an empty period...): why, in words."""


@dataclass(frozen=True)
class WhatIf:
    """What to simulate: the group, the period ``[start, end]`` and the rotation every
    hand-off of the period uses instead of its own (``member``: the one ``specific`` names;
    ``capacity``: every member's capacity, None to keep each one's real capacity)."""

    group_id: UUID
    start: datetime
    end: datetime
    rotation: Rotation
    member: UUID | None = None
    capacity: int | None = None


@dataclass(frozen=True)
class Timed:
    """A decision and when it was taken (its record's event time)."""

    at: datetime
    decision: Payload


@dataclass(frozen=True)
class History:
    """What the stores say about the group and its period, sorted out (the real side)."""

    workspace_id: UUID
    group_name: str
    seed: GroupState  # the group's state when the period starts, folded from its decisions
    hand_offs: tuple[Timed, ...]  # the period's hand-offs to the group (HandOffRequested)
    closes: dict[UUID, datetime]  # every conversation closed before the period's end
    real: tuple[Timed, ...]  # the group's real decisions in the period
    members: dict[UUID, str]  # every member's name, for the report
    roster: frozenset[UUID]  # who was in the group at some time in the period


@dataclass(frozen=True)
class Simulated:
    history: History
    decisions: tuple[Timed, ...]  # the simulated decisions of the group, in order


Kind = Literal["directory", "close", "request", "elsewhere"]
# Among records of one instant: the directory first (a status set before a hand-off in the
# same microsecond was set first), closes, the group's records, then what other groups did
# (a transfer to another group is placed there in the same instant, after it left this one).
RANK: dict[Kind, int] = {"directory": 0, "close": 1, "request": 2, "elsewhere": 3}


@dataclass(frozen=True)
class _Step:
    at: datetime
    kind: Kind
    payload: Payload
    cause: UUID  # the id a rebuilt command is decided under
    order: int  # its place in the stores' order, a stable tiebreak


def simulate(envelopes: Iterable[Envelope], what: WhatIf) -> Simulated:
    """The group's period as the rotation ``what.rotation`` would have decided it."""
    if what.end <= what.start:
        raise SimulationRefused("the period's end (--to) must be after its start (--from)")
    unique = list({e.event_id: e for e in envelopes}.values())
    workspace_id, group_name = _group(unique, what.group_id)
    mine = [e for e in unique if e.workspace_id == workspace_id and e.occurred_at <= what.end]
    history = _history(mine, what, workspace_id, group_name)
    if what.member is not None and what.member not in history.members:
        raise SimulationRefused(f"no member {what.member} in the group's workspace")
    world = SimulatedWorld.start(workspace_id, what.group_id, capacity=what.capacity)
    world = replace(world, groups={**world.groups, what.group_id: history.seed})
    decided: list[Timed] = []
    for step in _steps(mine, what, history):
        if step.at < what.start:
            world = _before(world, step)
            continue
        world, made = _replay(world, step, what)
        decided.extend(Timed(step.at, decision) for decision in made)
    return Simulated(history, tuple(decided))


def _group(envelopes: Sequence[Envelope], group_id: UUID) -> tuple[UUID, str]:
    for envelope in envelopes:
        match envelope.payload:
            case GroupCreated(group_id=found, workspace_id=workspace, name=name) if (
                found == group_id
            ):
                return workspace, name
            case _:
                continue
    raise SimulationRefused(f"no group {group_id} in the directory's store")


def _history(
    envelopes: Sequence[Envelope], what: WhatIf, workspace_id: UUID, group_name: str
) -> History:
    ordered = sorted(envelopes, key=lambda e: e.occurred_at)
    ours = [e for e in ordered if _group_of(e.payload) == what.group_id]
    before = [e.payload for e in ours if e.occurred_at < what.start and _folds(e.payload)]
    seed = reduce(evolve, before, GroupState(workspace_id, what.group_id))
    hand_offs = tuple(
        Timed(e.occurred_at, e.payload)
        for e in ordered
        if isinstance(e.payload, HandOffRequested)
        and e.payload.group_id == what.group_id
        and e.occurred_at >= what.start
    )
    closes = {
        e.payload.conversation_id: e.occurred_at
        for e in ordered
        if isinstance(e.payload, ConversationClosed)
    }
    real = tuple(Timed(e.occurred_at, e.payload) for e in ours if e.occurred_at >= what.start)
    members = {
        e.payload.member_id: e.payload.name
        for e in ordered
        if isinstance(e.payload, MemberAdded | MemberUpdated)
    }
    return History(
        workspace_id, group_name, seed, hand_offs, closes, real, members, _roster(ordered, what)
    )


def _roster(ordered: Sequence[Envelope], what: WhatIf) -> frozenset[UUID]:
    """The members of the group at the period's start, and those added during it."""
    current: set[UUID] = set()
    seen: set[UUID] = set()
    for envelope in ordered:
        match envelope.payload:
            case GroupMemberAdded(group_id=group_id, member_id=member) if group_id == what.group_id:
                current.add(member)
                if envelope.occurred_at >= what.start:
                    seen.add(member)
            case GroupMemberRemoved(group_id=group_id, member_id=member) if (
                group_id == what.group_id and envelope.occurred_at < what.start
            ):
                current.discard(member)
            case _:
                continue
        if envelope.occurred_at < what.start:
            seen = set(current)
    return frozenset(seen)


def _group_of(payload: Payload) -> UUID | None:
    """The group a decision belongs to (a transfer: the group it leaves); None otherwise."""
    match payload:
        case ConversationTransferred(from_group_id=group_id):
            return group_id
        case ConversationQueued() | ConversationAssigned() | ConversationReleased():
            return payload.group_id
        case HandOffDeclined(group_id=group_id):
            return group_id
        case _:
            return None


def _folds(payload: Payload) -> bool:
    return isinstance(payload, ConversationQueued | ConversationAssigned | ConversationReleased)


def _steps(envelopes: Sequence[Envelope], what: WhatIf, history: History) -> list[_Step]:
    """Every record the simulation replays, in event time (the stores' order breaks ties)."""
    group_conversations = {conversation_of(t.decision) for t in (*history.hand_offs, *history.real)}
    steps = [
        _Step(envelope.occurred_at, *found, order=order)
        for order, envelope in enumerate(envelopes)
        if (found := _classify(envelope, what, group_conversations)) is not None
    ]
    return sorted(steps, key=lambda s: (s.at, RANK[s.kind], s.order))


def _classify(
    envelope: Envelope, what: WhatIf, group_conversations: set[UUID]
) -> tuple[Kind, Payload, UUID] | None:
    """What a stored event is to the simulation (None: nothing), the record it replays and
    the id that record is decided under (a rebuilt claim or transfer: the real command's)."""
    payload, at = envelope.payload, envelope.occurred_at
    cause = envelope.causation_id or envelope.event_id
    match payload:
        case _ if isinstance(payload, DIRECTORY_EVENTS):
            return "directory", payload, cause
        case ConversationClosed():
            return "close", payload, cause
        case HandOffRequested(group_id=group_id) if group_id == what.group_id:
            rerouted = _rerouted(payload, what) if at >= what.start else payload
            return "request", rerouted, envelope.event_id
        case ConversationAssigned(via="claim", group_id=group_id) if group_id == what.group_id:
            return "request", _claim(payload.conversation_id, payload), cause
        case AssignmentCommandRejected(
            command_type=ClaimConversation.event_type, member_id=member_id
        ) if payload.conversation_id in group_conversations and member_id is not None:
            # A claim the service refused (someone was faster) may stand in the simulation.
            return "request", _claim(payload.conversation_id, payload), payload.command_id
        case ConversationTransferred(from_group_id=group_id) if group_id == what.group_id:
            transfer = TransferConversation(
                conversation_id=payload.conversation_id,
                workspace_id=payload.workspace_id,
                # A transfer to a member stays in the group; to a group names no member.
                to_member_id=payload.to_member_id,
                to_group_id=payload.to_group_id if payload.to_member_id is None else None,
                requested_by=payload.requested_by,
                note=payload.note,
            )
            return "request", transfer, cause
        case ConversationTransferred(to_group_id=group_id, to_member_id=None) if (
            group_id == what.group_id and at >= what.start
        ):
            return "request", payload, cause  # a transfer into the group, from another one
        case ConversationQueued() | ConversationAssigned() | ConversationReleased() if (
            payload.group_id != what.group_id
        ):
            return "elsewhere", payload, cause
        case _:
            return None


def _claim(
    conversation: UUID, decided: ConversationAssigned | AssignmentCommandRejected
) -> ClaimConversation:
    """The claim a decision answered: by the member it names."""
    assert decided.member_id is not None  # a rejected claim names its claimer
    return ClaimConversation(
        conversation_id=conversation, workspace_id=decided.workspace_id, member_id=decided.member_id
    )


def conversation_of(payload: Payload) -> UUID:
    """The conversation a hand-off or a decision is about."""
    conversation: UUID = getattr(payload, "conversation_id")  # noqa: B009
    return conversation


def _rerouted(request: HandOffRequested, what: WhatIf) -> HandOffRequested:
    """The hand-off as the simulated rotation sees it (``specific``: the member asked for,
    else the one the hand-off named)."""
    member = what.member if what.rotation == "specific" and what.member else request.member_id
    return request.model_copy(update={"rotation": what.rotation, "member_id": member})


def _before(world: SimulatedWorld, step: _Step) -> SimulatedWorld:
    """Before the period the world is what really was: the group's state is the seed."""
    match step.kind:
        case "directory":
            return world.with_directory_event(_capacity(step.payload, world), step.at)
        case "close":
            return world.with_closed(conversation_of(step.payload))
        case "elsewhere":
            return world.with_real_decision_elsewhere(step.payload)
        case _:
            return world


def _capacity(event: Payload, world: SimulatedWorld) -> Payload:
    """``--capacity``: every member has it, whatever the directory says."""
    if world.capacity is not None and isinstance(event, MemberAdded | MemberUpdated):
        return event.model_copy(update={"capacity": world.capacity})
    return event


def _replay(
    world: SimulatedWorld, step: _Step, what: WhatIf
) -> tuple[SimulatedWorld, list[Payload]]:
    made: list[Payload] = []
    match step.kind:
        case "directory" | "close":
            event = _capacity(step.payload, world)
            # The router's rules read the views as they stood before the event.
            facts = world.router_facts(facts_wanted(event))
            if isinstance(event, ConversationClosed):
                world = world.with_closed(event.conversation_id)
            else:
                world = world.with_directory_event(event, step.at)
            for index, nudge in enumerate(decide_nudges(event, facts, at=step.at)):
                if nudge.group_id not in world.groups:
                    continue  # a group the simulation does not decide for
                command_id = uuid5(SIMULATION_NAMESPACE, f"{step.cause}/{index}")
                world, out = _decide(world, nudge, nudge.group_id, step.at, command_id)
                made += out
        case "elsewhere":
            world = world.with_real_decision_elsewhere(step.payload)
        case "request":
            payload = step.payload
            if isinstance(payload, ConversationTransferred):
                world, out = _transferred_in(world, payload, step.at)
            else:
                world, out = _decide(world, payload, what.group_id, step.at, step.cause)
            made += out
    return world, made


def _decide(
    world: SimulatedWorld, command: Payload, here: UUID | None, at: datetime, command_id: UUID
) -> tuple[SimulatedWorld, list[Payload]]:
    """The assignment service's decider on the simulated world, its decisions folded in."""
    conversation = getattr(command, "conversation_id", None)
    target = command.to_group_id if isinstance(command, TransferConversation) else None
    decisions = decide(
        command, world.world(here, conversation, target), at=at, command_id=command_id
    )
    for decision in decisions:
        world = world.with_decision(decision)
    return world, decisions


def _transferred_in(
    world: SimulatedWorld, transfer: ConversationTransferred, at: datetime
) -> tuple[SimulatedWorld, list[Payload]]:
    """A conversation another group sent to this one: placed by the ``available`` rotation,
    as the service places a transfer to a group (the other group is not replayed)."""
    draft = Draft.start(world.world(transfer.to_group_id, transfer.conversation_id), at)
    draft = place(
        draft,
        transfer.to_group_id,
        transfer.conversation_id,
        "available",
        named=None,
        waiting_since=at,
        note="transferred from another group; ",
    )
    decisions = list(draft.out)
    for decision in decisions:
        world = world.with_decision(decision)
    return world, decisions
