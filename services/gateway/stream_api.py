"""``GET /api/stream``: Server-Sent Events of the changes the caller may see.

The projector writes a change feed (``changes``, one row per projected event an agent could
see) with a sequence number; each stream polls it from where the client left off
(``Last-Event-ID``) and sends what the caller may see. A member whose last stream on this
gateway ends is set ``offline``: its session ended.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from services.gateway.dependencies import (
    Publisher,
    caller,
    groups_of,
    read_models,
    send_command,
)
from services.settings import Settings

log = structlog.get_logger(__name__)
router = APIRouter(tags=["stream"])

POLL_SECONDS = 0.5
KEEP_ALIVE_SECONDS = 15.0
BATCH = 200


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


@router.get("/api/stream", response_class=StreamingResponse)
async def stream(
    request: Request,
    who: Annotated[Caller, Depends(caller)],
    models: Annotated[ReadModels, Depends(read_models)],
    tracker: Annotated[Sessions, Depends(sessions)],
    last_event_id: Annotated[str | None, Header()] = None,
    after: Annotated[int | None, Query(ge=0, description="resume after this event id")] = None,
) -> StreamingResponse:
    """Changes I can see, as they are projected: ``id`` is the feed's sequence number (send it
    back as ``Last-Event-ID`` to resume), ``event`` the event type, ``data`` what changed
    (conversation, group, member); read the details from the other routes."""
    start = after
    if last_event_id is not None and last_event_id.isdigit():
        start = int(last_event_id)
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
    tracker.opened(who)
    try:
        yield _message("ready", {"member_id": str(who.member_id), "after": position}, position)
        quiet = 0.0
        while not await request.is_disconnected():
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
            await asyncio.sleep(POLL_SECONDS)
            quiet += POLL_SECONDS
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
