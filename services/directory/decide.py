"""Pure decisions of the directory: workspaces, business numbers, members, groups, statuses.

A business number belongs to at most one workspace; that is decided on the number's own
stream, so two workspaces claiming one number at once cannot both win. Members and groups
are decided on the workspace's stream (their rules span the workspace: unique group names,
the last active admin); an agent's status and notification settings on the member's own
stream, so frequent status changes do not grow the workspace's stream.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from events.base import Payload
from events.canned_responses import (
    MAX_TEXT_LENGTH,
    SHORTCUT_PATTERN,
    VARIABLES,
    CannedResponseCreated,
    CannedResponseDeleted,
    CannedResponseUpdated,
    CreateCannedResponse,
    DeleteCannedResponse,
    UpdateCannedResponse,
    unknown_variables,
)
from events.directory import (
    AddGroupMember,
    AddMember,
    AgentConversationsSet,
    AgentStatus,
    AgentStatusChanged,
    BusinessNumberConnected,
    CommandRejected,
    CreateGroup,
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
    Role,
    RotateMemberToken,
    SetAgentConversations,
    SetAgentStatus,
    SetNotificationSettings,
    UpdateMember,
    WorkspaceCreated,
)
from events.flow_language.grammar import FlowInvalid
from events.flow_language.publishing import check_publishable
from events.flows import ActiveFlowChosen, ChooseActiveFlow, FlowPublished, PublishFlow
from events.text_rules import control_character_problem

DEFAULT_ADMIN_CAPACITY = 10
MIN_CAPACITY, MAX_CAPACITY = 1, 100
LAST_ADMIN = "the workspace needs at least one active admin"


@dataclass(frozen=True)
class MemberState:
    name: str
    role: Role
    capacity: int
    active: bool = True


@dataclass(frozen=True)
class GroupState:
    name: str
    deleted: bool = False
    members: frozenset[UUID] = frozenset()


@dataclass(frozen=True)
class CannedState:
    shortcut: str
    deleted: bool = False


def _no_canned() -> Mapping[UUID, CannedState]:
    return MappingProxyType({})


def _no_members() -> Mapping[UUID, MemberState]:
    return MappingProxyType({})


def _no_groups() -> Mapping[UUID, GroupState]:
    return MappingProxyType({})


@dataclass(frozen=True)
class WorkspaceState:
    """What the workspace's stream says: its members and groups (deactivated and deleted
    ones included, so an id is never reused and a rejection can say what happened)."""

    workspace_id: UUID
    created: bool = False
    name: str = ""
    member_states: Mapping[UUID, MemberState] = field(default_factory=_no_members)
    group_states: Mapping[UUID, GroupState] = field(default_factory=_no_groups)
    # Members whose token hash was issued as a MemberCredentialIssued (those added by a
    # member_added v1 before it were not, until carried over).
    credentialed: frozenset[UUID] = frozenset()
    canned_responses: Mapping[UUID, CannedState] = field(default_factory=_no_canned)

    @property
    def members(self) -> frozenset[UUID]:
        """The active members (the ones a flow may name)."""
        return frozenset(m for m, state in self.member_states.items() if state.active)

    @property
    def groups(self) -> frozenset[UUID]:
        """The groups not deleted (the ones a flow may name)."""
        return frozenset(g for g, state in self.group_states.items() if not state.deleted)

    @property
    def group_names(self) -> frozenset[str]:
        """Casefolded names of the groups not deleted: a deleted group frees its name."""
        return frozenset(s.name.casefold() for s in self.group_states.values() if not s.deleted)

    def active_admins(self) -> frozenset[UUID]:
        return frozenset(m for m, s in self.member_states.items() if s.active and s.role == "admin")


@dataclass(frozen=True)
class MemberStreamState:
    """A member's own stream: its status and notification settings.

    New members are ``offline`` until their first session says otherwise.
    """

    member_id: UUID
    status: AgentStatus = "offline"
    desktop: bool = True
    sound: bool = True


@dataclass(frozen=True)
class FlowState:
    flow_id: UUID
    workspace_id: UUID | None = None
    versions: int = 0


@dataclass(frozen=True)
class NumberState:
    phone_number_id: str
    owner: UUID | None = None
    agent_conversations: bool = False


def evolve_workspace(state: WorkspaceState, event: Payload) -> WorkspaceState:
    match event:
        case WorkspaceCreated(name=name):
            return replace(state, created=True, name=name)
        case MemberAdded(member_id=member_id, name=name, role=role, capacity=capacity):
            return _with_member(state, member_id, MemberState(name, role, capacity))
        case MemberUpdated(member_id=member_id, name=name, role=role, capacity=capacity):
            before = state.member_states.get(member_id)
            active = before.active if before is not None else True
            return _with_member(state, member_id, MemberState(name, role, capacity, active))
        case MemberCredentialIssued(member_id=member_id):
            return replace(state, credentialed=state.credentialed | {member_id})
        case MemberDeactivated(member_id=member_id) if member_id in state.member_states:
            member = state.member_states[member_id]
            return _with_member(state, member_id, replace(member, active=False))
        case GroupCreated(group_id=group_id, name=name):
            return _with_group(state, group_id, GroupState(name))
        case GroupRenamed(group_id=group_id, name=name) if group_id in state.group_states:
            return _with_group(state, group_id, replace(state.group_states[group_id], name=name))
        case GroupDeleted(group_id=group_id) if group_id in state.group_states:
            return _with_group(state, group_id, replace(state.group_states[group_id], deleted=True))
        case GroupMemberAdded(group_id=group_id, member_id=member_id) if (
            group_id in state.group_states
        ):
            group = state.group_states[group_id]
            return _with_group(state, group_id, replace(group, members=group.members | {member_id}))
        case GroupMemberRemoved(group_id=group_id, member_id=member_id) if (
            group_id in state.group_states
        ):
            group = state.group_states[group_id]
            return _with_group(state, group_id, replace(group, members=group.members - {member_id}))
        case (
            CannedResponseCreated(canned_response_id=canned_id, shortcut=shortcut)
            | CannedResponseUpdated(canned_response_id=canned_id, shortcut=shortcut)
        ):
            return _with_canned(state, canned_id, CannedState(shortcut))
        case CannedResponseDeleted(canned_response_id=canned_id) if (
            canned_id in state.canned_responses
        ):
            canned = replace(state.canned_responses[canned_id], deleted=True)
            return _with_canned(state, canned_id, canned)
        case _:
            return state


def _with_canned(state: WorkspaceState, canned_id: UUID, canned: CannedState) -> WorkspaceState:
    found = MappingProxyType({**state.canned_responses, canned_id: canned})
    return replace(state, canned_responses=found)


def evolve_member(state: MemberStreamState, event: Payload) -> MemberStreamState:
    match event:
        case AgentStatusChanged(status=status):
            return replace(state, status=status)
        case NotificationSettingsChanged(desktop=desktop, sound=sound):
            return replace(state, desktop=desktop, sound=sound)
        case _:
            return state


def _with_member(state: WorkspaceState, member_id: UUID, member: MemberState) -> WorkspaceState:
    members = MappingProxyType({**state.member_states, member_id: member})
    return replace(state, member_states=members)


def _with_group(state: WorkspaceState, group_id: UUID, group: GroupState) -> WorkspaceState:
    return replace(state, group_states=MappingProxyType({**state.group_states, group_id: group}))


def evolve_flow(state: FlowState, event: Payload) -> FlowState:
    match event:
        case FlowPublished(workspace_id=workspace_id, version=version):
            return replace(state, workspace_id=workspace_id, versions=version)
        case _:
            return state


def evolve_number(state: NumberState, event: Payload) -> NumberState:
    match event:
        case BusinessNumberConnected(workspace_id=owner, agent_conversations=enabled):
            return replace(state, owner=owner, agent_conversations=enabled)
        case AgentConversationsSet(enabled=enabled):
            return replace(state, agent_conversations=enabled)
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
    problem = _name_problem(command.name.strip(), "workspace") or _name_problem(
        command.admin_name.strip(), "admin"
    )
    if problem:
        return [_reject(command, command_id, problem)]
    if not valid_time_zone(command.time_zone):
        return [_reject(command, command_id, f"unknown time zone {command.time_zone!r}")]
    return [
        WorkspaceCreated(
            workspace_id=command.workspace_id, name=command.name, time_zone=command.time_zone
        ),
        BusinessNumberConnected(
            workspace_id=command.workspace_id,
            phone_number_id=command.phone_number_id,
            agent_conversations=command.agent_conversations,
        ),
        MemberAdded(
            workspace_id=command.workspace_id,
            member_id=command.admin_member_id,
            name=command.admin_name,
            role="admin",
            capacity=DEFAULT_ADMIN_CAPACITY,
        ),
        MemberCredentialIssued(
            workspace_id=command.workspace_id,
            member_id=command.admin_member_id,
            token_hash=command.admin_token_hash,
            reason="added",
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
        definition = check_publishable(
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


def decide_set_agent_conversations(
    command: SetAgentConversations, command_id: UUID, number: NumberState
) -> list[Payload]:
    """Turn the number's agent conversations on or off. Setting the value it already has is
    accepted too (the caller waits for a verdict, and the event changes nothing)."""
    if number.owner != command.workspace_id:
        return [
            _reject(
                command,
                command_id,
                f"business number {command.phone_number_id} is not this workspace's",
            )
        ]
    return [
        AgentConversationsSet(
            workspace_id=command.workspace_id,
            phone_number_id=command.phone_number_id,
            enabled=command.enabled,
            set_by=command.set_by,
        )
    ]


def decide_create_group(
    command: CreateGroup, command_id: UUID, workspace: WorkspaceState
) -> list[Payload]:
    if not workspace.created:
        return [_reject(command, command_id, f"workspace {command.workspace_id} does not exist")]
    if command.group_id in workspace.group_states:
        return []  # the same command delivered again
    name = command.name.strip()
    problem = _group_name_problem(name, workspace)
    if problem:
        return [_reject(command, command_id, problem)]
    return [GroupCreated(workspace_id=command.workspace_id, group_id=command.group_id, name=name)]


def decide_add_member(
    command: AddMember, command_id: UUID, workspace: WorkspaceState
) -> list[Payload]:
    if not workspace.created:
        return [_reject(command, command_id, f"workspace {command.workspace_id} does not exist")]
    name = command.name.strip()
    existing = workspace.member_states.get(command.member_id)
    if existing is not None:
        if existing.name == name:
            return []  # the same command delivered again
        return [_reject(command, command_id, f"member {command.member_id} already exists")]
    problem = _name_problem(name, "member") or _capacity_problem(command.capacity)
    if problem:
        return [_reject(command, command_id, problem)]
    return [
        MemberAdded(
            workspace_id=command.workspace_id,
            member_id=command.member_id,
            name=name,
            role=command.role,
            capacity=command.capacity,
        ),
        MemberCredentialIssued(
            workspace_id=command.workspace_id,
            member_id=command.member_id,
            token_hash=command.token_hash,
            reason="added",
        ),
    ]


def decide_rotate_member_token(
    command: RotateMemberToken, command_id: UUID, workspace: WorkspaceState
) -> list[Payload]:
    """A new token for an active member; its previous one stops working."""
    problem = _member_problem(command.member_id, workspace)
    if problem:
        return [_reject(command, command_id, problem)]
    return [
        MemberCredentialIssued(
            workspace_id=command.workspace_id,
            member_id=command.member_id,
            token_hash=command.token_hash,
            reason="rotated",
        )
    ]


def carry_over_credentials(
    workspace: WorkspaceState, legacy_hashes: Mapping[UUID, str]
) -> list[MemberCredentialIssued]:
    """Credentials for the members a ``member_added`` v1 added (``legacy_hashes``: their
    token hashes, read from those records), unless issued since: their tokens keep working
    once ``member_added`` no longer carries the hash."""
    return [
        MemberCredentialIssued(
            workspace_id=workspace.workspace_id,
            member_id=member_id,
            token_hash=token_hash,
            reason="carried_over",
        )
        for member_id, token_hash in sorted(legacy_hashes.items())
        if member_id in workspace.member_states and member_id not in workspace.credentialed
    ]


def decide_update_member(
    command: UpdateMember, command_id: UUID, workspace: WorkspaceState
) -> list[Payload]:
    member = workspace.member_states.get(command.member_id)
    if member is None:
        return [_reject(command, command_id, f"no member {command.member_id} here")]
    if not member.active:
        return [_reject(command, command_id, f"member {command.member_id} is deactivated")]
    name = member.name if command.name is None else command.name.strip()
    role = command.role or member.role
    capacity = member.capacity if command.capacity is None else command.capacity
    problem = _name_problem(name, "member") or _capacity_problem(capacity)
    if problem:
        return [_reject(command, command_id, problem)]
    if member.role == "admin" and role != "admin" and _last_admin(workspace, command.member_id):
        return [_reject(command, command_id, LAST_ADMIN)]
    # Carried even when nothing changed: the caller waits for an outcome, and a fold of the
    # same values again is harmless.
    return [
        MemberUpdated(
            workspace_id=command.workspace_id,
            member_id=command.member_id,
            name=name,
            role=role,
            capacity=capacity,
        )
    ]


def decide_deactivate_member(
    command: DeactivateMember, command_id: UUID, workspace: WorkspaceState
) -> list[Payload]:
    member = workspace.member_states.get(command.member_id)
    if member is None:
        return [_reject(command, command_id, f"no member {command.member_id} here")]
    if not member.active:
        return [_reject(command, command_id, f"member {command.member_id} is already deactivated")]
    if member.role == "admin" and _last_admin(workspace, command.member_id):
        return [_reject(command, command_id, LAST_ADMIN)]
    return [MemberDeactivated(workspace_id=command.workspace_id, member_id=command.member_id)]


def decide_rename_group(
    command: RenameGroup, command_id: UUID, workspace: WorkspaceState
) -> list[Payload]:
    group = workspace.group_states.get(command.group_id)
    problem = _group_problem(command.group_id, group)
    if problem:
        return [_reject(command, command_id, problem)]
    assert group is not None
    name = command.name.strip()
    problem = _group_name_problem(name, workspace, current=group.name)
    if problem:
        return [_reject(command, command_id, problem)]
    return [GroupRenamed(workspace_id=command.workspace_id, group_id=command.group_id, name=name)]


def decide_delete_group(
    command: DeleteGroup, command_id: UUID, workspace: WorkspaceState
) -> list[Payload]:
    problem = _group_problem(command.group_id, workspace.group_states.get(command.group_id))
    if problem:
        return [_reject(command, command_id, problem)]
    return [GroupDeleted(workspace_id=command.workspace_id, group_id=command.group_id)]


def decide_add_group_member(
    command: AddGroupMember, command_id: UUID, workspace: WorkspaceState
) -> list[Payload]:
    group = workspace.group_states.get(command.group_id)
    problem = _group_problem(command.group_id, group) or _member_problem(
        command.member_id, workspace
    )
    if problem:
        return [_reject(command, command_id, problem)]
    assert group is not None
    if command.member_id in group.members:
        return [
            _reject(
                command,
                command_id,
                f"member {command.member_id} is already a member of group {command.group_id}",
            )
        ]
    return [
        GroupMemberAdded(
            workspace_id=command.workspace_id,
            group_id=command.group_id,
            member_id=command.member_id,
        )
    ]


def decide_remove_group_member(
    command: RemoveGroupMember, command_id: UUID, workspace: WorkspaceState
) -> list[Payload]:
    group = workspace.group_states.get(command.group_id)
    problem = _group_problem(command.group_id, group)
    if problem:
        return [_reject(command, command_id, problem)]
    assert group is not None
    if command.member_id not in group.members:
        return [
            _reject(
                command,
                command_id,
                f"member {command.member_id} is not in group {command.group_id}",
            )
        ]
    return [
        GroupMemberRemoved(
            workspace_id=command.workspace_id,
            group_id=command.group_id,
            member_id=command.member_id,
        )
    ]


def decide_set_agent_status(
    command: SetAgentStatus,
    command_id: UUID,
    workspace: WorkspaceState,
    member: MemberStreamState,
) -> list[Payload]:
    problem = _member_problem(command.member_id, workspace)
    if problem:
        return [_reject(command, command_id, problem)]
    if member.status == command.status:
        return [_reject(command, command_id, f"already {command.status}")]
    return [
        AgentStatusChanged(
            workspace_id=command.workspace_id,
            member_id=command.member_id,
            status=command.status,
            previous=member.status,
            reason=command.reason,
        )
    ]


def decide_set_notification_settings(
    command: SetNotificationSettings, command_id: UUID, workspace: WorkspaceState
) -> list[Payload]:
    problem = _member_problem(command.member_id, workspace)
    if problem:
        return [_reject(command, command_id, problem)]
    return [
        NotificationSettingsChanged(
            workspace_id=command.workspace_id,
            member_id=command.member_id,
            desktop=command.desktop,
            sound=command.sound,
        )
    ]


def decide_create_canned_response(
    command: CreateCannedResponse, command_id: UUID, workspace: WorkspaceState
) -> list[Payload]:
    """A new canned response, if its shortcut is well formed and free and its text holds
    only known variables."""
    if not workspace.created:
        return [_reject(command, command_id, f"workspace {command.workspace_id} does not exist")]
    existing = workspace.canned_responses.get(command.canned_response_id)
    if existing is not None:
        if existing.shortcut == command.shortcut.strip() and not existing.deleted:
            return []  # the same command delivered again
        return [
            _reject(
                command, command_id, f"canned response {command.canned_response_id} already exists"
            )
        ]
    shortcut, text = command.shortcut.strip(), command.text.strip()
    problem = _canned_problem(shortcut, text, command.canned_response_id, workspace)
    if problem:
        return [_reject(command, command_id, problem)]
    return [
        CannedResponseCreated(
            workspace_id=command.workspace_id,
            canned_response_id=command.canned_response_id,
            shortcut=shortcut,
            text=text,
            created_by=command.created_by,
        )
    ]


def decide_update_canned_response(
    command: UpdateCannedResponse, command_id: UUID, workspace: WorkspaceState
) -> list[Payload]:
    problem = _canned_response_problem(command.canned_response_id, workspace)
    shortcut, text = command.shortcut.strip(), command.text.strip()
    problem = problem or _canned_problem(shortcut, text, command.canned_response_id, workspace)
    if problem:
        return [_reject(command, command_id, problem)]
    return [
        CannedResponseUpdated(
            workspace_id=command.workspace_id,
            canned_response_id=command.canned_response_id,
            shortcut=shortcut,
            text=text,
            updated_by=command.updated_by,
        )
    ]


def decide_delete_canned_response(
    command: DeleteCannedResponse, command_id: UUID, workspace: WorkspaceState
) -> list[Payload]:
    problem = _canned_response_problem(command.canned_response_id, workspace)
    if problem:
        return [_reject(command, command_id, problem)]
    return [
        CannedResponseDeleted(
            workspace_id=command.workspace_id,
            canned_response_id=command.canned_response_id,
            deleted_by=command.deleted_by,
        )
    ]


def _canned_response_problem(canned_id: UUID, workspace: WorkspaceState) -> str | None:
    found = workspace.canned_responses.get(canned_id)
    if found is None:
        return f"no canned response {canned_id} here"
    if found.deleted:
        return f"canned response {canned_id} is deleted"
    return None


def _canned_problem(
    shortcut: str, text: str, canned_id: UUID, workspace: WorkspaceState
) -> str | None:
    """Why a canned response cannot have this shortcut and text (None: it can)."""
    if not re.fullmatch(SHORTCUT_PATTERN, shortcut):
        return (
            f"a shortcut is 1 to 32 letters, digits, '-' or '_', starting with a letter or a"
            f" digit (got {shortcut!r})"
        )
    taken = any(
        other.shortcut.casefold() == shortcut.casefold() and not other.deleted
        for other_id, other in workspace.canned_responses.items()
        if other_id != canned_id
    )
    if taken:
        return f"the shortcut /{shortcut} is taken by another canned response"
    if not text:
        return "a canned response needs some text"
    if len(text) > MAX_TEXT_LENGTH:
        return f"a canned response holds at most {MAX_TEXT_LENGTH} characters (got {len(text)})"
    problem = control_character_problem(text, free_text=True)
    if problem:
        return f"the text {problem}"
    unknown = unknown_variables(text)
    if unknown:
        names = ", ".join("{{" + name + "}}" for name in unknown)
        known = ", ".join("{{" + name + "}}" for name in VARIABLES)
        return f"unknown variable {names} (known: {known})"
    return None


def _name_problem(name: str, what: str) -> str | None:
    """Empty, or holding a control character: a name must be storable and showable
    everywhere (a NUL, for one, cannot be stored by any read model)."""
    if not name:
        return f"a {what} needs a non-empty name"
    problem = control_character_problem(name)
    return f"a {what}'s name {problem}" if problem else None


def _group_name_problem(
    name: str, workspace: WorkspaceState, current: str | None = None
) -> str | None:
    """Empty, or taken by another group; a group's own name (in any case) is no clash."""
    taken = name.casefold() in workspace.group_names
    if current is not None and name.casefold() == current.casefold():
        taken = False
    return _name_problem(name, "group") or (
        f"a group named {name!r} already exists" if taken else None
    )


def _capacity_problem(capacity: int) -> str | None:
    if MIN_CAPACITY <= capacity <= MAX_CAPACITY:
        return None
    return f"capacity must be between {MIN_CAPACITY} and {MAX_CAPACITY} (got {capacity})"


def _last_admin(workspace: WorkspaceState, member_id: UUID) -> bool:
    return workspace.active_admins() == {member_id}


def _group_problem(group_id: UUID, group: GroupState | None) -> str | None:
    """Why a command cannot act on the group: not this workspace's, or deleted."""
    if group is None:
        return f"no group {group_id} here"
    if group.deleted:
        return f"group {group_id} is deleted"
    return None


def _member_problem(member_id: UUID, workspace: WorkspaceState) -> str | None:
    """Why a command cannot act on the member: not this workspace's, or deactivated."""
    member = workspace.member_states.get(member_id)
    if member is None:
        return f"no member {member_id} here"
    if not member.active:
        return f"member {member_id} is deactivated"
    return None


def valid_time_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _reject(command: Payload, command_id: UUID, reason: str) -> CommandRejected:
    return CommandRejected(command_id=command_id, command_type=command.event_type, reason=reason)
