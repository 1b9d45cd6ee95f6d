"""Given a conversation's deadline events, when a conversation or flow event arrives (or the
timer looks at the clock), then these expiry events."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from functools import reduce
from uuid import UUID

import pytest

from events.base import Payload
from events.conversation import CloseConversation, ConversationClosed, ConversationStarted
from events.expiry import ConversationExpired, DeadlineCancelled, DeadlineSet, FlowExpirationHeld
from events.flows import ExpirationRequested
from services.expiry.decide import DeadlineState, decide, evolve, fire

pytestmark = pytest.mark.unit
CONVERSATION = UUID(int=11)
WORKSPACE = UUID(int=12)
STARTED_AT = datetime(2026, 11, 24, 12, tzinfo=UTC)
DAY = timedelta(hours=24)
LATEST = STARTED_AT + DAY
NUMBER, CONTACT = "480112093385611", "573001112233"


def started() -> ConversationStarted:
    return ConversationStarted(
        conversation_id=CONVERSATION,
        phone_number_id=NUMBER,
        display_phone_number="+57 300",
        contact_wa_id=CONTACT,
        contact_name="Valentina",
        started_at=STARTED_AT,
    )


def requested(after: timedelta) -> ExpirationRequested:
    return ExpirationRequested(
        conversation_id=CONVERSATION,
        expires_at=STARTED_AT + after,
        requested_at=STARTED_AT + timedelta(seconds=1),
    )


def closed(after: timedelta, reason: str = "agent") -> ConversationClosed:
    return ConversationClosed.model_validate(
        {"conversation_id": CONVERSATION, "reason": reason, "closed_at": STARTED_AT + after}
    )


def deadline(at: datetime, cause: str = "meta_24h") -> DeadlineSet:
    return DeadlineSet.model_validate(
        {
            "conversation_id": CONVERSATION,
            "workspace_id": WORKSPACE,
            "phone_number_id": NUMBER,
            "contact_wa_id": CONTACT,
            "deadline": at,
            "latest": LATEST,
            "cause": cause,
        }
    )


def given(events: Iterable[Payload]) -> DeadlineState:
    return reduce(evolve, events, DeadlineState(CONVERSATION))


def when(event: Payload, state: DeadlineState, max_age: timedelta = DAY) -> list[Payload]:
    return decide(event, state, workspace_id=WORKSPACE, max_age=max_age)


def test_a_start_sets_the_deadline_at_the_maximum_age() -> None:
    assert when(started(), given([])) == [deadline(LATEST)]


def test_the_maximum_age_is_configurable() -> None:
    [event] = when(started(), given([]), max_age=timedelta(seconds=5))
    assert isinstance(event, DeadlineSet)
    assert event.deadline == STARTED_AT + timedelta(seconds=5)
    assert event.latest == event.deadline


def test_a_start_read_again_changes_nothing() -> None:
    assert when(started(), given([deadline(LATEST)])) == []


def test_a_flow_expiration_brings_the_deadline_forward() -> None:
    soon = STARTED_AT + timedelta(minutes=30)
    assert when(requested(timedelta(minutes=30)), given([deadline(LATEST)])) == [
        deadline(soon, "flow")
    ]


def test_a_flow_expiration_never_extends_past_the_maximum_age() -> None:
    state = given([deadline(STARTED_AT + timedelta(minutes=30), "flow")])
    assert when(requested(timedelta(hours=30)), state) == [deadline(LATEST)]
    assert when(requested(timedelta(hours=30)), given([deadline(LATEST)])) == []


def test_the_latest_flow_expiration_wins_within_the_maximum_age() -> None:
    state = given([deadline(STARTED_AT + timedelta(minutes=30), "flow")])
    assert when(requested(timedelta(hours=2)), state) == [
        deadline(STARTED_AT + timedelta(hours=2), "flow")
    ]


def test_an_expiration_read_before_the_start_is_held_then_applied() -> None:
    held = when(requested(timedelta(seconds=3)), given([]))
    assert held == [
        FlowExpirationHeld(
            conversation_id=CONVERSATION, expires_at=STARTED_AT + timedelta(seconds=3)
        )
    ]
    assert when(started(), given(held)) == [deadline(STARTED_AT + timedelta(seconds=3), "flow")]


def test_a_held_expiration_past_the_maximum_age_is_capped() -> None:
    held = when(requested(timedelta(hours=2)), given([]))
    [event] = when(started(), given(held), max_age=timedelta(hours=1))
    assert isinstance(event, DeadlineSet)
    assert (event.deadline, event.cause) == (STARTED_AT + timedelta(hours=1), "meta_24h")


def test_a_close_cancels_the_deadline() -> None:
    assert when(closed(timedelta(minutes=5)), given([deadline(LATEST)])) == [
        DeadlineCancelled(
            conversation_id=CONVERSATION,
            deadline=LATEST,
            cancelled_at=STARTED_AT + timedelta(minutes=5),
        )
    ]


def test_nothing_moves_a_closed_or_expired_deadline() -> None:
    cancelled = DeadlineCancelled(
        conversation_id=CONVERSATION, deadline=LATEST, cancelled_at=STARTED_AT
    )
    expired = ConversationExpired(conversation_id=CONVERSATION, deadline=LATEST, fired_at=LATEST)
    for end in (cancelled, expired):
        state = given([deadline(LATEST), end])
        assert when(requested(timedelta(minutes=1)), state) == []
        assert when(closed(DAY, "expired"), state) == []
        assert fire(state, LATEST + DAY) == []


def test_a_close_of_an_untimed_conversation_changes_nothing() -> None:
    assert when(closed(timedelta(minutes=1)), given([])) == []


def test_the_timer_fires_a_passed_deadline_with_the_close_command() -> None:
    state = given([deadline(LATEST)])
    fired_at = LATEST + timedelta(milliseconds=300)
    assert fire(state, fired_at) == [
        ConversationExpired(conversation_id=CONVERSATION, deadline=LATEST, fired_at=fired_at),
        CloseConversation(
            conversation_id=CONVERSATION,
            workspace_id=WORKSPACE,
            phone_number_id=NUMBER,
            contact_wa_id=CONTACT,
            reason="expired",
        ),
    ]


def test_the_timer_does_not_fire_early_or_twice() -> None:
    assert fire(given([deadline(LATEST)]), LATEST - timedelta(microseconds=1)) == []
    first = fire(given([deadline(LATEST)]), LATEST)
    assert fire(given([deadline(LATEST), *first]), LATEST + DAY) == []


def test_a_deadline_moved_later_is_not_fired_at_the_old_time() -> None:
    state = given([deadline(STARTED_AT + timedelta(minutes=1), "flow"), deadline(LATEST)])
    assert fire(state, STARTED_AT + timedelta(minutes=2)) == []
