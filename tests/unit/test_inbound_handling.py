"""The inbound service's handlers through the runtime, on the in-memory store (no I/O).

Given the records a poll returns, when the runtime handles them as one batch, then these
events are stored, these positions recorded, and a record handled before changes nothing.
"""

from __future__ import annotations

import pytest

from events.conversation import (
    CloseConversation,
    ConversationClosed,
    ConversationStarted,
    CustomerMessageReceived,
)
from events.directory import BusinessNumberConnected
from events.envelope import Envelope
from events.operations import InboundRecordUnrouted, RecordDeadLettered
from events.whatsapp import WhatsAppMessageReceived, WhatsAppStatusReceived
from runtime.memory import MemoryStore
from runtime.store import StreamConflict
from runtime.views import Complete
from services.inbound.decide import conversation_id, thread_id
from services.inbound.handlers import DirectoryViewHandler, InboundHandler
from services.inbound.routes import MemoryNumberRoutes
from tests.memory import InMemory, Topic, envelope
from tests.unit.test_inbound_decide import WORKSPACE, message, status

pytestmark = pytest.mark.unit

NUMBER = "4801"
THREAD = thread_id(WORKSPACE, NUMBER, "5731")


class Inbound:
    """The inbound process in memory: its two consumers on one store."""

    def __init__(self, store: MemoryStore | None = None) -> None:
        routes = MemoryNumberRoutes()
        self.records = InMemory("inbound", InboundHandler(routes, Complete()), store)
        self.view = InMemory("inbound.directory-view", DirectoryViewHandler(routes), self.store)
        self.webhooks = Topic("whatsapp.inbound")
        self.directory = Topic("directory.events")

    @property
    def store(self) -> MemoryStore:
        return self.records.store

    def connect_number(self) -> None:
        connected = BusinessNumberConnected(
            workspace_id=WORKSPACE, phone_number_id=NUMBER, agent_conversations=True
        )
        self.view.handle(
            self.directory.record(
                envelope(connected, stream_id=str(WORKSPACE), workspace_id=WORKSPACE)
            )
        )


def webhook(payload: WhatsAppMessageReceived | WhatsAppStatusReceived) -> Envelope:
    return envelope(payload, stream_id=f"{NUMBER}:5731")


def test_a_batch_starts_one_conversation_and_later_records_see_the_earlier_ones() -> None:
    inbound = Inbound()
    inbound.connect_number()
    inbound.records.handle(
        *(inbound.webhooks.record(webhook(message(wamid))) for wamid in ("w1", "w2", "w3"))
    )
    payloads = inbound.records.payloads()
    started = [p for p in payloads if isinstance(p, ConversationStarted)]
    lines = [p for p in payloads if isinstance(p, CustomerMessageReceived)]
    assert len(started) == 1
    assert [(line.wamid, line.sequence) for line in lines] == [("w1", 1), ("w2", 2), ("w3", 3)]
    assert {line.conversation_id for line in lines} == {conversation_id(THREAD, 1)}
    assert inbound.store.position("whatsapp.inbound#0") == 3
    assert inbound.store.load(THREAD).version == 4


def test_a_record_published_again_at_a_new_offset_changes_nothing() -> None:
    inbound = Inbound()
    inbound.connect_number()
    first = webhook(message("w1"))
    inbound.records.handle(inbound.webhooks.record(first))
    close = envelope(
        CloseConversation(
            conversation_id=conversation_id(THREAD, 1),
            workspace_id=WORKSPACE,
            phone_number_id=NUMBER,
            contact_wa_id="5731",
            reason="agent",
        ),
        stream_id=f"{NUMBER}:5731",
        workspace_id=WORKSPACE,
    )
    inbound.records.handle(inbound.webhooks.record(close))
    before = inbound.records.payloads()
    # The relay publishes the close again after a crash: same event id, a later offset, in
    # the same batch as a new message (which must start the next conversation).
    inbound.records.handle(
        inbound.webhooks.record(close), inbound.webhooks.record(webhook(message("w2")))
    )
    after = inbound.records.payloads()
    new = after[len(before) :]
    assert [type(p).__name__ for p in new] == ["ConversationStarted", "CustomerMessageReceived"]
    assert sum(isinstance(p, ConversationClosed) for p in after) == 1
    assert inbound.store.position("whatsapp.inbound#0") == 4


def test_a_redelivered_record_is_recognised_by_its_position() -> None:
    inbound = Inbound()
    inbound.connect_number()
    record = inbound.webhooks.record(webhook(message("w1")))
    inbound.records.handle(record)
    stored = len(inbound.records.payloads())
    inbound.records.handle(record)  # Kafka gives it again (a rebalance, a restart)
    assert len(inbound.records.payloads()) == stored


def test_a_record_for_a_number_no_workspace_owns_is_kept_whole_once() -> None:
    inbound = Inbound()
    record = webhook(message("w1"))
    inbound.records.handle(inbound.webhooks.record(record))
    unrouted = [p for p in inbound.records.payloads() if isinstance(p, InboundRecordUnrouted)]
    assert len(unrouted) == 1
    assert unrouted[0].phone_number_id == NUMBER
    assert str(record.event_id) in unrouted[0].record  # the record, whole


def test_what_cannot_be_decoded_is_parked_and_the_batch_goes_on() -> None:
    inbound = Inbound()
    inbound.connect_number()
    inbound.records.handle(
        inbound.webhooks.record(b"{not json"),
        inbound.webhooks.record(None),
        inbound.webhooks.record(webhook(message("w1"))),
    )
    parked = [p for p in inbound.records.payloads() if isinstance(p, RecordDeadLettered)]
    assert [(p.source_offset, p.reason.split(":")[0]) for p in parked] == [
        (0, "undecodable record"),
        (1, "tombstone"),
    ]
    assert any(isinstance(p, CustomerMessageReceived) for p in inbound.records.payloads())
    assert inbound.store.position("whatsapp.inbound#0") == 3


async def test_a_bad_record_fails_its_batch_whole_then_alone_it_is_parked() -> None:
    inbound = Inbound()
    inbound.connect_number()
    no_recipient = status("w9", "sent")
    no_recipient = no_recipient.model_copy(update={"status": {"id": "w9", "status": "sent"}})
    records = [
        inbound.webhooks.record(webhook(message("w1"))),
        inbound.webhooks.record(webhook(no_recipient)),
        inbound.webhooks.record(webhook(message("w2"))),
    ]
    with pytest.raises(ValueError, match="names no recipient"):
        inbound.records.handle(*records)
    assert inbound.records.payloads() == []  # all or nothing
    assert inbound.store.position("whatsapp.inbound#0") is None

    await inbound.records.handle_each(*records)
    payloads = inbound.records.payloads()
    assert [p.wamid for p in payloads if isinstance(p, CustomerMessageReceived)] == ["w1", "w2"]
    parked = [p for p in payloads if isinstance(p, RecordDeadLettered)]
    assert len(parked) == 1
    assert parked[0].source_offset == 1
    assert "after 3 attempts" in parked[0].reason
    assert inbound.store.position("whatsapp.inbound#0") == 3


async def test_a_replica_deciding_on_an_out_of_date_thread_conflicts_then_decides_again() -> None:
    first = Inbound()
    first.connect_number()
    second = Inbound(first.store.another_process())
    second.webhooks = Topic("whatsapp.inbound", partition=1)  # its partitions during a rebalance
    first.records.handle(first.webhooks.record(webhook(message("w1"))))
    # The second replica appends to the thread, so the first's cached state is behind.
    second.records.handle(second.webhooks.record(webhook(message("w2"))))
    late = first.webhooks.record(webhook(message("w3")))
    with pytest.raises(StreamConflict):
        first.records.handle(late)
    assert len(first.records.payloads()) == 3  # nothing of the failed batch
    await first.records.handle_each(late)
    lines = [p for p in first.records.payloads() if isinstance(p, CustomerMessageReceived)]
    assert [(line.wamid, line.sequence) for line in lines] == [
        ("w1", 1),
        ("w2", 2),
        ("w3", 3),
    ]
