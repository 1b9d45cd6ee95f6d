"""The dispatcher's adapters: the send protocol around the Graph API call, and the windows view.

Outbound records are handled by the batch runtime (``runtime.consumer``); what a record
causes is split at the call, so that no Graph API call ever happens inside a transaction
that could still roll back:

1. in the batch's unit of work (:class:`OutboundHandler`): keep the request (a retry will
   need its body), decide on the message's stream (``decide.decide``) and stage
   ``OutboundSendAttempted`` (or a refusal); it commits with the record's position and event
   id. From here on the record is handled: a redelivery (same offset) or a re-published
   record (same event id, new offset) finds it handled and changes nothing;
2. only once that commit succeeded (``work.after_commit``): call the Graph API; append
   ``Sent``, ``Failed`` or ``OutcomeUnknown`` in a transaction of its own; on a transient
   failure with attempts left, back off and append the next ``OutboundSendAttempted``
   first, then call again.

The runtime runs the calls in the order the records were handled, before it takes the next
batch, so messages of one conversation go out in the order they were queued. Every attempt
of a batch is committed before the first call, so the outbound subscription takes small
batches (``app.SEND_BATCH_MAX_RECORDS``): a crash leaves at most that many attempts without
a result.

A crash after step 1 leaves an attempt without a result. The runtime does not handle the
record again (its position is recorded); instead, on every partition assignment,
:meth:`OutboundHandler.settle` marks such sends as of unknown outcome — unless this very
process is still to make, or making, the call. A result arriving after another replica did
so is still recorded when it is definite (see ``decide._record_result``).

Store writes after the call wait out a database outage instead of failing: the result is
only in memory, and failing would lose it.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar
from uuid import UUID, uuid5

import structlog

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
from runtime.decider import Decider
from runtime.outages import database_unavailable
from runtime.records import Record
from runtime.store import EventStore, NewEvent, StreamConflict
from runtime.views import Believer
from runtime.work import Work, cursor_of
from services.dispatcher.decide import (
    FREE_FORM_KINDS,
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
    window_open,
)
from services.dispatcher.graph import GraphApi
from services.dispatcher.recorder import DispatcherRecorder

log = structlog.get_logger(__name__)
T = TypeVar("T")

DISPATCH_NAMESPACE = UUID("2f6b0c1e-93d4-4a8e-b7c5-6e1d0a9f4b37")
CONFLICT_ATTEMPTS = 5
MESSAGES: Decider[MessageState] = Decider(
    "dispatcher.message", initial=lambda _: MessageState(), evolve=evolve
)
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


class OutboundHandler:
    """Queued messages and retry requests -> attempts, Graph API calls, outcomes."""

    def __init__(
        self,
        store: EventStore,
        recorder: DispatcherRecorder,
        graph: GraphApi,
        windows: Believer,
        *,
        max_attempts: int,
        backoff_seconds: float,
        clock: Callable[[], datetime] = utc_now,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.recorder = recorder
        self.graph = graph
        self.windows = windows
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.clock = clock
        self.sleep = sleep
        # Messages whose send this process has staged or is making right now: ``settle``
        # (run on a partition assignment, in another thread) must not call them unknown.
        # A message is marked before its attempt can commit, unmarked once its call is
        # over or its unit of work rolled back.
        self._in_flight: dict[UUID, int] = {}
        self._lock = threading.Lock()

    def __call__(self, work: Work, record: Record) -> None:
        envelope = record.envelope
        cursor = cursor_of(work)
        delivery = record.delivery
        match envelope.payload:
            case OutboundMessageQueued() as request:
                self.recorder.remember_request(
                    cursor,
                    request.message_id,
                    request.conversation_id,
                    delivery.tracking_name,
                    encode(envelope),
                )
                window = self.recorder.window(cursor, request.conversation_id)
                if request.kind in FREE_FORM_KINDS and not window_open(window, request.queued_at):
                    self._believe_closed(record, request.conversation_id)
                command: Command = Dispatch(request, window, self.clock())
                self._stage(work, record, request, command)
            case RetryOutboundMessage() as retry:
                stored = self.recorder.request(cursor, retry.message_id)
                if stored is None:
                    log.warning(
                        "retry requested for a message never queued here; nothing to do",
                        message_id=str(retry.message_id),
                    )
                    return
                queued = decode(stored, self.store.registry).payload
                if not isinstance(queued, OutboundMessageQueued):
                    raise TypeError(f"stored request of {retry.message_id} is {queued.event_type}")
                window = self.recorder.window(cursor, queued.conversation_id)
                if not window_open(window, envelope.occurred_at):
                    self._believe_closed(record, queued.conversation_id)
                command = Retry(queued, retry, envelope.occurred_at, window, self.clock())
                self._stage(work, record, queued, command)
            case _:
                raise TypeError(f"the dispatcher does not handle {envelope.event_type}")

    def _believe_closed(self, record: Record, conversation: UUID) -> None:
        """The customer's message and the reply it caused travel on different topics, so the
        reply can arrive first: a closed window is believed only once the windows view has
        read every conversation event that existed when this record arrived (else the
        runtime waits for the view outside the transaction and handles the record again)."""
        self.windows.believe(
            record.delivery,
            f"whether the customer of conversation {conversation} wrote within 24 hours",
        )

    def _stage(
        self, work: Work, record: Record, request: OutboundMessageQueued, command: Command
    ) -> None:
        """Decide on the message's stream in the unit of work; stage what was decided, and
        the call to make once it is committed."""
        message_id = request.message_id
        state = work.fold(MESSAGES, message_id)
        payloads = decide(command, state)
        if not payloads:
            log.info("nothing to do for this record", status=state.status)
            return
        cause = Cause.of(record.envelope)
        version = work.version(message_id)
        work.append(
            [
                NewEvent(
                    message_id, version + i, _envelope(payload, message_id, version + i, cause)
                )
                for i, payload in enumerate(payloads, start=1)
            ]
        )
        self.recorder.moved_by(cursor_of(work), message_id, record.delivery.tracking_name)
        state = work.fold(MESSAGES, message_id)
        if state.status != "attempting":
            return
        # Marked before the attempt can commit (settle must see it as ours); unmarked when
        # the unit of work rolls back, or when the call is over.
        self._mark(message_id)
        work.after_rollback(functools.partial(self._unmark, message_id))
        work.after_commit(functools.partial(self._call, request, state, cause))

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
                message_id, Abandon(CRASH_REASON, self.clock()), Cause.of(last)
            )
            self.store.cache.drop([message_id])
            if events:
                abandoned.append(message_id)
        if abandoned:
            log.warning(
                "sends left without a result by a crash are now of unknown outcome",
                messages=[str(message) for message in abandoned],
            )
        return abandoned

    def _call(self, request: OutboundMessageQueued, state: MessageState, cause: Cause) -> None:
        """After the attempt committed: make the call and record its outcome."""
        try:
            with structlog.contextvars.bound_contextvars(message_id=str(request.message_id)):
                self._send(request, state, cause)
        finally:
            # The stream moved on outside the batches: the cached state is out of date.
            self.store.cache.drop([request.message_id])
            self._unmark(request.message_id)

    # -- the send protocol -------------------------------------------------------------------

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
                functools.partial(self._commit, message_id, recorded, cause)
            )
            if events or state.status != "attempting" or state.attempts != attempt:
                return
            # A transient failure with attempts left: wait, then record the next attempt
            # before making it.
            self.sleep(backoff_seconds(state, self.backoff_seconds))
            again = AttemptAgain(attempt, self.max_attempts, self.clock())
            state, events = self._durably(functools.partial(self._commit, message_id, again, cause))
            if not events:
                return

    def _commit(
        self, message_id: UUID, command: Command, cause: Cause
    ) -> tuple[MessageState, list[Payload]]:
        """Outside the batches (after a call, when settling): decide on the stream as stored
        and append in a transaction of its own; the new state and the new events.

        On a conflict (another writer appended first), reload and decide again.
        """
        for _ in range(CONFLICT_ATTEMPTS):
            state, version = self._load(message_id)
            payloads = decide(command, state)
            if not payloads:
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
                self.store.append(new_events, None)
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

    def _mark(self, message_id: UUID) -> None:
        with self._lock:
            self._in_flight[message_id] = self._in_flight.get(message_id, 0) + 1

    def _unmark(self, message_id: UUID) -> None:
        with self._lock:
            left = self._in_flight.get(message_id, 0) - 1
            if left > 0:
                self._in_flight[message_id] = left
            else:
                self._in_flight.pop(message_id, None)


class WindowViewHandler:
    """Conversation events -> the ``windows`` view (when each customer last wrote)."""

    def __init__(self, recorder: DispatcherRecorder) -> None:
        self.recorder = recorder

    def __call__(self, work: Work, record: Record) -> None:
        payload = record.envelope.payload
        if isinstance(payload, CustomerMessageReceived):
            self.recorder.record_window(cursor_of(work), payload.conversation_id, payload.sent_at)


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
