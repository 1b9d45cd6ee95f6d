"""Canned responses: admins keep the workspace's ready-made replies; the reply box offers them,
filled for the conversation, as the agent types ``/``.

Creating, editing and deleting are directory commands (decided on the workspace's stream:
``services/directory/decide.py``); the routes answer with the directory's verdict.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID, uuid4

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, StringConstraints

from events.canned_responses import (
    SHORTCUT_PATTERN,
    CreateCannedResponse,
    DeleteCannedResponse,
    UpdateCannedResponse,
    filled,
)
from projections.queries import Caller, ReadModels
from services.gateway.dependencies import (
    Publisher,
    admin,
    caller,
    publisher,
    read_models,
    settings,
    verdict,
    visible_conversation,
)
from services.gateway.inputs import ReplyText, known_query_only
from services.gateway.problems import problem_responses
from services.gateway.responses import (
    CannedResponseChanged,
    CannedResponseDeleted,
    CannedResponses,
    CommandPending,
    FilledCannedResponses,
)
from services.settings import Settings

router = APIRouter(
    tags=["canned responses"],
    responses=problem_responses(401, 422, 503),
    dependencies=[Depends(known_query_only)],
)

Models = Annotated[ReadModels, Depends(read_models)]
Bus = Annotated[Publisher, Depends(publisher)]
Config = Annotated[Settings, Depends(settings)]
Admin = Annotated[Caller, Depends(admin)]
Member = Annotated[Caller, Depends(caller)]
PENDING: dict[int | str, dict[str, Any]] = {
    202: {"model": CommandPending, "description": "Sent; not decided within the wait."}
}
Shortcut = Annotated[str, StringConstraints(strip_whitespace=True, pattern=SHORTCUT_PATTERN)]


class CannedResponseBody(BaseModel):
    """A shortcut (1 to 32 letters, digits, ``-`` or ``_``; unique in the workspace whatever
    the case) and a text, which may name ``{{contact.name}}``, ``{{contact.phone}}`` and
    ``{{agent.name}}``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"shortcut": "hola", "text": "Hola {{contact.name}}, soy {{agent.name}}."}]
        },
    )

    shortcut: Shortcut
    text: ReplyText


@router.get("/api/canned-responses", response_model=CannedResponses)
async def list_canned_responses(who: Member, models: Models) -> dict[str, Any]:
    """The workspace's canned responses, by shortcut, as written."""
    return {"canned_responses": await models.canned_responses(who.workspace_id)}


@router.post(
    "/api/canned-responses",
    status_code=201,
    response_model=CannedResponseChanged,
    responses={**PENDING, **problem_responses(403)},
)
async def create_canned_response(
    body: CannedResponseBody, who: Admin, models: Models, bus: Bus, config: Config
) -> JSONResponse:
    command = CreateCannedResponse(
        workspace_id=who.workspace_id,
        canned_response_id=uuid4(),
        shortcut=body.shortcut,
        text=body.text,
        created_by=who.member_id,
    )
    return await verdict(bus, config, models, who, command, 201, CannedResponseChanged)


@router.put(
    "/api/canned-responses/{canned_response_id}",
    response_model=CannedResponseChanged,
    responses={**PENDING, **problem_responses(403, 404)},
)
async def update_canned_response(
    canned_response_id: UUID,
    body: CannedResponseBody,
    who: Admin,
    models: Models,
    bus: Bus,
    config: Config,
) -> JSONResponse:
    await _existing(models, who, canned_response_id)
    command = UpdateCannedResponse(
        workspace_id=who.workspace_id,
        canned_response_id=canned_response_id,
        shortcut=body.shortcut,
        text=body.text,
        updated_by=who.member_id,
    )
    return await verdict(bus, config, models, who, command, 200, CannedResponseChanged)


@router.delete(
    "/api/canned-responses/{canned_response_id}",
    response_model=CannedResponseDeleted,
    responses={**PENDING, **problem_responses(403, 404)},
)
async def delete_canned_response(
    canned_response_id: UUID, who: Admin, models: Models, bus: Bus, config: Config
) -> JSONResponse:
    await _existing(models, who, canned_response_id)
    command = DeleteCannedResponse(
        workspace_id=who.workspace_id,
        canned_response_id=canned_response_id,
        deleted_by=who.member_id,
    )
    return await verdict(bus, config, models, who, command, 200, CannedResponseDeleted)


@router.get(
    "/api/conversations/{conversation_id}/canned-responses",
    response_model=FilledCannedResponses,
    responses=problem_responses(404),
)
async def canned_responses_for(
    conversation_id: UUID, who: Member, models: Models
) -> dict[str, Any]:
    """The canned responses with their variables filled for this conversation and for me
    (what the reply box inserts)."""
    row = await visible_conversation(models, who, conversation_id)
    values = {
        "contact.name": row.get("contact_name") or row["contact_wa_id"],
        "contact.phone": row["contact_wa_id"],
        "agent.name": who.name,
    }
    return {
        "canned_responses": [
            {**canned, "filled": filled(canned["text"], values)}
            for canned in await models.canned_responses(who.workspace_id)
        ]
    }


async def _existing(models: ReadModels, who: Caller, canned_response_id: UUID) -> None:
    found = await models.canned_response(who.workspace_id, canned_response_id)
    if found is None:
        raise HTTPException(404, f"no canned response {canned_response_id} in this workspace")
