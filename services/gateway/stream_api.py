"""``GET /api/stream``: Server-Sent Events of the changes the caller may see.

The projector writes a change feed (``changes``, one row per projected event an agent could
see) with a sequence number; each stream polls it from where the client left off
(``Last-Event-ID``) and sends what the caller may see. A member whose last stream on this
gateway ends is set ``offline``: its session ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Annotated, Any
from uuid import UUID

import orjson
import structlog
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse

from events.directory import SetAgentStatus
from projections.queries import Caller, ReadModels
from services.gateway.change_signal import ChangeSignal
from services.gateway.dependencies import (
    Publisher,
    caller,
    groups_of,
    read_models,
    send_command,
)
from services.gateway.inputs import known_query_only
from services.gateway.problems import problem_responses
from services.gateway.responses import ANA, STREAM_CHANGE_EXAMPLE
from services.settings import Settings

log = structlog.get_logger(__name__)
router = APIRouter(tags=["stream"], dependencies=[Depends(known_query_only)])

POLL_SECONDS = 0.5
KEEP_ALIVE_SECONDS = 15.0
BATCH = 200
MAX_SEQ = 2**63 - 1  # the feed's bigserial
STREAM_EXAMPLE = (
    f'id: 41\nevent: ready\ndata: {{"member_id": "{ANA}", "after": 41}}\n\n'
    f"id: 42\nevent: {STREAM_CHANGE_EXAMPLE['kind']}\n"
    f"data: {orjson.dumps(STREAM_CHANGE_EXAMPLE).decode()}\n\n: keep-alive\n\n"
)
STREAM_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Server-Sent Events until the client leaves: first `ready`, then one"
        " event per change the caller may see (`id`: the feed's sequence number, `event`:"
        " the event type, `data`: a JSON object as in the `StreamChange` schema), and a"
        " `: keep-alive` comment after 15 quiet seconds.",
        "content": {
            "text/event-stream": {
                "schema": {"type": "string"},
                "example": STREAM_EXAMPLE,
                "x-event-data": {"$ref": "#/components/schemas/StreamChange"},
            }
        },
    },
    **problem_responses(401, 422, 503),
}


class Sessions:
    """Open streams per member on this gateway, and the offline updates they leave behind."""

    def __init__(self, publisher: Publisher, settings: Settings) -> None:
        self.publisher = publisher
        self.settings = settings
        self.open: Counter[UUID] = Counter()
        self.pending: set[asyncio.Task[None]] = set()

    def opened(self, who: Caller) -> None:
        self.open[who.member_id] += 1

    def closed(self, who: Caller, models: ReadModels) -> None:
        self.open[who.member_id] -= 1
        if self.open[who.member_id] > 0:
            return
        del self.open[who.member_id]
        # The stream's task is being cancelled: the update runs on its own task.
        task = asyncio.create_task(self._offline(who, models))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def _offline(self, who: Caller, models: ReadModels) -> None:
        try:
            member = await models.member(who.workspace_id, who.member_id)
            if member is None or not member["active"] or member["status"] == "offline":
                return
            command = SetAgentStatus(
                workspace_id=who.workspace_id,
                member_id=who.member_id,
                status="offline",
                reason="session ended",
            )
            await send_command(self.publisher, self.settings, who, command)
        except Exception as error:  # the next session sets the status again; say why here
            log.warning(
                "could not set a member offline", member=str(who.member_id), error=repr(error)
            )

    async def drain(self) -> None:
        """Wait for the offline updates still in flight (at shutdown)."""
        if self.pending:
            await asyncio.wait(self.pending, timeout=5)


def sessions(request: Request) -> Sessions:
    found: Sessions = request.app.state.sessions
    return found


@router.get("/api/stream", response_class=StreamingResponse, responses=STREAM_RESPONSES)
async def stream(
    request: Request,
    who: Annotated[Caller, Depends(caller)],
    models: Annotated[ReadModels, Depends(read_models)],
    tracker: Annotated[Sessions, Depends(sessions)],
    last_event_id: Annotated[
        str | None,
        Header(description="the last `id` received; ignored unless a number (as browsers send)"),
    ] = None,
    after: Annotated[
        int | None, Query(ge=0, le=MAX_SEQ, description="resume after this event id")
    ] = None,
) -> StreamingResponse:
    """Changes I can see, as they are projected: ``id`` is the feed's sequence number (send it
    back as ``Last-Event-ID`` to resume), ``event`` the event type, ``data`` what changed
    (conversation, group, member); read the details from the other routes."""
    start = after
    # ASCII digits only: str.isdigit() also takes "²", which int() refuses.
    if last_event_id is not None and last_event_id.isascii() and last_event_id.isdigit():
        start = min(int(last_event_id), MAX_SEQ)
    if start is None:
        start = await models.last_change_seq(who.workspace_id)
    return StreamingResponse(
        _events(request, who, models, tracker, start),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _events(
    request: Request, who: Caller, models: ReadModels, tracker: Sessions, position: int
) -> AsyncIterator[bytes]:
    signal: ChangeSignal = request.app.state.change_signal
    tracker.opened(who)
    try:
        yield _message("ready", {"member_id": str(who.member_id), "after": position}, position)
        quiet = 0.0
        while not await request.is_disconnected():
            mark = signal.mark(who.workspace_id)
            changes = await models.changes_since(who.workspace_id, position, BATCH)
            # Read per batch, not per stream: an admin may add or remove the member meanwhile.
            groups = await groups_of(models, who) if changes else None
            for change in changes:
                position = change["seq"]
                if _visible(who, groups, change):
                    yield _message(change["kind"], change, position)
                    quiet = 0.0
            if len(changes) == BATCH:
                continue
            # Woken by the projector's notification, or polling again at the latest.
            waited = time.monotonic()
            await signal.wait(who.workspace_id, mark, POLL_SECONDS)
            quiet += time.monotonic() - waited
            if quiet >= KEEP_ALIVE_SECONDS:
                yield b": keep-alive\n\n"
                quiet = 0.0
    finally:
        with contextlib.suppress(Exception):
            tracker.closed(who, models)


def _visible(who: Caller, groups: set[UUID] | None, change: dict[str, Any]) -> bool:
    if groups is None:  # an admin
        return True
    if change.get("member_id") == who.member_id:
        return True
    if change.get("group_id") in groups:
        return True
    # Workspace-wide facts (a colleague's status) carry no conversation.
    return change.get("conversation_id") is None and change.get("group_id") is None


def _message(kind: str, data: dict[str, Any], position: int) -> bytes:
    body = orjson.dumps(data, default=str).decode()
    return f"id: {position}\nevent: {kind}\ndata: {body}\n\n".encode()
