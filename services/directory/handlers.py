"""Thin adapter of the directory: load the workspace and number streams, decide, append."""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID, uuid5

from events.base import Payload
from events.directory import BusinessNumberConnected, CommandRejected, CreateWorkspace
from events.envelope import Envelope
from events.operations import RecordDeadLettered
from services.consumer import Delivery, park_in_store
from services.directory.decide import (
    NumberState,
    WorkspaceState,
    decide_create_workspace,
    evolve_number,
    evolve_workspace,
)
from services.store import EventStore, NewEvent, StreamConflict

NUMBER_NAMESPACE = UUID("7a4e2b90-5c1d-4f3e-8a6b-9c0d1e2f3a4b")
CONFLICT_ATTEMPTS = 5


def number_stream(phone_number_id: str) -> UUID:
    return uuid5(NUMBER_NAMESPACE, phone_number_id)


class DirectoryHandler:
    name = "directory"

    def __init__(self, store: EventStore) -> None:
        self.store = store

    def positions(self, tracking_names: Iterable[str]) -> dict[str, int | None]:
        return {name: self.store.position(name) for name in tracking_names}

    def park(self, delivery: Delivery, dead_letter: RecordDeadLettered) -> None:
        park_in_store(self.store, delivery, dead_letter)

    def handle(self, delivery: Delivery, envelope: Envelope) -> None:
        command = envelope.payload
        if not isinstance(command, CreateWorkspace):
            raise TypeError(f"directory does not handle {envelope.event_type}")
        for _ in range(CONFLICT_ATTEMPTS):
            workspace_stream = self.store.load(command.workspace_id)
            workspace = WorkspaceState(command.workspace_id)
            for event in workspace_stream.envelopes:
                workspace = evolve_workspace(workspace, event.payload)
            number_id = number_stream(command.phone_number_id)
            number_events = self.store.load(number_id)
            number = NumberState(command.phone_number_id)
            for event in number_events.envelopes:
                number = evolve_number(number, event.payload)

            payloads = decide_create_workspace(command, envelope.event_id, workspace, number)
            envelopes = envelope.caused(
                payloads,
                stream_of=lambda _: str(command.workspace_id),
                workspace_id=command.workspace_id,
                occurred_at=envelope.occurred_at,
                actor=envelope.actor,
            )
            versions = {
                command.workspace_id: workspace_stream.version,
                number_id: number_events.version,
            }
            new_events: list[NewEvent] = []
            for event in envelopes:
                originator = _originator(event.payload, command.workspace_id, number_id)
                versions[originator] = versions.get(originator, 0) + 1
                new_events.append(NewEvent(originator, versions[originator], event))
            try:
                self.store.append(new_events, delivery.tracking)
            except StreamConflict:
                continue
            return
        raise StreamConflict(f"workspace {command.workspace_id} kept changing")


def _originator(payload: Payload, workspace_id: UUID, number_id: UUID) -> UUID:
    """Which stream an event is stored in: the number's, a rejection's own, or the workspace's."""
    match payload:
        case BusinessNumberConnected():
            return number_id
        case CommandRejected(command_id=command_id):
            return command_id
        case _:
            return workspace_id
