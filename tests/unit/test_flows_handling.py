"""The flows service's handlers through the runtime, on the in-memory store (no I/O).

Given the directory events its view reads and the conversation events a poll returns, when
the runtime handles them in batches, then each run says and asks what its flow says, once:
a record the relay publishes again (same event id, a new offset) changes nothing.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest

from events.base import Payload
from events.codec import decode
from events.conversation import ConversationStarted, CustomerMessageReceived
from events.directory import BusinessNumberConnected, WorkspaceCreated
from events.envelope import Envelope
from events.flows import (
    ActiveFlowChosen,
    AnswerCaptured,
    FlowPublished,
    FlowRunStarted,
    HandOffRequested,
)
from events.outbound import OutboundMessageQueued
from runtime.memory import MemoryStore
from runtime.records import Delivery
from runtime.store import StreamConflict
from runtime.views import Complete
from services.flows.decide import run_id
from services.flows.handlers import FlowDirectoryViewHandler, FlowRunHandler
from services.flows.views import MemoryFlowDirectory
from tests.flow_samples import two_questions
from tests.memory import AT, REGISTRY, InMemory, Topic, envelope

pytestmark = pytest.mark.unit

WORKSPACE = UUID(int=1)
ADMIN = UUID(int=2)
FLOW = UUID(int=3)
CONVERSATION = UUID(int=5)
NUMBER = "4801"
STARTED_AT = AT + timedelta(minutes=5)


class Flows:
    """The flows process in memory: its two consumers on one store."""

    def __init__(self, store: MemoryStore | None = None, *, partition: int = 0) -> None:
        view = MemoryFlowDirectory()
        self.runs = InMemory("flows", FlowRunHandler(view, Complete()), store)
        self.view = InMemory("flows.directory-view", FlowDirectoryViewHandler(view), self.store)
        self.conversations = Topic("conversation.events", partition)
        self.directory = Topic("directory.events")
        self.view_records: list[Delivery] = []

    @property
    def store(self) -> MemoryStore:
        return self.runs.store

    def directory_events(self, *payloads: Payload) -> None:
        records = [
            self.directory.record(
                envelope(payload, stream_id=str(WORKSPACE), workspace_id=WORKSPACE)
            )
            for payload in payloads
        ]
        self.view_records.extend(records)
        self.view.handle(*records)

    def publish_and_choose(self, definition: dict[str, Any]) -> None:
        self.directory_events(
            WorkspaceCreated(workspace_id=WORKSPACE, name="Acme", time_zone="America/Bogota"),
            BusinessNumberConnected(
                workspace_id=WORKSPACE, phone_number_id=NUMBER, agent_conversations=True
            ),
            FlowPublished(
                workspace_id=WORKSPACE,
                flow_id=FLOW,
                version=1,
                name=definition["name"],
                definition=definition,
                published_by=ADMIN,
            ),
            ActiveFlowChosen(
                workspace_id=WORKSPACE, phone_number_id=NUMBER, flow_id=FLOW, chosen_by=ADMIN
            ),
        )

    def record(self, item: Envelope) -> Delivery:
        return self.conversations.record(item)

    def texts(self) -> list[str]:
        return [p.text or "" for p in self.runs.payloads() if isinstance(p, OutboundMessageQueued)]


def decode_value(value: bytes | None) -> Envelope:
    assert value is not None
    return decode(value, REGISTRY)


def conversation_event(payload: Payload) -> Envelope:
    return envelope(payload, stream_id=str(CONVERSATION), workspace_id=WORKSPACE, at=STARTED_AT)


START = conversation_event(
    ConversationStarted(
        conversation_id=CONVERSATION,
        phone_number_id=NUMBER,
        display_phone_number="57300",
        contact_wa_id="5731",
        contact_name="Valentina",
        started_at=STARTED_AT,
        received_at=STARTED_AT,
    )
)


def said(n: int, text: str, reply_id: str | None = None) -> Envelope:
    return conversation_event(
        CustomerMessageReceived(
            conversation_id=CONVERSATION,
            wamid=f"wamid.{n}",
            sequence=n,
            kind="interactive" if reply_id else "text",
            text=text,
            reply_id=reply_id,
            content={},
            context_wamid=None,
            sent_at=STARTED_AT + timedelta(seconds=n),
        )
    )


def test_a_start_runs_the_flow_chosen_for_the_number_and_the_first_message_asks() -> None:
    flows = Flows()
    flows.publish_and_choose(two_questions())
    flows.runs.handle(flows.record(START), flows.record(said(1, "hola")))
    payloads = flows.runs.payloads()
    (started,) = [p for p in payloads if isinstance(p, FlowRunStarted)]
    assert (started.flow_id, started.version, started.time_zone) == (FLOW, 1, "America/Bogota")
    assert started.agent_conversations is True
    assert flows.texts() == ["¿X o Y?"]
    assert flows.store.position("conversation.events#0") == 2
    assert flows.store.position("directory.events#0") == 4
    assert {e.stream_id for e in flows.store.events()} == {str(CONVERSATION)}


def test_a_button_answer_published_again_at_a_new_offset_sends_nothing_more() -> None:
    """Issue 10, part 4: the relay re-sends the customer's answer after a crash."""
    flows = Flows()
    flows.publish_and_choose(two_questions())
    answer = said(2, "X", "x")
    flows.runs.handle(flows.record(START), flows.record(said(1, "hola")), flows.record(answer))
    assert flows.texts() == ["¿X o Y?", "¿Z o W?"]
    before = flows.runs.payloads()
    # The same record (same event id), later on the partition, alone and within a batch.
    flows.runs.handle(flows.record(answer))
    flows.runs.handle(flows.record(answer), flows.record(answer))
    assert flows.runs.payloads() == before
    assert flows.store.position("conversation.events#0") == 6


def test_the_same_answer_as_a_new_message_is_answered_as_the_flow_says() -> None:
    """What the dedup above keeps from happening: decided again, the answer to the first
    question is a wrong answer to the second: "Elige Z o W" and the second question again,
    as issue 10 saw on the running system."""
    flows = Flows()
    flows.publish_and_choose(two_questions())
    flows.runs.handle(
        flows.record(START), flows.record(said(1, "hola")), flows.record(said(2, "X", "x"))
    )
    flows.runs.handle(flows.record(said(3, "X", "x")))
    assert flows.texts() == ["¿X o Y?", "¿Z o W?", "Elige Z o W", "¿Z o W?"]


def test_a_start_published_again_decides_nothing_even_after_the_run_moved_on() -> None:
    flows = Flows()
    flows.publish_and_choose(two_questions())
    flows.runs.handle(flows.record(START), flows.record(said(1, "hola")))
    before = flows.runs.payloads()
    # A copy of the start with an id of its own (as a replay into a fresh store would not
    # dedup): the run's state says it began.
    flows.runs.handle(flows.record(START.model_copy(update={"event_id": UUID(int=99)})))
    assert flows.runs.payloads() == before


def test_a_number_without_a_flow_hands_the_first_message_to_the_workspace_queue() -> None:
    flows = Flows()
    flows.directory_events(
        WorkspaceCreated(workspace_id=WORKSPACE, name="Acme", time_zone="UTC"),
        BusinessNumberConnected(
            workspace_id=WORKSPACE, phone_number_id=NUMBER, agent_conversations=True
        ),
    )
    flows.runs.handle(flows.record(START), flows.record(said(1, "hola")))
    payloads = flows.runs.payloads()
    (started,) = [p for p in payloads if isinstance(p, FlowRunStarted)]
    assert started.flow_id is None
    (hand_off,) = [p for p in payloads if isinstance(p, HandOffRequested)]
    assert hand_off.group_id is None


def test_directory_events_published_again_change_nothing_in_the_view() -> None:
    flows = Flows()
    flows.publish_and_choose(two_questions())
    rows = dict(flows.store.tables["flows.directory"])
    # The relay publishes the view's records again (same event ids, new offsets); the view
    # would keep them once anyway (each row is keyed by what it says).
    again = [flows.directory.record(decode_value(record.value)) for record in flows.view_records]
    flows.view.handle(*again)
    assert flows.store.tables["flows.directory"] == rows
    assert flows.store.position("directory.events#0") == 8


async def test_a_replica_deciding_on_an_out_of_date_run_conflicts_then_decides_again() -> None:
    first = Flows()
    first.publish_and_choose(two_questions())
    second = Flows(first.store.another_process(), partition=1)
    second.view = first.view  # one view, as one schema holds it
    first.runs.handle(first.record(START), first.record(said(1, "hola")))
    # During a rebalance the second replica handles the answer, so the first's cached run
    # is behind when it gets the next record.
    second.runs.handle(second.record(said(2, "X", "x")))
    late = first.record(said(3, "Z", "z"))
    with pytest.raises(StreamConflict):
        first.runs.handle(late)
    await first.runs.handle_each(late)
    captured = [p for p in first.runs.payloads() if isinstance(p, AnswerCaptured)]
    assert [(c.variable, c.value) for c in captured] == [("first", "x"), ("second", "z")]
    assert first.texts() == ["¿X o Y?", "¿Z o W?", "Gracias"]
    assert first.store.load(run_id(CONVERSATION)).version == len(first.runs.payloads())
