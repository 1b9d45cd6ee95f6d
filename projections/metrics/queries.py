"""Reads of the metrics projection's tables, for the HTTP side (its schema, ``metrics``)."""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from psycopg.sql import SQL, Composed, Identifier
from psycopg_pool import AsyncConnectionPool

from projections.metrics.fold import FIGURE_NAMES
from projections.metrics.tables import DEFAULT_TIME_ZONE


class MetricsNotReady(Exception):
    """The metrics process has not created its tables yet (it has never started)."""


class MetricsReads:
    def __init__(self, pool: AsyncConnectionPool, schema: str) -> None:
        self.pool = pool
        self.schema = Identifier(schema)

    def _sql(self, statement: str) -> Composed:
        return SQL(statement).format(s=self.schema)

    async def _all(self, statement: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        try:
            async with self.pool.connection() as connection:
                cursor = connection.cursor(row_factory=dict_row)
                await cursor.execute(self._sql(statement), params)
                return await cursor.fetchall()
        except psycopg.errors.UndefinedTable:
            raise MetricsNotReady from None

    async def time_zone(self, workspace_id: UUID) -> str:
        rows = await self._all(
            "SELECT time_zone FROM {s}.metric_time_zones WHERE workspace_id = %s", (workspace_id,)
        )
        return str(rows[0]["time_zone"]) if rows else DEFAULT_TIME_ZONE

    async def days(
        self,
        workspace_id: UUID,
        first: date,
        last: date,
        *,
        group: str | None = None,
        member: str | None = None,
    ) -> list[dict[str, Any]]:
        """The rows from ``first`` to ``last`` (local days, both included), by day, group and
        member; rows whose figures are all zero (a late event moved them elsewhere) left out."""
        not_all_zero = " OR ".join(f"{name} <> 0" for name in FIGURE_NAMES)
        return await self._all(
            "SELECT day, group_key, member_key, "
            + ", ".join(FIGURE_NAMES)
            + " FROM {s}.metric_days WHERE workspace_id = %s AND day BETWEEN %s AND %s"
            " AND (%s::text IS NULL OR group_key = %s) AND (%s::text IS NULL OR member_key = %s)"
            " AND (" + not_all_zero + ") ORDER BY day, group_key, member_key",
            (workspace_id, first, last, group, group, member, member),
        )
