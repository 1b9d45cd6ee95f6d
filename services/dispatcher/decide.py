"""Pure decisions of the dispatcher about one outbound message.

Two rules live here.

**The customer-service window.** Meta delivers free-form messages (text, reply buttons,
lists) only within 24 hours of the customer's last message; every customer message opens
the window again. Outside it only a template may be sent, so free-form messages are refused
here, with the reason, rather than sent to be refused by Meta. The window is judged at the
time of the request (the message's ``queued_at``, a retry's own time), never by a clock,
so a replay judges the same way.

**The send protocol**, which is what makes a message go out at most once. WhatsApp has no
idempotency key: a request that reached Meta cannot be taken back, and a second one reaches
the customer twice. So every call to the Graph API is preceded by exactly one durable
``OutboundSendAttempted``, and a message whose last attempt has no recorded result is never
sent again by itself::

    new ──Dispatch──> refused | attempting(1)
    attempting(n) ──RecordResult──> sent | failed | unknown
                                  | (429, 5xx, no connection; attempts left) back off,
                                    then AttemptAgain ──> attempting(n+1)
    attempting(n) ──Abandon (found open after a crash)──> unknown
    failed | unknown ──Retry (an explicit decision)──> refused | attempting(n+1)

A retry starts a new *round*: the attempt numbers go on, and the round gets the whole
attempt budget again. The moments of attempts and results (``at``) are wall-clock facts
about a call made to the world, passed in by the adapter; deciding never reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal
from uuid import UUID

from events.base import JsonObject, Payload
from events.outbound import (
    OutboundMessageFailed,
    OutboundMessageQueued,
    OutboundMessageRefused,
    OutboundMessageSent,
    OutboundOutcomeUnknown,
    OutboundSendAttempted,
    RetryOutboundMessage,
)

CUSTOMER_SERVICE_WINDOW = timedelta(hours=24)
# What Meta calls free-form messages: refused outside the window. Templates are not.
FREE_FORM_KINDS = frozenset({"text", "buttons", "list"})
MAX_BACKOFF_SECONDS = 60.0

Status = Literal["new", "attempting", "sent", "failed", "unknown", "refused"]


@dataclass(frozen=True)
class MessageState:
    """What the dispatcher has recorded about one message (its stream, folded)."""

    message_id: UUID | None = None
    conversation_id: UUID | None = None
    status: Status = "new"
    attempts: int = 0
    # The number of the first attempt of the current round; a retry request opens a round.
    round_start: int = 1

    @property
    def attempts_in_round(self) -> int:
        return self.attempts - self.round_start + 1


def evolve(state: MessageState, event: Payload) -> MessageState:
    match event:
        case OutboundSendAttempted(message_id=message, conversation_id=conversation, attempt=n):
            return replace(
                state,
                message_id=message,
                conversation_id=conversation,
                status="attempting",
                attempts=n,
            )
        case OutboundMessageSent(attempts=n):
            return replace(state, status="sent", attempts=n)
        case OutboundMessageFailed(message_id=message, conversation_id=conversation, attempts=n):
            return replace(
                state,
                message_id=message,
                conversation_id=conversation,
                status="failed",
                attempts=n,
                round_start=n + 1,
            )
        case OutboundOutcomeUnknown(attempts=n):
            return replace(state, status="unknown", attempts=n, round_start=n + 1)
        case OutboundMessageRefused(message_id=message, conversation_id=conversation):
            return replace(
                state,
                message_id=message,
                conversation_id=conversation,
                status="refused",
                round_start=state.attempts + 1,
            )
        case _:
            return state


# -- what a call to the Graph API came to ---------------------------------------------------


@dataclass(frozen=True)
class Accepted:
    """Meta took the message (HTTP 2xx) and named it: ``messages[0].id``."""

    wamid: str


@dataclass(frozen=True)
class Rejected:
    """Meta refused the message itself (a 4xx other than 429): sending it again cannot help."""

    http_status: int
    error: JsonObject | None
    detail: str


@dataclass(frozen=True)
class Transient:
    """Worth another attempt: 429 (throttled), 5xx, or Meta was never reached."""

    http_status: int | None
    error: JsonObject | None
    detail: str


@dataclass(frozen=True)
class Ambiguous:
    """The request left but no answer came (read timeout, dropped connection): it may be sent."""

    detail: str


SendResult = Accepted | Rejected | Transient | Ambiguous


# -- commands (imperative; the adapter builds them from records and from calls) -------------


@dataclass(frozen=True)
class Dispatch:
    """A queued message arrived. ``at``: when its first attempt would be recorded."""

    request: OutboundMessageQueued
    last_customer_message_at: datetime | None
    at: datetime


@dataclass(frozen=True)
class Retry:
    """An explicit decision to try again; ``requested_at`` (its event time) judges the window."""

    request: OutboundMessageQueued
    retry: RetryOutboundMessage
    requested_at: datetime
    last_customer_message_at: datetime | None
    at: datetime


@dataclass(frozen=True)
class RecordResult:
    """The answer (or its absence) to attempt number ``attempt``."""

    attempt: int
    result: SendResult
    max_attempts: int
    at: datetime


@dataclass(frozen=True)
class AttemptAgain:
    """After backing off from a transient failure of attempt ``after_attempt``."""

    after_attempt: int
    max_attempts: int
    at: datetime


@dataclass(frozen=True)
class Abandon:
    """An attempt found without a result where no call can still be running (a crash)."""

    reason: str
    at: datetime


Command = Dispatch | Retry | RecordResult | AttemptAgain | Abandon


def decide(command: Command, state: MessageState) -> list[Payload]:
    """The events a command causes on one message's stream (none: nothing to do)."""
    match command:
        case Dispatch(request=request, last_customer_message_at=last, at=at):
            if state.status != "new":
                return []  # the same request delivered again: it was decided on already
            reason = window_refusal(request.kind, last, request.queued_at)
            if reason is not None:
                return [
                    _refused(
                        request.message_id, request.conversation_id, reason, at=request.queued_at
                    )
                ]
            return [
                OutboundSendAttempted(
                    message_id=request.message_id,
                    conversation_id=request.conversation_id,
                    attempt=1,
                    attempted_at=at,
                )
            ]
        case Retry(request=request, requested_at=requested_at, last_customer_message_at=last):
            if state.status not in ("failed", "unknown"):
                return []  # sent, refused, in flight, or never queued here: a retry cannot act
            reason = window_refusal(request.kind, last, requested_at)
            if reason is not None:
                return [
                    _refused(request.message_id, request.conversation_id, reason, at=requested_at)
                ]
            return [
                OutboundSendAttempted(
                    message_id=request.message_id,
                    conversation_id=request.conversation_id,
                    attempt=state.attempts + 1,
                    attempted_at=command.at,
                )
            ]
        case RecordResult():
            return _record_result(command, state)
        case AttemptAgain(after_attempt=after, max_attempts=max_attempts, at=at):
            if (
                state.status != "attempting"
                or state.attempts != after
                or state.attempts_in_round >= max_attempts
            ):
                return []
            message, conversation = _ids(state)
            return [
                OutboundSendAttempted(
                    message_id=message,
                    conversation_id=conversation,
                    attempt=after + 1,
                    attempted_at=at,
                )
            ]
        case Abandon(reason=reason, at=at):
            if state.status != "attempting":
                return []
            message, conversation = _ids(state)
            return [
                OutboundOutcomeUnknown(
                    message_id=message,
                    conversation_id=conversation,
                    attempts=state.attempts,
                    reason=reason,
                    detected_at=at,
                )
            ]


def _record_result(command: RecordResult, state: MessageState) -> list[Payload]:
    """Sent, failed or unknown; nothing when a transient failure leaves attempts to make.

    A result may also arrive *late*, after another replica that took over the partition
    called the attempt unknown while the call was still running: a definite answer
    (sent, refused by Meta) is still recorded then, because it is the truth about the
    message; an indefinite one adds nothing and starts no new attempt.
    """
    if state.attempts != command.attempt or state.status not in ("attempting", "unknown"):
        return []
    message, conversation = _ids(state)
    at = command.at
    late = state.status == "unknown"
    match command.result:
        case Accepted(wamid=wamid):
            return [
                OutboundMessageSent(
                    message_id=message,
                    conversation_id=conversation,
                    wamid=wamid,
                    attempts=command.attempt,
                    sent_at=at,
                )
            ]
        case Rejected(http_status=http_status, error=error, detail=detail):
            return [
                OutboundMessageFailed(
                    message_id=message,
                    conversation_id=conversation,
                    reason=f"Meta refused the message: {detail}",
                    attempts=command.attempt,
                    http_status=http_status,
                    error=error,
                    failed_at=at,
                )
            ]
        case _ if late:
            return []
        case Ambiguous(detail=detail):
            return [
                OutboundOutcomeUnknown(
                    message_id=message,
                    conversation_id=conversation,
                    attempts=command.attempt,
                    reason=f"{detail}; it may have reached the customer, so it is not resent"
                    " without a retry request",
                    detected_at=at,
                )
            ]
        case Transient(http_status=http_status, error=error, detail=detail):
            if state.attempts_in_round < command.max_attempts:
                return []  # back off, then AttemptAgain
            return [
                OutboundMessageFailed(
                    message_id=message,
                    conversation_id=conversation,
                    reason=f"gave up after {state.attempts_in_round} attempts; last: {detail}",
                    attempts=command.attempt,
                    http_status=http_status,
                    error=error,
                    failed_at=at,
                )
            ]
    return []  # unreachable: every SendResult is matched above (mypy cannot see it)


def window_open(last_customer_message_at: datetime | None, at: datetime) -> bool:
    """Whether free-form messages may be sent at ``at``.

    A customer message later than ``at`` (the customer wrote again after the message was
    queued) opens the window too: by the time the message is sent it is open.
    """
    if last_customer_message_at is None:
        return False
    return at - last_customer_message_at < CUSTOMER_SERVICE_WINDOW


def window_refusal(
    kind: str, last_customer_message_at: datetime | None, at: datetime
) -> str | None:
    """Why a message of ``kind`` may not be sent at ``at``; None when it may."""
    if kind not in FREE_FORM_KINDS or window_open(last_customer_message_at, at):
        return None
    if last_customer_message_at is None:
        since = "the customer has not written in this conversation"
    else:
        hours = (at - last_customer_message_at) / timedelta(hours=1)
        since = (
            f"the customer last wrote at {last_customer_message_at.isoformat()},"
            f" {hours:.1f} hours before {at.isoformat()}"
        )
    return (
        f"a {kind} message is outside the 24-hour customer-service window ({since});"
        " Meta accepts only templates outside it"
    )


def backoff_seconds(state: MessageState, base: float) -> float:
    """How long to wait after the current attempt failed transiently: doubling, capped."""
    return float(min(base * 2 ** max(state.attempts_in_round - 1, 0), MAX_BACKOFF_SECONDS))


def _ids(state: MessageState) -> tuple[UUID, UUID]:
    """The message's and conversation's ids, known once any event was folded in."""
    if state.message_id is None or state.conversation_id is None:
        raise ValueError(f"a {state.status} message state without its ids: no event in it")
    return state.message_id, state.conversation_id


def _refused(message: UUID, conversation: UUID, reason: str, *, at: datetime) -> Payload:
    return OutboundMessageRefused(
        message_id=message, conversation_id=conversation, reason=reason, refused_at=at
    )
