"""Given a message's events, when a command arrives, then these dispatcher events.

Also the pure halves of the Graph API call: Meta's bodies, and what an answer means.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import reduce
from typing import Any
from uuid import UUID

import orjson
import pytest

from events.base import Payload
from events.outbound import (
    OutboundMessageFailed,
    OutboundMessageQueued,
    OutboundMessageRefused,
    OutboundMessageSent,
    OutboundOutcomeUnknown,
    OutboundSendAttempted,
    ReplyOption,
    RetryOutboundMessage,
)
from services.dispatcher.decide import (
    Abandon,
    Accepted,
    Ambiguous,
    AttemptAgain,
    Command,
    Dispatch,
    MessageState,
    RecordResult,
    Rejected,
    Retry,
    Transient,
    backoff_seconds,
    decide,
    evolve,
    window_open,
    window_refusal,
)
from services.dispatcher.graph import interpret, message_body

pytestmark = pytest.mark.unit
MESSAGE = UUID(int=7)
CONVERSATION = UUID(int=8)
QUEUED_AT = datetime(2026, 11, 24, 12, tzinfo=UTC)
NOW = QUEUED_AT + timedelta(seconds=2)
WROTE = QUEUED_AT - timedelta(hours=1)
META_ERROR = {"message": "(#131030) Recipient not allowed", "code": 131030}


def queued(kind: Any = "text", **fields: Any) -> OutboundMessageQueued:
    values: dict[str, Any] = {
        "message_id": MESSAGE,
        "conversation_id": CONVERSATION,
        "sequence": 1,
        "phone_number_id": "4801",
        "to": "5731",
        "kind": kind,
        "text": "¿En qué te ayudo?",
        "options": [],
        "list_button": None,
        "template": None,
        "author": "bot",
        "author_id": None,
        "queued_at": QUEUED_AT,
    }
    return OutboundMessageQueued(**(values | fields))


def retry() -> RetryOutboundMessage:
    return RetryOutboundMessage(message_id=MESSAGE, conversation_id=CONVERSATION, requested_by="m1")


def fold(*events: Payload) -> MessageState:
    return reduce(evolve, events, MessageState())


def attempted(n: int) -> OutboundSendAttempted:
    return OutboundSendAttempted(
        message_id=MESSAGE, conversation_id=CONVERSATION, attempt=n, attempted_at=NOW
    )


def failed(n: int) -> OutboundMessageFailed:
    return OutboundMessageFailed(
        message_id=MESSAGE,
        conversation_id=CONVERSATION,
        reason="x",
        attempts=n,
        http_status=500,
        error=None,
        failed_at=NOW,
    )


def unknown(n: int) -> OutboundOutcomeUnknown:
    return OutboundOutcomeUnknown(
        message_id=MESSAGE, conversation_id=CONVERSATION, attempts=n, reason="x", detected_at=NOW
    )


def result(n: int, outcome: Any, max_attempts: int = 3) -> RecordResult:
    return RecordResult(n, outcome, max_attempts, NOW)


BUSY = Transient(503, None, "HTTP 503: busy")


# -- the customer-service window ----------------------------------------------------------------


def test_the_window_lasts_24_hours_from_the_customers_last_message() -> None:
    assert window_open(WROTE, WROTE + timedelta(hours=23, minutes=59))
    assert not window_open(WROTE, WROTE + timedelta(hours=24))
    assert not window_open(None, QUEUED_AT)
    # The customer wrote again after the message was queued: open when it is sent.
    assert window_open(QUEUED_AT + timedelta(minutes=5), QUEUED_AT)


@pytest.mark.parametrize("kind", ["text", "buttons", "list"])
def test_free_form_messages_outside_the_window_are_refused_with_the_reason(kind: str) -> None:
    last = QUEUED_AT - timedelta(hours=30)
    [refused] = decide(Dispatch(queued(kind), last, NOW), MessageState())
    assert isinstance(refused, OutboundMessageRefused)
    assert refused.refused_at == QUEUED_AT  # the request's time, not the clock's
    assert "24-hour customer-service window" in refused.reason
    assert "30.0 hours before" in refused.reason
    assert f"a {kind} message" in refused.reason


def test_a_customer_who_never_wrote_gets_no_free_text() -> None:
    [refused] = decide(Dispatch(queued(), None, NOW), MessageState())
    assert isinstance(refused, OutboundMessageRefused)
    assert "has not written" in refused.reason


def test_a_template_needs_no_window() -> None:
    assert window_refusal("template", None, QUEUED_AT) is None
    [event] = decide(Dispatch(queued("template"), None, NOW), MessageState())
    assert event == attempted(1)


def test_a_new_customer_message_resets_the_window() -> None:
    late = QUEUED_AT + timedelta(hours=25)
    request = queued(queued_at=late)
    assert isinstance(
        decide(Dispatch(request, WROTE, NOW), MessageState())[0], OutboundMessageRefused
    )
    written_again = late - timedelta(minutes=1)
    assert decide(Dispatch(request, written_again, NOW), MessageState()) == [attempted(1)]


# -- queued -> attempted -> outcome ---------------------------------------------------------------


def test_a_queued_message_in_the_window_is_attempted_first() -> None:
    assert decide(Dispatch(queued(), WROTE, NOW), MessageState()) == [attempted(1)]


@pytest.mark.parametrize(
    "history",
    [(attempted(1),), (attempted(1), failed(1)), (attempted(1), unknown(1))],
    ids=["in flight", "failed", "unknown"],
)
def test_a_duplicate_queued_record_does_nothing(history: tuple[Payload, ...]) -> None:
    assert decide(Dispatch(queued(), WROTE, NOW), fold(*history)) == []


def test_meta_accepting_the_message_records_its_wamid() -> None:
    [sent] = decide(result(1, Accepted("wamid.HBgL")), fold(attempted(1)))
    assert sent == OutboundMessageSent(
        message_id=MESSAGE,
        conversation_id=CONVERSATION,
        wamid="wamid.HBgL",
        attempts=1,
        sent_at=NOW,
    )


def test_a_4xx_fails_at_once_with_metas_error() -> None:
    rejected = Rejected(400, META_ERROR, "HTTP 400: (#131030) Recipient not allowed")
    [failure] = decide(result(1, rejected), fold(attempted(1)))
    assert isinstance(failure, OutboundMessageFailed)
    assert (failure.http_status, failure.error, failure.attempts) == (400, META_ERROR, 1)
    assert failure.reason == "Meta refused the message: HTTP 400: (#131030) Recipient not allowed"


def test_no_answer_after_sending_is_unknown_and_not_resent() -> None:
    [event] = decide(result(1, Ambiguous("ReadTimeout")), fold(attempted(1)))
    assert isinstance(event, OutboundOutcomeUnknown)
    assert "not resent" in event.reason
    state = evolve(fold(attempted(1)), event)
    assert decide(AttemptAgain(1, 3, NOW), state) == []


def test_a_transient_failure_backs_off_then_attempts_again_until_the_limit() -> None:
    state = fold(attempted(1))
    assert decide(result(1, BUSY), state) == []  # back off
    assert decide(AttemptAgain(1, 3, NOW), state) == [attempted(2)]
    state = fold(attempted(1), attempted(2), attempted(3))
    [failure] = decide(result(3, BUSY), state)
    assert isinstance(failure, OutboundMessageFailed)
    assert failure.reason == "gave up after 3 attempts; last: HTTP 503: busy"
    assert (failure.http_status, failure.attempts) == (503, 3)
    assert decide(AttemptAgain(3, 3, NOW), state) == []


def test_throttled_then_accepted() -> None:
    throttled = Transient(429, None, "HTTP 429")
    events: list[Payload] = [attempted(1)]
    assert decide(result(1, throttled), fold(*events)) == []
    events += decide(AttemptAgain(1, 3, NOW), fold(*events))
    events += decide(result(2, Accepted("wamid.2")), fold(*events))
    assert [type(e).__name__ for e in events] == [
        "OutboundSendAttempted",
        "OutboundSendAttempted",
        "OutboundMessageSent",
    ]
    assert fold(*events).status == "sent"


def test_a_result_for_another_attempt_changes_nothing() -> None:
    assert decide(result(1, Accepted("w")), fold(attempted(1), attempted(2))) == []
    assert decide(AttemptAgain(1, 3, NOW), fold(attempted(1), attempted(2))) == []


def test_an_attempt_found_open_after_a_crash_becomes_unknown() -> None:
    [event] = decide(Abandon("attempted before a crash", NOW), fold(attempted(2)))
    assert event == OutboundOutcomeUnknown(
        message_id=MESSAGE,
        conversation_id=CONVERSATION,
        attempts=2,
        reason="attempted before a crash",
        detected_at=NOW,
    )
    sent = OutboundMessageSent(
        message_id=MESSAGE, conversation_id=CONVERSATION, wamid="w", attempts=1, sent_at=NOW
    )
    assert decide(Abandon("crash", NOW), fold(attempted(1), sent)) == []


def test_a_definite_late_result_is_still_recorded_an_indefinite_one_is_not() -> None:
    state = fold(attempted(1), unknown(1))
    [sent] = decide(result(1, Accepted("wamid.late")), state)
    assert isinstance(sent, OutboundMessageSent)
    assert decide(result(1, BUSY), state) == []
    assert decide(result(1, Ambiguous("again")), state) == []


# -- retry requests -------------------------------------------------------------------------------


def retry_command(requested_at: datetime = NOW, last: datetime | None = WROTE) -> Command:
    return Retry(queued(), retry(), requested_at, last, NOW)


@pytest.mark.parametrize("outcome", [failed(3), unknown(3)], ids=["failed", "unknown"])
def test_a_retry_request_attempts_a_failed_or_unknown_message_again(outcome: Payload) -> None:
    state = fold(attempted(1), attempted(2), attempted(3), outcome)
    assert decide(retry_command(), state) == [attempted(4)]
    # A new round: the whole budget again.
    retried = evolve(state, attempted(4))
    assert retried.attempts_in_round == 1
    assert decide(result(4, BUSY), retried) == []


@pytest.mark.parametrize(
    "history",
    [
        (),
        (attempted(1),),
        (
            attempted(1),
            OutboundMessageSent(
                message_id=MESSAGE, conversation_id=CONVERSATION, wamid="w", attempts=1, sent_at=NOW
            ),
        ),
        (
            OutboundMessageRefused(
                message_id=MESSAGE, conversation_id=CONVERSATION, reason="x", refused_at=NOW
            ),
        ),
    ],
    ids=["never queued", "in flight", "sent", "refused"],
)
def test_a_retry_request_acts_only_on_failed_or_unknown(history: tuple[Payload, ...]) -> None:
    assert decide(retry_command(), fold(*history)) == []


def test_a_retry_outside_the_window_is_refused_at_the_retrys_time() -> None:
    later = WROTE + timedelta(hours=26)
    [refused] = decide(retry_command(requested_at=later), fold(attempted(1), unknown(1)))
    assert isinstance(refused, OutboundMessageRefused)
    assert refused.refused_at == later


def test_backoff_doubles_per_attempt_of_the_round() -> None:
    assert [backoff_seconds(fold(*map(attempted, range(1, n + 1))), 0.5) for n in (1, 2, 3)] == [
        0.5,
        1.0,
        2.0,
    ]
    assert backoff_seconds(fold(*map(attempted, range(1, 30))), 0.5) == 60.0


# -- Meta's bodies and answers --------------------------------------------------------------------


def test_text_body() -> None:
    assert message_body(queued()) == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "5731",
        "biz_opaque_callback_data": str(CONVERSATION),
        "type": "text",
        "text": {"body": "¿En qué te ayudo?"},
    }


def test_a_customer_known_only_by_a_business_scoped_user_id_is_the_recipient() -> None:
    """Meta's "Business-scoped user IDs": ``to`` takes a phone number, ``recipient`` a BSUID."""
    body = message_body(queued(to="US.13491208655302741918"))
    assert body["recipient"] == "US.13491208655302741918"
    assert "to" not in body
    assert message_body(queued(to="+5731"))["to"] == "+5731"


def test_buttons_body() -> None:
    options = [ReplyOption(id="ventas", title="Ventas"), ReplyOption(id="soporte", title="Soporte")]
    body = message_body(queued("buttons", options=options))
    assert body["type"] == "interactive"
    assert body["interactive"] == {
        "type": "button",
        "body": {"text": "¿En qué te ayudo?"},
        "action": {
            "buttons": [
                {"type": "reply", "reply": {"id": "ventas", "title": "Ventas"}},
                {"type": "reply", "reply": {"id": "soporte", "title": "Soporte"}},
            ]
        },
    }


def test_list_body() -> None:
    options = [
        ReplyOption(id="a", title="Pedidos", description="Estado de tu pedido"),
        ReplyOption(id="b", title="Otro"),
    ]
    body = message_body(queued("list", options=options, list_button="Elegir"))
    assert body["interactive"] == {
        "type": "list",
        "body": {"text": "¿En qué te ayudo?"},
        "action": {
            "button": "Elegir",
            "sections": [
                {
                    "rows": [
                        {"id": "a", "title": "Pedidos", "description": "Estado de tu pedido"},
                        {"id": "b", "title": "Otro"},
                    ]
                }
            ],
        },
    }


def test_template_body() -> None:
    template = {"language": {"code": "es"}, "components": []}
    body = message_body(queued("template", text="order_update", template=template))
    assert (body["type"], body["template"]) == (
        "template",
        {"name": "order_update", "language": {"code": "es"}, "components": []},
    )


def test_what_metas_answers_mean() -> None:
    ok = orjson.dumps({"messaging_product": "whatsapp", "messages": [{"id": "wamid.X"}]})
    assert interpret(200, ok) == Accepted("wamid.X")
    error = orjson.dumps({"error": META_ERROR})
    assert interpret(400, error) == Rejected(
        400, META_ERROR, "HTTP 400: (#131030) Recipient not allowed; code 131030"
    )
    assert isinstance(interpret(429, error), Transient)
    assert isinstance(interpret(502, b"<html>Bad gateway</html>"), Transient)
    assert isinstance(interpret(200, b"{}"), Ambiguous)
    rejected = interpret(401, b"not json")
    assert isinstance(rejected, Rejected)
    assert rejected.error == {"body": "not json"}
