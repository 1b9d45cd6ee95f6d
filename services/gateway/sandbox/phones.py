"""What the sandbox's phones hold: every message between a customer and a business number.

The sandbox plays Meta, which is outside switchboard, so it keeps its own state in a schema
of its own (``sandbox``) as plain rows, not events: no switchboard process reads it, and it
reads nothing of switchboard's but the read models' list of numbers (to offer them). A row
is a message either way (``from_customer``: the webhook message as sent to switchboard;
``to_customer``: the Graph API request as the business sent it) with its status: for the
business's messages Meta's ``accepted``, ``sent``, ``delivered``, ``read``, ``failed``; for the
customer's ``delivered`` (the webhook was accepted), ``undelivered`` (it was not: ``problem``
says why) or ``read`` (the business marked it read).

Every write takes the next ``version`` of a sequence under a transaction-scoped lock, so the
page can follow changes by version without missing one committed out of order.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import anyio.to_thread
from psycopg import AsyncCursor
from psycopg.rows import dict_row
from psycopg.sql import SQL, Composed, Identifier, Literal
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from runtime.postgres import schema_lock
from services.settings import Settings

FROM_CUSTOMER, TO_CUSTOMER = "from_customer", "to_customer"
# A status only moves forward (webhooks of one message may be retried, reads come once).
STATUS_RANK = {
    "accepted": 0,
    "undelivered": 1,
    "sent": 2,
    "delivered": 3,
    "read": 4,
    "failed": 5,
}
FIELDS = (
    "version, seq, wamid, phone_number_id, contact_wa_id, contact_name, direction, message,"
    " status, problem, created_at"
)

SCHEMA_STATEMENTS = (
    "CREATE SCHEMA IF NOT EXISTS {s}",
    "CREATE SEQUENCE IF NOT EXISTS {s}.phone_versions",
    """CREATE TABLE IF NOT EXISTS {s}.phone_messages (
        seq bigserial PRIMARY KEY,
        version bigint NOT NULL,
        wamid text NOT NULL UNIQUE,
        phone_number_id text NOT NULL,
        contact_wa_id text NOT NULL,
        contact_name text,
        direction text NOT NULL,
        message jsonb NOT NULL,
        status text NOT NULL,
        problem text,
        created_at timestamptz NOT NULL DEFAULT now())""",
    """CREATE INDEX IF NOT EXISTS phone_messages_by_thread
        ON {s}.phone_messages (phone_number_id, contact_wa_id, version)""",
)


class Phones:
    def __init__(self, pool: AsyncConnectionPool, settings: Settings) -> None:
        self.pool = pool
        self.settings = settings
        self.schema_name = settings.schema("sandbox")
        self.schema = Identifier(self.schema_name)

    def _sql(self, statement: str) -> Composed:
        return SQL(statement).format(s=self.schema)

    async def create(self) -> None:
        def create() -> None:
            with schema_lock(self.settings, self.schema_name) as connection:
                for statement in SCHEMA_STATEMENTS:
                    connection.execute(self._sql(statement))

        await anyio.to_thread.run_sync(create)

    async def _write(self, statement: str, params: dict[str, Any]) -> dict[str, Any] | None:
        """One write that takes the next version; the row it wrote (None: none matched)."""
        async with self.pool.connection() as connection, connection.transaction():
            cursor = connection.cursor(row_factory=dict_row)
            await self._lock(cursor)
            await cursor.execute(self._sql(statement + f" RETURNING {FIELDS}"), params)
            return await cursor.fetchone()

    async def _lock(self, cursor: AsyncCursor[dict[str, Any]]) -> None:
        # Versions must become visible in order: see the module docstring.
        await cursor.execute(
            SQL("SELECT pg_advisory_xact_lock(hashtext({}))").format(
                Literal(f"{self.schema_name}.phone_versions")
            )
        )

    async def _read(self, statement: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        async with self.pool.connection() as connection:
            cursor = connection.cursor(row_factory=dict_row)
            await cursor.execute(self._sql(statement), params)
            return await cursor.fetchall()

    async def add(
        self,
        *,
        wamid: str,
        phone_number_id: str,
        contact_wa_id: str,
        contact_name: str | None,
        direction: str,
        message: dict[str, Any],
        status: str,
    ) -> dict[str, Any]:
        row = await self._write(
            "INSERT INTO {s}.phone_messages (version, wamid, phone_number_id, contact_wa_id,"
            " contact_name, direction, message, status) VALUES (nextval('{s}.phone_versions'),"
            " %(wamid)s, %(number)s, %(contact)s, %(name)s, %(direction)s, %(message)s,"
            " %(status)s)",
            {
                "wamid": wamid,
                "number": phone_number_id,
                "contact": contact_wa_id,
                "name": contact_name,
                "direction": direction,
                "message": Jsonb(message),
                "status": status,
            },
        )
        assert row is not None
        return row

    async def advance(
        self, wamid: str, status: str, problem: str | None = None
    ) -> dict[str, Any] | None:
        """Move the message's status forward (never back); the row if it moved."""
        later = [name for name, rank in STATUS_RANK.items() if rank < STATUS_RANK[status]]
        return await self._write(
            "UPDATE {s}.phone_messages SET status = %(status)s, problem = %(problem)s,"
            " version = nextval('{s}.phone_versions') WHERE wamid = %(wamid)s"
            " AND status = ANY(%(before)s)",
            {"status": status, "problem": problem, "wamid": wamid, "before": later},
        )

    async def note_problem(self, wamid: str, problem: str) -> dict[str, Any] | None:
        """Say why a webhook about the message could not be delivered (status unchanged)."""
        return await self._write(
            "UPDATE {s}.phone_messages SET problem = %(problem)s,"
            " version = nextval('{s}.phone_versions') WHERE wamid = %(wamid)s",
            {"problem": problem, "wamid": wamid},
        )

    async def message(self, wamid: str) -> dict[str, Any] | None:
        rows = await self._read(
            f"SELECT {FIELDS} FROM {{s}}.phone_messages WHERE wamid = %s", (wamid,)
        )
        return rows[0] if rows else None

    async def thread(
        self, phone_number_id: str, contact_wa_id: str, after_version: int = 0, limit: int = 500
    ) -> list[dict[str, Any]]:
        """The thread's messages changed after ``after_version``, in version order."""
        return await self._read(
            f"SELECT {FIELDS} FROM {{s}}.phone_messages WHERE phone_number_id = %s"
            " AND contact_wa_id = %s AND version > %s ORDER BY version LIMIT %s",
            (phone_number_id, contact_wa_id, after_version, limit),
        )

    async def last_customer_message_at(
        self, phone_number_id: str, contact_wa_id: str
    ) -> datetime | None:
        rows = await self._read(
            "SELECT max(created_at) AS at FROM {s}.phone_messages WHERE phone_number_id = %s"
            " AND contact_wa_id = %s AND direction = 'from_customer'",
            (phone_number_id, contact_wa_id),
        )
        found: datetime | None = rows[0]["at"]
        return found

    async def numbers(self) -> list[str]:
        """Business numbers the sandbox has carried messages for."""
        rows = await self._read(
            "SELECT DISTINCT phone_number_id FROM {s}.phone_messages ORDER BY 1", ()
        )
        return [row["phone_number_id"] for row in rows]

    async def now(self) -> datetime:
        rows = await self._read("SELECT now() AS now", ())
        found: datetime = rows[0]["now"]
        return found
