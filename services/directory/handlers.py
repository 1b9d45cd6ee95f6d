"""Thin adapter of the directory: load the streams a command concerns, decide, append."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar
from uuid import UUID, uuid5

from events.base import Payload
from events.directory import (
    AddGroupMember,
    AddMember,
    AgentConversationsSet,
    AgentStatusChanged,
    BusinessNumberConnected,
    CommandRejected,
    CreateGroup,
    CreateWorkspace,
    DeactivateMember,
    DeleteGroup,
    NotificationSettingsChanged,
    RemoveGroupMember,
    RenameGroup,
    RotateMemberToken,
    SetAgentConversations,
    SetAgentStatus,
    SetNotificationSettings,
    UpdateMember,
)
from events.envelope import Envelope
from events.flows import ActiveFlowChosen, ChooseActiveFlow, FlowPublished, PublishFlow
from runtime.legacy import StoreBackedHandler
from runtime.records import Delivery
from runtime.store import EventStore, NewEvent, StreamConflict
from services.directory.decide import (
    FlowState,
    MemberStreamState,
    NumberState,
    WorkspaceState,
    decide_add_group_member,
    decide_add_member,
    decide_choose_active_flow,
    decide_create_group,
    decide_create_workspace,
    decide_deactivate_member,
    decide_delete_group,
    decide_publish_flow,
    decide_remove_group_member,
    decide_rename_group,
    decide_rotate_member_token,
    decide_set_agent_conversations,
    decide_set_agent_status,
    decide_set_notification_settings,
    decide_update_member,
    evolve_flow,
    evolve_member,
    evolve_number,
    evolve_workspace,
)

NUMBER_NAMESPACE = UUID("7a4e2b90-5c1d-4f3e-8a6b-9c0d1e2f3a4b")
CONFLICT_ATTEMPTS = 5
S = TypeVar("S")


def number_stream(phone_number_id: str) -> UUID:
    return uuid5(NUMBER_NAMESPACE, phone_number_id)


class DirectoryHandler(StoreBackedHandler):
    name = "directory"

    def __init__(self, store: EventStore) -> None:
        self.store = store

    def handle(self, delivery: Delivery, envelope: Envelope) -> None:
        key = str(envelope.workspace_id)  # directory events are keyed by workspace
        workspace_id = envelope.workspace_id
        for _ in range(CONFLICT_ATTEMPTS):
            self._versions: dict[UUID, int] = {}
            payloads = self._decide(envelope)
            events = envelope.caused(
                payloads,
                stream_of=lambda _: key,
                workspace_id=workspace_id,
                occurred_at=envelope.occurred_at,
                actor=envelope.actor,
            )
            new_events: list[NewEvent] = []
            for event in events:
                originator = self._originator(event.payload)
                self._versions[originator] = self._versions.get(originator, 0) + 1
                new_events.append(NewEvent(originator, self._versions[originator], event))
            try:
                self.store.append(new_events, delivery.tracking)
            except StreamConflict:
                continue
            return
        raise StreamConflict(f"the streams of command {envelope.event_id} kept changing")

    def _decide(self, envelope: Envelope) -> list[Payload]:
        command = envelope.payload
        command_id = envelope.event_id
        match command:
            case AddMember():
                return decide_add_member(command, command_id, self._workspace(command))
            case UpdateMember():
                return decide_update_member(command, command_id, self._workspace(command))
            case DeactivateMember():
                return decide_deactivate_member(command, command_id, self._workspace(command))
            case RotateMemberToken():
                return decide_rotate_member_token(command, command_id, self._workspace(command))
            case RenameGroup():
                return decide_rename_group(command, command_id, self._workspace(command))
            case DeleteGroup():
                return decide_delete_group(command, command_id, self._workspace(command))
            case AddGroupMember():
                return decide_add_group_member(command, command_id, self._workspace(command))
            case RemoveGroupMember():
                return decide_remove_group_member(command, command_id, self._workspace(command))
            case SetAgentStatus():
                return decide_set_agent_status(
                    command,
                    command_id,
                    self._workspace(command),
                    self._load(
                        command.member_id, MemberStreamState(command.member_id), evolve_member
                    ),
                )
            case SetNotificationSettings():
                # Nothing in the member's stream matters to this decision, but its version
                # does: the event is appended there.
                self._load(command.member_id, MemberStreamState(command.member_id), evolve_member)
                return decide_set_notification_settings(
                    command, command_id, self._workspace(command)
                )
            case CreateWorkspace():
                return decide_create_workspace(
                    command,
                    envelope.event_id,
                    self._load(
                        command.workspace_id, WorkspaceState(command.workspace_id), evolve_workspace
                    ),
                    self._load(
                        number_stream(command.phone_number_id),
                        NumberState(command.phone_number_id),
                        evolve_number,
                    ),
                )
            case CreateGroup():
                return decide_create_group(
                    command,
                    envelope.event_id,
                    self._load(
                        command.workspace_id, WorkspaceState(command.workspace_id), evolve_workspace
                    ),
                )
            case PublishFlow():
                return decide_publish_flow(
                    command,
                    envelope.event_id,
                    self._load(
                        command.workspace_id, WorkspaceState(command.workspace_id), evolve_workspace
                    ),
                    self._load(command.flow_id, FlowState(command.flow_id), evolve_flow),
                )
            case SetAgentConversations():
                return decide_set_agent_conversations(
                    command,
                    envelope.event_id,
                    self._load(
                        number_stream(command.phone_number_id),
                        NumberState(command.phone_number_id),
                        evolve_number,
                    ),
                )
            case ChooseActiveFlow():
                return decide_choose_active_flow(
                    command,
                    envelope.event_id,
                    self._load(
                        number_stream(command.phone_number_id),
                        NumberState(command.phone_number_id),
                        evolve_number,
                    ),
                    self._load(command.flow_id, FlowState(command.flow_id), evolve_flow),
                )
        raise TypeError(f"directory does not handle {envelope.event_type}")

    def _workspace(self, command: Payload) -> WorkspaceState:
        workspace_id = getattr(command, "workspace_id", None)
        assert isinstance(workspace_id, UUID)
        return self._load(workspace_id, WorkspaceState(workspace_id), evolve_workspace)

    def _load(self, originator: UUID, initial: S, evolve: Callable[[S, Payload], S]) -> S:
        """Fold a stream, remembering its version for the optimistic append."""
        stream = self.store.load(originator)
        self._versions[originator] = stream.version
        state = initial
        for event in stream.envelopes:
            state = evolve(state, event.payload)
        return state

    def _originator(self, payload: Payload) -> UUID:
        """The stream an event is stored in: its number's, its flow's, its command's, its
        member's (status and notification settings change often), or the workspace's."""
        match payload:
            case (
                AgentStatusChanged(member_id=member_id)
                | NotificationSettingsChanged(member_id=member_id)
            ):
                return member_id
            case (
                BusinessNumberConnected(phone_number_id=number)
                | ActiveFlowChosen(phone_number_id=number)
                | AgentConversationsSet(phone_number_id=number)
            ):
                return number_stream(number)
            case FlowPublished(flow_id=flow_id):
                return flow_id
            case CommandRejected(command_id=command_id):
                return command_id
            case _:
                workspace_id = getattr(payload, "workspace_id", None)
                assert isinstance(workspace_id, UUID)
                return workspace_id
