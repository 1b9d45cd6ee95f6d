"""Creating a workspace from the command line: a directory command, then its outcome.

The command goes to Kafka like any admin command; the directory decides. The caller then
waits until the read models show the workspace (so the printed token works at once) or
the directory's rejection, which it reports.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from psycopg_pool import AsyncConnectionPool

from events.catalogue import DIRECTORY_COMMANDS_TOPIC
from events.codec import RecordHeader, encode
from events.directory import CreateWorkspace
from events.envelope import Actor, Envelope
from projections.queries import ReadModels, token_hash
from runtime.kafka import ensure_topics
from runtime.producer import HealingProducer, KafkaRecord
from services.directory.decide import valid_time_zone
from services.settings import Settings


class WorkspaceRejected(Exception):
    """The directory refused the workspace; the message is its reason."""


async def create_workspace(
    settings: Settings,
    *,
    name: str,
    phone_number_id: str,
    time_zone: str = "UTC",
    admin_name: str = "Admin",
    agent_conversations: bool = False,
    wait_seconds: float = 60.0,
) -> dict[str, Any]:
    """Create a workspace with its first number and admin; its id and the admin's token.

    ``agent_conversations``: whether flows may hand the number's conversations to agents at
    once (off by default: an admin turns it on when the team is ready).
    """
    if not name.strip():
        raise ValueError("the workspace name is empty")
    if not phone_number_id.strip():
        raise ValueError("the phone number id is empty")
    if not valid_time_zone(time_zone):
        raise ValueError(f"unknown time zone {time_zone!r} (use an IANA name like Europe/Madrid)")
    token = "sb_" + secrets.token_urlsafe(32)
    command = CreateWorkspace(
        workspace_id=uuid4(),
        name=name,
        time_zone=time_zone,
        phone_number_id=phone_number_id,
        admin_member_id=uuid4(),
        admin_name=admin_name,
        admin_token_hash=token_hash(token),
        agent_conversations=agent_conversations,
    )
    command_id = uuid4()
    envelope = Envelope.wrap(
        command,
        event_id=command_id,
        stream_id=str(command.workspace_id),
        workspace_id=command.workspace_id,
        occurred_at=datetime.now(UTC),
        correlation_id=command_id,
        causation_id=None,
        actor=Actor(kind="system", id="switchboard-cli"),
    )
    await ensure_topics(settings)
    producer = HealingProducer.for_settings(settings, client_id="switchboard-cli")
    await producer.start()
    try:
        await producer.send_all(
            [
                KafkaRecord(
                    topic=DIRECTORY_COMMANDS_TOPIC.qualified(settings.topic_prefix),
                    key=envelope.stream_id.encode(),
                    value=encode(envelope),
                    headers=RecordHeader.of(envelope).kafka_headers(),
                )
            ],
            within=settings.publish_timeout_seconds,
        )
    finally:
        await producer.stop()

    async with AsyncConnectionPool(
        settings.database().conninfo(), min_size=1, max_size=1, open=False
    ) as pool:
        models = ReadModels(pool, settings.schema("projections"))
        deadline = time.monotonic() + wait_seconds
        while True:
            if await _usable(models, token):
                break
            outcome = await _outcome(models, command_id)
            if outcome is not None:
                raise WorkspaceRejected(outcome)
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the command was accepted by Kafka but the workspace did not show up within"
                    f" {wait_seconds:.0f}s; are the directory, relay and projector running?"
                    f" (workspace id {command.workspace_id})"
                )
            await asyncio.sleep(0.2)
    return {
        "workspace_id": str(command.workspace_id),
        "name": name,
        "phone_number_id": phone_number_id,
        "time_zone": time_zone,
        "agent_conversations": agent_conversations,
        "admin_member_id": str(command.admin_member_id),
        "admin_token": token,
    }


async def _usable(models: ReadModels, token: str) -> bool:
    try:
        return await models.caller(token) is not None
    except Exception:  # the projector has not created its tables yet
        return False


async def _outcome(models: ReadModels, command_id: Any) -> str | None:
    try:
        row = await models.command_outcome(command_id)
    except Exception:
        return None
    # The projector also records the accepted verdict (with WorkspaceCreated, a moment
    # before the admin's member row): only a rejection ends the wait.
    return None if row is None or row["outcome"] != "rejected" else str(row["reason"])
