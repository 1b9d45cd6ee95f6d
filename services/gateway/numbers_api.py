"""Business numbers: what each runs and whether its flows may hand off to agents.

``PUT /api/numbers/{phone_number_id}/agent-conversations`` is the admin's "activate agent
conversations" switch: while it is off, a flow's connect-to-agent block follows its fallback
instead of handing off (the directory decides; the flows service reads it at each
conversation's arrival). The active flow is chosen in ``flows_api``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from events.directory import SetAgentConversations
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
from services.gateway.problems import problem_responses
from services.gateway.responses import AgentConversationsSwitched, BusinessNumbers, CommandPending
from services.settings import Settings

router = APIRouter(
    tags=["numbers"],
    responses=problem_responses(401, 422, 503),
    dependencies=[Depends(known_query_only)],
)
PENDING: dict[int | str, dict[str, Any]] = {
    202: {"model": CommandPending, "description": "Sent; not decided within the wait."}
}


class AgentConversationsChoice(BaseModel):
    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra={"examples": [{"enabled": True}]}
    )

    enabled: bool


@router.get("/api/numbers", response_model=BusinessNumbers)
async def list_numbers(
    who: Annotated[Caller, Depends(caller)],
    models: Annotated[ReadModels, Depends(read_models)],
) -> dict[str, Any]:
    """The workspace's numbers: ``phone_number_id``, ``display_phone_number`` (as Meta's
    webhooks show it; null until a customer wrote), ``active_flow_id`` and
    ``agent_conversations``."""
    return {"numbers": await models.numbers(who.workspace_id)}


@router.put(
    "/api/numbers/{phone_number_id}/agent-conversations",
    response_model=AgentConversationsSwitched,
    responses={**PENDING, **problem_responses(403, 404)},
)
async def set_agent_conversations(
    phone_number_id: Annotated[Identifier, Path(description="Meta's id of the business number")],
    body: AgentConversationsChoice,
    who: Annotated[Caller, Depends(admin)],
    models: Annotated[ReadModels, Depends(read_models)],
    bus: Annotated[Publisher, Depends(publisher)],
    config: Annotated[Settings, Depends(settings)],
) -> JSONResponse:
    """Let flows hand this number's conversations to agents (``{"enabled": true}``) or not.

    Applies to conversations that start afterwards: a conversation keeps the switch it
    started with, as it keeps its flow version."""
    numbers = {row["phone_number_id"] for row in await models.numbers(who.workspace_id)}
    if phone_number_id not in numbers:
        raise HTTPException(404, f"no business number {phone_number_id} in this workspace")
    command = SetAgentConversations(
        workspace_id=who.workspace_id,
        phone_number_id=phone_number_id,
        enabled=body.enabled,
        set_by=who.member_id,
    )
    return await verdict(bus, config, models, who, command, 200, AgentConversationsSwitched)
