"""The dispatcher's adapters: the send protocol around the Graph API call, and the windows view.

One outbound record is handled in one call of :meth:`OutboundHandler.handle`, in the
consumer runtime's worker thread, so the partition's next record waits until this one has
an outcome (messages of one conversation go out in the order they were queued):

1. keep the request (a retry will need its body);
2. decide, and append ``OutboundSendAttempted`` (or a refusal) *with the record's position*
   in one transaction — committed before any byte goes to Meta. From here on the record is
   handled: a redelivery finds its position and changes nothing;
3. call the Graph API; append ``Sent``, ``Failed`` or ``OutcomeUnknown``; on a transient
   failure with attempts left, back off and append the next ``OutboundSendAttempted``
   first, then call again.

A crash after step 2 leaves an attempt without a result. The runtime does not redeliver the
record (its position is recorded); instead, on every partition assignment, :meth:`settle`
marks such sends as of unknown outcome — unless this very process is still making the call.
A result arriving after another replica did so is still recorded when it is definite (see
``decide._record_result``).

Store writes after the call wait out a database outage instead of failing: the result is
only in memory, and failing the record would lose it.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar
from uuid import UUID, uuid5

import structlog
from eventsourcing.persistence import IntegrityError, Tracking

from events.base import Payload
from events.codec import decode, encode
from events.conversation import CustomerMessageReceived
from events.envelope import Actor, Envelope
from events.outbound import (
    OutboundMessageFailed,
    OutboundMessageQueued,
    OutboundMessageRefused,
    OutboundMessageSent,
    OutboundOutcomeUnknown,
    OutboundSendAttempted,
    RetryOutboundMessage,
)
from runtime.legacy import StoreBackedHandler
from runtime.outages import database_unavailable
from runtime.records import Delivery
from runtime.store import AlreadyTracked, EventStore, NewEvent, StreamConflict
from services.dispatcher.decide import (
    Abandon,
    Ambiguous,
    AttemptAgain,
    Command,
    Dispatch,
    MessageState,
    RecordResult,
    Retry,
    SendResult,
    backoff_seconds,
    decide,
    evolve,
)
from services.dispatcher.graph import GraphApi
from services.dispatcher.recorder import DispatcherRecorder

log = structlog.get_logger(__name__)
T = TypeVar("T")

DISPATCH_NAMESPACE = UUID("2f6b0c1e-93d4-4a8e-b7c5-6e1d0a9f4b37")
CONFLICT_ATTEMPTS = 5
DATABASE_BACKOFF_CAP_SECONDS = 5.0
ACTOR = Actor(kind="system", id="dispatcher")
CRASH_REASON = (
    "attempted before a crash: the attempt was recorded but its result never was;"
    " it may have reached the customer, so it is not resent without a retry request"
)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Cause:
    """The envelope fields the dispatcher's events inherit from what caused them."""

    workspace_id: UUID | None
    correlation_id: UUID
    causation_id: UUID

    @classmethod
    def of(cls, envelope: Envelope) -> Cause:
        return cls(envelope.workspace_id, envelope.correlation_id, envelope.event_id)


class OutboundHandler(StoreBackedHandler):
    """Queued messages and retry requests -> attempts, Graph API calls, outcomes."""

    name = "dispatcher"

    def __init__(
        self,
        store: EventStore,
        recorder: DispatcherRecorder,
        graph: GraphApi,
        *,
        max_attempts: int,
        backoff_seconds: float,
        clock: Callable[[], datetime] = utc_now,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.recorder = recorder
        self.graph = graph
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.clock = clock
        self.sleep = sleep
        # Messages whose send this process is working on right now: ``settle`` (run on a
        # partition assignment, in another thread) must not call them unknown.
        self._in_flight: set[UUID] = set()
        self._lock = threading.Lock()

    def handle(self, delivery: Delivery, envelope: Envelope) -> None:
        match envelope.payload:
            case OutboundMessageQueued() as request:
                structlog.contextvars.bind_contextvars(message_id=str(request.message_id))
                self.recorder.remember_request(
                    request.message_id,
                    request.conversation_id,
                    delivery.tracking.application_name,
                    encode(envelope),
                )
                command: Command = Dispatch(
                    request, self.recorder.window(request.conversation_id), self.clock()
                )
                self._act(request, command, Cause.of(envelope), delivery.tracking)
            case RetryOutboundMessage() as retry:
                structlog.contextvars.bind_contextvars(message_id=str(retry.message_id))
                stored = self.recorder.request(retry.message_id)
                if stored is None:
                    log.warning("retry requested for a message never queued here; nothing to do")
                    self.store.append([], delivery.tracking)
                    return
                queued = decode(stored, self.store.registry).payload
                if not isinstance(queued, OutboundMessageQueued):
                    raise TypeError(f"stored request of {retry.message_id} is {queued.event_type}")
                command = Retry(
                    queued,
                    retry,
                    envelope.occurred_at,
                    self.recorder.window(queued.conversation_id),
                    self.clock(),
                )
                self._act(queued, command, Cause.of(envelope), delivery.tracking)
            case _:
                raise TypeError(f"the dispatcher does not handle {envelope.event_type}")

    def settle(self, tracking_names: Iterable[str]) -> list[UUID]:
        """Call every send of these partitions left without a result (a crash) unknown."""
        open_sends = self.recorder.in_flight(tracking_names)
        # Read after the query: a send this process marks in flight is marked before its
        # attempt is committed, so any attempt the query saw of ours is in this copy.
        with self._lock:
            busy = set(self._in_flight)
        abandoned: list[UUID] = []
        for message_id in open_sends:
            if message_id in busy:
                continue
            stream = self.store.load(message_id)
            last = stream.envelopes[-1]
            _, events = self._commit(
                message_id, Abandon(CRASH_REASON, self.clock()), Cause.of(last), None
            )
            if events:
                abandoned.append(message_id)
        if abandoned:
            log.warning(
                "sends left without a result by a crash are now of unknown outcome",
                messages=[str(message) for message in abandoned],
            )
        return abandoned

    # -- the send protocol -------------------------------------------------------------------

    def _act(
        self, request: OutboundMessageQueued, command: Command, cause: Cause, tracking: Tracking
    ) -> None:
        with self._sending(request.message_id):
            # Raises AlreadyTracked for a redelivered record: nothing is sent then.
            state, events = self._commit(request.message_id, command, cause, tracking)
            if events and state.status == "attempting":
                self._send(request, state, cause)
            elif not events:
                log.info("nothing to do for this record", status=state.status)

    def _send(self, request: OutboundMessageQueued, state: MessageState, cause: Cause) -> None:
        message_id = request.message_id
        while True:
            attempt = state.attempts
            try:
                result: SendResult = self.graph.send(request)
            except Exception as error:
                # A bug, not an answer. The attempt is recorded and the request may have
                # left, so say so now rather than leave it open until the next assignment.
                log.exception("the Graph API call failed unexpectedly", attempt=attempt)
                result = Ambiguous(f"the call failed unexpectedly: {error!r}")
            log.info("graph api answered", attempt=attempt, result=repr(result))
            recorded = RecordResult(attempt, result, self.max_attempts, self.clock())
            state, events = self._durably(
                functools.partial(self._commit, message_id, recorded, cause, None)
            )
            if events or state.status != "attempting" or state.attempts != attempt:
                return
            # A transient failure with attempts left: wait, then record the next attempt
            # before making it.
            self.sleep(backoff_seconds(state, self.backoff_seconds))
            again = AttemptAgain(attempt, self.max_attempts, self.clock())
            state, events = self._durably(
                functools.partial(self._commit, message_id, again, cause, None)
            )
            if not events:
                return

    def _commit(
        self, message_id: UUID, command: Command, cause: Cause, tracking: Tracking | None
    ) -> tuple[MessageState, list[Payload]]:
        """Decide on the stream as stored and append: the new state and the new events.

        On a conflict (another writer appended first), reload and decide again.
        """
        for _ in range(CONFLICT_ATTEMPTS):
            state, version = self._load(message_id)
            payloads = decide(command, state)
            if not payloads and tracking is None:
                return state, []
            new_events = [
                NewEvent(
                    message_id,
                    version + index,
                    _envelope(payload, message_id, version + index, cause),
                )
                for index, payload in enumerate(payloads, start=1)
            ]
            try:
                self.store.append(new_events, tracking)
            except StreamConflict:
                continue
            for payload in payloads:
                state = evolve(state, payload)
            return state, payloads
        raise StreamConflict(f"message {message_id} kept changing under this dispatcher")

    def _load(self, message_id: UUID) -> tuple[MessageState, int]:
        stream = self.store.load(message_id)
        state = MessageState()
        for envelope in stream.envelopes:
            state = evolve(state, envelope.payload)
        return state, stream.version

    def _durably(self, work: Callable[[], T]) -> T:
        """Run a store write that must not be given up: wait until the database is back."""
        delay = 0.2
        while True:
            try:
                return work()
            except Exception as error:
                if not database_unavailable(error):
                    raise
                log.error("database unavailable with a result to record; waiting", error=str(error))
                self.sleep(delay)
                delay = min(delay * 2, DATABASE_BACKOFF_CAP_SECONDS)

    @contextmanager
    def _sending(self, message_id: UUID) -> Iterator[None]:
        with self._lock:
            self._in_flight.add(message_id)
        try:
            yield
        finally:
            with self._lock:
                self._in_flight.discard(message_id)


class WindowViewHandler(StoreBackedHandler):
    """Conversation events -> the ``windows`` view (when each customer last wrote)."""

    name = "dispatcher.windows"

    def __init__(self, store: EventStore, recorder: DispatcherRecorder) -> None:
        self.store = store
        self.recorder = recorder

    def handle(self, delivery: Delivery, envelope: Envelope) -> None:
        conversation_id: UUID | None = None
        sent_at: datetime | None = None
        if isinstance(envelope.payload, CustomerMessageReceived):
            conversation_id = envelope.payload.conversation_id
            sent_at = envelope.payload.sent_at
        try:
            self.recorder.record_window(conversation_id, sent_at, delivery.tracking)
        except IntegrityError:
            raise AlreadyTracked(delivery.tracking.application_name) from None


def _envelope(payload: Payload, message_id: UUID, version: int, cause: Cause) -> Envelope:
    """Keyed by conversation (the ordering unit downstream); its id names its place.

    The id derives from the message and the stream version, so deciding the same thing
    again (after a conflict) yields the same event.
    """
    conversation_id, occurred_at = _conversation_and_time(payload)
    return Envelope.wrap(
        payload,
        event_id=uuid5(DISPATCH_NAMESPACE, f"{message_id}/{version}"),
        stream_id=str(conversation_id),
        workspace_id=cause.workspace_id,
        occurred_at=occurred_at,
        correlation_id=cause.correlation_id,
        causation_id=cause.causation_id,
        actor=ACTOR,
    )


def _conversation_and_time(payload: Payload) -> tuple[UUID, datetime]:
    match payload:
        case OutboundSendAttempted(conversation_id=conversation, attempted_at=at):
            return conversation, at
        case OutboundMessageSent(conversation_id=conversation, sent_at=at):
            return conversation, at
        case OutboundMessageFailed(conversation_id=conversation, failed_at=at):
            return conversation, at
        case OutboundOutcomeUnknown(conversation_id=conversation, detected_at=at):
            return conversation, at
        case OutboundMessageRefused(conversation_id=conversation, refused_at=at):
            return conversation, at
        case _:
            raise TypeError(f"the dispatcher does not store {type(payload).__name__}")
