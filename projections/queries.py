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
            "SELECT row_number() OVER w AS position, event_id, kind, author_kind, author_id,"
            " author_name, message_id, wamid, message_type, text, reply_id, content, status,"
            " errors, occurred_at FROM {s}.conversation_history WHERE conversation_id = %s"
            " WINDOW w AS (ORDER BY occurred_at, rank, seq, event_id) ORDER BY position",
            (conversation_id,),
        )

    async def message_status(self, conversation_id: UUID, message_id: UUID) -> str | None:
        rows = await self._all(
            "SELECT status FROM {s}.conversation_history"
            " WHERE conversation_id = %s AND message_id = %s",
            (conversation_id, message_id),
        )
        return str(rows[0]["status"]) if rows else None

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

    async def member_ids(self, workspace_id: UUID) -> list[UUID]:
        rows = await self._all(
            "SELECT member_id FROM {s}.members WHERE workspace_id = %s AND active", (workspace_id,)
        )
        return [row["member_id"] for row in rows]

    async def groups(self, workspace_id: UUID) -> list[dict[str, Any]]:
        return await self._all(
            "SELECT group_id, name, created_at FROM {s}.groups WHERE workspace_id = %s"
            " ORDER BY name",
            (workspace_id,),
        )

    async def flows(self, workspace_id: UUID) -> list[dict[str, Any]]:
        """Each flow at its latest version, and the numbers it is active on."""
        return await self._all(
            "SELECT DISTINCT ON (v.flow_id) v.flow_id, v.version AS latest_version, v.name,"
            " v.published_at, COALESCE((SELECT array_agg(a.phone_number_id ORDER BY"
            " a.phone_number_id) FROM {s}.active_flows a WHERE a.flow_id = v.flow_id),"
            " '{{}}') AS active_on FROM {s}.flow_versions v WHERE v.workspace_id = %s"
            " ORDER BY v.flow_id, v.version DESC",
            (workspace_id,),
        )

    async def flow_versions(self, workspace_id: UUID, flow_id: UUID) -> list[dict[str, Any]]:
        return await self._all(
            "SELECT version, name, definition, published_by, published_at FROM {s}.flow_versions"
            " WHERE workspace_id = %s AND flow_id = %s ORDER BY version",
            (workspace_id, flow_id),
        )

    async def ping(self) -> None:
        await self._all("SELECT 1", ())
