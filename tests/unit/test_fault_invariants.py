"""The fault suite's invariants catch what they claim to, on hand-made store histories."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar, cast
from uuid import UUID, uuid4

import pytest

from events.assignment import (
    ConversationAssigned,
    ConversationQueued,
    ConversationReleased,
    ConversationTransferred,
)
from events.base import Payload
from events.conversation import ConversationClosed, ConversationStarted, CustomerMessageReceived
from events.envelope import Actor, Envelope
from events.expiry import ConversationExpired, DeadlineCancelled, DeadlineSet
from events.flows import HandOffRequested
from events.outbound import OutboundSendAttempted
from tests.faults.invariants import Stores, check

pytestmark = pytest.mark.unit
AT = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
C1, C2, ANA, BETO = uuid4(), uuid4(), uuid4(), uuid4()
P = TypeVar("P", bound=Payload)


def partial(kind: type[P], **fields: Any) -> P:
    """A payload with only the fields an invariant reads (the checker reads no others)."""
    return cast(P, kind.model_construct(**fields))


def wrap(payload: Payload, *, cause: UUID | None = None) -> Envelope:
    return Envelope.wrap(
        payload,
        event_id=uuid4(),
        stream_id="s",
        workspace_id=None,
        occurred_at=AT,
        correlation_id=uuid4(),
        causation_id=cause,
        actor=Actor(kind="system"),
    )


def stores(
    *,
    inbound: list[Envelope] | None = None,
    flows: list[Envelope] | None = None,
    assignment: list[Envelope] | None = None,
    dispatcher: list[Envelope] | None = None,
    expiry: list[Envelope] | None = None,
) -> Stores:
    return Stores(inbound or [], flows or [], assignment or [], dispatcher or [], expiry or [])


def received(wamid: str) -> Envelope:
    return wrap(partial(CustomerMessageReceived, conversation_id=C1, wamid=wamid))


def started(conversation: UUID) -> Envelope:
    return wrap(partial(ConversationStarted, conversation_id=conversation))


def deadline(conversation: UUID) -> Envelope:
    return wrap(partial(DeadlineSet, conversation_id=conversation))


def assigned(conversation: UUID, member: UUID, cause: UUID | None = None) -> Envelope:
    payload = partial(ConversationAssigned, conversation_id=conversation, member_id=member)
    return wrap(payload, cause=cause)


def test_a_healthy_history_holds() -> None:
    hand_off = wrap(partial(HandOffRequested, conversation_id=C1))
    history = stores(
        inbound=[started(C1), received("w1"), received("w2")],
        flows=[hand_off],
        assignment=[
            assigned(C1, ANA, cause=hand_off.event_id),
            wrap(partial(ConversationTransferred, conversation_id=C1, to_member_id=BETO)),
            wrap(partial(ConversationReleased, conversation_id=C1)),
            assigned(C1, ANA),
        ],
        dispatcher=[wrap(partial(OutboundSendAttempted, message_id=uuid4()))],
        expiry=[deadline(C1), deadline(C1)],  # a flow moved the deadline: still one live
    )
    report = check(history, ["w1", "w2"])
    assert report.holds, report.violations


def test_a_wamid_recorded_twice_or_accepted_and_missing_is_reported() -> None:
    history = stores(inbound=[received("w1"), received("w1")])
    report = check(history, ["w1", "w2"])
    assert report.violations["inbound wamid recorded once"] == [
        "w1 recorded 2 times",
        "w2 accepted, never recorded",
    ]


def test_a_hand_off_decided_twice_or_never_is_reported() -> None:
    twice = wrap(partial(HandOffRequested, conversation_id=C1))
    never = wrap(partial(HandOffRequested, conversation_id=C2))
    queued = partial(ConversationQueued, conversation_id=C1)
    history = stores(
        flows=[twice, never],
        assignment=[assigned(C1, ANA, cause=twice.event_id), wrap(queued, cause=twice.event_id)],
    )
    found = check(history, []).violations["hand-off decided once"]
    assert len(found) == 2
    assert "2 decisions" in found[0]
    assert "0 decisions" in found[1]


def test_a_conversation_assigned_while_another_member_holds_it_is_reported() -> None:
    history = stores(assignment=[assigned(C1, ANA), assigned(C1, BETO)])
    assert len(check(history, []).violations["one holder at a time"]) == 1


def test_a_message_attempted_twice_is_reported() -> None:
    message = uuid4()
    attempt = partial(OutboundSendAttempted, message_id=message)
    history = stores(dispatcher=[wrap(attempt), wrap(attempt)])
    assert check(history, []).violations["outbound sent at most once"] == [
        f"message {message} attempted 2 times"
    ]


def test_deadlines_missing_for_an_open_or_left_on_a_closed_conversation_are_reported() -> None:
    history = stores(
        inbound=[
            started(C1),
            started(C2),
            wrap(partial(ConversationClosed, conversation_id=C2)),
        ],
        expiry=[deadline(C2)],
    )
    assert check(history, []).violations["one live deadline per open conversation"] == sorted(
        [
            f"open conversation {C1} has no live deadline",
            f"closed conversation {C2} still has a live deadline",
        ]
    )
    history = stores(
        inbound=[
            started(C1),
            started(C2),
            wrap(partial(ConversationClosed, conversation_id=C2)),
        ],
        expiry=[
            deadline(C1),
            deadline(C2),
            wrap(partial(DeadlineCancelled, conversation_id=C2)),
            deadline(C2),  # set again after the close: wrong
        ],
    )
    assert len(check(history, []).violations["one live deadline per open conversation"]) == 1
    expired = stores(
        inbound=[started(C1)],
        expiry=[deadline(C1), wrap(partial(ConversationExpired, conversation_id=C1))],
    )
    assert check(expired, []).violations["one live deadline per open conversation"] == [
        f"open conversation {C1} has no live deadline"
    ]
