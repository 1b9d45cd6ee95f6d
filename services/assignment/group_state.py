"""A group's own truth: its stream of decisions folded into what it holds and whose turn it is.

The stream of a group (or of a workspace queue) holds its decisions: queued, assigned,
released, transferred, declined. :func:`evolve` folds them into a :class:`GroupState`: the
conversations the group holds, each member's turn (a sequence number of the group's
assignments, never the wall clock) and the cursor of the ``all`` rotation. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal
from uuid import UUID

from events.assignment import (
    ConversationAssigned,
    ConversationQueued,
    ConversationReleased,
    Decision,
)
from events.base import Payload
from events.flows import Rotation

EntryState = Literal["queued", "assigned"]


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
