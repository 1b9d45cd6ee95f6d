"""Pure decisions of the directory about workspaces and business numbers.

A business number belongs to at most one workspace; that is decided on the number's own
stream, so two workspaces claiming one number at once cannot both win.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from events.base import Payload
from events.directory import (
    BusinessNumberConnected,
    CommandRejected,
    CreateGroup,
    CreateWorkspace,
    GroupCreated,
    MemberAdded,
    WorkspaceCreated,
)
from events.flows import ActiveFlowChosen, ChooseActiveFlow, FlowPublished, PublishFlow
from services.flows.definition import FlowInvalid, parse_flow

DEFAULT_ADMIN_CAPACITY = 10


@dataclass(frozen=True)
class WorkspaceState:
    workspace_id: UUID
    created: bool = False
    name: str = ""
    members: frozenset[UUID] = frozenset()
    groups: frozenset[UUID] = frozenset()
    group_names: frozenset[str] = frozenset()


@dataclass(frozen=True)
class FlowState:
    flow_id: UUID
    workspace_id: UUID | None = None
    versions: int = 0


@dataclass(frozen=True)
class NumberState:
    phone_number_id: str
    owner: UUID | None = None


def evolve_workspace(state: WorkspaceState, event: Payload) -> WorkspaceState:
    match event:
        case WorkspaceCreated(name=name):
            return replace(state, created=True, name=name)
        case MemberAdded(member_id=member_id):
            return replace(state, members=state.members | {member_id})
        case GroupCreated(group_id=group_id, name=name):
            return replace(
                state,
                groups=state.groups | {group_id},
                group_names=state.group_names | {name.casefold()},
            )
        case _:
            return state


def evolve_flow(state: FlowState, event: Payload) -> FlowState:
    match event:
        case FlowPublished(workspace_id=workspace_id, version=version):
            return replace(state, workspace_id=workspace_id, versions=version)
        case _:
            return state


def evolve_number(state: NumberState, event: Payload) -> NumberState:
    match event:
        case BusinessNumberConnected(workspace_id=owner):
            return replace(state, owner=owner)
        case _:
            return state


def decide_create_workspace(
    command: CreateWorkspace, command_id: UUID, workspace: WorkspaceState, number: NumberState
) -> list[Payload]:
    """A new workspace with its number and first admin, or one rejection saying why."""
    if workspace.created:
        # The same command delivered again (a CLI retry) is already done; anything else
        # under an existing id is a mistake the caller must hear about.
        if workspace.name == command.name and number.owner == command.workspace_id:
            return []
        return [_reject(command, command_id, f"workspace {command.workspace_id} already exists")]
    if number.owner is not None:
        return [
            _reject(
                command,
                command_id,
                f"business number {command.phone_number_id} already belongs to workspace "
                f"{number.owner}",
            )
        ]
    if not command.name.strip():
        return [_reject(command, command_id, "a workspace needs a non-empty name")]
    if not valid_time_zone(command.time_zone):
        return [_reject(command, command_id, f"unknown time zone {command.time_zone!r}")]
    return [
        WorkspaceCreated(
            workspace_id=command.workspace_id, name=command.name, time_zone=command.time_zone
        ),
        BusinessNumberConnected(
            workspace_id=command.workspace_id, phone_number_id=command.phone_number_id
        ),
        MemberAdded(
            workspace_id=command.workspace_id,
            member_id=command.admin_member_id,
            name=command.admin_name,
            role="admin",
            capacity=DEFAULT_ADMIN_CAPACITY,
            token_hash=command.admin_token_hash,
        ),
    ]


def decide_publish_flow(
    command: PublishFlow, command_id: UUID, workspace: WorkspaceState, flow: FlowState
) -> list[Payload]:
    """A new version of a flow (1 for a new flow), if its definition is valid here."""
    if not workspace.created:
        return [_reject(command, command_id, f"workspace {command.workspace_id} does not exist")]
    if flow.workspace_id is not None and flow.workspace_id != command.workspace_id:
        return [
            _reject(command, command_id, f"flow {command.flow_id} belongs to another workspace")
        ]
    try:
        definition = parse_flow(
            command.definition, members=workspace.members, groups=workspace.groups
        )
    except FlowInvalid as error:
        return [_reject(command, command_id, str(error))]
    return [
        FlowPublished(
            workspace_id=command.workspace_id,
            flow_id=command.flow_id,
            version=flow.versions + 1,
            name=definition.name,
            definition=command.definition,
            published_by=command.published_by,
        )
    ]


def decide_choose_active_flow(
    command: ChooseActiveFlow, command_id: UUID, number: NumberState, flow: FlowState
) -> list[Payload]:
    if number.owner != command.workspace_id:
        return [
            _reject(
                command,
                command_id,
                f"business number {command.phone_number_id} is not this workspace's",
            )
        ]
    if flow.workspace_id != command.workspace_id:
        return [_reject(command, command_id, f"flow {command.flow_id} does not exist here")]
    return [
        ActiveFlowChosen(
            workspace_id=command.workspace_id,
            phone_number_id=command.phone_number_id,
            flow_id=command.flow_id,
            chosen_by=command.chosen_by,
        )
    ]


def decide_create_group(
    command: CreateGroup, command_id: UUID, workspace: WorkspaceState
) -> list[Payload]:
    if not workspace.created:
        return [_reject(command, command_id, f"workspace {command.workspace_id} does not exist")]
    if command.group_id in workspace.groups:
        return []  # the same command delivered again
    name = command.name.strip()
    if not name:
        return [_reject(command, command_id, "a group needs a non-empty name")]
    if name.casefold() in workspace.group_names:
        return [_reject(command, command_id, f"a group named {name!r} already exists")]
    return [GroupCreated(workspace_id=command.workspace_id, group_id=command.group_id, name=name)]


def valid_time_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _reject(command: Payload, command_id: UUID, reason: str) -> CommandRejected:
    return CommandRejected(command_id=command_id, command_type=command.event_type, reason=reason)
