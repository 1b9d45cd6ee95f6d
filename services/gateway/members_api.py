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
    SetAgentStatus,
    SetNotificationSettings,
    UpdateMember,
)
from projections.queries import Caller, ReadModels, token_hash
from services.gateway.dependencies import (
    Publisher,
    admin,
    caller,
    outcome_of,
    publisher,
    read_models,
    send_command,
    settings,
    verdict,
)
from services.settings import Settings

router = APIRouter(tags=["members"])

MAX_CAPACITY = 100


class NewMember(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    role: Role = "agent"
    capacity: int = Field(default=5, ge=1, le=MAX_CAPACITY)


class MemberChanges(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    role: Role | None = None
    capacity: int | None = Field(default=None, ge=1, le=MAX_CAPACITY)


class StatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: AgentStatus


class NotificationSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    desktop: bool
    sound: bool


Models = Annotated[ReadModels, Depends(read_models)]
Bus = Annotated[Publisher, Depends(publisher)]
Config = Annotated[Settings, Depends(settings)]


@router.post("/api/members", status_code=201)
async def add_member(
    body: NewMember,
    who: Annotated[Caller, Depends(admin)],
    models: Models,
    bus: Bus,
    config: Config,
) -> JSONResponse:
    """A new member; answers its id and its token (shown once: only its hash is kept)."""
    if not body.name.strip():
        raise HTTPException(400, "a member needs a non-empty name")
    token = secrets.token_urlsafe(32)
    member_id = uuid4()
    command = AddMember(
        workspace_id=who.workspace_id,
        member_id=member_id,
        name=body.name.strip(),
        role=body.role,
        capacity=body.capacity,
        token_hash=token_hash(token),
    )
    command_id = await send_command(bus, config, who, command)
    outcome = await outcome_of(models, command_id)
    created = {
        "command_id": str(command_id),
        "member_id": str(member_id),
        "token": token,
        "name": command.name,
        "role": body.role,
        "capacity": body.capacity,
    }
    if outcome is None:
        # Not decided within the wait: the token works once the directory accepts the member.
        return JSONResponse({**created, "detail": "accepted; not decided yet"}, 202)
    if outcome["outcome"] == "rejected":
        raise HTTPException(422, outcome["reason"])
    return JSONResponse(created, 201)


@router.get("/api/members")
async def list_members(who: Annotated[Caller, Depends(caller)], models: Models) -> dict[str, Any]:
    """Every member of the workspace (agents need them to transfer conversations)."""
    return {"members": await models.members(who.workspace_id)}


@router.get("/api/members/{member_id}")
async def get_member(
    member_id: UUID, who: Annotated[Caller, Depends(caller)], models: Models
) -> dict[str, Any]:
    return await _member(models, who, member_id)


@router.patch("/api/members/{member_id}")
async def update_member(
    member_id: UUID,
    body: MemberChanges,
    who: Annotated[Caller, Depends(admin)],
    models: Models,
    bus: Bus,
    config: Config,
) -> JSONResponse:
    if body.name is None and body.role is None and body.capacity is None:
        raise HTTPException(400, "send at least one of name, role, capacity")
    await _member(models, who, member_id)
    command = UpdateMember(
        workspace_id=who.workspace_id,
        member_id=member_id,
        name=body.name.strip() if body.name is not None else None,
        role=body.role,
        capacity=body.capacity,
    )
    return await verdict(bus, config, models, who, command, 200)


@router.delete("/api/members/{member_id}")
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
    return await verdict(bus, config, models, who, command, 200)


@router.get("/api/me")
async def me(who: Annotated[Caller, Depends(caller)], models: Models) -> dict[str, Any]:
    return await _member(models, who, who.member_id)


@router.put("/api/me/status")
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
        return JSONResponse({"status": body.status})
    command = SetAgentStatus(
        workspace_id=who.workspace_id,
        member_id=who.member_id,
        status=body.status,
        reason="set by the member",
    )
    return await verdict(bus, config, models, who, command, 200)


@router.put("/api/me/notifications")
async def set_notifications(
    body: NotificationSettings,
    who: Annotated[Caller, Depends(caller)],
    models: Models,
    bus: Bus,
    config: Config,
) -> JSONResponse:
    command = SetNotificationSettings(
        workspace_id=who.workspace_id,
        member_id=who.member_id,
        desktop=body.desktop,
        sound=body.sound,
    )
    return await verdict(bus, config, models, who, command, 200)


async def _member(models: ReadModels, who: Caller, member_id: UUID) -> dict[str, Any]:
    found = await models.member(who.workspace_id, member_id)
    if found is None:
        raise HTTPException(404, f"no member {member_id} in this workspace")
    return found
