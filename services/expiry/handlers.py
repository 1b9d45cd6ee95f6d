"""Thin adapters of the expiry service: records move deadlines; the timer fires them.

Records are handled by the batch runtime (``DeadlineHandler``: which stream, which
decider); the timer fires one deadline per transaction (``DeadlineFirer``). Both write one
conversation's stream with optimistic concurrency: a record that moves a deadline while the
timer fires it makes one of the two appends conflict, and the loser decides again on the
stream as the winner left it (the runtime's conflict policy for a batch, the firer's own
loop for a firing). That is what makes a second firing impossible, on one replica or several.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from functools import reduce
from uuid import UUID, uuid5

from events.base import Payload
from events.conversation import CloseConversation, ConversationClosed, ConversationStarted
from events.envelope import Actor, Envelope
from events.expiry import DeadlineSet
from events.flows import ExpirationRequested
from events.operations import DeadlineDeadLettered
from runtime.decider import Decider, decide_on
from runtime.records import Record
from runtime.store import EventStore, NewEvent, StoredStream, StreamConflict
from runtime.work import Work
from services.expiry.decide import DeadlineState, deadline_stream, decide, evolve, fire

CONFLICT_ATTEMPTS = 5
EXPIRY = Actor(kind="system", id="expiry")
FIRING_NAMESPACE = UUID("1c9f4e27-6b3d-4a08-8e5f-d2a7c0b9e361")
PARKED_NAMESPACE = UUID("7a2d5c18-94e3-4f6b-b0c7-3e8a1f9d2b64")

DEADLINES: Decider[DeadlineState] = Decider("expiry.deadline", initial=DeadlineState, evolve=evolve)


class DeadlineHandler:
    """Conversation starts and closes and flow expiration requests, into deadlines: which
    conversation's stream, which decider (``decide.decide``)."""

    def __init__(self, *, max_age: timedelta, deadline_set: Callable[[datetime], None]) -> None:
        self.max_age = max_age
        # Tells the timer about a new deadline once it is committed, so it can wake early
        # when the deadline is sooner than the one it sleeps towards.
        self.deadline_set = deadline_set

    def __call__(self, work: Work, record: Record) -> None:
        envelope = record.envelope
        match envelope.payload:
            case ConversationStarted() | ConversationClosed() | ExpirationRequested() as event:
                conversation = event.conversation_id
            case _:
                return  # not about deadlines

        def decide_deadline(folded: DeadlineState) -> list[Payload]:
            # The stream id is derived from the conversation's: put it back in the state.
            state = replace(folded, conversation_id=conversation)
            return decide(event, state, workspace_id=envelope.workspace_id, max_age=self.max_age)

        caused = decide_on(
            work,
            DEADLINES,
            deadline_stream(conversation),
            decide_deadline,
            lambda payloads: envelope.caused(
                payloads,
                stream_of=lambda _payload: str(conversation),
                workspace_id=envelope.workspace_id,
                occurred_at=envelope.occurred_at,
                actor=EXPIRY,
            ),
        )
        for item in caused:
            if isinstance(item.payload, DeadlineSet):
                work.after_commit(functools.partial(self.deadline_set, item.payload.deadline))


class DeadlineFirer:
    """Fires one conversation's deadline at the timer's ``now``, at most once ever."""

    def __init__(self, store: EventStore) -> None:
        self.store = store

    def fire(self, conversation: UUID, now: datetime) -> bool:
        """Expire the conversation if its deadline passed; whether this call did it."""
        stream_id = deadline_stream(conversation)
        for _ in range(CONFLICT_ATTEMPTS):
            stream = self.store.load(stream_id)
            state = fold(conversation, stream)
            payloads = fire(state, now)
            if not payloads:
                return False  # moved later, closed or expired since the view said "due"
            cause = next(
                e for e in reversed(stream.envelopes) if isinstance(e.payload, DeadlineSet)
            )
            assert state.deadline is not None
            envelopes = [
                Envelope.wrap(
                    payload,
                    # Derived from the deadline it fires for: the same firing, the same ids.
                    event_id=uuid5(FIRING_NAMESPACE, f"{cause.event_id}/{index}"),
                    stream_id=stream_of(payload),
                    workspace_id=state.workspace_id,
                    # The event time of an expiry is its deadline, not when the timer ran.
                    occurred_at=state.deadline,
                    correlation_id=cause.correlation_id,
                    causation_id=cause.event_id,
                    actor=EXPIRY,
                )
                for index, payload in enumerate(payloads)
            ]
            try:
                self.store.append(_numbered(stream, envelopes), None)
            except StreamConflict:
                continue  # a record moved the deadline meanwhile: decide again
            return True
        raise StreamConflict(f"deadline of conversation {conversation} kept changing")

    def park(self, conversation: UUID, due_at: datetime, reason: str, now: datetime) -> None:
        """Give up a deadline that cannot fire: its dead letter, which also takes it out of
        the due deadlines (the conversation stays open; an operator reads why)."""
        event_id = uuid5(PARKED_NAMESPACE, f"{conversation}/{due_at.isoformat()}")
        envelope = Envelope.wrap(
            DeadlineDeadLettered(conversation_id=conversation, due_at=due_at, reason=reason[:2000]),
            event_id=event_id,
            stream_id=str(conversation),
            workspace_id=None,
            occurred_at=now,
            correlation_id=event_id,
            causation_id=None,
            actor=EXPIRY,
        )
        with contextlib.suppress(StreamConflict):  # parked before: nothing more to do
            self.store.append([NewEvent(event_id, 1, envelope)], None)


def fold(conversation: UUID, stream: StoredStream) -> DeadlineState:
    return reduce(evolve, (e.payload for e in stream.envelopes), DeadlineState(conversation))


def stream_of(payload: Payload) -> str:
    """The Kafka key: the close command goes to the contact's partition, as every close."""
    match payload:
        case CloseConversation(phone_number_id=number, contact_wa_id=contact):
            return f"{number}:{contact}"
        case _:
            return str(getattr(payload, "conversation_id"))  # noqa: B009 - every expiry event has one


def _numbered(stream: StoredStream, envelopes: list[Envelope]) -> list[NewEvent]:
    return [
        NewEvent(stream.originator_id, stream.version + index + 1, envelope)
        for index, envelope in enumerate(envelopes)
    ]
