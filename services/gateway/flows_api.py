"""Admin routes for flows: publish a version, list versions, choose a number's active flow.

A flow is checked here first (400 naming the block, before anything is sent), then the
directory decides as the owner of flows (it numbers versions and checks the workspace's
members); the route waits a moment for that verdict so the caller gets the version.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID, uuid4

import orjson
import yaml
from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from events.flow_language.grammar import FlowInvalid
from events.flow_language.publishing import check_publishable
from events.flows import ChooseActiveFlow, PublishFlow
from projections.queries import Caller, ReadModels
from services.gateway.dependencies import (
    Publisher,
    admin,
    caller,
    publisher,
    read_models,
    settings,
    verdict,
)
from services.gateway.inputs import Identifier, known_query_only
from services.gateway.problems import Problem, problem_responses
from services.gateway.responses import (
    ActiveFlowChosen,
    CommandPending,
    FlowPublished,
    Flows,
    FlowVersions,
)
from services.settings import Settings

router = APIRouter(
    tags=["flows"],
    responses=problem_responses(401, 422, 503),
    dependencies=[Depends(known_query_only)],
)
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
# A flow is a few kilobytes; the demo flow is 3. Larger bodies are refused before parsing
# (a YAML document can also expand through aliases).
MAX_FLOW_BYTES = 256 * 1024
PENDING: dict[int | str, dict[str, Any]] = {
    202: {"model": CommandPending, "description": "Sent; not decided within the wait."}
}
FLOW_EXAMPLE = {
    "name": "Soporte",
    "start": "greet",
    "blocks": [
        {"id": "greet", "type": "message", "text": "Hola {{contact.name}}", "next": "agent"},
        {"id": "agent", "type": "connect_to_agent", "rotation": "no_owner"},
    ],
}
FLOW_BODY = {
    "description": "A flow document (the grammar is in the README); with `id` of an existing"
    " flow, its next version.",
    "required": True,
    "content": {
        "application/json": {
            "schema": {"type": "object", "additionalProperties": True},
            "example": FLOW_EXAMPLE,
        },
        "application/yaml": {
            "schema": {"type": "object", "additionalProperties": True},
            "example": FLOW_EXAMPLE,
        },
    },
}


class FlowChoice(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"flow_id": "c0ffee00-1234-4abc-8def-0123456789ab"}]},
    )

    flow_id: UUID


async def flow_document(request: Request) -> dict[str, Any]:
    """The body as a flow document, from JSON or YAML (413 past ``MAX_FLOW_BYTES``)."""
    body = await _bounded_body(request, MAX_FLOW_BYTES)
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip()
    try:
        document = yaml.safe_load(body) if content_type in YAML_TYPES else orjson.loads(body)
    except (yaml.YAMLError, orjson.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:
        raise HTTPException(400, f"the body is not valid {content_type}: {error}") from None
    if not isinstance(document, dict):
        raise HTTPException(400, "a flow is an object with name, start and blocks")
    return document


async def _bounded_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"a flow may be at most {limit} bytes")
    received = bytearray()
    async for chunk in request.stream():
        received.extend(chunk)
        if len(received) > limit:
            raise HTTPException(413, f"a flow may be at most {limit} bytes")
    return bytes(received)


@router.post(
    "/api/flows",
    status_code=201,
    response_model=FlowPublished,
    responses={**PENDING, **problem_responses(400, 403, 413)},
    openapi_extra={"requestBody": FLOW_BODY},
)
async def publish_flow(
    # The caller first: a body is read only for an admin.
    who: Annotated[Caller, Depends(admin)],
    document: Annotated[dict[str, Any], Depends(flow_document)],
    models: Annotated[ReadModels, Depends(read_models)],
    bus: Annotated[Publisher, Depends(publisher)],
    config: Annotated[Settings, Depends(settings)],
) -> JSONResponse:
    """Publish a flow (JSON or YAML); with ``"id"`` of an existing flow, its next version.
    400 names the offending block (``block``: its id, null when the problem is not in one
    block, so an editor can point at it); 422 is the directory's refusal (say, an unknown
    group)."""
    raw_id = document.pop("id", None)
    try:
        flow_id = UUID(str(raw_id)) if raw_id is not None else uuid4()
    except ValueError:
        raise HTTPException(400, f"'id' must be a flow id (a UUID), got {raw_id!r}") from None
    try:
        check_publishable(
            document,
            members=await models.member_ids(who.workspace_id),
            groups=[row["group_id"] for row in await models.groups(who.workspace_id)],
        )
    except FlowInvalid as error:
        # ``block`` lets an editor put the message next to the block it names.
        # The Problem body plus ``block``, so an editor can put the message next to it.
        body = {**Problem(detail=str(error)).model_dump(mode="json"), "block": error.block}
        return JSONResponse(body, 400)
    command = PublishFlow(
        workspace_id=who.workspace_id,
        flow_id=flow_id,
        definition=document,
        published_by=who.member_id,
    )
    return await verdict(bus, config, models, who, command, 201, FlowPublished)


@router.get("/api/flows", response_model=Flows)
async def list_flows(
    who: Annotated[Caller, Depends(caller)],
    models: Annotated[ReadModels, Depends(read_models)],
) -> dict[str, Any]:
    """Each flow at its latest version, and the numbers it is active on."""
    return {"flows": await models.flows(who.workspace_id)}


@router.get(
    "/api/flows/{flow_id}/versions",
    response_model=FlowVersions,
    responses=problem_responses(404),
)
async def flow_versions(
    flow_id: UUID,
    who: Annotated[Caller, Depends(caller)],
    models: Annotated[ReadModels, Depends(read_models)],
) -> dict[str, Any]:
    """Every published version of the flow, first first."""
    versions = await models.flow_versions(who.workspace_id, flow_id)
    if not versions:
        raise HTTPException(404, f"no flow {flow_id} in this workspace")
    return {"flow_id": str(flow_id), "versions": versions}


@router.put(
    "/api/numbers/{phone_number_id}/flow",
    response_model=ActiveFlowChosen,
    responses={**PENDING, **problem_responses(403)},
)
async def choose_active_flow(
    phone_number_id: Annotated[Identifier, Path(description="Meta's id of the business number")],
    body: FlowChoice,
    who: Annotated[Caller, Depends(admin)],
    models: Annotated[ReadModels, Depends(read_models)],
    bus: Annotated[Publisher, Depends(publisher)],
    config: Annotated[Settings, Depends(settings)],
) -> JSONResponse:
    """New conversations on this number run this flow (its latest version when they start)."""
    command = ChooseActiveFlow(
        workspace_id=who.workspace_id,
        phone_number_id=phone_number_id,
        flow_id=body.flow_id,
        chosen_by=who.member_id,
    )
    return await verdict(bus, config, models, who, command, 200, ActiveFlowChosen)
