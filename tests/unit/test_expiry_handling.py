"""The expiry service's handler through the runtime, on the in-memory store (no I/O).

Given conversation and flow events as a poll returns them, when the runtime handles them,
then each conversation's deadline stream holds what ``decide`` says, the timer hears of each
deadline only once it is committed, and a record published again changes nothing. (The
``deadlines`` view and the timer's firing are PostgreSQL's: ``tests/integration/test_expiry.py``.)
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from uuid import UUID

import pytest

from events.base import Payload
from events.conversation import CloseConversation, ConversationClosed, ConversationStarted
from events.envelope import Envelope
from events.expiry import ConversationExpired, DeadlineCancelled, DeadlineSet, FlowExpirationHeld
from events.flows import ExpirationRequested
from runtime.memory import MemoryStore
from runtime.records import Delivery
from runtime.store import StreamConflict
from services.expiry.decide import deadline_stream, fire
from services.expiry.handlers import DEADLINES, DeadlineHandler
from tests.memory import AT, InMemory, Topic, envelope

pytestmark = pytest.mark.unit

WORKSPACE = UUID(int=12)
CONVERSATION = UUID(int=11)
DAY = timedelta(hours=24)


class Expiry:
    """The expiry consumer in memory, with the deadlines it told the timer about."""

    def __init__(self, store: MemoryStore | None = None, *, partition: int = 0) -> None:
        self.told: list[datetime] = []
        handler = DeadlineHandler(max_age=DAY, deadline_set=self.told.append)
        self.records = InMemory("expiry", handler, store)
        self.conversations = Topic("conversation.events", partition)
        self.flows = Topic("flow.events", partition)

    @property
    def store(self) -> MemoryStore:
        return self.records.store

    def handle(self, *deliveries: Delivery) -> None:
        """One batch, with its after-commit work, as the runtime runs it."""
        for callback in self.records.consumer.commit_batch(self.records.received(deliveries)):
            callback()

    def deadlines(self) -> list[Payload]:
        return [p for p in self.records.payloads() if not isinstance(p, FlowExpirationHeld)]


def event(payload: Payload) -> Envelope:
    return envelope(payload, stream_id=str(CONVERSATION), workspace_id=WORKSPACE)


START = event(
    ConversationStarted(
        conversation_id=CONVERSATION,
        phone_number_id="4801",
        display_phone_number="57300",
        contact_wa_id="5731",
        contact_name="Valentina",
        started_at=AT,
    )
)
CLOSE = event(ConversationClosed(conversation_id=CONVERSATION, reason="agent", closed_at=AT))


def expiration(after: timedelta) -> Envelope:
    return event(
        ExpirationRequested(conversation_id=CONVERSATION, expires_at=AT + after, requested_at=AT)
    )


def test_a_start_sets_the_24_hour_deadline_and_the_timer_hears_of_it_once_committed() -> None:
    expiry = Expiry()
    expiry.handle(expiry.conversations.record(START))
    (deadline,) = expiry.records.payloads()
    assert isinstance(deadline, DeadlineSet)
    assert (deadline.deadline, deadline.cause) == (AT + DAY, "meta_24h")
    assert expiry.told == [AT + DAY]
    assert [e.stream_id for e in expiry.store.events()] == [str(CONVERSATION)]
    assert expiry.store.load(deadline_stream(CONVERSATION)).version == 1


def test_a_flow_expiration_read_before_the_start_is_held_and_applied_at_it() -> None:
    expiry = Expiry()
    # flow.events and conversation.events are read independently: one batch, both topics.
    expiry.handle(
        expiry.flows.record(expiration(timedelta(minutes=30))),
        expiry.conversations.record(START),
    )
    payloads = expiry.records.payloads()
    assert [type(p) for p in payloads] == [FlowExpirationHeld, DeadlineSet]
    deadline = payloads[-1]
    assert isinstance(deadline, DeadlineSet)
    assert (deadline.deadline, deadline.cause) == (AT + timedelta(minutes=30), "flow")
    assert expiry.store.position("flow.events#0") == 1
    assert expiry.store.position("conversation.events#0") == 1


def test_records_published_again_at_new_offsets_change_nothing() -> None:
    expiry = Expiry()
    move = expiration(timedelta(hours=2))
    expiry.handle(
        expiry.conversations.record(START),
        expiry.flows.record(move),
        expiry.conversations.record(CLOSE),
    )
    before = expiry.records.payloads()
    assert [type(p) for p in before] == [DeadlineSet, DeadlineSet, DeadlineCancelled]
    # The relay publishes them again after a crash: same event ids, later offsets.
    expiry.handle(expiry.conversations.record(START), expiry.flows.record(move))
    expiry.handle(expiry.conversations.record(CLOSE))
    assert expiry.records.payloads() == before
    assert expiry.store.position("conversation.events#0") == 4
    assert len(expiry.told) == 2  # only the committed deadlines, once each


def test_a_batch_that_fails_tells_the_timer_nothing() -> None:
    expiry = Expiry()
    other = UUID(int=13)
    homeless = envelope(
        START.payload.model_copy(update={"conversation_id": other}),
        stream_id=str(other),
        workspace_id=None,
    )
    with pytest.raises(ValueError, match="started in no workspace"):
        expiry.handle(expiry.conversations.record(START), expiry.conversations.record(homeless))
    assert expiry.records.payloads() == []
    assert expiry.told == []


async def test_a_record_on_a_deadline_the_timer_fired_meanwhile_decides_again() -> None:
    expiry = Expiry()
    expiry.handle(expiry.conversations.record(START))
    # The timer (another writer of the stream) fires the deadline; this process's cached
    # state of the stream still says "open".
    timer = expiry.store.another_process()
    with timer.work() as work:
        stream = deadline_stream(CONVERSATION)
        state = replace(work.fold(DEADLINES, stream), conversation_id=CONVERSATION)
        fired = fire(state, AT + DAY)
        work.emit(stream, [event(payload) for payload in fired])
        work.commit()
    late = expiry.conversations.record(CLOSE)
    with pytest.raises(StreamConflict):
        expiry.handle(late)  # decided on the cached "open": a cancellation, refused
    await expiry.records.handle_each(late)
    assert [type(p) for p in expiry.deadlines()] == [
        DeadlineSet,
        ConversationExpired,
        CloseConversation,
    ]
    assert expiry.store.position("conversation.events#0") == 2
