"""Reads of the read models, for the HTTP side (the only tables it may read)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from psycopg.rows import dict_row
from psycopg.sql import SQL, Composed, Identifier
from psycopg_pool import AsyncConnectionPool


def token_hash(token: str) -> str:
    """Tokens are 256-bit random secrets, so a plain SHA-256 is enough to store them."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Caller:
    member_id: UUID
    workspace_id: UUID
    role: str
    name: str


class ReadModels:
    def __init__(self, pool: AsyncConnectionPool, schema: str) -> None:
        self.pool = pool
        self.schema = Identifier(schema)

    def _sql(self, statement: str) -> Composed:
        return SQL(statement).format(s=self.schema)

    async def _all(self, statement: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        async with self.pool.connection() as connection:
            cursor = connection.cursor(row_factory=dict_row)
            await cursor.execute(self._sql(statement), params)
            return await cursor.fetchall()

    async def caller(self, token: str) -> Caller | None:
        rows = await self._all(
            "SELECT member_id, workspace_id, role, name FROM {s}.members"
            " WHERE token_hash = %s AND active",
            (token_hash(token),),
        )
        return Caller(**rows[0]) if rows else None

    async def conversations_of_contact(
        self, workspace_id: UUID, contact_wa_id: str
    ) -> list[dict[str, Any]]:
        return await self._all(
            "SELECT * FROM {s}.conversations WHERE workspace_id = %s AND contact_wa_id = %s"
            " ORDER BY started_at, conversation_id",
            (workspace_id, contact_wa_id),
        )

    async def conversation(
        self, workspace_id: UUID, conversation_id: UUID
    ) -> dict[str, Any] | None:
        rows = await self._all(
            "SELECT * FROM {s}.conversations WHERE workspace_id = %s AND conversation_id = %s",
            (workspace_id, conversation_id),
        )
        return rows[0] if rows else None

    async def history(self, conversation_id: UUID) -> list[dict[str, Any]]:
        return await self._all(
            "SELECT position, event_id, kind, author_kind, author_id, author_name, wamid,"
            " message_type, text, reply_id, content, status, errors, occurred_at"
            " FROM {s}.conversation_history WHERE conversation_id = %s ORDER BY position",
            (conversation_id,),
        )

    async def workspace(self, workspace_id: UUID) -> dict[str, Any] | None:
        rows = await self._all(
            "SELECT * FROM {s}.workspaces WHERE workspace_id = %s", (workspace_id,)
        )
        return rows[0] if rows else None

    async def command_outcome(self, command_id: UUID) -> dict[str, Any] | None:
        rows = await self._all(
            "SELECT * FROM {s}.command_outcomes WHERE command_id = %s", (command_id,)
        )
        return rows[0] if rows else None

    async def ping(self) -> None:
        await self._all("SELECT 1", ())
