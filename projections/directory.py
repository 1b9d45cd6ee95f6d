"""Pure fold of directory events into the rows the HTTP side authenticates and scopes by.

Keyed by workspace id, business number, member id, group id, (group id, member id) and
command id respectively. Directory events of a workspace share one Kafka key, so they are
projected in the order they were decided: a row's later changes are plain updates.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from events.canned_responses import (
    CannedResponseCreated,
    CannedResponseDeleted,
    CannedResponseUpdated,
    CreateCannedResponse,
    DeleteCannedResponse,
    UpdateCannedResponse,
)
from events.conversation import ConversationStarted
from events.directory import (
    AddGroupMember,
    AddMember,
    AgentConversationsSet,
    AgentStatusChanged,
    BusinessNumberConnected,
    CommandRejected,
    CreateWorkspace,
    DeactivateMember,
    DeleteGroup,
    GroupCreated,
    GroupDeleted,
    GroupMemberAdded,
    GroupMemberRemoved,
    GroupRenamed,
    MemberAdded,
    MemberCredentialIssued,
    MemberDeactivated,
    MemberUpdated,
    NotificationSettingsChanged,
    RemoveGroupMember,
    RenameGroup,
    RotateMemberToken,
    SetAgentConversations,
    SetAgentStatus,
    SetNotificationSettings,
    UpdateMember,
    WorkspaceCreated,
)
from events.envelope import Envelope
from events.flows import ActiveFlowChosen, FlowPublished
from events.notes import AddNote, NoteAdded, NoteRefused


@dataclass(frozen=True)
class WorkspaceRow:
    workspace_id: UUID
    name: str
    time_zone: str
    created_at: datetime


@dataclass(frozen=True)
class NumberRow:
    phone_number_id: str
    workspace_id: UUID
    agent_conversations: bool


@dataclass(frozen=True)
class NumberAgentConversations:
    phone_number_id: str
    agent_conversations: bool


@dataclass(frozen=True)
class NumberDisplay:
    """The number as customers see it, from Meta's webhooks (the directory never knew it)."""

    phone_number_id: str
    workspace_id: UUID
    display_phone_number: str


@dataclass(frozen=True)
class MemberRow:
    member_id: UUID
    workspace_id: UUID
    name: str
    role: str
    capacity: int


@dataclass(frozen=True)
class CredentialRow:
    """The member's current token hash (keyed by member: a rotation replaces it). Kept
    apart from the member's row: it comes from another topic, in any order with it."""

    member_id: UUID
    workspace_id: UUID
    token_hash: str
    issued_at: datetime


@dataclass(frozen=True)
class OutcomeRow:
    """What became of a command sent to the directory, keyed by the command's event id."""

    command_id: UUID
    command_type: str
    outcome: str
    reason: str
    decided_at: datetime
    result: dict[str, Any] | None


@dataclass(frozen=True)
class FlowVersionRow:
    flow_id: UUID
    version: int
    workspace_id: UUID
    name: str
    definition: dict[str, Any]
    published_by: UUID
    published_at: datetime


@dataclass(frozen=True)
class GroupRow:
    group_id: UUID
    workspace_id: UUID
    name: str
    created_at: datetime


@dataclass(frozen=True)
class ActiveFlowRow:
    phone_number_id: str
    workspace_id: UUID
    flow_id: UUID
    chosen_at: datetime


@dataclass(frozen=True)
class MemberDetails:
    """MemberUpdated: name, role and capacity as they now are."""

    member_id: UUID
    name: str
    role: str
    capacity: int


@dataclass(frozen=True)
class MemberDeactivation:
    member_id: UUID


@dataclass(frozen=True)
class MemberStatus:
    member_id: UUID
    status: str
    status_changed_at: datetime


@dataclass(frozen=True)
class MemberNotifications:
    member_id: UUID
    desktop_notifications: bool
    sound_notifications: bool


@dataclass(frozen=True)
class GroupName:
    group_id: UUID
    name: str


@dataclass(frozen=True)
class GroupDeletion:
    """Deleted groups keep their row (old history lines name them) with a ``deleted_at``."""

    group_id: UUID
    deleted_at: datetime


@dataclass(frozen=True)
class GroupMemberRow:
    group_id: UUID
    member_id: UUID
    workspace_id: UUID
    added_at: datetime


@dataclass(frozen=True)
class GroupMemberRemoval:
    group_id: UUID
    member_id: UUID


@dataclass(frozen=True)
class CannedResponseRow:
    """A canned response as it reads now (created or edited)."""

    canned_response_id: UUID
    workspace_id: UUID
    shortcut: str
    text: str
    updated_at: datetime


@dataclass(frozen=True)
class CannedResponseDeletion:
    canned_response_id: UUID
    deleted_at: datetime


DirectoryRow = (
    WorkspaceRow
    | CannedResponseRow
    | CannedResponseDeletion
    | NumberRow
    | NumberAgentConversations
    | NumberDisplay
    | MemberRow
    | CredentialRow
    | GroupRow
    | OutcomeRow
    | FlowVersionRow
    | ActiveFlowRow
    | MemberDetails
    | MemberDeactivation
    | MemberStatus
    | MemberNotifications
    | GroupName
    | GroupDeletion
    | GroupMemberRow
    | GroupMemberRemoval
)


def directory_rows(envelope: Envelope) -> list[DirectoryRow]:
    """The directory rows an event writes (a conversation's start tells the number's display
    form, which only Meta's webhooks carry)."""
    at = envelope.occurred_at
    rows: list[DirectoryRow]
    match envelope.payload:
        case WorkspaceCreated(workspace_id=workspace_id, name=name, time_zone=time_zone):
            # The CreateWorkspace command's verdict. Projected before the admin's MemberAdded
            # (same key, same order), it also keeps that MemberAdded from answering for the
            # command as if it were an AddMember: outcomes are written once per command.
            return [
                WorkspaceRow(workspace_id, name, time_zone, at),
                *_accepted(
                    envelope, CreateWorkspace.event_type, {"workspace_id": str(workspace_id)}
                ),
            ]
        case BusinessNumberConnected(
            workspace_id=workspace_id, phone_number_id=number, agent_conversations=enabled
        ):
            return [NumberRow(number, workspace_id, enabled)]
        case AgentConversationsSet(phone_number_id=number, enabled=enabled):
            return [
                NumberAgentConversations(number, enabled),
                *_accepted(
                    envelope,
                    SetAgentConversations.event_type,
                    {"phone_number_id": number, "agent_conversations": enabled},
                ),
            ]
        case ConversationStarted(phone_number_id=number, display_phone_number=display) if (
            envelope.workspace_id is not None and display
        ):
            return [NumberDisplay(number, envelope.workspace_id, display)]
        case MemberAdded() as member:
            return [
                MemberRow(
                    member.member_id,
                    member.workspace_id,
                    member.name,
                    member.role,
                    member.capacity,
                ),
                *_accepted(envelope, AddMember.event_type, {"member_id": str(member.member_id)}),
            ]
        case MemberCredentialIssued() as credential:
            row = CredentialRow(
                credential.member_id, credential.workspace_id, credential.token_hash, at
            )
            if credential.reason != "rotated":
                return [row]  # the member's addition answers for its command
            rotated = {"member_id": str(credential.member_id)}
            return [row, *_accepted(envelope, RotateMemberToken.event_type, rotated)]
        case MemberUpdated() as updated:
            result = {
                "member_id": str(updated.member_id),
                "name": updated.name,
                "role": updated.role,
                "capacity": updated.capacity,
            }
            return [
                MemberDetails(updated.member_id, updated.name, updated.role, updated.capacity),
                *_accepted(envelope, UpdateMember.event_type, result),
            ]
        case MemberDeactivated(member_id=member_id):
            return [
                MemberDeactivation(member_id),
                *_accepted(envelope, DeactivateMember.event_type, {"member_id": str(member_id)}),
            ]
        case AgentStatusChanged(member_id=member_id, status=status):
            return [
                MemberStatus(member_id, status, at),
                *_accepted(envelope, SetAgentStatus.event_type, {"status": status}),
            ]
        case NotificationSettingsChanged(member_id=member_id, desktop=desktop, sound=sound):
            return [
                MemberNotifications(member_id, desktop, sound),
                *_accepted(
                    envelope,
                    SetNotificationSettings.event_type,
                    {"desktop": desktop, "sound": sound},
                ),
            ]
        case GroupRenamed(group_id=group_id, name=name):
            return [
                GroupName(group_id, name),
                *_accepted(
                    envelope, RenameGroup.event_type, {"group_id": str(group_id), "name": name}
                ),
            ]
        case GroupDeleted(group_id=group_id):
            return [
                GroupDeletion(group_id, at),
                *_accepted(envelope, DeleteGroup.event_type, {"group_id": str(group_id)}),
            ]
        case GroupMemberAdded(group_id=group_id, member_id=member_id, workspace_id=workspace_id):
            result = {"group_id": str(group_id), "member_id": str(member_id)}
            return [
                GroupMemberRow(group_id, member_id, workspace_id, at),
                *_accepted(envelope, AddGroupMember.event_type, result),
            ]
        case GroupMemberRemoved(group_id=group_id, member_id=member_id):
            result = {"group_id": str(group_id), "member_id": str(member_id)}
            return [
                GroupMemberRemoval(group_id, member_id),
                *_accepted(envelope, RemoveGroupMember.event_type, result),
            ]
        case GroupCreated(group_id=group_id, workspace_id=workspace_id, name=name):
            rows = [GroupRow(group_id, workspace_id, name, at)]
            if envelope.causation_id is not None:
                rows.append(
                    OutcomeRow(
                        envelope.causation_id,
                        "directory.create_group",
                        "accepted",
                        "",
                        at,
                        {"group_id": str(group_id), "name": name},
                    )
                )
            return rows
        case CommandRejected(command_id=command_id, command_type=command_type, reason=reason):
            return [OutcomeRow(command_id, command_type, "rejected", reason, at, None)]
        case CannedResponseCreated() | CannedResponseUpdated() as canned:
            command_type = (
                CreateCannedResponse.event_type
                if isinstance(canned, CannedResponseCreated)
                else UpdateCannedResponse.event_type
            )
            result = {
                "canned_response_id": str(canned.canned_response_id),
                "shortcut": canned.shortcut,
                "text": canned.text,
            }
            return [
                CannedResponseRow(
                    canned.canned_response_id, canned.workspace_id, canned.shortcut, canned.text, at
                ),
                *_accepted(envelope, command_type, result),
            ]
        case CannedResponseDeleted(canned_response_id=canned_id):
            return [
                CannedResponseDeletion(canned_id, at),
                *_accepted(
                    envelope,
                    DeleteCannedResponse.event_type,
                    {"canned_response_id": str(canned_id)},
                ),
            ]
        # A note's verdict, for the member who wrote it (the line itself is the history's).
        case NoteAdded(note_id=note_id):
            return [*_accepted(envelope, AddNote.event_type, {"note_id": str(note_id)})]
        case NoteRefused(reason=reason) if envelope.causation_id is not None:
            return [
                OutcomeRow(envelope.causation_id, AddNote.event_type, "rejected", reason, at, None)
            ]
        case FlowPublished() as flow:
            rows = [
                FlowVersionRow(
                    flow.flow_id,
                    flow.version,
                    flow.workspace_id,
                    flow.name,
                    flow.definition,
                    flow.published_by,
                    at,
                )
            ]
            if envelope.causation_id is not None:
                result = {"flow_id": str(flow.flow_id), "version": flow.version}
                rows.append(
                    OutcomeRow(
                        envelope.causation_id, "directory.publish_flow", "accepted", "", at, result
                    )
                )
            return rows
        case ActiveFlowChosen() as chosen:
            rows = [ActiveFlowRow(chosen.phone_number_id, chosen.workspace_id, chosen.flow_id, at)]
            if envelope.causation_id is not None:
                result = {"phone_number_id": chosen.phone_number_id, "flow_id": str(chosen.flow_id)}
                rows.append(
                    OutcomeRow(
                        envelope.causation_id,
                        "directory.choose_active_flow",
                        "accepted",
                        "",
                        at,
                        result,
                    )
                )
            return rows
        case _:
            return []


def _accepted(envelope: Envelope, command_type: str, result: dict[str, Any]) -> list[OutcomeRow]:
    """The accepted verdict on the command that caused ``envelope``, if a command did."""
    if envelope.causation_id is None:
        return []
    return [
        OutcomeRow(
            envelope.causation_id, command_type, "accepted", "", envelope.occurred_at, result
        )
    ]
