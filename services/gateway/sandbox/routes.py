"""The sandbox's HTTP side: Meta's Graph API stand-in, the phone page and its small API.

Webhooks to switchboard go through the gateway's own ``POST /webhooks/whatsapp`` route,
signed with the app secret, in-process (an ASGI call to this very app): the signature check,
the splitting and the Kafka publication are the real ones, and no address of the gateway
has to be known. Like Meta, the sandbox retries a webhook that is not answered 200.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
import orjson
import structlog
from fastapi import APIRouter, BackgroundTasks, Depends, Header, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ConfigDict, Field, model_validator

from projections.queries import ReadModels
from services.gateway.dependencies import read_models
from services.gateway.inputs import NoControlCharacters, NotBlank
from services.gateway.sandbox import meta
from services.gateway.sandbox.phones import FROM_CUSTOMER, TO_CUSTOMER, Phones
from services.gateway.webhook import sign
from services.settings import SANDBOX_GRAPH_PATH, Settings, sandbox_access_token

log = structlog.get_logger(__name__)
HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
templates = Jinja2Templates(directory=str(HERE / "templates"))

POLL_SECONDS = 0.25
KEEP_ALIVE_SECONDS = 15.0
DIGITS = r"^[0-9]{1,32}$"


@dataclass
class Sandbox:
    """The sandbox's state in the gateway: its phones, and how it posts webhooks."""

    phones: Phones
    settings: Settings
    # Meta retries a webhook for days; the sandbox a few times (then it says so).
    webhook_attempts: int = 3
    webhook_backoff_seconds: float = 0.5

    @property
    def token(self) -> str:
        return sandbox_access_token(self.settings.whatsapp_app_secret)

    async def deliver(self, request: Request, document: dict[str, Any]) -> str | None:
        """Post a signed webhook to the gateway's own route; None once it answers 200, else
        why it did not (after the retries)."""
        body = orjson.dumps(document)
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign(self.settings.whatsapp_app_secret, body),
        }
        problem = "not attempted"
        transport = httpx.ASGITransport(app=request.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
            for attempt in range(self.webhook_attempts):
                if attempt:
                    await asyncio.sleep(self.webhook_backoff_seconds * 2 ** (attempt - 1))
                try:
                    response = await client.post(
                        "/webhooks/whatsapp", content=body, headers=headers
                    )
                except Exception as error:  # a broken app: retried, then reported
                    problem = f"the webhook could not be posted: {error!r}"
                    continue
                if response.status_code == 200:
                    return None
                problem = f"the webhook answered {response.status_code}: {response.text[:300]}"
        log.warning("sandbox webhook not accepted", problem=problem)
        return problem


def sandbox(request: Request) -> Sandbox:
    found: Sandbox = request.app.state.sandbox
    return found


Box = Annotated[Sandbox, Depends(sandbox)]


def same_origin(request: Request, origin: Annotated[str | None, Header()] = None) -> None:
    """The phone's API has no sign-in (a development tool): refuse writes a page of another
    origin makes a browser send."""
    if origin is not None and origin.split("://", 1)[-1] != request.headers.get("host"):
        raise HTTPException(403, f"cross-origin request from {origin} refused")


# -- Meta's Graph API, as the dispatcher calls it ------------------------------------------

graph = APIRouter(prefix=SANDBOX_GRAPH_PATH, tags=["sandbox"], include_in_schema=False)


@graph.post("/{version}/{phone_number_id}/messages")
async def graph_send(
    version: str,
    phone_number_id: str,
    request: Request,
    box: Box,
    tasks: BackgroundTasks,
    authorization: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    """``POST /{version}/{phone_number_id}/messages`` as Meta answers it; the statuses follow
    as webhooks (sent, then delivered, or failed outside the customer-service window)."""
    try:
        problem = meta.token_problem(authorization, box.token)
        if problem is not None:
            raise problem
        if not version.startswith("v") or not phone_number_id.isdigit():
            raise meta.unsupported(
                f"Unsupported post request. Object with ID '{phone_number_id}' does not exist"
            )
        try:
            document = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            raise meta.unsupported("the request body is not JSON") from None
        parsed = meta.parse_send(document)
    except meta.GraphError as error:
        return JSONResponse(error.body(), status_code=error.status)
    if isinstance(parsed, meta.MarkRead):
        await box.phones.advance(parsed.message_id, "read")
        return JSONResponse({"success": True})
    wamid = meta.new_wamid()
    await box.phones.add(
        wamid=wamid,
        phone_number_id=phone_number_id,
        contact_wa_id=parsed.wa_id,
        contact_name=None,
        direction=TO_CUSTOMER,
        message=parsed.body,
        status="accepted",
    )
    tasks.add_task(_statuses_after_send, box, request, phone_number_id, parsed, wamid)
    return JSONResponse(meta.sent_answer(parsed, wamid))


async def _statuses_after_send(
    box: Sandbox, request: Request, phone_number_id: str, sent: meta.Outgoing, wamid: str
) -> None:
    """Meta's statuses of an accepted message: sent, then delivered to the phone; or failed
    with 131047 when the customer last wrote more than 24 hours ago (a free-form message)."""
    now = await box.phones.now()
    last = await box.phones.last_customer_message_at(phone_number_id, sent.wa_id)
    closed = meta.needs_window(sent) and meta.window_closed(last, now)
    steps: list[tuple[str, list[dict[str, Any]] | None]] = (
        [("failed", [meta.re_engagement_error()])]
        if closed
        else [("sent", None), ("delivered", None)]
    )
    for status, errors in steps:
        document = meta.status_webhook(
            phone_number_id, wamid, status, sent.wa_id, now, errors=errors, sent=sent.body
        )
        problem = await box.deliver(request, document)
        if problem is not None:
            await box.phones.note_problem(wamid, f"status {status} not delivered: {problem}")
            return
        await box.phones.advance(wamid, status)


# -- The phone: the page and its API -------------------------------------------------------

phone = APIRouter(tags=["sandbox"])


@phone.get("/sandbox", response_class=HTMLResponse, include_in_schema=False)
async def page(
    request: Request, box: Box, models: Annotated[ReadModels, Depends(read_models)]
) -> HTMLResponse:
    return templates.TemplateResponse(
        request, "sandbox.html", {"numbers": await _numbers(box, models)}
    )


class Contact(BaseModel):
    model_config = ConfigDict(extra="forbid")

    wa_id: str = Field(pattern=r"^[0-9]{6,20}$", description="the customer's WhatsApp number")
    name: Annotated[str, NoControlCharacters()] = Field(min_length=1, max_length=100)


class Reply(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: Annotated[str, NoControlCharacters()] = Field(
        min_length=1, max_length=256, description="the wamid of the business's message"
    )
    id: Annotated[str, NoControlCharacters()] = Field(
        min_length=1, max_length=256, description="the id of the button or list row chosen"
    )


class CustomerMessage(BaseModel):
    """A message the customer writes (``text``) or a tap on a button or list row (``reply``)."""

    model_config = ConfigDict(extra="forbid")

    phone_number_id: str = Field(pattern=DIGITS)
    contact: Contact
    text: Annotated[str, NoControlCharacters(free_text=True), NotBlank()] | None = Field(
        default=None, min_length=1, max_length=4096
    )
    reply: Reply | None = None

    @model_validator(mode="after")
    def _one(self) -> CustomerMessage:
        if (self.text is None) == (self.reply is None):
            raise ValueError("send either 'text' or 'reply'")
        return self


@phone.get("/sandbox/api/numbers")
async def numbers(box: Box, models: Annotated[ReadModels, Depends(read_models)]) -> dict[str, Any]:
    """The business numbers a customer can write to: every workspace's, and any the sandbox
    has carried messages for."""
    return {"numbers": await _numbers(box, models)}


async def _numbers(box: Sandbox, models: ReadModels) -> list[dict[str, Any]]:
    known = {row["phone_number_id"]: row for row in await models.every_number()}
    for number in await box.phones.numbers():
        known.setdefault(number, {"phone_number_id": number, "workspace_name": None})
    return [
        {
            "phone_number_id": number,
            "display_phone_number": meta.display_number(number),
            "workspace_name": row.get("workspace_name"),
        }
        for number, row in known.items()
    ]


@phone.post("/sandbox/api/messages", status_code=201, dependencies=[Depends(same_origin)])
async def customer_writes(body: CustomerMessage, request: Request, box: Box) -> JSONResponse:
    """The customer sends a message: it goes to switchboard as Meta's webhook would carry it.
    201 with the phone's row once the webhook was accepted; 422 for a reply to an option the
    message does not offer; 503 when switchboard's webhook did not accept it (kept on the
    phone as ``undelivered``, with the reason)."""
    now = await box.phones.now()
    wamid = meta.new_wamid()
    contact = body.contact.wa_id
    if body.reply is not None:
        answered = await box.phones.message(body.reply.to)
        if (
            answered is None
            or answered["direction"] != TO_CUSTOMER
            or (
                answered["phone_number_id"],
                answered["contact_wa_id"],
            )
            != (body.phone_number_id, contact)
        ):
            raise HTTPException(404, f"no message {body.reply.to} to this customer")
        try:
            message = meta.reply_message(
                wamid,
                contact,
                now,
                answered=answered["message"],
                answered_wamid=body.reply.to,
                business_number=meta.display_number(body.phone_number_id),
                option_id=body.reply.id,
            )
        except meta.ReplyInvalid as error:
            raise HTTPException(422, str(error)) from None
    else:
        assert body.text is not None
        message = meta.text_message(wamid, contact, now, body.text)
    await box.phones.add(
        wamid=wamid,
        phone_number_id=body.phone_number_id,
        contact_wa_id=contact,
        contact_name=body.contact.name,
        direction=FROM_CUSTOMER,
        message=message,
        status="accepted",
    )
    document = meta.messages_webhook(body.phone_number_id, contact, body.contact.name, message)
    problem = await box.deliver(request, document)
    if problem is not None:
        await box.phones.advance(wamid, "undelivered", problem)
        return JSONResponse(
            {"wamid": wamid, "detail": f"switchboard did not accept the message: {problem}"},
            status_code=503,
            headers={"Retry-After": "5"},
        )
    row = await box.phones.advance(wamid, "delivered")
    return JSONResponse(_present(row), status_code=201)


@phone.post("/sandbox/api/messages/{wamid}/read", dependencies=[Depends(same_origin)])
async def phone_read(wamid: str, request: Request, box: Box) -> dict[str, Any]:
    """The phone showed the business's message: Meta's ``read`` status goes to switchboard
    (once; a message that failed is never read)."""
    row = await box.phones.message(wamid)
    if row is None or row["direction"] != TO_CUSTOMER:
        raise HTTPException(404, f"no message {wamid} sent to a sandbox phone")
    if row["status"] in ("read", "failed"):
        return {"wamid": wamid, "status": row["status"]}
    now = await box.phones.now()
    document = meta.status_webhook(
        row["phone_number_id"], wamid, "read", row["contact_wa_id"], now, sent=row["message"]
    )
    problem = await box.deliver(request, document)
    if problem is not None:
        await box.phones.note_problem(wamid, f"status read not delivered: {problem}")
        raise HTTPException(503, f"switchboard did not accept the read status: {problem}")
    await box.phones.advance(wamid, "read")
    return {"wamid": wamid, "status": "read"}


Number = Annotated[str, Query(pattern=DIGITS)]
WaId = Annotated[str, Query(pattern=r"^[0-9]{6,20}$")]


@phone.get("/sandbox/api/messages")
async def thread(
    phone_number_id: Number,
    contact: WaId,
    box: Box,
    after: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """The customer's thread with the number: messages either way, changed after version
    ``after`` (each row's ``version``; send the last one back to get only what changed)."""
    rows = await box.phones.thread(phone_number_id, contact, after)
    return {"messages": [_present(row) for row in rows]}


@phone.get("/sandbox/api/stream", response_class=StreamingResponse)
async def stream(
    request: Request,
    phone_number_id: Number,
    contact: WaId,
    box: Box,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """Server-Sent Events of the thread: ``event: message``, ``id`` the row's version,
    ``data`` the row (a message new or changed). Resumes after ``Last-Event-ID``."""
    after = int(last_event_id) if last_event_id and last_event_id.isdigit() else 0
    return StreamingResponse(
        _follow(request, box, phone_number_id, contact, after),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _follow(
    request: Request, box: Sandbox, number: str, contact: str, after: int
) -> AsyncIterator[bytes]:
    quiet = 0.0
    yield b"retry: 1000\n\n"
    while not await request.is_disconnected():
        for row in await box.phones.thread(number, contact, after):
            after = row["version"]
            body = orjson.dumps(_present(row)).decode()
            yield f"id: {after}\nevent: message\ndata: {body}\n\n".encode()
            quiet = 0.0
        await asyncio.sleep(POLL_SECONDS)
        quiet += POLL_SECONDS
        if quiet >= KEEP_ALIVE_SECONDS:
            yield b": keep-alive\n\n"
            quiet = 0.0


def _present(row: dict[str, Any] | None) -> dict[str, Any]:
    assert row is not None
    return {**row, "created_at": row["created_at"].isoformat()}
