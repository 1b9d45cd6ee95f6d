"""Pure decisions of the expiry service about one conversation's deadline.

A conversation's deadline is its start plus the maximum age (Meta's 24 hours), or the
expiration its flow requested, never later than that: the most recent request wins, so a
flow may move its own expiration either way within the 24 hours. A close cancels the
deadline; a deadline that passes makes the conversation expire, once, and asks the inbound
service to close it with reason ``expired``.

``conversation.events`` and ``flow.events`` are read independently, so a flow's expiration
may arrive before the start of its conversation: it is held and applied at the start.

Times come from the events; the only wall-clock instant here is the ``now`` the timer passes
to :func:`fire`, recorded as ``fired_at`` beside the deadline it fired for.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal
from uuid import UUID, uuid5

from events.base import Payload
from events.conversation import CloseConversation, ConversationClosed, ConversationStarted
from events.expiry import (
    ConversationExpired,
    DeadlineCancelled,
    DeadlineCause,
    DeadlineSet,
    FlowExpirationHeld,
)
from events.flows import ExpirationRequested

DEADLINE_NAMESPACE = UUID("b7e3a0c4-2f19-4d8e-9c61-5a0f3e7d2b84")
Status = Literal["unknown", "open", "closed", "expired"]


def deadline_stream(conversation_id: UUID) -> UUID:
    """The expiry store's stream of one conversation (derived, so a replay finds it)."""
    return uuid5(DEADLINE_NAMESPACE, str(conversation_id))


@dataclass(frozen=True)
class DeadlineState:
    conversation_id: UUID
    status: Status = "unknown"
    deadline: datetime | None = None
    cause: DeadlineCause | None = None
    # The latest a deadline may be: the start plus the maximum age when it was set.
    latest: datetime | None = None
    held_expiration: datetime | None = None
    workspace_id: UUID | None = None
    phone_number_id: str | None = None
    contact_wa_id: str | None = None


def evolve(state: DeadlineState, event: Payload) -> DeadlineState:
    match event:
        case DeadlineSet():
            return replace(
                state,
                status="open",
                deadline=event.deadline,
                cause=event.cause,
                latest=event.latest,
                held_expiration=None,
                workspace_id=event.workspace_id,
                phone_number_id=event.phone_number_id,
                contact_wa_id=event.contact_wa_id,
            )
        case FlowExpirationHeld(expires_at=expires_at):
            return replace(state, held_expiration=expires_at)
        case DeadlineCancelled():
            return replace(state, status="closed")
        case ConversationExpired():
            return replace(state, status="expired")
        case _:
            return state


def decide(
    event: Payload, state: DeadlineState, *, workspace_id: UUID | None, max_age: timedelta
) -> list[Payload]:
    """What one conversation or flow event changes about the conversation's deadline."""
    match event:
        case ConversationStarted():
            if state.status != "unknown":
                return []  # the start was read before (a re-sent event)
            if workspace_id is None:
                raise ValueError(f"conversation {event.conversation_id} started in no workspace")
            latest = event.started_at + max_age
            requested = state.held_expiration
            flow_first = requested is not None and requested < latest
            return [
                DeadlineSet(
                    conversation_id=event.conversation_id,
                    workspace_id=workspace_id,
                    phone_number_id=event.phone_number_id,
                    contact_wa_id=event.contact_wa_id,
                    deadline=requested if requested is not None and flow_first else latest,
                    latest=latest,
                    cause="flow" if flow_first else "meta_24h",
                )
            ]
        case ExpirationRequested(expires_at=expires_at):
            match state.status:
                case "unknown":
                    return [
                        FlowExpirationHeld(
                            conversation_id=event.conversation_id, expires_at=expires_at
                        )
                    ]
                case "open":
                    return _move_deadline(state, expires_at)
                case _:
                    return []  # closed or expired already: nothing left to time
        case ConversationClosed(closed_at=closed_at):
            if state.status != "open" or state.deadline is None:
                return []  # not timed, or our own expiry's close coming back
            return [
                DeadlineCancelled(
                    conversation_id=event.conversation_id,
                    deadline=state.deadline,
                    cancelled_at=closed_at,
                )
            ]
        case _:
            return []


def _move_deadline(state: DeadlineState, requested: datetime) -> list[Payload]:
    assert state.latest is not None
    assert state.workspace_id is not None
    assert state.phone_number_id is not None
    assert state.contact_wa_id is not None
    deadline = min(requested, state.latest)
    cause: DeadlineCause = "flow" if requested < state.latest else "meta_24h"
    if (deadline, cause) == (state.deadline, state.cause):
        return []
    return [
        DeadlineSet(
            conversation_id=state.conversation_id,
            workspace_id=state.workspace_id,
            phone_number_id=state.phone_number_id,
            contact_wa_id=state.contact_wa_id,
            deadline=deadline,
            latest=state.latest,
            cause=cause,
        )
    ]


def fire(state: DeadlineState, now: datetime) -> list[Payload]:
    """At ``now`` (the timer's wall clock): expire the conversation if its deadline passed.

    Nothing once it expired or closed, so a second firing decides nothing.
    """
    if state.status != "open" or state.deadline is None or state.deadline > now:
        return []
    assert state.workspace_id is not None
    assert state.phone_number_id is not None
    assert state.contact_wa_id is not None
    return [
        ConversationExpired(
            conversation_id=state.conversation_id, deadline=state.deadline, fired_at=now
        ),
        CloseConversation(
            conversation_id=state.conversation_id,
            workspace_id=state.workspace_id,
            phone_number_id=state.phone_number_id,
            contact_wa_id=state.contact_wa_id,
            reason="expired",
        ),
    ]
