"""Thin adapter of the directory: which streams a command concerns, which decider."""

from __future__ import annotations

from dataclasses import replace
from uuid import UUID, uuid5

from events.base import Payload
from events.canned_responses import (
    CreateCannedResponse,
    DeleteCannedResponse,
    UpdateCannedResponse,
)
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
from runtime.decider import Decider
from runtime.records import Record
from runtime.store import NewEvent
from runtime.work import Work
from services.directory.decide import (
    FlowState,
    MemberStreamState,
    NumberState,
    WorkspaceState,
    decide_add_group_member,
    decide_add_member,
    decide_choose_active_flow,
    decide_create_canned_response,
    decide_create_group,
    decide_create_workspace,
    decide_deactivate_member,
    decide_delete_canned_response,
    decide_delete_group,
    decide_publish_flow,
    decide_remove_group_member,
    decide_rename_group,
    decide_rotate_member_token,
    decide_set_agent_conversations,
    decide_set_agent_status,
    decide_set_notification_settings,
    decide_update_canned_response,
    decide_update_member,
    evolve_flow,
    evolve_member,
    evolve_number,
    evolve_workspace,
)

NUMBER_NAMESPACE = UUID("7a4e2b90-5c1d-4f3e-8a6b-9c0d1e2f3a4b")


def number_stream(phone_number_id: str) -> UUID:
    return uuid5(NUMBER_NAMESPACE, phone_number_id)


WORKSPACES: Decider[WorkspaceState] = Decider(
    "directory.workspace", initial=WorkspaceState, evolve=evolve_workspace
)
MEMBERS: Decider[MemberStreamState] = Decider(
    "directory.member", initial=MemberStreamState, evolve=evolve_member
)
FLOWS: Decider[FlowState] = Decider("directory.flow", initial=FlowState, evolve=evolve_flow)
# A number's stream is keyed by uuid5 of its phone number id, which the fold never reads:
# ``_number`` puts the id back into the state the command is decided on.
NUMBERS: Decider[NumberState] = Decider(
    "directory.number", initial=lambda _: NumberState(""), evolve=evolve_number
)


class DirectoryHandler:
    """Admin commands -> directory events: which streams a command concerns, which decider.

    The runtime loads the streams (``work.fold``), numbers and appends what was decided with
    the record's position, and decides again on a conflict.
    """

    def __call__(self, work: Work, record: Record) -> None:
        envelope = record.envelope
        key = str(envelope.workspace_id)  # directory events are keyed by workspace
        payloads = _decide(work, envelope)
        events = envelope.caused(
            payloads,
            stream_of=lambda _: key,
            workspace_id=envelope.workspace_id,
            occurred_at=envelope.occurred_at,
            actor=envelope.actor,
        )
        versions: dict[UUID, int] = {}
        new_events: list[NewEvent] = []
        for event in events:
            originator = _originator(event.payload)
            if originator not in versions:
                versions[originator] = work.version(originator)
            versions[originator] += 1
            new_events.append(NewEvent(originator, versions[originator], event))
        work.append(new_events)


def _decide(work: Work, envelope: Envelope) -> list[Payload]:
    command = envelope.payload
    command_id = envelope.event_id
    match command:
        case AddMember():
            return decide_add_member(command, command_id, _workspace(work, command))
        case UpdateMember():
            return decide_update_member(command, command_id, _workspace(work, command))
        case DeactivateMember():
            return decide_deactivate_member(command, command_id, _workspace(work, command))
        case RotateMemberToken():
            return decide_rotate_member_token(command, command_id, _workspace(work, command))
        case RenameGroup():
            return decide_rename_group(command, command_id, _workspace(work, command))
        case DeleteGroup():
            return decide_delete_group(command, command_id, _workspace(work, command))
        case AddGroupMember():
            return decide_add_group_member(command, command_id, _workspace(work, command))
        case RemoveGroupMember():
            return decide_remove_group_member(command, command_id, _workspace(work, command))
        case CreateCannedResponse():
            return decide_create_canned_response(command, command_id, _workspace(work, command))
        case UpdateCannedResponse():
            return decide_update_canned_response(command, command_id, _workspace(work, command))
        case DeleteCannedResponse():
            return decide_delete_canned_response(command, command_id, _workspace(work, command))
        case SetAgentStatus():
            return decide_set_agent_status(
                command,
                command_id,
                _workspace(work, command),
                work.fold(MEMBERS, command.member_id),
            )
        case SetNotificationSettings():
            # Nothing in the member's stream matters to this decision; the event is appended
            # there after the version this unit of work read (checked at commit).
            return decide_set_notification_settings(command, command_id, _workspace(work, command))
        case CreateWorkspace():
            return decide_create_workspace(
                command,
                envelope.event_id,
                work.fold(WORKSPACES, command.workspace_id),
                _number(work, command.phone_number_id),
            )
        case CreateGroup():
            return decide_create_group(
                command,
                envelope.event_id,
                work.fold(WORKSPACES, command.workspace_id),
            )
        case PublishFlow():
            return decide_publish_flow(
                command,
                envelope.event_id,
                work.fold(WORKSPACES, command.workspace_id),
                work.fold(FLOWS, command.flow_id),
            )
        case SetAgentConversations():
            return decide_set_agent_conversations(
                command,
                envelope.event_id,
                _number(work, command.phone_number_id),
            )
        case ChooseActiveFlow():
            return decide_choose_active_flow(
                command,
                envelope.event_id,
                _number(work, command.phone_number_id),
                work.fold(FLOWS, command.flow_id),
            )
    raise TypeError(f"directory does not handle {envelope.event_type}")


def _workspace(work: Work, command: Payload) -> WorkspaceState:
    workspace_id = getattr(command, "workspace_id", None)
    assert isinstance(workspace_id, UUID)
    return work.fold(WORKSPACES, workspace_id)


def _number(work: Work, phone_number_id: str) -> NumberState:
    return replace(
        work.fold(NUMBERS, number_stream(phone_number_id)), phone_number_id=phone_number_id
    )


def _originator(payload: Payload) -> UUID:
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
