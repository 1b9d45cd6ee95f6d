"""Directory commands and events: workspaces, their business numbers and their members.

Keyed by workspace id. Tokens never travel: only their SHA-256 hash does, and only on the
restricted topics (``directory.commands`` in, ``directory.credentials`` out): the events of
``directory.events``, which analytics read, carry no credential (``member_added`` v2).
"""

from __future__ import annotations

from typing import Literal

from events.base import Id, JsonObject, Payload

Role = Literal["admin", "agent"]
# ``offline`` is set when the agent's last session ends; the agent picks the other two.
AgentStatus = Literal["available", "unavailable", "offline"]


class CreateWorkspace(Payload):
    """Command: a workspace, its first business number and its first admin.

    Version 2 says whether the number starts with agent conversations on (version 1 did not
    know the switch: its numbers handed off, so it reads as on).
    """

    event_type = "directory.create_workspace"
    schema_version = 2

    workspace_id: Id
    name: str
    time_zone: str
    phone_number_id: str
    admin_member_id: Id
    admin_name: str
    admin_token_hash: str
    agent_conversations: bool


class WorkspaceCreated(Payload):
    event_type = "directory.workspace_created"

    workspace_id: Id
    name: str
    time_zone: str


class BusinessNumberConnected(Payload):
    """The number belongs to the workspace from now on.

    Version 2 says whether flows may hand its conversations to agents (``agent_conversations``);
    version 1 predates the switch and its numbers handed off, so it reads as on.
    """

    event_type = "directory.business_number_connected"
    schema_version = 2

    workspace_id: Id
    phone_number_id: str
    agent_conversations: bool


class SetAgentConversations(Payload):
    """Command: may flows hand this number's conversations to agents (connect-to-agent blocks)?

    While off, a connect-to-agent block follows its ``fallback`` (or the flow's error path)
    instead of handing off; an admin turns it on once the team is ready.
    """

    event_type = "directory.set_agent_conversations"

    workspace_id: Id
    phone_number_id: str
    enabled: bool
    set_by: Id


class AgentConversationsSet(Payload):
    """Agent conversations on the number were turned on or off (``enabled``) by ``set_by``."""

    event_type = "directory.agent_conversations_set"

    workspace_id: Id
    phone_number_id: str
    enabled: bool
    set_by: Id


class MemberAdded(Payload):
    """v2: no ``token_hash`` (v1 carried it on ``directory.events``; it now travels as
    ``MemberCredentialIssued`` on ``directory.credentials``)."""

    event_type = "directory.member_added"
    schema_version = 2

    workspace_id: Id
    member_id: Id
    name: str
    role: Role
    capacity: int


def upcast_member_added_v1(data: JsonObject) -> JsonObject:
    """v1 carried the member's ``token_hash``; v2 leaves the credential out (readers of
    ``directory.events`` never see it, even in records written before)."""
    return {key: value for key, value in data.items() if key != "token_hash"}


CredentialReason = Literal["added", "rotated", "carried_over"]


class MemberCredentialIssued(Payload):
    """The hash of the member's token (the token itself is never kept): with a member's
    addition, when its token is rotated (the previous one stops working), or carried over
    from a ``member_added`` v1 record written before credentials had a topic of their own.

    On ``directory.credentials``, a restricted topic: whoever authenticates reads it."""

    event_type = "directory.member_credential_issued"

    workspace_id: Id
    member_id: Id
    token_hash: str
    reason: CredentialReason


class CreateGroup(Payload):
    """Command: a group of agents that flows can hand conversations to."""

    event_type = "directory.create_group"

    workspace_id: Id
    group_id: Id
    name: str
    created_by: Id


class GroupCreated(Payload):
    event_type = "directory.group_created"

    workspace_id: Id
    group_id: Id
    name: str


class AddMember(Payload):
    """Command: a new member of the workspace; the gateway made its token and sends the hash."""

    event_type = "directory.add_member"

    workspace_id: Id
    member_id: Id
    name: str
    role: Role
    capacity: int
    token_hash: str


class RotateMemberToken(Payload):
    """Command: the member's token is replaced; the gateway made the new one and sends its
    hash."""

    event_type = "directory.rotate_member_token"

    workspace_id: Id
    member_id: Id
    token_hash: str


class UpdateMember(Payload):
    """Command: change a member's name, role or capacity (None: leave as is)."""

    event_type = "directory.update_member"

    workspace_id: Id
    member_id: Id
    name: str | None
    role: Role | None
    capacity: int | None


class MemberUpdated(Payload):
    """A member's name, role or capacity changed; carries all three as they now are."""

    event_type = "directory.member_updated"

    workspace_id: Id
    member_id: Id
    name: str
    role: Role
    capacity: int


class DeactivateMember(Payload):
    event_type = "directory.deactivate_member"

    workspace_id: Id
    member_id: Id


class MemberDeactivated(Payload):
    """The member's token stops working; its open conversations go back to their queues."""

    event_type = "directory.member_deactivated"

    workspace_id: Id
    member_id: Id


class RenameGroup(Payload):
    event_type = "directory.rename_group"

    workspace_id: Id
    group_id: Id
    name: str


class GroupRenamed(Payload):
    event_type = "directory.group_renamed"

    workspace_id: Id
    group_id: Id
    name: str


class DeleteGroup(Payload):
    event_type = "directory.delete_group"

    workspace_id: Id
    group_id: Id


class GroupDeleted(Payload):
    """The group takes no new conversations; its queue moves to the workspace's queue."""

    event_type = "directory.group_deleted"

    workspace_id: Id
    group_id: Id


class AddGroupMember(Payload):
    event_type = "directory.add_group_member"

    workspace_id: Id
    group_id: Id
    member_id: Id


class GroupMemberAdded(Payload):
    event_type = "directory.group_member_added"

    workspace_id: Id
    group_id: Id
    member_id: Id


class RemoveGroupMember(Payload):
    event_type = "directory.remove_group_member"

    workspace_id: Id
    group_id: Id
    member_id: Id


class GroupMemberRemoved(Payload):
    """The member leaves the group; its open conversations of the group go back to the queue."""

    event_type = "directory.group_member_removed"

    workspace_id: Id
    group_id: Id
    member_id: Id


class SetAgentStatus(Payload):
    event_type = "directory.set_agent_status"

    workspace_id: Id
    member_id: Id
    status: AgentStatus
    reason: str  # "set by the agent", "session ended", ...


class AgentStatusChanged(Payload):
    event_type = "directory.agent_status_changed"

    workspace_id: Id
    member_id: Id
    status: AgentStatus
    previous: AgentStatus
    reason: str


class SetNotificationSettings(Payload):
    event_type = "directory.set_notification_settings"

    workspace_id: Id
    member_id: Id
    desktop: bool
    sound: bool


class NotificationSettingsChanged(Payload):
    event_type = "directory.notification_settings_changed"

    workspace_id: Id
    member_id: Id
    desktop: bool
    sound: bool


class CommandRejected(Payload):
    """A directory command that could not be carried out, and why (for the caller to see)."""

    event_type = "directory.command_rejected"

    command_id: Id
    command_type: str
    reason: str


DIRECTORY_COMMANDS: tuple[type[Payload], ...] = (
    CreateWorkspace,
    CreateGroup,
    AddMember,
    UpdateMember,
    DeactivateMember,
    RenameGroup,
    DeleteGroup,
    AddGroupMember,
    RemoveGroupMember,
    SetAgentStatus,
    SetNotificationSettings,
    SetAgentConversations,
    RotateMemberToken,
)
# Kept off ``directory.events``: the topic of their own is restricted.
CREDENTIAL_EVENTS: tuple[type[Payload], ...] = (MemberCredentialIssued,)
DIRECTORY_EVENTS: tuple[type[Payload], ...] = (
    WorkspaceCreated,
    BusinessNumberConnected,
    MemberAdded,
    MemberUpdated,
    MemberDeactivated,
    GroupCreated,
    GroupRenamed,
    GroupDeleted,
    GroupMemberAdded,
    GroupMemberRemoved,
    AgentStatusChanged,
    NotificationSettingsChanged,
    AgentConversationsSet,
    CommandRejected,
)


def upcast_create_workspace_v1(data: JsonObject) -> JsonObject:
    """v1 predates the agent-conversations switch; its numbers handed off: on."""
    return {**data, "agent_conversations": True}


def upcast_number_connected_v1(data: JsonObject) -> JsonObject:
    """v1 predates the agent-conversations switch; its numbers handed off: on."""
    return {**data, "agent_conversations": True}
