"""Thin adapters of the assignment service: the router and the decider, on the batch runtime.

The router applies directory and conversation events to the service's views and stages the
nudges the rules call for (``AssignmentRecorder.route``, ``nudges.decide_nudges``). The
decider says which streams a record of ``assignment.requests`` concerns (the group it is
keyed by, the workspace queue, a transfer's target), reads the views' facts, decides
(``decide.decide``) and stages the decisions. Both run in the unit of work of the batch
(``runtime.work``): later records see the groups' states and the view rows earlier ones
left, and everything commits with the records' positions and event ids at once.

What two replicas could race on (a group's stream, a member's capacity, a conversation
closing) shows as a conflict when the decisions are staged or committed; the runtime then
decides again on what the winner left (``runtime.consumer``).
"""

from __future__ import annotations

from dataclasses import replace
from uuid import UUID

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
from runtime.decider import Decider
from runtime.records import Record
from runtime.store import NewEvent
from runtime.work import Work, cursor_of
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
from services.assignment.recorder import AssignmentRecorder, nudge_envelopes

ASSIGNMENT = Actor(kind="system", id="assignment")
# A group's stream id does not say which workspace it belongs to (a workspace queue's is a
# uuid5), and ``evolve`` never reads it: the handler puts the workspace and group back into
# the state it decides on (``_group``).
_NOBODY = UUID(int=0)
GROUPS: Decider[GroupState] = Decider(
    "assignment.group", initial=lambda _: GroupState(_NOBODY, None), evolve=evolve
)
DECIDED_ON_THE_ROSTER = (HandOffRequested, ClaimConversation, TransferConversation)


class RouterHandler:
    """Directory and conversation events into the views, and the nudges they call for."""

    def __init__(self, recorder: AssignmentRecorder) -> None:
        self.recorder = recorder

    def __call__(self, work: Work, record: Record) -> None:
        envelope, delivery = record.envelope, record.delivery
        nudges = self.recorder.route(
            cursor_of(work), envelope, delivery.topic, delivery.partition, delivery.offset
        )
        for nudge in nudge_envelopes(envelope, nudges):
            # Its id derives from its cause: stored before (a replay), only once.
            if work.version(nudge.event_id) == 0:
                work.append([NewEvent(nudge.event_id, 1, nudge)])


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


class DeciderHandler:
    """Hand-offs, claims, transfers and nudges -> each group's decisions."""

    def __init__(self, recorder: AssignmentRecorder) -> None:
        self.recorder = recorder

    def __call__(self, work: Work, record: Record) -> None:
        envelope = record.envelope
        found = where(envelope)
        if found is None:
            return  # not for the decider
        workspace_id, group_id = found
        command = envelope.payload
        refusable = isinstance(command, ClaimConversation | TransferConversation)
        if refusable and work.version(rejection_stream(envelope.event_id)) > 0:
            return  # refused before (decided again after a rebuild of the positions)
        target_id = command.to_group_id if isinstance(command, TransferConversation) else None
        group_ids = list(dict.fromkeys([group_id, None, target_id]))
        states = {g: _group(work, workspace_id, g) for g in group_ids}
        world = self._world(work, workspace_id, group_id, target_id, states, command)
        payloads = decide(command, world, at=envelope.occurred_at, command_id=envelope.event_id)
        caused = envelope.caused(
            payloads,
            stream_of=lambda payload: str(getattr(payload, "conversation_id")),  # noqa: B009
            workspace_id=workspace_id,
            occurred_at=envelope.occurred_at,
            actor=ASSIGNMENT,
        )
        versions: dict[UUID, int] = {}
        numbered: list[NewEvent] = []
        for event in caused:
            stream = decision_stream(workspace_id, event.payload)
            if stream not in versions:
                versions[stream] = work.version(stream)
            versions[stream] += 1
            numbered.append(NewEvent(stream, versions[stream], event))
        # Staging derives the assignments view and checks the guards (capacity, a close
        # meanwhile): a race lost shows here or at commit, and the runtime decides again.
        work.append(numbered)

    def _world(
        self,
        work: Work,
        workspace_id: UUID,
        group_id: UUID | None,
        target_id: UUID | None,
        states: dict[UUID | None, GroupState],
        command: Payload,
    ) -> World:
        conversations = {c for state in states.values() for c in state.entries}
        conversation = getattr(command, "conversation_id", None)
        if conversation is not None:
            conversations.add(conversation)
        named = {g for g in (group_id, target_id) if g is not None}
        # Assignees may be outside the roster (an admin's claim, a transfer to a member).
        assignees = {
            e.member_id for state in states.values() for e in state.entries.values() if e.member_id
        }
        facts = self.recorder.facts(
            cursor_of(work),
            workspace_id,
            named,
            set(members_named(command)) | assignees,
            conversations,
            conversation,
        )

        def group(g: UUID | None) -> Group:
            known = GroupFacts.workspace_queue() if g is None else facts.groups[g]
            return Group(states[g], known)

        return World(
            here=group(group_id),
            workspace_queue=group(None),
            members=facts.members,
            closed=facts.closed,
            holding=facts.holding,
            target=group(target_id) if target_id is not None else None,
            directory_view=facts.directory_view,
        )


def _group(work: Work, workspace_id: UUID, group_id: UUID | None) -> GroupState:
    """A group's (or the workspace queue's) state as of this unit of work."""
    state = work.fold(GROUPS, group_stream(workspace_id, group_id))
    return replace(state, workspace_id=workspace_id, group_id=group_id)


def decision_stream(workspace_id: UUID, payload: Payload) -> UUID:
    """The stream a decision belongs to: its group's (a transfer: the group it leaves)."""
    match payload:
        case AssignmentCommandRejected(command_id=command_id):
            return rejection_stream(command_id)
        case ConversationTransferred(from_group_id=group_id):
            return group_stream(workspace_id, group_id)
        case _:
            return group_stream(workspace_id, getattr(payload, "group_id"))  # noqa: B009
