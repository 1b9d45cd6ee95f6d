"""What each record of ``assignment.requests`` decides (pure): hand-offs, nudges, claims and
transfers, one function each, from a :class:`~services.assignment.draft.Draft` to the next.
"""

from __future__ import annotations

from uuid import UUID

from events.assignment import (
    ClaimConversation,
    ConversationTransferred,
    GroupNudged,
    ReleaseReason,
    TransferConversation,
)
from events.flows import HandOffRequested
from services.assignment.draft import Draft
from services.assignment.facts import Group
from services.assignment.placing import drain, place
from services.assignment.rotations import RULES, Lineup

# -- hand-offs ----------------------------------------------------------------------------


def hand_off(draft: Draft, request: HandOffRequested) -> Draft:
    """Place a conversation the flow handed off: in its group (the workspace queue when the
    group is unknown or deleted), unless it closed first or is held already."""
    here = draft.world.here
    conversation = request.conversation_id
    if conversation in draft.world.closed:
        return draft.decline(here, conversation, "the conversation closed before it was handed off")
    if (held := held_where(draft, here, conversation)) is not None:
        return draft.decline(here, conversation, f"already {held}")
    target, note = here.facts.group_id, ""
    if here.facts.group_id is not None and (not here.facts.known or here.facts.deleted):
        gone = "was deleted" if here.facts.deleted else "is unknown"
        note = f"group {here.facts.name} {gone}; "
        target = None
        if (held := held_where(draft, draft.group(None), conversation)) is not None:
            return draft.decline(here, conversation, f"already {held}")
    return place(
        draft,
        target,
        conversation,
        request.rotation,
        named=request.member_id,
        waiting_since=draft.at,
        note=note,
    )


# -- nudges -------------------------------------------------------------------------------


def nudge(draft: Draft, nudge: GroupNudged) -> Draft:
    """Look at the group again: closed conversations, members gone, its queue."""
    group_id = draft.world.here.facts.group_id
    draft = release_closed(draft, group_id)
    if group_id is not None and draft.group(group_id).facts.deleted:
        return move_queue_to_workspace(draft, group_id)
    draft = release_departed(draft, group_id, nudge)
    return drain(draft, group_id)


def release_closed(draft: Draft, group_id: UUID | None) -> Draft:
    """Let go of every conversation of the group that has closed."""
    for entry in list(draft.group(group_id).state.entries.values()):
        if entry.conversation_id in draft.world.closed:
            draft = draft.release(group_id, entry, "closed")
    return draft


def move_queue_to_workspace(draft: Draft, group_id: UUID) -> Draft:
    """A deleted group's queue waits in the workspace queue; its assigned conversations stay
    with their members."""
    name = draft.group(group_id).facts.name
    for entry in draft.group(group_id).state.queued():
        draft = draft.release(group_id, entry, "group_deleted")
        draft = place(
            draft,
            None,
            entry.conversation_id,
            entry.rotation,
            named=None,
            # It keeps its place: it has waited that long. The move itself is dated by the
            # deletion (the decision's own time).
            waiting_since=entry.waiting_since,
            note=f"group {name} was deleted; ",
        )
    return draft


def release_departed(draft: Draft, group_id: UUID | None, nudge: GroupNudged) -> Draft:
    """Conversations whose member was deactivated, or left the group, go back to the
    group's ``available`` rotation (in the order they entered the group)."""
    roster = draft.group(group_id).facts.roster
    held = sorted(draft.group(group_id).state.entries.values(), key=lambda e: e.order)
    for entry in held:
        if entry.state != "assigned" or entry.member_id is None:
            continue
        member = draft.world.members.get(entry.member_id)
        reason: ReleaseReason
        if member is not None and not member.active:
            reason, why = "member_deactivated", "its member was deactivated"
        elif (
            nudge.cause == "member_removed_from_group"
            and entry.member_id == nudge.member_id
            and entry.member_id not in roster
        ):
            # Only on the removal itself: an admin who claimed a conversation, or a member
            # it was transferred to, holds it without being in the roster.
            reason, why = "removed_from_group", "its member left the group"
        else:
            continue
        draft = draft.release(group_id, entry, reason)
        draft = place(
            draft,
            group_id,
            entry.conversation_id,
            "available",
            named=None,
            waiting_since=draft.at,
            note=f"{why}; ",
        )
    return draft


# -- claims -------------------------------------------------------------------------------


def claim(draft: Draft, claim: ClaimConversation, command_id: UUID) -> Draft:
    """The first member of the group (or an admin) to claim a queued conversation takes it,
    whatever their status and load; a later claim has lost the race (a conflict)."""
    here = draft.world.here
    conversation = claim.conversation_id
    entry = here.state.entries.get(conversation)
    claimer = draft.world.members.get(claim.member_id)
    if entry is not None and entry.state == "assigned":
        reason = f"already assigned to {draft.name(entry.member_id)}"
        return draft.reject(claim, command_id, reason, conflict=True)
    if entry is None:
        holding = draft.world.holding
        if holding is not None and holding.state == "assigned":
            reason = f"already assigned to {draft.name(holding.member_id)}"
            return draft.reject(claim, command_id, reason, conflict=True)
        if conversation in draft.world.closed:
            return draft.reject(claim, command_id, "the conversation is closed", conflict=False)
        reason = f"not waiting in {here.facts.name}"
        return draft.reject(claim, command_id, reason, conflict=False)
    if conversation in draft.world.closed:
        return draft.reject(claim, command_id, "the conversation is closed", conflict=False)
    if claimer is None or not claimer.active:
        reason = f"no active member {claim.member_id} here"
        return draft.reject(claim, command_id, reason, conflict=False)
    if claim.member_id not in here.facts.roster and claimer.role != "admin":
        reason = (
            f"{claimer.name} is not a member of {here.facts.name}; only its members or an"
            " admin may claim it"
        )
        return draft.reject(claim, command_id, reason, conflict=False)
    load = draft.loads.get(claimer.member_id, 0)
    outcome = f"claimed by {claimer.name} (load {load}/{claimer.capacity} before this one)"
    return draft.assign(
        here.facts.group_id,
        conversation,
        claimer.member_id,
        via="claim",
        decision=draft.explain(
            rotation="claim",
            rule=RULES["claim"],
            candidates=Lineup(here, draft.world.members, draft.loads).candidates(
                {}, chosen=claimer.member_id, default="did not claim it"
            ),
            outcome=f"assigned to {claimer.name}: {outcome}",
        ),
    )


# -- transfers ----------------------------------------------------------------------------


def transfer(draft: Draft, transfer: TransferConversation, command_id: UUID) -> Draft:
    """The assignee or an admin hands the conversation to one member of its group, or to
    another group's rotation; the member who let it go may take from the queue again."""
    here = draft.world.here
    entry = here.state.entries.get(transfer.conversation_id)
    requester = draft.world.members.get(transfer.requested_by)
    if entry is None:
        reason = f"not held by {here.facts.name}"
        return draft.reject(transfer, command_id, reason, conflict=False)
    if transfer.conversation_id in draft.world.closed:
        return draft.reject(transfer, command_id, "the conversation is closed", conflict=False)
    if (
        requester is None
        or not requester.active
        or (requester.role != "admin" and entry.member_id != transfer.requested_by)
    ):
        reason = "only the conversation's assignee or an admin may transfer it"
        return draft.reject(transfer, command_id, reason, conflict=False)
    if (transfer.to_member_id is None) == (transfer.to_group_id is None):
        reason = "name exactly one of a member or a group"
        return draft.reject(transfer, command_id, reason, conflict=False)
    if transfer.to_member_id is not None:
        return _to_member(draft, transfer, command_id, transfer.to_member_id)
    return _to_group(draft, transfer, command_id)


def _to_member(
    draft: Draft, transfer: TransferConversation, command_id: UUID, to_member_id: UUID
) -> Draft:
    here = draft.world.here
    group_id = here.facts.group_id
    entry = here.state.entries[transfer.conversation_id]
    requester = draft.world.members[transfer.requested_by]
    member = draft.world.members.get(to_member_id)
    if member is None or not member.active:
        reason = f"no active member {to_member_id} here"
        return draft.reject(transfer, command_id, reason, conflict=False)
    if entry.member_id == member.member_id:
        reason = f"already assigned to {member.name}"
        return draft.reject(transfer, command_id, reason, conflict=False)
    draft = draft.emit(
        ConversationTransferred(
            conversation_id=transfer.conversation_id,
            workspace_id=draft.workspace_id,
            from_group_id=group_id,
            from_member_id=entry.member_id,
            to_group_id=group_id,
            to_member_id=member.member_id,
            requested_by=transfer.requested_by,
            note=transfer.note,
            transferred_at=draft.at,
        )
    )
    load = draft.loads.get(member.member_id, 0)
    draft = draft.assign(
        group_id,
        transfer.conversation_id,
        member.member_id,
        via="transfer",
        decision=draft.explain(
            rotation="transfer",
            rule=RULES["transfer"],
            candidates=Lineup(here, draft.world.members, draft.loads).candidates(
                {}, chosen=member.member_id, default="not the member named"
            ),
            outcome=f"assigned to {member.name}: transferred by"
            f" {requester.name} (load {load}/{member.capacity} before this one)",
        ),
    )
    return drain(draft, group_id)  # the previous assignee has room again


def _to_group(draft: Draft, transfer: TransferConversation, command_id: UUID) -> Draft:
    here = draft.world.here
    group_id = here.facts.group_id
    entry = here.state.entries[transfer.conversation_id]
    requester = draft.world.members[transfer.requested_by]
    target = draft.world.target
    if transfer.to_group_id == group_id:
        reason = f"already in {here.facts.name}"
        return draft.reject(transfer, command_id, reason, conflict=False)
    if target is None or not target.facts.known or target.facts.deleted:
        reason = f"no group {transfer.to_group_id} takes conversations here"
        return draft.reject(transfer, command_id, reason, conflict=False)
    if (held := held_where(draft, target, transfer.conversation_id)) is not None:
        return draft.reject(transfer, command_id, f"already {held}", conflict=False)
    draft = draft.release(group_id, entry, "transferred")
    draft = draft.emit(
        ConversationTransferred(
            conversation_id=transfer.conversation_id,
            workspace_id=draft.workspace_id,
            from_group_id=group_id,
            from_member_id=entry.member_id,
            to_group_id=target.facts.group_id,
            to_member_id=None,
            requested_by=transfer.requested_by,
            note=transfer.note,
            transferred_at=draft.at,
        )
    )
    draft = place(
        draft,
        target.facts.group_id,
        transfer.conversation_id,
        "available",
        named=None,
        waiting_since=draft.at,
        note=f"transferred from {here.facts.name} by {requester.name}; ",
    )
    return drain(draft, group_id)


# -- where a conversation is held -----------------------------------------------------------


def held_where(draft: Draft, group: Group, conversation: UUID) -> str | None:
    """Whether the conversation is already in ``group`` or another, in words."""
    entry = group.state.entries.get(conversation)
    if entry is not None:
        if entry.state == "assigned":
            return f"assigned to {draft.name(entry.member_id)} in {group.facts.name}"
        return f"queued in {group.facts.name}"
    holding = draft.world.holding
    # The record's own group knows its conversations from its stream, not the view.
    mine = (group.facts.group_id, draft.world.here.facts.group_id)
    if holding is not None and holding.group_id not in mine:
        where = "the workspace queue" if holding.group_id is None else holding.group_name
        if holding.state == "assigned":
            return f"assigned to {draft.name(holding.member_id)} in {where}"
        return f"queued in {where}"
    return None
