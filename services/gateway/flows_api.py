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
from fastapi import APIRouter, Body, Depends, HTTPException, Request
from fastapi.responses import JSONResponse

from events.flows import ChooseActiveFlow, PublishFlow
from projections.queries import Caller, ReadModels
from services.flows.definition import FlowInvalid
from services.flows.publishing import check_publishable
from services.gateway.dependencies import (
    Publisher,
    admin,
    caller,
    publisher,
    read_models,
    settings,
    verdict,
)
from services.settings import Settings

router = APIRouter(tags=["flows"])
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


async def flow_document(request: Request) -> dict[str, Any]:
    """The body as a flow document, from JSON or YAML."""
    body = await request.body()
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip()
    try:
        document = yaml.safe_load(body) if content_type in YAML_TYPES else orjson.loads(body)
    except (yaml.YAMLError, orjson.JSONDecodeError) as error:
        raise HTTPException(400, f"the body is not valid {content_type}: {error}") from None
    if not isinstance(document, dict):
        raise HTTPException(400, "a flow is an object with name, start and blocks")
    return document


@router.post("/api/flows", status_code=201)
async def publish_flow(
    document: Annotated[dict[str, Any], Depends(flow_document)],
    who: Annotated[Caller, Depends(admin)],
    models: Annotated[ReadModels, Depends(read_models)],
    bus: Annotated[Publisher, Depends(publisher)],
    config: Annotated[Settings, Depends(settings)],
) -> JSONResponse:
    """Publish a flow (JSON or YAML); with ``"id"`` of an existing flow, its next version.

    A flow that breaks the grammar answers 400 with ``detail`` and ``block``, the id of the
    block it names (null when the problem is not in one block)."""
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
        return JSONResponse({"detail": str(error), "block": error.block}, 400)
    command = PublishFlow(
        workspace_id=who.workspace_id,
        flow_id=flow_id,
        definition=document,
        published_by=who.member_id,
    )
    return await verdict(bus, config, models, who, command, 201)


@router.get("/api/flows")
async def list_flows(
    who: Annotated[Caller, Depends(caller)],
    models: Annotated[ReadModels, Depends(read_models)],
) -> dict[str, Any]:
    return {"flows": await models.flows(who.workspace_id)}


@router.get("/api/flows/{flow_id}/versions")
async def flow_versions(
    flow_id: UUID,
    who: Annotated[Caller, Depends(caller)],
    models: Annotated[ReadModels, Depends(read_models)],
) -> dict[str, Any]:
    versions = await models.flow_versions(who.workspace_id, flow_id)
    if not versions:
        raise HTTPException(404, f"no flow {flow_id} in this workspace")
    return {"flow_id": str(flow_id), "versions": versions}


@router.put("/api/numbers/{phone_number_id}/flow")
async def choose_active_flow(
    phone_number_id: str,
    flow_id: Annotated[UUID, Body(embed=True)],
    who: Annotated[Caller, Depends(admin)],
    models: Annotated[ReadModels, Depends(read_models)],
    bus: Annotated[Publisher, Depends(publisher)],
    config: Annotated[Settings, Depends(settings)],
) -> JSONResponse:
    """New conversations on this number run this flow (its latest version when they start)."""
    command = ChooseActiveFlow(
        workspace_id=who.workspace_id,
        phone_number_id=phone_number_id,
        flow_id=flow_id,
        chosen_by=who.member_id,
    )
    return await verdict(bus, config, models, who, command, 200)
