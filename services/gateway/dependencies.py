"""What every route needs: the read models, the caller behind the token, the publisher."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID, uuid4

from aiokafka import AIOKafkaProducer
from fastapi import Depends, Header, HTTPException, Request
from fastapi.responses import JSONResponse

from events.base import Payload
from events.catalogue import DIRECTORY_COMMANDS_TOPIC
from events.codec import encode
from events.envelope import Actor, Envelope
from projections.queries import Caller, ReadModels
from services.gateway.webhook import OutgoingRecord
from services.settings import Settings

COMMAND_WAIT_SECONDS = 10.0


class Publisher:
    """Publish records and wait for the broker's acknowledgement of every one."""

    def __init__(self, producer: AIOKafkaProducer, timeout: float) -> None:
        self.producer = producer
        self.timeout = timeout

    async def publish(self, topic: str, records: list[OutgoingRecord]) -> None:
        async def send_all() -> None:
            acks = [
                await self.producer.send(
                    topic,
                    value=encode(record.envelope),
                    key=record.key.encode(),
                    headers=[
                        ("event_type", record.envelope.event_type.encode()),
                        ("event_id", str(record.envelope.event_id).encode()),
                        ("content-type", b"application/json"),
                    ],
                )
                for record in records
            ]
            await asyncio.gather(*acks)

        await asyncio.wait_for(send_all(), timeout=self.timeout)


def read_models(request: Request) -> ReadModels:
    models: ReadModels = request.app.state.read_models
    return models


def publisher(request: Request) -> Publisher:
    found: Publisher = request.app.state.publisher
    return found


def settings(request: Request) -> Settings:
    found: Settings = request.app.state.settings
    return found


async def caller(
    models: Annotated[ReadModels, Depends(read_models)],
    authorization: Annotated[str | None, Header()] = None,
) -> Caller:
    """The member behind the bearer token; every API route is scoped to its workspace."""
    if authorization is None or not authorization.lower().startswith("bearer "):
        raise HTTPException(
            401,
            "send 'Authorization: Bearer <token>' with a member's token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    found = await models.caller(authorization[7:].strip())
    if found is None:
        raise HTTPException(401, "unknown or deactivated token", {"WWW-Authenticate": "Bearer"})
    return found


async def admin(who: Annotated[Caller, Depends(caller)]) -> Caller:
    if who.role != "admin":
        raise HTTPException(403, "this needs an admin's token")
    return who


async def outcome_of(
    models: ReadModels, command_id: UUID, within: float = COMMAND_WAIT_SECONDS
) -> dict[str, Any] | None:
    """The directory's verdict on a command, once the read models show it (None: not yet)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = await models.command_outcome(command_id)
        if found is not None:
            return found
        await asyncio.sleep(0.05)
    return None


async def send_command(
    publisher: Publisher, settings: Settings, who: Caller, command: Payload
) -> UUID:
    """Put an admin command on the directory's topic, as the calling member; its id."""
    command_id = uuid4()
    envelope = Envelope.wrap(
        command,
        event_id=command_id,
        stream_id=str(who.workspace_id),
        workspace_id=who.workspace_id,
        occurred_at=datetime.now(UTC),
        correlation_id=command_id,
        causation_id=None,
        actor=Actor(kind="member", id=str(who.member_id)),
    )
    try:
        await publisher.publish(
            DIRECTORY_COMMANDS_TOPIC.qualified(settings.topic_prefix),
            [OutgoingRecord(key=envelope.stream_id, envelope=envelope)],
        )
    except Exception:
        raise HTTPException(503, "the message bus is unavailable; retry later") from None
    return command_id


def answer(outcome: dict[str, Any] | None, command_id: UUID, accepted_status: int) -> JSONResponse:
    """The directory's verdict as HTTP: accepted, 422 with its reason, or 202 if still open."""
    if outcome is None:
        return JSONResponse(
            {"command_id": str(command_id), "detail": "accepted; not decided yet"}, status_code=202
        )
    if outcome["outcome"] == "rejected":
        raise HTTPException(422, outcome["reason"])
    return JSONResponse(
        {"command_id": str(command_id), **(outcome["result"] or {})}, accepted_status
    )
