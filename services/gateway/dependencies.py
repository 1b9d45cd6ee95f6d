"""What every route needs: the read models, the caller behind the token, the publisher."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any
from uuid import UUID

from aiokafka import AIOKafkaProducer
from fastapi import Depends, Header, HTTPException, Request

from events.codec import encode
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
