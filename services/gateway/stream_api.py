"""``GET /api/stream``: Server-Sent Events of the changes the caller may see.

The projector writes a change feed (``changes``, one row per projected event an agent could
see) with a sequence number; each stream polls it from where the client left off
(``Last-Event-ID``) and sends what the caller may see, with the notification hints decided
for the caller (``hints.py``). Each stream is a presence session (``presence.py``): a member
none of whose streams came back within the grace period is set ``offline``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
import structlog
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse

from projections.queries import Caller, ReadModels
from runtime import metrics
from services.gateway.change_signal import ChangeSignal
from services.gateway.dependencies import caller, read_models
from services.gateway.hints import Viewer, hints
from services.gateway.inputs import known_query_only
from services.gateway.presence import HEARTBEAT, Presence
from services.gateway.problems import problem_responses
from services.gateway.responses import ANA, STREAM_CHANGE_EXAMPLE

log = structlog.get_logger(__name__)
router = APIRouter(tags=["stream"], dependencies=[Depends(known_query_only)])

POLL_SECONDS = 0.5
KEEP_ALIVE_SECONDS = 15.0
BATCH = 200
MAX_SEQ = 2**63 - 1  # the feed's bigserial
STREAM_EXAMPLE = (
    f'id: 41\nevent: ready\ndata: {{"member_id": "{ANA}", "after": 41,'
    ' "notify_desktop": false, "play_sound": false}\n\n'
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


def presence(request: Request) -> Presence:
    found: Presence = request.app.state.presence
    return found


@router.get("/api/stream", response_class=StreamingResponse, responses=STREAM_RESPONSES)
async def stream(
    request: Request,
    who: Annotated[Caller, Depends(caller)],
    models: Annotated[ReadModels, Depends(read_models)],
    tracker: Annotated[Presence, Depends(presence)],
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
    (conversation, group, member, ``caused_by``) with the caller's notification hints
    ``notify_desktop`` and ``play_sound``; read the details from the other routes."""
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
    request: Request, who: Caller, models: ReadModels, tracker: Presence, position: int
) -> AsyncIterator[bytes]:
    signal: ChangeSignal = request.app.state.change_signal
    session = await tracker.opened(who)
    metrics.STREAM_CLIENTS.inc()
    try:
        ready = {"member_id": str(who.member_id), "after": position}
        yield _message("ready", {**ready, "notify_desktop": False, "play_sound": False}, position)
        quiet = 0.0
        beat = time.monotonic()
        while not await request.is_disconnected():
            mark = signal.mark(who.workspace_id)
            changes = await models.changes_since(who.workspace_id, position, BATCH)
            # Read per batch, not per stream: an admin may add or remove the member meanwhile,
            # and the member may change its notification settings.
            viewer = await _viewer(models, who) if changes else None
            for change in changes:
                position = change["seq"]
                assert viewer is not None
                if _visible(who, viewer, change):
                    hinted = hints(change, viewer)
                    data = {
                        **change,
                        "notify_desktop": hinted.notify_desktop,
                        "play_sound": hinted.play_sound,
                    }
                    yield _message(change["kind"], data, position)
                    quiet = 0.0
            if time.monotonic() - beat >= HEARTBEAT.total_seconds():
                await tracker.heartbeat(session)
                beat = time.monotonic()
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
        metrics.STREAM_CLIENTS.dec()
        with contextlib.suppress(Exception):
            tracker.closed(session)


async def _viewer(models: ReadModels, who: Caller) -> Viewer:
    member = await models.member(who.workspace_id, who.member_id)
    return Viewer(
        member_id=who.member_id,
        is_admin=who.role == "admin",
        # An admin sees every group's changes but is hinted only of its own groups' (and
        # of the workspace's queue).
        groups=set(member["group_ids"]) if member is not None else set(),
        desktop=bool(member and member["desktop_notifications"]),
        sound=bool(member and member["sound_notifications"]),
    )


def _visible(who: Caller, viewer: Viewer, change: dict[str, Any]) -> bool:
    if viewer.is_admin:
        return True
    groups = viewer.groups
    if change.get("member_id") == who.member_id:
        return True
    if change.get("group_id") in groups:
        return True
    # Workspace-wide facts (a colleague's status) carry no conversation.
    return change.get("conversation_id") is None and change.get("group_id") is None


def _message(kind: str, data: dict[str, Any], position: int) -> bytes:
    body = orjson.dumps(data, default=str).decode()
    return f"id: {position}\nevent: {kind}\ndata: {body}\n\n".encode()
