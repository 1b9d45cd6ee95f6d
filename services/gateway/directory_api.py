"""Admin routes for the directory: groups (members, rotations and the rest: next issue)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import uuid4

from fastapi import APIRouter, Body, Depends, HTTPException
from fastapi.responses import JSONResponse

from events.directory import CreateGroup
from projections.queries import Caller, ReadModels
from services.gateway.dependencies import (
    Publisher,
    admin,
    answer,
    caller,
    outcome_of,
    publisher,
    read_models,
    send_command,
    settings,
)
from services.settings import Settings

router = APIRouter(tags=["directory"])


@router.post("/api/groups", status_code=201)
async def create_group(
    name: Annotated[str, Body(embed=True, max_length=200)],
    who: Annotated[Caller, Depends(admin)],
    models: Annotated[ReadModels, Depends(read_models)],
    bus: Annotated[Publisher, Depends(publisher)],
    config: Annotated[Settings, Depends(settings)],
) -> JSONResponse:
    """A group of agents; answers its id (flows hand conversations to it by id)."""
    if not name.strip():
        raise HTTPException(400, "a group needs a non-empty name")
    command = CreateGroup(
        workspace_id=who.workspace_id, group_id=uuid4(), name=name, created_by=who.member_id
    )
    command_id = await send_command(bus, config, who, command)
    return answer(await outcome_of(models, command_id), command_id, 201)


@router.get("/api/groups")
async def list_groups(
    who: Annotated[Caller, Depends(caller)],
    models: Annotated[ReadModels, Depends(read_models)],
) -> dict[str, Any]:
    return {"groups": await models.groups(who.workspace_id)}
