"""Thin adapters of the flows service: which run a record concerns, which decider.

Conversation starts and customer messages are decided on their conversation's run
(``decide.decide_start``, ``decide.decide``); what a start needs to know of the directory
(the number's active flow, its agent-conversations switch, the workspace's time zone) is
read from the service's own view, believed only once that view is caught up enough.
Directory events feed that view. The runtime does the rest (batches, positions, dedup by
event id, conflicts).
"""

from __future__ import annotations

from dataclasses import replace
from uuid import UUID

from events.assignment import group_key
from events.base import Payload
from events.conversation import CloseConversation, ConversationStarted, CustomerMessageReceived
from events.envelope import Actor
from events.flow_language.grammar import FlowDefinition, parse_flow
from events.flows import HandOffRequested
from runtime.decider import Decider, decide_on
from runtime.records import Record
from runtime.views import Believer
from runtime.work import Work
from services.flows.decide import (
    RunState,
    agent_conversations_as_of,
    arrival,
    decide,
    decide_start,
    evolve,
    run_id,
)
from services.flows.views import FlowDirectory

BOT = Actor(kind="bot", id="flows")

RUNS: Decider[RunState] = Decider("flows.run", initial=RunState, evolve=evolve)


class FlowRunHandler:
    """Conversation starts and customer messages -> flow events, messages, hand-offs."""

    def __init__(self, directory: FlowDirectory, caught_up: Believer) -> None:
        self.directory = directory
        self.caught_up = caught_up
        # Published versions never change, so a parsed definition can be kept for good.
        self._definitions: dict[tuple[UUID, int], FlowDefinition] = {}

    def __call__(self, work: Work, record: Record) -> None:
        envelope = record.envelope
        event = envelope.payload
        if not isinstance(event, ConversationStarted | CustomerMessageReceived):
            return  # nothing for the bot to do
        workspace_id = envelope.workspace_id
        if workspace_id is None:
            raise ValueError(f"{envelope.event_type} {envelope.event_id} names no workspace")
        conversation = event.conversation_id

        def decide_run(folded: RunState) -> list[Payload]:
            # The run's stream id is derived from the conversation's and the fold starts
            # from it: put the conversation back into the state decided on.
            state = replace(folded, conversation_id=conversation)
            if isinstance(event, ConversationStarted):
                return self._start(work, record, event, state, workspace_id)
            return decide(self._flow(work, state), state, event, workspace_id=workspace_id)

        decide_on(
            work,
            RUNS,
            run_id(conversation),
            decide_run,
            lambda payloads: envelope.caused(
                payloads,
                stream_of=lambda payload: stream_of(payload, workspace_id),
                workspace_id=workspace_id,
                occurred_at=envelope.occurred_at,
                actor=BOT,
            ),
        )

    def _start(
        self,
        work: Work,
        record: Record,
        started: ConversationStarted,
        state: RunState,
        workspace_id: UUID,
    ) -> list[Payload]:
        if state.started is not None:
            return []  # read before: no need to ask the view anything
        # The number's flow and agent-conversations switch as of the conversation's arrival.
        number = started.phone_number_id
        at = arrival(started)
        active = self.directory.active_flow(work, number, at)
        switches = self.directory.switches(work, number)
        if active is None or not switches:
            # "No flow" or "no switch known" may only mean the view has not read the
            # directory event yet (the topics are read independently).
            self.caught_up.believe(
                record.delivery,
                f"the active flow and agent-conversations switch of {number}",
            )
        zone = self.directory.time_zone(work, workspace_id) or "UTC"
        return decide_start(
            state,
            started,
            active,
            zone,
            agent_conversations=agent_conversations_as_of(switches, at),
        )

    def _flow(self, work: Work, state: RunState) -> FlowDefinition | None:
        started = state.started
        if started is None or started.flow_id is None or started.version is None:
            return None
        key = (started.flow_id, started.version)
        if key not in self._definitions:
            document = self.directory.definition(work, *key)
            if document is None:
                raise LookupError(f"flow {key[0]} version {key[1]} is not in the flows view")
            self._definitions[key] = parse_flow(document)
        return self._definitions[key]


class FlowDirectoryViewHandler:
    """Directory events -> the flows service's view of the directory."""

    def __init__(self, directory: FlowDirectory) -> None:
        self.directory = directory

    def __call__(self, work: Work, record: Record) -> None:
        self.directory.record(work, record.envelope)


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
