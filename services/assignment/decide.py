"""Pure decisions of the assignment service: who takes a conversation of a group, and why.

The truth of a group is its stream of decisions (queued, assigned, released, transferred,
declined), folded by :func:`evolve` into a :class:`GroupState`: the conversations it holds,
each member's turn (a sequence number of the group's assignments, never the wall clock) and
the cursor of the ``all`` rotation. What the group's stream does not know (the roster, each
member's status, capacity and load across groups, closed conversations) comes from the
service's views as :class:`Facts`, read before deciding; the append transaction re-checks
what two replicas could race on (a member's capacity, a conversation closing meanwhile).

:func:`decide` is given one record (a hand-off, a claim, a transfer or a nudge), the groups
it may touch (:class:`World`) and the event time, and returns the decisions, each carrying a
:class:`~events.assignment.Decision` that lists every member of the roster with the reason it
was or was not chosen. No I/O, no clock: the same inputs always give the same decisions.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal
from uuid import UUID, uuid5

from events.assignment import (
    AssignedVia,
    AssignmentCommandRejected,
    Candidate,
    ClaimConversation,
    ConversationAssigned,
    ConversationQueued,
    ConversationReleased,
    ConversationTransferred,
    Decision,
    GroupNudged,
    HandOffDeclined,
    ReleaseReason,
    TransferConversation,
    ViewPosition,
    group_key,
)
from events.base import Payload
from events.directory import AgentStatus, Role
from events.flows import HandOffRequested, Rotation

ASSIGNMENT_NAMESPACE = UUID("3f6c1e0a-94d2-4b7e-8a15-c2d9e7f40b63")
EntryState = Literal["queued", "assigned"]
Rule = Literal["available", "all"]

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


# -- the group's own stream -------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """A conversation the group holds: waiting in its queue, or with one of its members."""

    conversation_id: UUID
    state: EntryState
    rotation: Rotation
    claim_only: bool
    member_id: UUID | None  # the assignee
    waiting_since: datetime  # when its wait began (kept when it moves to another queue)
    order: int  # when it entered the group, in the group's stream order (its "arrival")


@dataclass(frozen=True)
class Turn:
    """A member's last assignment in the group: the group's assignment number, and when."""

    sequence: int
    at: datetime


@dataclass(frozen=True)
class GroupState:
    workspace_id: UUID
    group_id: UUID | None
    entries: Mapping[UUID, Entry] = field(default_factory=dict)
    turns: Mapping[UUID, Turn] = field(default_factory=dict)
    all_cursor: UUID | None = None  # the member the ``all`` rotation chose last
    sequence: int = 0  # assignments made in this group so far
    order: int = 0  # conversations that entered the group so far

    def queued(self) -> list[Entry]:
        """Waiting conversations in the order they are served: longest-waiting first, then
        by arrival in the group (the read models list a queue by the same two fields, which
        every ConversationQueued carries)."""
        waiting = [e for e in self.entries.values() if e.state == "queued"]
        return sorted(waiting, key=lambda e: (e.waiting_since, e.order))


def evolve(state: GroupState, event: Payload) -> GroupState:
    match event:
        case ConversationQueued():
            entries = dict(state.entries)
            entries[event.conversation_id] = Entry(
                conversation_id=event.conversation_id,
                state="queued",
                rotation=event.rotation,
                claim_only=event.claim_only,
                member_id=None,
                waiting_since=event.waiting_since,
                order=state.order + 1,
            )
            return replace(state, entries=entries, order=state.order + 1)
        case ConversationAssigned():
            entries = dict(state.entries)
            before = entries.get(event.conversation_id)
            entries[event.conversation_id] = Entry(
                conversation_id=event.conversation_id,
                state="assigned",
                rotation=before.rotation if before is not None else _rotation(event.decision),
                claim_only=False,
                member_id=event.member_id,
                waiting_since=before.waiting_since if before is not None else event.assigned_at,
                order=before.order if before is not None else state.order + 1,
            )
            turns = dict(state.turns)
            turns[event.member_id] = Turn(state.sequence + 1, event.assigned_at)
            return replace(
                state,
                entries=entries,
                turns=turns,
                sequence=state.sequence + 1,
                order=state.order if before is not None else state.order + 1,
                all_cursor=event.member_id
                if event.decision.rotation == "all"
                else state.all_cursor,
            )
        case ConversationReleased():
            entries = dict(state.entries)
            entries.pop(event.conversation_id, None)
            return replace(state, entries=entries)
        case _:
            return state  # transfers and declines change nothing the group decides on


def _rotation(decision: Decision) -> Rotation:
    """The rotation a conversation assigned without a queue entry is kept under."""
    match decision.rotation:
        case "claim" | "transfer":
            return "available"
        case rotation:
            return rotation


# -- what the views say ---------------------------------------------------------------


@dataclass(frozen=True)
class MemberFacts:
    member_id: UUID
    name: str
    role: Role
    active: bool
    status: AgentStatus
    capacity: int
    load: int  # open conversations assigned to the member, all groups together


@dataclass(frozen=True)
class GroupFacts:
    group_id: UUID | None
    name: str
    known: bool  # in the directory view (the workspace queue always is)
    deleted: bool
    roster: tuple[UUID, ...]  # in the order members were added

    @classmethod
    def workspace_queue(cls) -> GroupFacts:
        return cls(group_id=None, name="the workspace queue", known=True, deleted=False, roster=())


@dataclass(frozen=True)
class Holding:
    """Where another group holds the record's conversation (from the assignments view)."""

    group_id: UUID | None
    state: EntryState
    member_id: UUID | None
    group_name: str = "another group"


@dataclass(frozen=True)
class Group:
    state: GroupState
    facts: GroupFacts


@dataclass(frozen=True)
class World:
    """Everything one decision may read: the groups it may touch and the views' facts."""

    here: Group  # the group the record is keyed by
    workspace_queue: Group
    members: Mapping[UUID, MemberFacts]  # every roster member, and every member named
    closed: frozenset[UUID]  # which of the conversations concerned are closed
    holding: Holding | None = None  # the record's conversation, held by another group
    target: Group | None = None  # a transfer's target group
    # How far the views had read the workspace's directory: every decision records it.
    directory_view: ViewPosition | None = None


def decide(command: Payload, world: World, *, at: datetime, command_id: UUID) -> list[Payload]:
    """The decisions one record of ``assignment.requests`` leads to, in order."""
    deciding = _Deciding(world, at)
    match command:
        case HandOffRequested():
            deciding.hand_off(command)
        case GroupNudged():
            deciding.nudge(command)
        case ClaimConversation():
            deciding.claim(command, command_id)
        case TransferConversation():
            deciding.transfer(command, command_id)
        case _:
            pass
    return deciding.out


class _Deciding:
    """One decision in progress: what was emitted so far, folded into the groups it touched.

    Every emitted event is applied to its group's state and to the members' loads at once,
    so a later step (a drain after a release) sees what an earlier one did.
    """

    def __init__(self, world: World, at: datetime) -> None:
        self.world = world
        self.at = at
        self.out: list[Payload] = []
        self.groups: dict[UUID | None, Group] = {None: world.workspace_queue}
        for group in (world.here, world.target):
            if group is not None:
                self.groups[group.facts.group_id] = group
        self.loads = {member_id: m.load for member_id, m in world.members.items()}
        self.workspace_id = world.here.state.workspace_id

    # -- records ---------------------------------------------------------------------

    def hand_off(self, request: HandOffRequested) -> None:
        here = self.world.here
        conversation = request.conversation_id
        if conversation in self.world.closed:
            self._decline(here, conversation, "the conversation closed before it was handed off")
            return
        if (held := self._held(here, conversation)) is not None:
            self._decline(here, conversation, f"already {held}")
            return
        target, note = here, ""
        if here.facts.group_id is not None and (not here.facts.known or here.facts.deleted):
            gone = "was deleted" if here.facts.deleted else "is unknown"
            note = f"group {here.facts.name} {gone}; "
            target = self.groups[None]
            if (held := self._held(target, conversation)) is not None:
                self._decline(here, conversation, f"already {held}")
                return
        self._place(
            target,
            conversation,
            request.rotation,
            named=request.member_id,
            waiting_since=self.at,
            note=note,
        )

    def nudge(self, nudge: GroupNudged) -> None:
        """Look at the group again: closed conversations, members gone, its queue."""
        group_id = self.world.here.facts.group_id
        for entry in list(self._group(group_id).state.entries.values()):
            if entry.conversation_id in self.world.closed:
                self._release(group_id, entry, "closed")
        facts = self._group(group_id).facts
        if group_id is not None and facts.deleted:
            for entry in self._group(group_id).state.queued():
                self._release(group_id, entry, "group_deleted")
                self._place(
                    self.groups[None],
                    entry.conversation_id,
                    entry.rotation,
                    named=None,
                    # It keeps its place: it has waited that long. The move itself is dated
                    # by the deletion (the decision's own time).
                    waiting_since=entry.waiting_since,
                    note=f"group {facts.name} was deleted; ",
                )
            return  # assigned conversations stay with their members
        for entry in sorted(self._group(group_id).state.entries.values(), key=lambda e: e.order):
            if entry.state != "assigned" or entry.member_id is None:
                continue
            member = self.world.members.get(entry.member_id)
            reason: ReleaseReason
            if member is not None and not member.active:
                reason, why = "member_deactivated", "its member was deactivated"
            elif (
                nudge.cause == "member_removed_from_group"
                and entry.member_id == nudge.member_id
                and entry.member_id not in facts.roster
            ):
                # Only on the removal itself: an admin who claimed a conversation, or a
                # member it was transferred to, holds it without being in the roster.
                reason, why = "removed_from_group", "its member left the group"
            else:
                continue
            self._release(group_id, entry, reason)
            self._place(
                self._group(group_id),
                entry.conversation_id,
                "available",
                named=None,
                waiting_since=self.at,
                note=f"{why}; ",
            )
        self._drain(group_id)

    def claim(self, claim: ClaimConversation, command_id: UUID) -> None:
        here = self.world.here
        conversation = claim.conversation_id
        entry = here.state.entries.get(conversation)
        claimer = self.world.members.get(claim.member_id)
        if entry is not None and entry.state == "assigned":
            self._reject(
                claim,
                command_id,
                f"already assigned to {self._name(entry.member_id)}",
                conflict=True,
            )
            return
        if entry is None:
            holding = self.world.holding
            if holding is not None and holding.state == "assigned":
                self._reject(
                    claim,
                    command_id,
                    f"already assigned to {self._name(holding.member_id)}",
                    conflict=True,
                )
            elif conversation in self.world.closed:
                self._reject(claim, command_id, "the conversation is closed", conflict=False)
            else:
                self._reject(claim, command_id, f"not waiting in {here.facts.name}", conflict=False)
            return
        if conversation in self.world.closed:
            self._reject(claim, command_id, "the conversation is closed", conflict=False)
            return
        if claimer is None or not claimer.active:
            self._reject(
                claim, command_id, f"no active member {claim.member_id} here", conflict=False
            )
            return
        in_group = claim.member_id in here.facts.roster
        if not in_group and claimer.role != "admin":
            self._reject(
                claim,
                command_id,
                f"{claimer.name} is not a member of {here.facts.name}; only its members or an"
                " admin may claim it",
                conflict=False,
            )
            return
        load = self.loads.get(claimer.member_id, 0)
        outcome = f"claimed by {claimer.name} (load {load}/{claimer.capacity} before this one)"
        self._assign(
            here.facts.group_id,
            conversation,
            claimer.member_id,
            via="claim",
            decision=self._explain(
                rotation="claim",
                rule=RULES["claim"],
                candidates=self._candidates(
                    here, {}, chosen=claimer.member_id, default="did not claim it"
                ),
                outcome=f"assigned to {claimer.name}: {outcome}",
            ),
        )

    def transfer(self, transfer: TransferConversation, command_id: UUID) -> None:
        here = self.world.here
        group_id = here.facts.group_id
        conversation = transfer.conversation_id
        entry = here.state.entries.get(conversation)
        requester = self.world.members.get(transfer.requested_by)
        if entry is None:
            self._reject(transfer, command_id, f"not held by {here.facts.name}", conflict=False)
            return
        if conversation in self.world.closed:
            self._reject(transfer, command_id, "the conversation is closed", conflict=False)
            return
        if (
            requester is None
            or not requester.active
            or (requester.role != "admin" and entry.member_id != transfer.requested_by)
        ):
            self._reject(
                transfer,
                command_id,
                "only the conversation's assignee or an admin may transfer it",
                conflict=False,
            )
            return
        if (transfer.to_member_id is None) == (transfer.to_group_id is None):
            self._reject(
                transfer, command_id, "name exactly one of a member or a group", conflict=False
            )
            return
        if transfer.to_member_id is not None:
            member = self.world.members.get(transfer.to_member_id)
            if member is None or not member.active:
                self._reject(
                    transfer,
                    command_id,
                    f"no active member {transfer.to_member_id} here",
                    conflict=False,
                )
                return
            if entry.member_id == member.member_id:
                self._reject(
                    transfer, command_id, f"already assigned to {member.name}", conflict=False
                )
                return
            self._emit(
                ConversationTransferred(
                    conversation_id=conversation,
                    workspace_id=self.workspace_id,
                    from_group_id=group_id,
                    from_member_id=entry.member_id,
                    to_group_id=group_id,
                    to_member_id=member.member_id,
                    requested_by=transfer.requested_by,
                    note=transfer.note,
                    transferred_at=self.at,
                )
            )
            load = self.loads.get(member.member_id, 0)
            self._assign(
                group_id,
                conversation,
                member.member_id,
                via="transfer",
                decision=self._explain(
                    rotation="transfer",
                    rule=RULES["transfer"],
                    candidates=self._candidates(
                        here, {}, chosen=member.member_id, default="not the member named"
                    ),
                    outcome=f"assigned to {member.name}: transferred by"
                    f" {requester.name} (load {load}/{member.capacity} before this one)",
                ),
            )
            self._drain(group_id)  # the previous assignee has room again
            return
        target = self.world.target
        if transfer.to_group_id == group_id:
            self._reject(transfer, command_id, f"already in {here.facts.name}", conflict=False)
            return
        if target is None or not target.facts.known or target.facts.deleted:
            self._reject(
                transfer,
                command_id,
                f"no group {transfer.to_group_id} takes conversations here",
                conflict=False,
            )
            return
        if (held := self._held(target, conversation)) is not None:
            self._reject(transfer, command_id, f"already {held}", conflict=False)
            return
        self._release(group_id, entry, "transferred")
        self._emit(
            ConversationTransferred(
                conversation_id=conversation,
                workspace_id=self.workspace_id,
                from_group_id=group_id,
                from_member_id=entry.member_id,
                to_group_id=target.facts.group_id,
                to_member_id=None,
                requested_by=transfer.requested_by,
                note=transfer.note,
                transferred_at=self.at,
            )
        )
        self._place(
            self._group(target.facts.group_id),
            conversation,
            "available",
            named=None,
            waiting_since=self.at,
            note=f"transferred from {here.facts.name} by {requester.name}; ",
        )
        self._drain(group_id)

    # -- placing a conversation ------------------------------------------------------

    def _place(
        self,
        group: Group,
        conversation: UUID,
        rotation: Rotation,
        *,
        named: UUID | None,
        waiting_since: datetime,
        note: str,
    ) -> None:
        """Assign the conversation by the group's rule now, or queue it saying why."""
        group_id = group.facts.group_id
        if group_id is None:
            self._queue(
                group_id,
                conversation,
                rotation,
                claim_only=rotation == "no_owner",
                waiting_since=waiting_since,
                decision=self._explain(
                    rotation=rotation,
                    rule=RULES["workspace"],
                    candidates=[],
                    outcome=f"queued in the workspace queue: {note}an admin claims it",
                ),
            )
            return
        if rotation == "no_owner":
            self._queue(
                group_id,
                conversation,
                rotation,
                claim_only=True,
                waiting_since=waiting_since,
                decision=self._explain(
                    rotation=rotation,
                    rule=RULES["no_owner"],
                    candidates=self._candidates(group, {}, default="no_owner: nobody is chosen"),
                    outcome=f"queued: {note}it waits until a member claims it",
                ),
            )
            return
        if rotation == "specific":
            self._specific(group, conversation, named, waiting_since=waiting_since, note=note)
            return
        rule: Rule = "all" if rotation == "all" else "available"
        chosen, skipped = self._rule(group, rule)
        candidates = self._candidates(group, skipped, chosen=chosen)
        if chosen is None:
            self._queue(
                group_id,
                conversation,
                rotation,
                claim_only=False,
                waiting_since=waiting_since,
                decision=self._explain(
                    rotation=rotation,
                    rule=RULES[rule],
                    candidates=candidates,
                    outcome=f"queued: {note}{self._nobody(group, skipped)}",
                ),
            )
            return
        self._assign(
            group_id,
            conversation,
            chosen,
            via="rotation",
            decision=self._explain(
                rotation=rotation,
                rule=RULES[rule],
                candidates=candidates,
                outcome=f"assigned to {self._name(chosen)}: {note}{self._why(group, chosen, rule)}",
            ),
        )

    def _specific(
        self,
        group: Group,
        conversation: UUID,
        named: UUID | None,
        *,
        waiting_since: datetime,
        note: str,
    ) -> None:
        facts = group.facts
        member = self.world.members.get(named) if named is not None else None
        if named is None:
            why: str | None = "no member was named"
        elif member is None or named not in facts.roster:
            why = f"member {self._name(named)} is not in group {facts.name}"
        elif not member.active:
            why = f"member {member.name} is deactivated"
        else:
            why = None
        others = "not the member named"
        if why is not None or named is None:
            # Drained later by the ``available`` rule.
            skipped = {named: why} if named is not None and named in facts.roster else {}
            self._queue(
                facts.group_id,
                conversation,
                "specific",
                claim_only=False,
                waiting_since=waiting_since,
                decision=self._explain(
                    rotation="specific",
                    rule=RULES["specific"],
                    candidates=self._candidates(group, skipped, default=others),
                    outcome=f"queued: {note}{why}; the available rule takes it from the queue",
                ),
            )
            return
        assert member is not None
        self._assign(
            facts.group_id,
            conversation,
            named,
            via="specific",
            decision=self._explain(
                rotation="specific",
                rule=RULES["specific"],
                candidates=self._candidates(group, {}, chosen=named, default=others),
                outcome=f"assigned to {member.name}: {note}the member named",
            ),
        )

    def _drain(self, group_id: UUID | None) -> None:
        """Assign what the queue's rules now allow, longest-waiting first."""
        if group_id is None:
            return
        for entry in self._group(group_id).state.queued():
            if entry.claim_only or entry.conversation_id in self.world.closed:
                continue
            group = self._group(group_id)
            rule: Rule = "all" if entry.rotation == "all" else "available"
            chosen, skipped = self._rule(group, rule)
            if chosen is None:
                continue
            waited = f"waiting since {entry.waiting_since.isoformat()}; "
            self._assign(
                group_id,
                entry.conversation_id,
                chosen,
                via="queue",
                decision=self._explain(
                    rotation=rule,
                    rule=RULES[rule],
                    candidates=self._candidates(group, skipped, chosen=chosen),
                    outcome=f"assigned to {self._name(chosen)} from the queue: {waited}"
                    f"{self._why(group, chosen, rule)}",
                ),
            )

    # -- the rotation rules ----------------------------------------------------------

    def _skip_reason(self, member_id: UUID, *, status_counts: bool) -> str | None:
        member = self.world.members.get(member_id)
        if member is None or not member.active:
            return "deactivated"
        if status_counts and member.status != "available":
            return f"status {member.status}"
        load = self.loads.get(member_id, 0)
        if load >= member.capacity:
            return f"at capacity ({load}/{member.capacity})"
        return None

    def _rule(self, group: Group, rule: Rule) -> tuple[UUID | None, dict[UUID, str | None]]:
        """The member the rule chooses (or None), and why each other member was skipped."""
        roster = [m for m in group.facts.roster if m in self.world.members]
        skipped: dict[UUID, str | None] = {}
        if rule == "available":
            eligible: list[tuple[int, int, UUID]] = []
            for index, member_id in enumerate(roster):
                reason = self._skip_reason(member_id, status_counts=True)
                skipped[member_id] = reason
                if reason is None:
                    turn = group.state.turns.get(member_id)
                    eligible.append((turn.sequence if turn else 0, index, member_id))
            if not eligible:
                return None, skipped
            chosen = min(eligible)[2]
            for _, _, member_id in eligible:
                if member_id != chosen:
                    skipped[member_id] = self._later_turn(group, member_id, chosen)
            skipped.pop(chosen)
            return chosen, skipped
        cursor = group.state.all_cursor
        start = (roster.index(cursor) + 1) % len(roster) if cursor in roster else 0
        chosen_all: UUID | None = None
        for step in range(len(roster)):
            member_id = roster[(start + step) % len(roster)]
            if chosen_all is not None:
                skipped[member_id] = f"after {self._name(chosen_all)} in the rotation"
                continue
            reason = self._skip_reason(member_id, status_counts=False)
            if reason is None:
                chosen_all = member_id
            else:
                skipped[member_id] = reason
        return chosen_all, skipped

    def _later_turn(self, group: Group, member_id: UUID, chosen: UUID) -> str:
        """Why an eligible member comes after the chosen one in the ``available`` rule: the
        one whose last conversation of the group is older goes first, never-given first,
        and between two never given one, the roster's order decides."""
        mine, theirs = group.state.turns.get(member_id), group.state.turns.get(chosen)
        other = self._name(chosen)
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

    def _why(self, group: Group, chosen: UUID, rule: Rule) -> str:
        load = self.loads.get(chosen, 0)
        capacity = self.world.members[chosen].capacity
        if rule == "all":
            return f"next in the strict rotation (load {load}/{capacity})"
        turn = group.state.turns.get(chosen)
        since = "never given one" if turn is None else f"last given one at {turn.at.isoformat()}"
        return f"available, with room ({load}/{capacity}), and {since} in this group"

    def _nobody(self, group: Group, skipped: Mapping[UUID, str | None]) -> str:
        if not skipped:
            return f"group {group.facts.name} has no members"
        reasons = ", ".join(f"{self._name(m)}: {why}" for m, why in skipped.items())
        return f"nobody can take it now ({reasons})"

    # -- emitting --------------------------------------------------------------------

    def _explain(
        self,
        *,
        rotation: Rotation | Literal["claim", "transfer"],
        rule: str,
        candidates: list[Candidate],
        outcome: str,
    ) -> Decision:
        """A decision's explanation, with the directory view it was decided on."""
        return Decision(
            rotation=rotation,
            rule=rule,
            candidates=candidates,
            outcome=outcome,
            directory_view=self.world.directory_view,
        )

    def _candidates(
        self,
        group: Group,
        skipped: Mapping[UUID, str | None],
        *,
        chosen: UUID | None = None,
        default: str = "not chosen",
    ) -> list[Candidate]:
        """Every member of the roster (and a chosen one from outside it), as seen now."""
        listed = [m for m in group.facts.roster if m in self.world.members]
        if chosen is not None and chosen not in listed:
            listed.append(chosen)  # an admin claiming from outside the group
        result = []
        for member_id in listed:
            member = self.world.members[member_id]
            turn = group.state.turns.get(member_id)
            is_chosen = member_id == chosen
            result.append(
                Candidate(
                    member_id=member_id,
                    name=member.name,
                    status=member.status,
                    active=member.active,
                    load=self.loads.get(member_id, 0),
                    capacity=member.capacity,
                    last_assigned_at=turn.at if turn is not None else None,
                    skipped=None if is_chosen else (skipped.get(member_id) or default),
                    chosen=is_chosen,
                )
            )
        return result

    def _assign(
        self,
        group_id: UUID | None,
        conversation: UUID,
        member_id: UUID,
        *,
        via: AssignedVia,
        decision: Decision,
    ) -> None:
        self._emit(
            ConversationAssigned(
                conversation_id=conversation,
                workspace_id=self.workspace_id,
                group_id=group_id,
                member_id=member_id,
                member_name=self._name(member_id),
                via=via,
                decision=decision,
                assigned_at=self.at,
            )
        )

    def _queue(
        self,
        group_id: UUID | None,
        conversation: UUID,
        rotation: Rotation,
        *,
        claim_only: bool,
        waiting_since: datetime,
        decision: Decision,
    ) -> None:
        self._emit(
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
                arrival=self._group(group_id).state.order + 1,
            )
        )

    def _release(self, group_id: UUID | None, entry: Entry, reason: ReleaseReason) -> None:
        self._emit(
            ConversationReleased(
                conversation_id=entry.conversation_id,
                workspace_id=self.workspace_id,
                group_id=group_id,
                member_id=entry.member_id,
                reason=reason,
                released_at=self.at,
            )
        )

    def _decline(self, group: Group, conversation: UUID, reason: str) -> None:
        self._emit(
            HandOffDeclined(
                conversation_id=conversation,
                workspace_id=self.workspace_id,
                group_id=group.facts.group_id,
                reason=reason,
                declined_at=self.at,
            )
        )

    def _reject(
        self,
        command: ClaimConversation | TransferConversation,
        command_id: UUID,
        reason: str,
        *,
        conflict: bool,
    ) -> None:
        self._emit(
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

    def _emit(self, event: Payload) -> None:
        """Record ``event`` and fold it into its group and the members' loads."""
        self.out.append(event)
        match event:
            case ConversationAssigned(group_id=group_id, member_id=member_id):
                before = self._group(group_id).state.entries.get(event.conversation_id)
                if before is not None and before.member_id is not None:
                    self.loads[before.member_id] = self.loads.get(before.member_id, 0) - 1
                self.loads[member_id] = self.loads.get(member_id, 0) + 1
            case ConversationReleased(group_id=group_id, member_id=member_id):
                # A closed conversation's load was never counted (the views exclude it).
                if member_id is not None and event.conversation_id not in self.world.closed:
                    self.loads[member_id] = self.loads.get(member_id, 0) - 1
            case ConversationQueued(group_id=group_id):
                pass
            case _:
                return
        group = self._group(group_id)
        self.groups[group_id] = replace(group, state=evolve(group.state, event))

    # -- small helpers ---------------------------------------------------------------

    def _group(self, group_id: UUID | None) -> Group:
        return self.groups[group_id]

    def _held(self, group: Group, conversation: UUID) -> str | None:
        """Whether the conversation is already in ``group`` or another, in words."""
        entry = group.state.entries.get(conversation)
        if entry is not None:
            if entry.state == "assigned":
                return f"assigned to {self._name(entry.member_id)} in {group.facts.name}"
            return f"queued in {group.facts.name}"
        holding = self.world.holding
        # The record's own group knows its conversations from its stream, not the view.
        mine = (group.facts.group_id, self.world.here.facts.group_id)
        if holding is not None and holding.group_id not in mine:
            where = "the workspace queue" if holding.group_id is None else holding.group_name
            if holding.state == "assigned":
                return f"assigned to {self._name(holding.member_id)} in {where}"
            return f"queued in {where}"
        return None

    def _name(self, member_id: UUID | None) -> str:
        if member_id is None:
            return "nobody"
        member = self.world.members.get(member_id)
        return member.name if member is not None else str(member_id)


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
