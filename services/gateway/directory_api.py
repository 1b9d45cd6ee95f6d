"""Groups: admins create, rename and delete them and choose their members; members read
their groups' rosters and queues."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID, uuid4

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from events.directory import (
    AddGroupMember,
    CreateGroup,
    DeleteGroup,
    RemoveGroupMember,
    RenameGroup,
)
from projections.queries import Caller, ReadModels
from services.gateway.as_of import TimeMachine, as_of_moment, time_machine
from services.gateway.dependencies import (
    Publisher,
    admin,
    caller,
    publisher,
    read_models,
    settings,
    typed,
    verdict,
)
from services.gateway.inputs import Name, known_query_only
from services.gateway.problems import problem_responses
from services.gateway.responses import (
    CommandPending,
    Group,
    GroupCreated,
    GroupDeleted,
    GroupMembership,
    GroupQueue,
    GroupRenamed,
    Groups,
    Roster,
    WorkspaceQueue,
)
from services.settings import Settings

router = APIRouter(
    tags=["groups"],
    responses=problem_responses(401, 422, 503),
    dependencies=[Depends(known_query_only)],
)

Models = Annotated[ReadModels, Depends(read_models)]
Bus = Annotated[Publisher, Depends(publisher)]
Config = Annotated[Settings, Depends(settings)]
Moment = Annotated[datetime | None, Depends(as_of_moment)]
Past = Annotated[TimeMachine, Depends(time_machine)]
PENDING: dict[int | str, dict[str, Any]] = {
    202: {"model": CommandPending, "description": "Sent; not decided within the wait."}
}
ADMIN_ON_GROUP = {**PENDING, **problem_responses(403, 404)}


class GroupNaming(BaseModel):
    """A group's name: unique in the workspace (whatever the case)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "Ventas"}]})

    name: Name


@router.post(
    "/api/groups",
    status_code=201,
    response_model=GroupCreated,
    responses={**PENDING, **problem_responses(403)},
)
async def create_group(
    body: GroupNaming,
    who: Annotated[Caller, Depends(admin)],
    models: Models,
    bus: Bus,
    config: Config,
) -> JSONResponse:
    """A group of agents; answers its id (flows hand conversations to it by id)."""
    command = CreateGroup(
        workspace_id=who.workspace_id, group_id=uuid4(), name=body.name, created_by=who.member_id
    )
    return await verdict(bus, config, models, who, command, 201, GroupCreated)


@router.get("/api/groups", response_model=Groups)
async def list_groups(who: Annotated[Caller, Depends(caller)], models: Models) -> dict[str, Any]:
    """The workspace's groups (deleted ones left out)."""
    return {"groups": await models.groups(who.workspace_id)}


@router.get("/api/groups/{group_id}", response_model=Group, responses=problem_responses(404))
async def get_group(
    group_id: UUID, who: Annotated[Caller, Depends(caller)], models: Models
) -> dict[str, Any]:
    return await _group(models, who, group_id)


@router.patch("/api/groups/{group_id}", response_model=GroupRenamed, responses=ADMIN_ON_GROUP)
async def rename_group(
    group_id: UUID,
    body: GroupNaming,
    who: Annotated[Caller, Depends(admin)],
    models: Models,
    bus: Bus,
    config: Config,
) -> JSONResponse:
    await _group(models, who, group_id)
    command = RenameGroup(workspace_id=who.workspace_id, group_id=group_id, name=body.name)
    return await verdict(bus, config, models, who, command, 200, GroupRenamed)


@router.delete("/api/groups/{group_id}", response_model=GroupDeleted, responses=ADMIN_ON_GROUP)
async def delete_group(
    group_id: UUID, who: Annotated[Caller, Depends(admin)], models: Models, bus: Bus, config: Config
) -> JSONResponse:
    """The group takes no new conversations; its queue moves to the workspace's queue
    (``GET /api/queue``), and conversations its members hold stay with them."""
    await _group(models, who, group_id)
    command = DeleteGroup(workspace_id=who.workspace_id, group_id=group_id)
    return await verdict(bus, config, models, who, command, 200, GroupDeleted)


@router.put(
    "/api/groups/{group_id}/members/{member_id}",
    response_model=GroupMembership,
    responses=ADMIN_ON_GROUP,
)
async def add_group_member(
    group_id: UUID,
    member_id: UUID,
    who: Annotated[Caller, Depends(admin)],
    models: Models,
    bus: Bus,
    config: Config,
) -> JSONResponse:
    await _group(models, who, group_id)
    member = await models.member(who.workspace_id, member_id)
    if member is None:
        raise HTTPException(404, f"no member {member_id} in this workspace")
    if await models.is_group_member(group_id, member_id):
        return typed(GroupMembership(group_id=group_id, member_id=member_id))
    command = AddGroupMember(workspace_id=who.workspace_id, group_id=group_id, member_id=member_id)
    return await verdict(bus, config, models, who, command, 200, GroupMembership)


@router.delete(
    "/api/groups/{group_id}/members/{member_id}",
    response_model=GroupMembership,
    responses=ADMIN_ON_GROUP,
)
async def remove_group_member(
    group_id: UUID,
    member_id: UUID,
    who: Annotated[Caller, Depends(admin)],
    models: Models,
    bus: Bus,
    config: Config,
) -> JSONResponse:
    """The member leaves the group; its open conversations of the group go back to the queue."""
    await _group(models, who, group_id)
    if not await models.is_group_member(group_id, member_id):
        raise HTTPException(404, f"member {member_id} is not in group {group_id}")
    command = RemoveGroupMember(
        workspace_id=who.workspace_id, group_id=group_id, member_id=member_id
    )
    return await verdict(bus, config, models, who, command, 200, GroupMembership)


@router.get(
    "/api/groups/{group_id}/roster", response_model=Roster, responses=problem_responses(403, 404)
)
async def roster(
    group_id: UUID,
    who: Annotated[Caller, Depends(caller)],
    models: Models,
    moment: Moment,
    past: Past,
) -> dict[str, Any]:
    """The group's members with their status, load and capacity (admins and its members).

    With ``as_of``: the roster as it was then (404 if the group did not exist yet or was
    already deleted then; a group deleted since can be asked about)."""
    if moment is None:
        group = await _readable_group(models, who, group_id)
        return {"group": group, "members": await models.roster(who.workspace_id, group_id)}
    await _readable_group(models, who, group_id, deleted_too=True)
    async with past.at(who.workspace_id, moment) as then:
        group = await _group_then(then, who, group_id, moment)
        return {"group": group, "members": await then.roster(who.workspace_id, group_id)}


@router.get(
    "/api/groups/{group_id}/queue",
    response_model=GroupQueue,
    responses=problem_responses(403, 404),
)
async def queue(
    group_id: UUID,
    who: Annotated[Caller, Depends(caller)],
    models: Models,
    moment: Moment,
    past: Past,
) -> dict[str, Any]:
    """Conversations waiting in the group, longest-waiting first (admins and its members).

    With ``as_of``: the queue as it was then (404 as for the roster)."""
    if moment is None:
        group = await _readable_group(models, who, group_id)
        return {"group": group, "queue": await models.queue(who.workspace_id, group_id)}
    await _readable_group(models, who, group_id, deleted_too=True)
    async with past.at(who.workspace_id, moment) as then:
        group = await _group_then(then, who, group_id, moment)
        return {"group": group, "queue": await then.queue(who.workspace_id, group_id)}


@router.get("/api/queue", response_model=WorkspaceQueue, responses=problem_responses(403))
async def workspace_queue(who: Annotated[Caller, Depends(admin)], models: Models) -> dict[str, Any]:
    """The workspace's own queue: hand-offs that named no group and deleted groups' queues."""
    return {"queue": await models.queue(who.workspace_id, None)}


async def _group(models: ReadModels, who: Caller, group_id: UUID) -> dict[str, Any]:
    found = await models.group(who.workspace_id, group_id)
    if found is None or found.get("deleted_at") is not None:
        raise HTTPException(404, f"no group {group_id} in this workspace")
    return found


async def _readable_group(
    models: ReadModels, who: Caller, group_id: UUID, *, deleted_too: bool = False
) -> dict[str, Any]:
    """The group, if the caller may read its roster and queue (an admin or one of its
    members, in today's read models); with ``deleted_too``, a deleted group as well."""
    found = await models.group(who.workspace_id, group_id)
    if found is None or (found.get("deleted_at") is not None and not deleted_too):
        raise HTTPException(404, f"no group {group_id} in this workspace")
    if who.role != "admin" and who.member_id not in found["member_ids"]:
        raise HTTPException(403, "only the group's members and admins see its roster and queue")
    return found


async def _group_then(
    then: ReadModels, who: Caller, group_id: UUID, moment: datetime
) -> dict[str, Any]:
    """The group as the read models showed it at ``moment``: 404, as the route answered
    then, before it was created or once it was deleted."""
    found = await then.group(who.workspace_id, group_id)
    if found is None:
        raise HTTPException(404, f"group {group_id} did not exist yet at {moment.isoformat()}")
    if found.get("deleted_at") is not None:
        raise HTTPException(
            404,
            f"group {group_id} had been deleted at {found['deleted_at'].isoformat()},"
            f" before {moment.isoformat()}",
        )
    return found
