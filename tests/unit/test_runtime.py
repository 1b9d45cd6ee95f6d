"""The consumer runtime's own promises, on the in-memory store (no I/O).

The handler here is deliberately not idempotent (each record it sees adds an event), so
whatever it is handed twice shows.
"""

from __future__ import annotations

from uuid import UUID, uuid5

import pytest

from events.envelope import Envelope
from events.operations import InboundRecordUnrouted
from runtime.decider import Decider
from runtime.records import Delivery, Record
from runtime.views import CATCH_UP_SECONDS, ViewUnsure
from runtime.work import Work
from tests.memory import InMemory, Topic, envelope

pytestmark = pytest.mark.unit

TALLY = UUID("6f1c2a9e-0000-4000-8000-000000000001")
COUNT: Decider[int] = Decider("test.count", initial=lambda _: 0, evolve=lambda n, _: n + 1)


def counted(n: int, cause: Envelope) -> Envelope:
    payload = InboundRecordUnrouted(phone_number_id=str(n), reason="counted", record="{}")
    return envelope(payload, stream_id="tally", event_id=uuid5(cause.event_id, "counted"))


def count(work: Work, record: Record) -> None:
    """Adds one event to the tally for every record it is given."""
    n = work.fold(COUNT, TALLY)
    work.emit(TALLY, [counted(n + 1, record.envelope)])


def a_record() -> Envelope:
    payload = InboundRecordUnrouted(phone_number_id="1", reason="a record", record="{}")
    return envelope(payload, stream_id="k")


def test_a_record_published_again_is_never_handed_to_the_handler_again() -> None:
    tally = InMemory("tally", count)
    topic = Topic("some.topic")
    first, second = a_record(), a_record()
    tally.handle(topic.record(first), topic.record(second))
    # The relay publishes both again after a crash, one of them twice in one batch.
    tally.handle(topic.record(first), topic.record(second), topic.record(first))
    assert tally.store.load(TALLY).version == 2
    assert tally.store.position("some.topic#0") == 5


def test_records_handled_are_remembered_per_consumer() -> None:
    tally = InMemory("tally", count)
    other = InMemory("another-consumer", count, tally.store.another_process())
    topic = Topic("some.topic")
    record = a_record()
    tally.handle(topic.record(record))
    other.handle(Topic("other.topic").record(record))
    assert tally.store.load(TALLY).version == 2


def test_nothing_of_a_failed_batch_is_written_and_nothing_runs_after_it() -> None:
    ran: list[str] = []

    def then_fail(work: Work, record: Record) -> None:
        count(work, record)
        work.after_commit(lambda: ran.append(str(record.envelope.event_id)))
        if record.delivery.offset == 1:
            raise RuntimeError("the second record is bad")

    tally = InMemory("tally", then_fail)
    topic = Topic("some.topic")
    with pytest.raises(RuntimeError):
        tally.handle(topic.record(a_record()), topic.record(a_record()))
    assert tally.store.load(TALLY).version == 0
    assert tally.store.position("some.topic#0") is None
    assert ran == []


async def test_after_commit_work_runs_once_the_batch_committed() -> None:
    ran: list[int] = []

    def remember(work: Work, record: Record) -> None:
        count(work, record)
        work.after_commit(lambda: ran.append(record.delivery.offset))

    tally = InMemory("tally", remember)
    topic = Topic("some.topic")
    deliveries = [topic.record(a_record()) for _ in range(3)]
    await tally.consumer.handle_batch(tally.received(deliveries))
    assert ran == [0, 1, 2]


class SlowView:
    """A view that catches up when waited for (as a view consumer in the process does)."""

    topic = "directory.events"

    def __init__(self) -> None:
        self.caught_up = False
        self.waited = 0

    async def catch_up(self, *, within: float = CATCH_UP_SECONDS, what: str = "") -> None:
        self.waited += 1
        self.caught_up = True


async def test_a_view_not_caught_up_is_waited_for_outside_the_transaction() -> None:
    view = SlowView()
    believed: list[bool] = []

    def unsure_until_caught_up(work: Work, record: Record) -> None:
        count(work, record)
        if not view.caught_up:
            raise ViewUnsure(view, "who owns the number")
        believed.append(True)

    tally = InMemory("tally", unsure_until_caught_up)
    topic = Topic("some.topic")
    records = [topic.record(a_record()) for _ in range(2)]
    with pytest.raises(ViewUnsure):
        tally.handle(*records)
    await tally.handle_each(*records)
    assert view.waited == 1
    assert believed == [True, True]
    assert tally.store.load(TALLY).version == 2


async def test_a_record_that_keeps_failing_is_parked_and_its_partition_moves_on() -> None:
    def fail_on_second(work: Work, record: Record) -> None:
        if record.delivery.offset == 1:
            raise LookupError("nothing to decide on")
        count(work, record)

    tally = InMemory("tally", fail_on_second)
    topic = Topic("some.topic")
    deliveries: list[Delivery] = [topic.record(a_record()) for _ in range(3)]
    await tally.handle_each(*deliveries)
    assert tally.store.load(TALLY).version == 2
    dead = [e for e in tally.store.events() if e.event_type == "operations.record_dead_lettered"]
    assert len(dead) == 1
    assert "LookupError: nothing to decide on (after 3 attempts)" in str(dead[0].payload)
    assert tally.store.position("some.topic#0") == 3
    # Parking is by position: the same record fetched again is not parked twice.
    await tally.handle_each(deliveries[1])
    assert len([e for e in tally.store.events() if e.event_type == dead[0].event_type]) == 1


async def test_work_done_before_commit_fails_the_batch_and_each_record_then_stands_alone() -> None:
    """A handler that writes a batch's rows at once (the projector) does it as the unit of
    work commits: the callbacks see every record of the batch, in order; one that raises
    fails the whole batch (nothing written), and record by record only the bad one is parked."""
    batches: list[list[int]] = []

    def queue_then_write(work: Work, record: Record) -> None:
        count(work, record)
        offsets = [record.delivery.offset]

        def write() -> None:
            batches.append(offsets)
            if 1 in offsets:
                raise ValueError("the second record cannot be written")

        work.before_commit(write)

    tally = InMemory("tally", queue_then_write)
    topic = Topic("some.topic")
    deliveries = [topic.record(a_record()) for _ in range(3)]
    with pytest.raises(ValueError, match="second record"):
        tally.handle(*deliveries)
    assert batches == [[0], [1]]  # in record order, stopped at the failure
    assert tally.store.load(TALLY).version == 0
    assert tally.store.position("some.topic#0") is None

    batches.clear()
    await tally.handle_each(*deliveries)
    assert tally.store.load(TALLY).version == 2
    dead = [e for e in tally.store.events() if e.event_type == "operations.record_dead_lettered"]
    assert len(dead) == 1
    assert "ValueError: the second record cannot be written" in str(dead[0].payload)
    assert tally.store.position("some.topic#0") == 3
