"""What a period's decisions came to (pure): waiting times and each agent's load.

The same measure for what really happened and for a simulation, so the two stand side by
side: :func:`outcome` takes the group's state at the period's start, the period's hand-offs,
its decisions and the closes, and says for each conversation handed off who took it first
and how long it waited, and for each member how many conversations of the group they were
given and how many they held at once at most.

A conversation waits from its hand-off until it is first assigned; one still waiting when it
was closed waited until the close; one still waiting at the period's end, until the end.
Percentiles are nearest-rank (p90 of ten waits is the ninth shortest), so each is a wait
that really occurred.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from uuid import UUID

from events.assignment import ConversationAssigned, ConversationReleased, HandOffDeclined
from events.flows import HandOffRequested
from services.assignment.group_state import GroupState
from services.operations.simulation import Timed, conversation_of

WaitedUntil = Literal["assigned", "closed", "period_end", "declined"]


@dataclass(frozen=True)
class ConversationOutcome:
    conversation_id: UUID
    handed_off_at: datetime
    member_id: UUID | None  # the first member given it (None: nobody in the period)
    assigned_at: datetime | None
    closed_at: datetime | None
    waited: timedelta | None  # None: the hand-off was declined (it never waited)
    waited_until: WaitedUntil


@dataclass(frozen=True)
class AgentLoad:
    member_id: UUID
    name: str
    assigned: int  # conversations of the group given to the member in the period
    peak: int  # the most conversations of the group the member held at once


@dataclass(frozen=True)
class Waits:
    count: int
    p50: timedelta | None
    p90: timedelta | None
    max: timedelta | None


@dataclass(frozen=True)
class Outcome:
    conversations: tuple[ConversationOutcome, ...]
    agents: tuple[AgentLoad, ...]
    waits: Waits


def outcome(
    *,
    group_id: UUID,
    seed: GroupState,
    hand_offs: Sequence[Timed],
    decisions: Sequence[Timed],
    closes: Mapping[UUID, datetime],
    start: datetime,
    end: datetime,
    names: Mapping[UUID, str],
    roster: Iterable[UUID] = (),
) -> Outcome:
    """The period's waits and loads; ``roster``: members listed even with nothing given."""
    conversations = tuple(
        _conversation(hand_off, decisions, closes, end) for hand_off in _first(hand_offs)
    )
    waited = [c.waited for c in conversations if c.waited is not None]
    return Outcome(
        conversations=conversations,
        agents=_loads(group_id, seed, decisions, closes, start, names, roster),
        waits=Waits(
            len(waited), percentile(waited, 50), percentile(waited, 90), max(waited, default=None)
        ),
    )


def percentile(values: Sequence[timedelta], rank: int) -> timedelta | None:
    """Nearest-rank: the smallest value with at least ``rank`` percent of them at or below."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(rank * len(ordered) / 100), 1) - 1]


def _first(hand_offs: Sequence[Timed]) -> list[Timed]:
    """One hand-off per conversation: its first in the period."""
    seen: dict[UUID, Timed] = {}
    for timed in sorted(hand_offs, key=lambda t: t.at):
        request = timed.decision
        assert isinstance(request, HandOffRequested)
        seen.setdefault(request.conversation_id, timed)
    return list(seen.values())


def _conversation(
    hand_off: Timed, decisions: Sequence[Timed], closes: Mapping[UUID, datetime], end: datetime
) -> ConversationOutcome:
    conversation = conversation_of(hand_off.decision)
    about = [t for t in decisions if getattr(t.decision, "conversation_id", None) == conversation]
    about = [t for t in about if t.at >= hand_off.at]
    closed_at = closes.get(conversation)
    assigned = next((t for t in about if isinstance(t.decision, ConversationAssigned)), None)
    declined = any(isinstance(t.decision, HandOffDeclined) for t in about)
    if assigned is not None and (closed_at is None or assigned.at <= closed_at):
        decision = assigned.decision
        assert isinstance(decision, ConversationAssigned)
        return ConversationOutcome(
            conversation,
            hand_off.at,
            decision.member_id,
            assigned.at,
            closed_at,
            assigned.at - hand_off.at,
            "assigned",
        )
    if declined and not any(_placed(t) for t in about):
        return ConversationOutcome(
            conversation, hand_off.at, None, None, closed_at, None, "declined"
        )
    until: WaitedUntil = "closed" if closed_at is not None and closed_at <= end else "period_end"
    waited = (closed_at if closed_at is not None and until == "closed" else end) - hand_off.at
    return ConversationOutcome(conversation, hand_off.at, None, None, closed_at, waited, until)


def _placed(timed: Timed) -> bool:
    return not isinstance(timed.decision, HandOffDeclined)


def _loads(
    group_id: UUID,
    seed: GroupState,
    decisions: Sequence[Timed],
    closes: Mapping[UUID, datetime],
    start: datetime,
    names: Mapping[UUID, str],
    roster: Iterable[UUID],
) -> tuple[AgentLoad, ...]:
    """Per member: conversations of the group given in the period, and the most held at
    once (what the group held at the start included; a close ends a holding at once)."""
    held: dict[UUID, UUID] = {
        entry.conversation_id: entry.member_id
        for entry in seed.entries.values()
        if entry.state == "assigned"
        and entry.member_id is not None
        and not (entry.conversation_id in closes and closes[entry.conversation_id] < start)
    }
    assigned: dict[UUID, int] = dict.fromkeys(roster, 0)
    peak: dict[UUID, int] = dict.fromkeys(roster, 0)

    def count(member: UUID) -> int:
        return sum(1 for m in held.values() if m == member)

    for member in set(held.values()):
        peak[member] = max(peak.get(member, 0), count(member))
    events: list[tuple[datetime, int, Timed | UUID]] = [
        (t.at, 1, t) for t in decisions if getattr(t.decision, "group_id", None) == group_id
    ]
    events += [(at, 0, conversation) for conversation, at in closes.items() if at >= start]
    for _, _, item in sorted(events, key=lambda e: (e[0], e[1])):
        if isinstance(item, UUID):
            held.pop(item, None)  # closed: its member has room again at once
            continue
        match item.decision:
            case ConversationAssigned(conversation_id=conversation, member_id=member):
                if conversation in closes and closes[conversation] <= item.at:
                    continue
                held[conversation] = member
                assigned[member] = assigned.get(member, 0) + 1
                peak[member] = max(peak.get(member, 0), count(member))
            case ConversationReleased(conversation_id=conversation):
                held.pop(conversation, None)
            case _:
                pass
    members = sorted(assigned, key=lambda m: (names.get(m, str(m)), str(m)))
    return tuple(
        AgentLoad(member, names.get(member, str(member)), assigned[member], peak.get(member, 0))
        for member in members
    )


def departures(real: Outcome, simulated: Outcome) -> list[UUID]:
    """The conversations the simulation gave another member, or at another time, than
    reality did (in the real side's order)."""
    other = {c.conversation_id: c for c in simulated.conversations}
    return [
        c.conversation_id
        for c in real.conversations
        if (found := other.get(c.conversation_id)) is None
        or (found.member_id, found.assigned_at, found.waited_until)
        != (c.member_id, c.assigned_at, c.waited_until)
    ]
