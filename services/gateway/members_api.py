"""Members: admins add, change and deactivate them; each member sets its own status and
notification settings (``/api/me``)."""

from __future__ import annotations

import secrets
from typing import Annotated, Any
from uuid import UUID, uuid4

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from events.directory import (
    AddMember,
    AgentStatus,
    DeactivateMember,
    Role,
    RotateMemberToken,
    SetAgentStatus,
    SetNotificationSettings,
    UpdateMember,
)
from projections.queries import Caller, ReadModels, token_hash
from services.gateway.dependencies import (
    Publisher,
    admin,
    caller,
    first,
    outcome_of,
    publisher,
    read_models,
    send_command,
    settings,
    typed,
    verdict,
)
from services.gateway.inputs import Name, known_query_only
from services.gateway.problems import problem_responses
from services.gateway.responses import (
    CommandPending,
    Member,
    MemberChanged,
    MemberCreated,
    MemberDeactivated,
    Members,
    NotificationsSet,
    StatusSet,
    TokenRotated,
)
from services.settings import Settings

router = APIRouter(
    tags=["members"],
    responses=problem_responses(401, 422, 503),
    dependencies=[Depends(known_query_only)],
)

MAX_CAPACITY = 100
ADMIN_ONLY = problem_responses(403)
NOT_FOUND = problem_responses(404)
PENDING: dict[int | str, dict[str, Any]] = {
    202: {"model": CommandPending, "description": "Sent; not decided within the wait."}
}


class NewMember(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "Ana", "role": "agent", "capacity": 5}]},
    )

    name: Name
    role: Role = "agent"
    capacity: int = Field(default=5, ge=1, le=MAX_CAPACITY)


class MemberChanges(BaseModel):
    """At least one of the three."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"name": "Ana M.", "capacity": 7}]}
    )

    name: Name | None = None
    role: Role | None = None
    capacity: int | None = Field(default=None, ge=1, le=MAX_CAPACITY)


class StatusChange(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"status": "available"}]}
    )

    status: AgentStatus


class NotificationSettings(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"desktop": True, "sound": False}]}
    )

    desktop: bool
    sound: bool


Models = Annotated[ReadModels, Depends(read_models)]
Bus = Annotated[Publisher, Depends(publisher)]
Config = Annotated[Settings, Depends(settings)]


@router.post(
    "/api/members",
    status_code=201,
    response_model=MemberCreated,
    responses={
        202: {"model": MemberCreated, "description": "Sent; not decided within the wait."},
        **ADMIN_ONLY,
    },
)
async def add_member(
    body: NewMember,
    who: Annotated[Caller, Depends(admin)],
    models: Models,
    bus: Bus,
    config: Config,
) -> JSONResponse:
    """A new member; answers its id and its token (shown once: only its hash is kept)."""
    token = secrets.token_urlsafe(32)
    member_id = uuid4()
    command = AddMember(
        workspace_id=who.workspace_id,
        member_id=member_id,
        name=body.name,
        role=body.role,
        capacity=body.capacity,
        token_hash=token_hash(token),
    )
    command_id = await send_command(bus, config, who, command)
    outcome = await outcome_of(models, command_id)
    # The member and its credential reach the read models from two topics: answer 201 once
    # the token works, as the caller will use it next.
    if outcome is not None and outcome["outcome"] == "accepted":
        await first(lambda: models.caller(token))
    created = MemberCreated(
        command_id=command_id,
        member_id=member_id,
        token=token,
        name=command.name,
        role=body.role,
        capacity=body.capacity,
    )
    if outcome is None:
        # Not decided within the wait: the token works once the directory accepts the member.
        return typed(created.model_copy(update={"detail": "accepted; not decided yet"}), 202)
    if outcome["outcome"] == "rejected":
        raise HTTPException(422, outcome["reason"])
    return typed(created, 201)


@router.get("/api/members", response_model=Members)
async def list_members(who: Annotated[Caller, Depends(caller)], models: Models) -> dict[str, Any]:
    """Every member of the workspace (agents need them to transfer conversations)."""
    return {"members": await models.members(who.workspace_id)}


@router.get("/api/members/{member_id}", response_model=Member, responses=NOT_FOUND)
async def get_member(
    member_id: UUID, who: Annotated[Caller, Depends(caller)], models: Models
) -> dict[str, Any]:
    return await _member(models, who, member_id)


@router.patch(
    "/api/members/{member_id}",
    response_model=MemberChanged,
    responses={**PENDING, **problem_responses(400, 403, 404)},
)
async def update_member(
    member_id: UUID,
    body: MemberChanges,
    who: Annotated[Caller, Depends(admin)],
    models: Models,
    bus: Bus,
    config: Config,
) -> JSONResponse:
    """Change a member's name, role or capacity (422 if it would leave no active admin)."""
    if body.name is None and body.role is None and body.capacity is None:
        raise HTTPException(400, "send at least one of name, role, capacity")
    await _member(models, who, member_id)
    command = UpdateMember(
        workspace_id=who.workspace_id,
        member_id=member_id,
        name=body.name,
        role=body.role,
        capacity=body.capacity,
    )
    return await verdict(bus, config, models, who, command, 200, MemberChanged)


@router.delete(
    "/api/members/{member_id}",
    response_model=MemberDeactivated,
    responses={**PENDING, **problem_responses(403, 404)},
)
async def deactivate_member(
    member_id: UUID,
    who: Annotated[Caller, Depends(admin)],
    models: Models,
    bus: Bus,
    config: Config,
) -> JSONResponse:
    """Deactivate: the token stops working, open conversations go back to their queues.

    The member stays in the records (histories name who answered)."""
    await _member(models, who, member_id)
    command = DeactivateMember(workspace_id=who.workspace_id, member_id=member_id)
    return await verdict(bus, config, models, who, command, 200, MemberDeactivated)


@router.post(
    "/api/members/{member_id}/token",
    response_model=TokenRotated,
    responses={
        202: {"model": TokenRotated, "description": "Sent; not decided within the wait."},
        **problem_responses(403, 404),
    },
)
async def rotate_token(
    member_id: UUID,
    who: Annotated[Caller, Depends(caller)],
    models: Models,
    bus: Bus,
    config: Config,
) -> JSONResponse:
    """A new token for the member (an admin's, or the member's own); the previous one stops
    working once this answers 200. Shown once, like the first."""
    if who.role != "admin" and who.member_id != member_id:
        raise HTTPException(403, "only an admin or the member itself rotates its token")
    await _member(models, who, member_id)
    token = secrets.token_urlsafe(32)
    command = RotateMemberToken(
        workspace_id=who.workspace_id, member_id=member_id, token_hash=token_hash(token)
    )
    command_id = await send_command(bus, config, who, command)
    outcome = await outcome_of(models, command_id)
    rotated = TokenRotated(command_id=command_id, member_id=member_id, token=token)
    if outcome is None:
        return typed(rotated.model_copy(update={"detail": "accepted; not decided yet"}), 202)
    if outcome["outcome"] == "rejected":
        raise HTTPException(422, outcome["reason"])
    return typed(rotated)


@router.get("/api/me", response_model=Member)
async def me(who: Annotated[Caller, Depends(caller)], models: Models) -> dict[str, Any]:
    """The caller's own member record."""
    return await _member(models, who, who.member_id)


@router.put("/api/me/status", response_model=StatusSet, responses=PENDING)
async def set_status(
    body: StatusChange,
    who: Annotated[Caller, Depends(caller)],
    models: Models,
    bus: Bus,
    config: Config,
) -> JSONResponse:
    """available / unavailable (offline is also set when the member's last session ends)."""
    current = await _member(models, who, who.member_id)
    if current["status"] == body.status:
        return typed(StatusSet(status=body.status))
    command = SetAgentStatus(
        workspace_id=who.workspace_id,
        member_id=who.member_id,
        status=body.status,
        reason="set by the member",
    )
    return await verdict(bus, config, models, who, command, 200, StatusSet)


@router.put("/api/me/notifications", response_model=NotificationsSet, responses=PENDING)
async def set_notifications(
    body: NotificationSettings,
    who: Annotated[Caller, Depends(caller)],
    models: Models,
    bus: Bus,
    config: Config,
) -> JSONResponse:
    """Whether the caller wants desktop notifications and sounds."""
    command = SetNotificationSettings(
        workspace_id=who.workspace_id,
        member_id=who.member_id,
        desktop=body.desktop,
        sound=body.sound,
    )
    return await verdict(bus, config, models, who, command, 200, NotificationsSet)


async def _member(models: ReadModels, who: Caller, member_id: UUID) -> dict[str, Any]:
    found = await models.member(who.workspace_id, member_id)
    if found is None:
        raise HTTPException(404, f"no member {member_id} in this workspace")
    return found
