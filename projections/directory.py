"""Pure fold of directory events into the rows the HTTP side authenticates and scopes by.

Keyed by workspace id, business number, member id and command id respectively.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from events.directory import BusinessNumberConnected, CommandRejected, MemberAdded, WorkspaceCreated
from events.envelope import Envelope


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


@dataclass(frozen=True)
class MemberRow:
    member_id: UUID
    workspace_id: UUID
    name: str
    role: str
    capacity: int
    token_hash: str


@dataclass(frozen=True)
class OutcomeRow:
    """What became of a command sent to the directory (only rejections are events today)."""

    command_id: UUID
    command_type: str
    outcome: str
    reason: str
    decided_at: datetime


DirectoryRow = WorkspaceRow | NumberRow | MemberRow | OutcomeRow


def directory_row(envelope: Envelope) -> DirectoryRow | None:
    match envelope.payload:
        case WorkspaceCreated(workspace_id=workspace_id, name=name, time_zone=time_zone):
            return WorkspaceRow(workspace_id, name, time_zone, envelope.occurred_at)
        case BusinessNumberConnected(workspace_id=workspace_id, phone_number_id=number):
            return NumberRow(number, workspace_id)
        case MemberAdded() as member:
            return MemberRow(
                member.member_id,
                member.workspace_id,
                member.name,
                member.role,
                member.capacity,
                member.token_hash,
            )
        case CommandRejected(command_id=command_id, command_type=command_type, reason=reason):
            return OutcomeRow(command_id, command_type, "rejected", reason, envelope.occurred_at)
        case _:
            return None
