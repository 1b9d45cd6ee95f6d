"""Thin adapters of the assignment service: the router and the decider.

The router applies directory and conversation events to the service's views and stores the
nudges they call for (``AssignmentRecorder.route``). The decider loads the streams of the
groups a record may touch, reads the views' facts, decides (``decide.decide``) and appends
the decisions with the record's position in one transaction. Streams are appended with
optimistic concurrency: a replica that lost a race (the same stream, a member's capacity, a
conversation closing) reloads and decides again on what the winner left.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from functools import reduce
from uuid import UUID

import structlog

from events.assignment import (
    AssignmentCommandRejected,
    ClaimConversation,
    ConversationTransferred,
    GroupNudged,
    TransferConversation,
)
from events.base import Payload
from events.envelope import Actor, Envelope
from events.flows import HandOffRequested
from runtime.legacy import StoreBackedHandler
from runtime.records import Delivery
from runtime.store import EventStore, NewEvent, StreamConflict
from services.assignment.decide import (
    Group,
    GroupFacts,
    GroupState,
    World,
    decide,
    evolve,
    group_of_key,
    group_stream,
    members_named,
    rejection_stream,
)
from services.assignment.recorder import AssignmentRecorder

log = structlog.get_logger(__name__)
CONFLICT_ATTEMPTS = 20
ASSIGNMENT = Actor(kind="system", id="assignment")


class RouterHandler(StoreBackedHandler):
    """Directory and conversation events into the views, and the nudges they call for."""

    name = "assignment-router"

    def __init__(self, store: EventStore, recorder: AssignmentRecorder) -> None:
        self.store = store
        self.recorder = recorder

    def handle(self, delivery: Delivery, envelope: Envelope) -> None:
        self.recorder.route(envelope, delivery.tracking)


@dataclass
class _Folded:
    """A group's stream as far as this process has read it (kept between records)."""

    state: GroupState
    version: int = 0
    causes: set[UUID] = field(default_factory=set)  # records already decided on


def where(envelope: Envelope) -> tuple[UUID, UUID | None] | None:
    """The workspace and group a record of ``assignment.requests`` is about."""
    match envelope.payload:
        case HandOffRequested(workspace_id=workspace_id, group_id=group_id):
            return workspace_id, group_id
        case GroupNudged(workspace_id=workspace_id, group_id=group_id):
            return workspace_id, group_id
        case (
            ClaimConversation(workspace_id=workspace_id)
            | TransferConversation(workspace_id=workspace_id)
        ):
            # Claims and transfers name no group: they are published under the key of the
            # group that holds the conversation.
            return workspace_id, group_of_key(envelope.stream_id)
        case _:
            return None


class DeciderHandler(StoreBackedHandler):
    name = "assignment"

    def __init__(self, store: EventStore, recorder: AssignmentRecorder) -> None:
        self.store = store
        self.recorder = recorder
        self._groups: dict[UUID, _Folded] = {}

    def handle(self, delivery: Delivery, envelope: Envelope) -> None:
        found = where(envelope)
        if found is None:
            self.store.append([], delivery.tracking)  # not for the decider
            return
        workspace_id, group_id = found
        command = envelope.payload
        refusable = isinstance(command, ClaimConversation | TransferConversation)
        if refusable and self.store.load(rejection_stream(envelope.event_id)).version > 0:
            self.store.append([], delivery.tracking)  # refused before (a re-sent record)
            return
        target_id = command.to_group_id if isinstance(command, TransferConversation) else None
        for _ in range(CONFLICT_ATTEMPTS):
            group_ids = list(dict.fromkeys([group_id, None, target_id]))
            folded = {g: self._fold(workspace_id, g) for g in group_ids}
            if any(envelope.event_id in f.causes for f in folded.values()):
                self.store.append([], delivery.tracking)  # decided before (a re-sent record)
                return
            world = self._world(workspace_id, group_id, target_id, folded, command)
            payloads = decide(command, world, at=envelope.occurred_at, command_id=envelope.event_id)
            caused = envelope.caused(
                payloads,
                stream_of=lambda payload: str(getattr(payload, "conversation_id")),  # noqa: B009
                workspace_id=workspace_id,
                occurred_at=envelope.occurred_at,
                actor=ASSIGNMENT,
            )
            try:
                self.store.append(self._numbered(workspace_id, folded, caused), delivery.tracking)
            except StreamConflict as conflict:
                log.info("decision conflicted; deciding again", conflict=repr(conflict))
                for g in group_ids:
                    self._groups.pop(group_stream(workspace_id, g), None)
                continue
            return
        raise StreamConflict(f"group {group_id} kept changing")

    def _fold(self, workspace_id: UUID, group_id: UUID | None) -> _Folded:
        stream_id = group_stream(workspace_id, group_id)
        folded = self._groups.get(stream_id) or _Folded(GroupState(workspace_id, group_id))
        stream = self.store.load(stream_id, after_version=folded.version or None)
        if stream.envelopes:
            folded = _Folded(
                reduce(evolve, (e.payload for e in stream.envelopes), folded.state),
                stream.version,
                folded.causes | {e.causation_id for e in stream.envelopes if e.causation_id},
            )
            self._groups[stream_id] = folded
        return folded

    def _world(
        self,
        workspace_id: UUID,
        group_id: UUID | None,
        target_id: UUID | None,
        folded: dict[UUID | None, _Folded],
        command: Payload,
    ) -> World:
        conversations = {c for f in folded.values() for c in f.state.entries}
        conversation = getattr(command, "conversation_id", None)
        if conversation is not None:
            conversations.add(conversation)
        named = {g for g in (group_id, target_id) if g is not None}
        # Assignees may be outside the roster (an admin's claim, a transfer to a member).
        assignees = {
            e.member_id for f in folded.values() for e in f.state.entries.values() if e.member_id
        }
        facts = self.recorder.facts(
            workspace_id,
            named,
            set(members_named(command)) | assignees,
            conversations,
            conversation,
        )

        def group(g: UUID | None) -> Group:
            known = GroupFacts.workspace_queue() if g is None else facts.groups[g]
            return Group(folded[g].state, known)

        return World(
            here=group(group_id),
            workspace_queue=group(None),
            members=facts.members,
            closed=facts.closed,
            holding=facts.holding,
            target=group(target_id) if target_id is not None else None,
            directory_view=facts.directory_view,
        )

    def _numbered(
        self, workspace_id: UUID, folded: dict[UUID | None, _Folded], caused: list[Envelope]
    ) -> list[NewEvent]:
        versions: dict[UUID, int] = defaultdict(int)
        for f in folded.values():
            versions[group_stream(workspace_id, f.state.group_id)] = f.version
        numbered = []
        for envelope in caused:
            stream = decision_stream(workspace_id, envelope.payload)
            versions[stream] += 1
            numbered.append(NewEvent(stream, versions[stream], envelope))
        return numbered


def decision_stream(workspace_id: UUID, payload: Payload) -> UUID:
    """The stream a decision belongs to: its group's (a transfer: the group it leaves)."""
    match payload:
        case AssignmentCommandRejected(command_id=command_id):
            return rejection_stream(command_id)
        case ConversationTransferred(from_group_id=group_id):
            return group_stream(workspace_id, group_id)
        case _:
            return group_stream(workspace_id, getattr(payload, "group_id"))  # noqa: B009
