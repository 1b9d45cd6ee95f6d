"""Directory commands and events: workspaces, their business numbers and their members.

Keyed by workspace id. Tokens never travel: events carry only their SHA-256 hash.
"""

from __future__ import annotations

from typing import Literal

from events.base import Id, Payload

Role = Literal["admin", "agent"]


class CreateWorkspace(Payload):
    """Command: a workspace, its first business number and its first admin."""

    event_type = "directory.create_workspace"

    workspace_id: Id
    name: str
    time_zone: str
    phone_number_id: str
    admin_member_id: Id
    admin_name: str
    admin_token_hash: str


class WorkspaceCreated(Payload):
    event_type = "directory.workspace_created"

    workspace_id: Id
    name: str
    time_zone: str


class BusinessNumberConnected(Payload):
    event_type = "directory.business_number_connected"

    workspace_id: Id
    phone_number_id: str


class MemberAdded(Payload):
    event_type = "directory.member_added"

    workspace_id: Id
    member_id: Id
    name: str
    role: Role
    capacity: int
    token_hash: str


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


class CommandRejected(Payload):
    """A directory command that could not be carried out, and why (for the caller to see)."""

    event_type = "directory.command_rejected"

    command_id: Id
    command_type: str
    reason: str


DIRECTORY_COMMANDS: tuple[type[Payload], ...] = (CreateWorkspace, CreateGroup)
DIRECTORY_EVENTS: tuple[type[Payload], ...] = (
    WorkspaceCreated,
    BusinessNumberConnected,
    MemberAdded,
    GroupCreated,
    CommandRejected,
)
