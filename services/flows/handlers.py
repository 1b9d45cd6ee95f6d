"""Thin adapters of the flows service: conversation events drive each conversation's run."""

from __future__ import annotations

from functools import reduce
from uuid import UUID

from events.assignment import group_key
from events.base import Payload
from events.conversation import CloseConversation, ConversationStarted, CustomerMessageReceived
from events.envelope import Actor, Envelope
from events.flow_language.grammar import FlowDefinition, parse_flow
from events.flows import HandOffRequested
from runtime.legacy import StoreBackedHandler
from runtime.records import Delivery
from runtime.store import EventStore, NewEvent, StreamConflict
from services.flows.decide import (
    RunState,
    agent_conversations_as_of,
    arrival,
    decide,
    evolve,
    run_id,
    start,
)
from services.flows.views import FlowsRecorder

CONFLICT_ATTEMPTS = 5
BOT = Actor(kind="bot", id="flows")


class FlowRunHandler(StoreBackedHandler):
    name = "flows"

    def __init__(self, store: EventStore, recorder: FlowsRecorder) -> None:
        self.store = store
        self.recorder = recorder
        # Published versions never change, so a parsed definition can be kept for good.
        self._definitions: dict[tuple[UUID, int], FlowDefinition] = {}

    def handle(self, delivery: Delivery, envelope: Envelope) -> None:
        event = envelope.payload
        if not isinstance(event, ConversationStarted | CustomerMessageReceived):
            self.store.append([], delivery.tracking)  # nothing for the bot to do
            return
        workspace_id = envelope.workspace_id
        assert workspace_id is not None
        run = run_id(event.conversation_id)
        for _ in range(CONFLICT_ATTEMPTS):
            stream = self.store.load(run)
            state = reduce(
                evolve, (e.payload for e in stream.envelopes), RunState(event.conversation_id)
            )
            payloads = self._decide(event, state, workspace_id)
            caused = envelope.caused(
                payloads,
                stream_of=lambda payload: stream_of(payload, workspace_id),
                workspace_id=workspace_id,
                occurred_at=envelope.occurred_at,
                actor=BOT,
            )
            new_events = [
                NewEvent(run, stream.version + index + 1, item) for index, item in enumerate(caused)
            ]
            try:
                self.store.append(new_events, delivery.tracking)
            except StreamConflict:
                continue
            return
        raise StreamConflict(f"flow run {run} kept changing")

    def _decide(
        self,
        event: ConversationStarted | CustomerMessageReceived,
        state: RunState,
        workspace_id: UUID,
    ) -> list[Payload]:
        if isinstance(event, ConversationStarted):
            if state.started is not None:
                return []  # the start was seen before (a re-sent event)
            # The number's flow and agent-conversations switch as of the conversation's arrival.
            at = arrival(event)
            active = self.recorder.active_flow(event.phone_number_id, at)
            switches = self.recorder.agent_conversation_switches(event.phone_number_id)
            zone = self.recorder.time_zone(workspace_id) or "UTC"
            return start(
                event, active, zone, agent_conversations=agent_conversations_as_of(switches, at)
            )
        flow = self._flow(state)
        return decide(flow, state, event, workspace_id=workspace_id)

    def _flow(self, state: RunState) -> FlowDefinition | None:
        started = state.started
        if started is None or started.flow_id is None or started.version is None:
            return None
        key = (started.flow_id, started.version)
        if key not in self._definitions:
            document = self.recorder.definition(*key)
            if document is None:
                raise LookupError(f"flow {key[0]} version {key[1]} is not in the flows view")
            self._definitions[key] = parse_flow(document)
        return self._definitions[key]


class FlowDirectoryViewHandler(StoreBackedHandler):
    name = "flows.directory-view"

    def __init__(self, store: EventStore, recorder: FlowsRecorder) -> None:
        self.store = store
        self.recorder = recorder

    def handle(self, delivery: Delivery, envelope: Envelope) -> None:
        self.recorder.record_directory(envelope, delivery.tracking)


def stream_of(payload: Payload, workspace_id: UUID) -> str:
    """The Kafka key of what a run emits: groups decide hand-offs, contacts order commands."""
    match payload:
        case HandOffRequested(group_id=group_id):
            return group_key(workspace_id, group_id)
        case CloseConversation(phone_number_id=number, contact_wa_id=contact):
            return f"{number}:{contact}"
        case _:
            conversation_id = getattr(payload, "conversation_id", None)
            return str(conversation_id)
