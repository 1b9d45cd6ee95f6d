"""Private notes: members write in a conversation for each other; the customer never sees one.

The note is a command to the inbound service, which decides it on the contact's thread
(``services/inbound/decide.py``); the route answers with that verdict once the read models
show it (201, or 422 with the reason).
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID, uuid4

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from events.catalogue import CONVERSATION_COMMANDS_TOPIC
from events.notes import AddNote
from projections.queries import Caller, ReadModels
from services.conversations import permissions
from services.gateway.dependencies import (
    Publisher,
    answer,
    caller,
    outcome_of,
    permitted,
    publisher,
    read_models,
    send_record,
    settings,
)
from services.gateway.inputs import ReplyText, known_query_only
from services.gateway.problems import problem_responses
from services.gateway.responses import CommandPending, NoteAdded
from services.settings import Settings

router = APIRouter(
    tags=["conversations"],
    responses=problem_responses(401, 422, 503),
    dependencies=[Depends(known_query_only)],
)


class Note(BaseModel):
    """A private note (up to 4096 characters; line breaks and tabs kept)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"text": "Pidió factura; lo llamo mañana."}]},
    )

    text: ReplyText


@router.post(
    "/api/conversations/{conversation_id}/notes",
    status_code=201,
    response_model=NoteAdded,
    responses={
        202: {"model": CommandPending, "description": "Sent; not decided within the wait."},
        **problem_responses(404),
    },
)
async def add_note(
    conversation_id: UUID,
    body: Note,
    who: Annotated[Caller, Depends(caller)],
    models: Annotated[ReadModels, Depends(read_models)],
    bus: Annotated[Publisher, Depends(publisher)],
    config: Annotated[Settings, Depends(settings)],
) -> JSONResponse:
    """Add a private note to a conversation I can see (open or closed): it shows in the
    history for members, marked as a note, and is never sent to the customer."""
    row, _ = await permitted(models, who, conversation_id, permissions.add_note)
    command = AddNote(
        conversation_id=conversation_id,
        workspace_id=who.workspace_id,
        phone_number_id=row["phone_number_id"],
        contact_wa_id=row["contact_wa_id"],
        note_id=uuid4(),
        author_id=who.member_id,
        text=body.text,
    )
    command_id = await send_record(
        bus,
        who,
        CONVERSATION_COMMANDS_TOPIC.qualified(config.topic_prefix),
        f"{row['phone_number_id']}:{row['contact_wa_id']}",
        command,
    )
    return answer(await outcome_of(models, command_id), command_id, 201, NoteAdded)
