"""The rotations, as a table of small strategies (pure).

A hand-off names a rotation (``available``, ``all``, ``specific``, ``no_owner``); a queue is
drained by ``available`` (or ``all``, for what was handed off under it). Each strategy looks at
one group as the decision stands (:class:`Lineup`: the roster, each member's status, load and
capacity, the group's turns and its ``all`` cursor) and returns a :class:`Choice`: the member
chosen or nobody, every candidate with why it was skipped, and the reason in words that the
decision's outcome carries. Strategies only choose; emitting the decision is the caller's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from uuid import UUID

from events.assignment import Candidate
from events.flows import Rotation
from services.assignment.facts import Group, MemberFacts, name_of

RULES: dict[str, str] = {
    "available": "available: members whose status is available and who have free capacity;"
    " the one whose last conversation of this group is the oldest (never assigned first,"
    " then roster order)",
    "all": "all: every member of the group in strict rotation, whatever their status;"
    " deactivated members and members at capacity are skipped",
    "specific": "specific: the named member, if an active member of the group, whatever"
    " their status and load",
    "no_owner": "no_owner: nobody is chosen; the conversation waits in the queue until a"
    " member claims it",
    "claim": "claim: the first member of the group (or an admin) to claim a queued"
    " conversation takes it, whatever their status and load",
    "transfer": "transfer: the assignee or an admin hands the conversation to a member,"
    " whatever that member's status and load",
    "workspace": "the workspace queue has no rotation: the conversation waits until an admin"
    " claims it",
}


@dataclass(frozen=True)
class Lineup:
    """A group as a rotation sees it: its state (turns, the ``all`` cursor) and roster, and
    the members' facts with their loads as the decision stands (what earlier steps of the
    same record assigned or released included)."""

    group: Group
    members: Mapping[UUID, MemberFacts]
    loads: Mapping[UUID, int]

    def roster(self) -> list[UUID]:
        """The roster's members the views know, in the order they were added."""
        return [m for m in self.group.facts.roster if m in self.members]

    def name(self, member_id: UUID | None) -> str:
        return name_of(self.members, member_id)

    def load(self, member_id: UUID) -> int:
        return self.loads.get(member_id, 0)

    def candidates(
        self,
        skipped: Mapping[UUID, str | None],
        *,
        chosen: UUID | None = None,
        default: str = "not chosen",
    ) -> tuple[Candidate, ...]:
        """Every member of the roster (and a chosen one from outside it), as seen now."""
        listed = self.roster()
        if chosen is not None and chosen not in listed:
            listed.append(chosen)  # an admin claiming from outside the group
        result = []
        for member_id in listed:
            member = self.members[member_id]
            turn = self.group.state.turns.get(member_id)
            is_chosen = member_id == chosen
            result.append(
                Candidate(
                    member_id=member_id,
                    name=member.name,
                    status=member.status,
                    active=member.active,
                    load=self.load(member_id),
                    capacity=member.capacity,
                    last_assigned_at=turn.at if turn is not None else None,
                    skipped=None if is_chosen else (skipped.get(member_id) or default),
                    chosen=is_chosen,
                )
            )
        return tuple(result)


@dataclass(frozen=True)
class Choice:
    """What a rotation chose, and why in words.

    ``reason`` completes the decision's outcome: ``assigned to <member>: <reason>`` when a
    member was chosen, ``queued: <reason>`` when nobody was.
    """

    rule: str  # the rule applied, in words
    member_id: UUID | None  # None: nobody now, the conversation waits in the queue
    candidates: tuple[Candidate, ...]
    reason: str
    claim_only: bool = False  # waiting, only a claim takes it out of the queue


# A strategy: the group as the decision stands, and the member a hand-off named (if any).
Strategy = Callable[[Lineup, UUID | None], Choice]


def available(lineup: Lineup, named: UUID | None = None) -> Choice:
    """Members available and with room; the one whose last conversation of the group is the
    oldest (never given one first, then the roster's order)."""
    skipped: dict[UUID, str | None] = {}
    eligible: list[tuple[int, int, UUID]] = []
    for index, member_id in enumerate(lineup.roster()):
        reason = _skip_reason(lineup, member_id, status_counts=True)
        skipped[member_id] = reason
        if reason is None:
            turn = lineup.group.state.turns.get(member_id)
            eligible.append((turn.sequence if turn else 0, index, member_id))
    if not eligible:
        return _nobody(lineup, RULES["available"], skipped)
    chosen = min(eligible)[2]
    for _, _, member_id in eligible:
        if member_id != chosen:
            skipped[member_id] = _later_turn(lineup, member_id, chosen)
    skipped.pop(chosen)
    turn = lineup.group.state.turns.get(chosen)
    since = "never given one" if turn is None else f"last given one at {turn.at.isoformat()}"
    return Choice(
        rule=RULES["available"],
        member_id=chosen,
        candidates=lineup.candidates(skipped, chosen=chosen),
        reason=f"available, with room ({_room(lineup, chosen)}), and {since} in this group",
    )


def strict_rotation(lineup: Lineup, named: UUID | None = None) -> Choice:
    """``all``: every member in turn after the one chosen last, whatever their status;
    deactivated members and members at capacity are passed over."""
    roster = lineup.roster()
    cursor = lineup.group.state.all_cursor
    start = (roster.index(cursor) + 1) % len(roster) if cursor in roster else 0
    chosen: UUID | None = None
    # In the rotation's order from the cursor: a "nobody" outcome lists them that way.
    skipped: dict[UUID, str | None] = {}
    for step in range(len(roster)):
        member_id = roster[(start + step) % len(roster)]
        if chosen is not None:
            skipped[member_id] = f"after {lineup.name(chosen)} in the rotation"
            continue
        reason = _skip_reason(lineup, member_id, status_counts=False)
        if reason is None:
            chosen = member_id
        else:
            skipped[member_id] = reason
    if chosen is None:
        return _nobody(lineup, RULES["all"], skipped)
    return Choice(
        rule=RULES["all"],
        member_id=chosen,
        candidates=lineup.candidates(skipped, chosen=chosen),
        reason=f"next in the strict rotation (load {_room(lineup, chosen)})",
    )


def specific(lineup: Lineup, named: UUID | None) -> Choice:
    """The member named, if an active member of the group, whatever their status and load;
    else nobody now (the ``available`` rule drains it from the queue later)."""
    facts = lineup.group.facts
    member = lineup.members.get(named) if named is not None else None
    others = "not the member named"
    if named is None:
        why = "no member was named"
    elif member is None or named not in facts.roster:
        why = f"member {lineup.name(named)} is not in group {facts.name}"
    elif not member.active:
        why = f"member {member.name} is deactivated"
    else:
        return Choice(
            rule=RULES["specific"],
            member_id=named,
            candidates=lineup.candidates({}, chosen=named, default=others),
            reason="the member named",
        )
    skipped = {named: why} if named is not None and named in facts.roster else {}
    return Choice(
        rule=RULES["specific"],
        member_id=None,
        candidates=lineup.candidates(skipped, default=others),
        reason=f"{why}; the available rule takes it from the queue",
    )


def no_owner(lineup: Lineup, named: UUID | None = None) -> Choice:
    """Nobody: the conversation waits until a member claims it."""
    return Choice(
        rule=RULES["no_owner"],
        member_id=None,
        candidates=lineup.candidates({}, default="no_owner: nobody is chosen"),
        reason="it waits until a member claims it",
        claim_only=True,
    )


ROTATIONS: Mapping[Rotation, Strategy] = {
    "available": available,
    "all": strict_rotation,
    "specific": specific,
    "no_owner": no_owner,
}


def drained_by(rotation: Rotation) -> Rotation:
    """The rotation that takes a waiting conversation out of the queue: ``all`` for what was
    handed off under it, ``available`` for the rest (a ``specific`` member who could not
    take it, a member gone)."""
    return "all" if rotation == "all" else "available"


# -- the words of the explanations -------------------------------------------------------


def _skip_reason(lineup: Lineup, member_id: UUID, *, status_counts: bool) -> str | None:
    member = lineup.members.get(member_id)
    if member is None or not member.active:
        return "deactivated"
    if status_counts and member.status != "available":
        return f"status {member.status}"
    load = lineup.load(member_id)
    if load >= member.capacity:
        return f"at capacity ({load}/{member.capacity})"
    return None


def _room(lineup: Lineup, member_id: UUID) -> str:
    return f"{lineup.load(member_id)}/{lineup.members[member_id].capacity}"


def _nobody(lineup: Lineup, rule: str, skipped: Mapping[UUID, str | None]) -> Choice:
    if skipped:
        reasons = ", ".join(f"{lineup.name(m)}: {why}" for m, why in skipped.items())
        reason = f"nobody can take it now ({reasons})"
    else:
        reason = f"group {lineup.group.facts.name} has no members"
    return Choice(rule=rule, member_id=None, candidates=lineup.candidates(skipped), reason=reason)


def _later_turn(lineup: Lineup, member_id: UUID, chosen: UUID) -> str:
    """Why an eligible member comes after the chosen one in the ``available`` rule: the
    one whose last conversation of the group is older goes first, never-given first,
    and between two never given one, the roster's order decides."""
    turns = lineup.group.state.turns
    mine, theirs = turns.get(member_id), turns.get(chosen)
    other = lineup.name(chosen)
    if mine is None:
        # Only a member never given one either can come first (a turn of 0 sorts first).
        return (
            f"not their turn: neither they nor {other} were given a conversation of this"
            f" group yet, and {other} comes first in the group"
        )
    if theirs is None:
        return (
            f"not their turn: given a conversation of this group at {mine.at.isoformat()};"
            f" {other} never was"
        )
    # Turns are the group's assignment numbers: two in one second are still ordered.
    return (
        f"not their turn: given a conversation of this group more recently than {other}"
        f" (the group's assignment #{mine.sequence} at {mine.at.isoformat()}; {other}'s"
        f" #{theirs.sequence} at {theirs.at.isoformat()})"
    )
