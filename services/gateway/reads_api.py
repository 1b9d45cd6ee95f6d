"""``POST /api/conversations/{id}/read``: a member's read marker (unread counts follow it).

The agent suite calls it when it shows a conversation's messages. The marker is a fact the
gateway records (``events/reads.py``); its id is derived from the member, the conversation
and how far it read, so the same read sent twice is one event.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from events.catalogue import CONVERSATION_READS_TOPIC
from events.envelope import Actor, Envelope
from events.reads import ConversationRead, read_event_id
from projections.queries import Caller, ReadModels
from services.gateway.dependencies import (
    Publisher,
    caller,
    publisher,
    read_models,
    settings,
    visible_conversation,
)
from services.gateway.inputs import known_query_only
from services.gateway.problems import problem_responses
from services.gateway.webhook import OutgoingRecord
from services.settings import Settings

router = APIRouter(
    tags=["conversations"],
    responses=problem_responses(401, 422, 503),
    dependencies=[Depends(known_query_only)],
)


class ReadUpTo(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"up_to": 3}]})

    up_to: int = Field(
        ge=0, le=2**31 - 1, description="how many of the customer's messages were shown"
    )


class ReadMarker(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"read_up_to": 3}]})

    read_up_to: int = Field(description="my marker: customer messages I have seen")


@router.post(
    "/api/conversations/{conversation_id}/read",
    response_model=ReadMarker,
    status_code=200,
    responses={
        202: {"model": ReadMarker, "description": "Recorded; unread counts follow in a moment."},
        **problem_responses(404),
    },
)
async def mark_read(
    conversation_id: UUID,
    body: ReadUpTo,
    who: Annotated[Caller, Depends(caller)],
    models: Annotated[ReadModels, Depends(read_models)],
    bus: Annotated[Publisher, Depends(publisher)],
    config: Annotated[Settings, Depends(settings)],
) -> JSONResponse:
    """I have seen the first ``up_to`` customer messages: 202 while the marker moves, 200 if
    it was already there or further."""
    row = await visible_conversation(models, who, conversation_id)
    if body.up_to > row["message_count"]:
        raise HTTPException(
            422, f"the conversation has {row['message_count']} customer messages, not {body.up_to}"
        )
    summary = (await models.summaries(who.workspace_id, who.member_id, [conversation_id])).get(
        conversation_id, {}
    )
    current = int(summary.get("read_up_to") or 0)
    if body.up_to <= current:
        return JSONResponse({"read_up_to": current}, 200)
    now = datetime.now(UTC)
    read = ConversationRead(
        conversation_id=conversation_id, member_id=who.member_id, up_to=body.up_to, read_at=now
    )
    event_id = read_event_id(who.workspace_id, conversation_id, who.member_id, body.up_to)
    envelope = Envelope.wrap(
        read,
        event_id=event_id,
        stream_id=str(conversation_id),
        workspace_id=who.workspace_id,
        occurred_at=now,
        correlation_id=event_id,
        causation_id=None,
        actor=Actor(kind="member", id=str(who.member_id)),
    )
    try:
        await bus.publish(
            CONVERSATION_READS_TOPIC.qualified(config.topic_prefix),
            [OutgoingRecord(key=str(conversation_id), envelope=envelope)],
        )
    except Exception:
        raise HTTPException(503, "the message bus is unavailable; retry later") from None
    return JSONResponse(ReadMarker(read_up_to=body.up_to).model_dump(), 202)
