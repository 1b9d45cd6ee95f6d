"""Pure fold of directory events into the rows the HTTP side authenticates and scopes by.

Keyed by workspace id, business number, member id and command id respectively.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from events.directory import (
    BusinessNumberConnected,
    CommandRejected,
    GroupCreated,
    MemberAdded,
    WorkspaceCreated,
)
from events.envelope import Envelope
from events.flows import ActiveFlowChosen, FlowPublished


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


DirectoryRow = (
    WorkspaceRow | NumberRow | MemberRow | GroupRow | OutcomeRow | FlowVersionRow | ActiveFlowRow
)


def directory_rows(envelope: Envelope) -> list[DirectoryRow]:
    at = envelope.occurred_at
    match envelope.payload:
        case WorkspaceCreated(workspace_id=workspace_id, name=name, time_zone=time_zone):
            return [WorkspaceRow(workspace_id, name, time_zone, at)]
        case BusinessNumberConnected(workspace_id=workspace_id, phone_number_id=number):
            return [NumberRow(number, workspace_id)]
        case MemberAdded() as member:
            return [
                MemberRow(
                    member.member_id,
                    member.workspace_id,
                    member.name,
                    member.role,
                    member.capacity,
                    member.token_hash,
                )
            ]
        case GroupCreated(group_id=group_id, workspace_id=workspace_id, name=name):
            rows: list[DirectoryRow] = [GroupRow(group_id, workspace_id, name, at)]
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
