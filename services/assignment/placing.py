"""Putting a conversation with a member or in a queue, and draining a queue (pure).

:func:`place` asks the rotation named for the conversation (the table in
:mod:`services.assignment.rotations`) and assigns it or queues it, saying why. :func:`drain`
gives what waits in a group's queue to the members who can take it now, longest-waiting
first (then by arrival). Both return a new :class:`~services.assignment.draft.Draft`.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from events.flows import Rotation
from services.assignment.draft import Draft
from services.assignment.rotations import ROTATIONS, RULES, drained_by


def place(
    draft: Draft,
    group_id: UUID | None,
    conversation: UUID,
    rotation: Rotation,
    *,
    named: UUID | None,
    waiting_since: datetime,
    note: str,
) -> Draft:
    """Assign the conversation by the group's rotation now, or queue it saying why.

    ``note`` (ending in "; ") says how the conversation got here when it is not simply a
    hand-off to this group (a group deleted, a member gone, a transfer).
    """
    if group_id is None:
        return draft.queue(
            None,
            conversation,
            rotation,
            claim_only=rotation == "no_owner",
            waiting_since=waiting_since,
            decision=draft.explain(
                rotation=rotation,
                rule=RULES["workspace"],
                candidates=[],
                outcome=f"queued in the workspace queue: {note}an admin claims it",
            ),
        )
    choice = ROTATIONS[rotation](draft.lineup(group_id), named)
    if choice.member_id is None:
        return draft.queue(
            group_id,
            conversation,
            rotation,
            claim_only=choice.claim_only,
            waiting_since=waiting_since,
            decision=draft.explain(
                rotation=rotation,
                rule=choice.rule,
                candidates=choice.candidates,
                outcome=f"queued: {note}{choice.reason}",
            ),
        )
    return draft.assign(
        group_id,
        conversation,
        choice.member_id,
        via="specific" if rotation == "specific" else "rotation",
        decision=draft.explain(
            rotation=rotation,
            rule=choice.rule,
            candidates=choice.candidates,
            outcome=f"assigned to {draft.name(choice.member_id)}: {note}{choice.reason}",
        ),
    )


def drain(draft: Draft, group_id: UUID | None) -> Draft:
    """Assign what the queue's rules now allow, longest-waiting first.

    The workspace queue has no rotation (admins claim from it), and what waits for a claim
    (``no_owner``) or has closed stays where it is.
    """
    if group_id is None:
        return draft
    for entry in draft.group(group_id).state.queued():
        if entry.claim_only or entry.conversation_id in draft.world.closed:
            continue
        rotation = drained_by(entry.rotation)
        choice = ROTATIONS[rotation](draft.lineup(group_id), None)
        if choice.member_id is None:
            continue
        waited = f"waiting since {entry.waiting_since.isoformat()}; "
        draft = draft.assign(
            group_id,
            entry.conversation_id,
            choice.member_id,
            via="queue",
            decision=draft.explain(
                rotation=rotation,
                rule=choice.rule,
                candidates=choice.candidates,
                outcome=f"assigned to {draft.name(choice.member_id)} from the queue: {waited}"
                f"{choice.reason}",
            ),
        )
    return draft
