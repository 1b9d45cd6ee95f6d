"""Idempotent replies: ``POST /api/conversations/{id}/messages`` with an ``Idempotency-Key``.

A client whose request timed out cannot know whether the reply was queued; it sends the same
request again with the same key, and the customer must not get the message twice. Two
things make that hold, on any number of gateway replicas:

- **The reply's ids derive from the key** (with the workspace and the member, whose keys
  they are): the message id and the record's event id are the same however often, and on
  whichever replica, the request is made. The dispatcher decides each message id once (a
  second ``outbound.message_queued`` for a message it knows changes nothing) and the
  projector applies each event id once, so even two copies of the record on Kafka send one
  message and show one line.
- **The first request is kept** in the gateway's own schema (``gateway.reply_keys``): its
  fingerprint (conversation and text), the exact record it published, and whether Kafka
  acknowledged it. The same key with the same request answers what the first answered, and
  publishes the kept record again only while no acknowledgement was recorded (a first
  request still in flight, or one that ended in a 503); the same key with another request
  is refused (422), saying so.

The rules (ids, fingerprints, the verdict on a kept request) are pure functions here; the
table is edge state about HTTP requests, like the stream sessions, not a domain fact.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from enum import Enum
from uuid import UUID, uuid5

import anyio.to_thread
import orjson
from psycopg.rows import dict_row
from psycopg.sql import SQL, Composed, Identifier
from psycopg_pool import AsyncConnectionPool

from events.codec import Registry, decode, encode
from events.envelope import Envelope
from runtime.postgres import schema_lock
from services.settings import Settings

HEADER = "Idempotency-Key"
# Visible ASCII, as the IETF draft's examples and every client library send (a UUID, a
# random string); at most 255 characters.
KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"
REPLY_NAMESPACE = UUID("2b7f3c1a-9e84-4d0b-b6a5-61c2f0d8e4a7")


def key_problem(key: str) -> str | None:
    """Why the header's value cannot be a key (None: it can)."""
    if re.fullmatch(KEY_PATTERN, key):
        return None
    return (
        f"the {HEADER} header must be 1 to 255 visible ASCII characters (no spaces), such as a UUID"
    )


def reply_message_id(workspace_id: UUID, member_id: UUID, key: str) -> UUID:
    """The reply's message id: the same for every request that carries the member's key."""
    return uuid5(REPLY_NAMESPACE, f"{workspace_id}:{member_id}:{key}")


def reply_command_id(workspace_id: UUID, member_id: UUID, key: str) -> UUID:
    """The event id of the reply's ``outbound.message_queued`` record."""
    return uuid5(REPLY_NAMESPACE, f"{workspace_id}:{member_id}:{key}/record")


def fingerprint(conversation_id: UUID, text: str) -> str:
    """What makes two requests the same request: the conversation and the exact text."""
    canonical = orjson.dumps({"conversation_id": str(conversation_id), "text": text})
    return hashlib.sha256(canonical).hexdigest()


@dataclass(frozen=True)
class KeptReply:
    """The first request made with a key, as the table keeps it."""

    fingerprint: str
    conversation_id: UUID
    message_id: UUID
    command_id: UUID
    record: bytes  # the envelope it published, encoded
    acknowledged: bool


class Verdict(Enum):
    NEW = "new"  # no request with this key yet: queue the reply
    SEND_AGAIN = "send_again"  # the same request, not acknowledged yet: publish it again
    ANSWERED = "answered"  # the same request, acknowledged: answer as the first did
    OTHER_REQUEST = "other_request"  # the key was used for another request: refuse


def verdict(kept: KeptReply | None, request_fingerprint: str) -> Verdict:
    if kept is None:
        return Verdict.NEW
    if kept.fingerprint != request_fingerprint:
        return Verdict.OTHER_REQUEST
    return Verdict.ANSWERED if kept.acknowledged else Verdict.SEND_AGAIN


def other_request_problem(key: str, kept: KeptReply) -> str:
    return (
        f"the {HEADER} {key!r} was already used for another request (conversation"
        f" {kept.conversation_id}, another text); a new reply needs a new key"
    )


SCHEMA_STATEMENTS = (
    "CREATE SCHEMA IF NOT EXISTS {s}",
    """CREATE TABLE IF NOT EXISTS {s}.reply_keys (
        workspace_id uuid NOT NULL,
        member_id uuid NOT NULL,
        key text NOT NULL,
        fingerprint text NOT NULL,
        conversation_id uuid NOT NULL,
        message_id uuid NOT NULL,
        command_id uuid NOT NULL,
        record bytea NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        acknowledged_at timestamptz,
        PRIMARY KEY (workspace_id, member_id, key))""",
)


class ReplyKeys:
    """The ``gateway.reply_keys`` table, shared by every gateway replica."""

    def __init__(self, pool: AsyncConnectionPool, settings: Settings, registry: Registry) -> None:
        self.pool = pool
        self.settings = settings
        self.registry = registry
        self.schema = Identifier(settings.schema("gateway"))

    def _sql(self, statement: str) -> Composed:
        return SQL(statement).format(s=self.schema)

    async def create(self) -> None:
        def create() -> None:
            with schema_lock(self.settings, self.settings.schema("gateway")) as connection:
                for statement in SCHEMA_STATEMENTS:
                    connection.execute(self._sql(statement))

        await anyio.to_thread.run_sync(create)

    async def find(self, workspace_id: UUID, member_id: UUID, key: str) -> KeptReply | None:
        async with self.pool.connection() as connection:
            cursor = connection.cursor(row_factory=dict_row)
            await cursor.execute(
                self._sql(
                    "SELECT fingerprint, conversation_id, message_id, command_id, record,"
                    " acknowledged_at IS NOT NULL AS acknowledged FROM {s}.reply_keys"
                    " WHERE workspace_id = %s AND member_id = %s AND key = %s"
                ),
                (workspace_id, member_id, key),
            )
            row = await cursor.fetchone()
        return KeptReply(**{**row, "record": bytes(row["record"])}) if row else None

    async def keep(
        self, workspace_id: UUID, member_id: UUID, key: str, request: str, envelope: Envelope
    ) -> KeptReply:
        """Keep the first request made with ``key``; whichever request was first (on any
        replica) is what every later one is judged against and publishes."""
        async with self.pool.connection() as connection:
            await connection.execute(
                self._sql(
                    "INSERT INTO {s}.reply_keys (workspace_id, member_id, key, fingerprint,"
                    " conversation_id, message_id, command_id, record)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
                ),
                (
                    workspace_id,
                    member_id,
                    key,
                    request,
                    getattr(envelope.payload, "conversation_id"),  # noqa: B009
                    getattr(envelope.payload, "message_id"),  # noqa: B009
                    envelope.event_id,
                    encode(envelope),
                ),
            )
        kept = await self.find(workspace_id, member_id, key)
        assert kept is not None  # inserted, or another request's row: never deleted
        return kept

    async def acknowledged(self, workspace_id: UUID, member_id: UUID, key: str) -> None:
        async with self.pool.connection() as connection:
            await connection.execute(
                self._sql(
                    "UPDATE {s}.reply_keys SET acknowledged_at = now() WHERE workspace_id = %s"
                    " AND member_id = %s AND key = %s AND acknowledged_at IS NULL"
                ),
                (workspace_id, member_id, key),
            )

    def envelope(self, kept: KeptReply) -> Envelope:
        """The record the first request published, exactly as it was."""
        return decode(kept.record, self.registry)
