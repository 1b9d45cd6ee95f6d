"""The inbound service's own view of the directory: which workspace owns which number.

Built from directory events into the ``number_routes`` table of the inbound schema, in the
same unit of work as the record's position; read in the unit of work that routes a record.
:class:`MemoryNumberRoutes` is the same view in memory, for tests without I/O.
"""

from __future__ import annotations

from typing import Protocol
from uuid import UUID

from eventsourcing.postgres import PostgresDatastore
from psycopg.sql import SQL, Identifier

from runtime.memory import MemoryWork
from runtime.store import StoreRecorder
from runtime.work import Work, cursor_of

ROUTES = "number_routes"


class InboundRecorder(StoreRecorder):
    """The inbound event store plus the ``number_routes`` view."""

    def __init__(self, datastore: PostgresDatastore) -> None:
        super().__init__(datastore)
        self.sql_create_statements.append(
            self.sql(
                "CREATE TABLE IF NOT EXISTS {s}.number_routes ("
                "phone_number_id text PRIMARY KEY, workspace_id uuid NOT NULL)"
            )
        )


class NumberRoutes(Protocol):
    def owner(self, work: Work, phone_number_id: str) -> UUID | None:
        """The workspace that owns the number, as far as the view has read."""
        ...

    def connect(self, work: Work, phone_number_id: str, workspace_id: UUID) -> None:
        """The number now belongs to the workspace (a later connection moves it)."""
        ...


class PostgresNumberRoutes:
    def __init__(self, schema: str) -> None:
        table = SQL("{}.{}").format(Identifier(schema), Identifier(ROUTES))
        self._select = SQL("SELECT workspace_id FROM {} WHERE phone_number_id = %s").format(table)
        self._upsert = SQL(
            "INSERT INTO {} (phone_number_id, workspace_id) VALUES (%s, %s)"
            " ON CONFLICT (phone_number_id) DO UPDATE SET workspace_id = EXCLUDED.workspace_id"
        ).format(table)

    def owner(self, work: Work, phone_number_id: str) -> UUID | None:
        cursor = cursor_of(work)
        cursor.execute(self._select, (phone_number_id,), prepare=True)
        row = cursor.fetchone()
        return None if row is None else UUID(str(row["workspace_id"]))

    def connect(self, work: Work, phone_number_id: str, workspace_id: UUID) -> None:
        cursor_of(work).execute(self._upsert, (phone_number_id, workspace_id), prepare=True)


class MemoryNumberRoutes:
    def owner(self, work: Work, phone_number_id: str) -> UUID | None:
        owner: UUID | None = _table(work).get(phone_number_id)
        return owner

    def connect(self, work: Work, phone_number_id: str, workspace_id: UUID) -> None:
        _table(work)[phone_number_id] = workspace_id


def _table(work: Work) -> dict[str, UUID]:
    if not isinstance(work, MemoryWork):
        raise TypeError(f"an in-memory view was given a {type(work).__name__}")
    return work.table(ROUTES)
