"""The inbound service's own view of the directory: which workspace owns which number.

Built from directory events into a table of the inbound schema, with the tracking
position in the same transaction, in the same recorder as the inbound event store.
"""

from __future__ import annotations

from uuid import UUID

from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresProcessRecorder
from psycopg.sql import SQL, Identifier

from services.store import EVENTS_TABLE, TRACKING_TABLE


class InboundRecorder(PostgresProcessRecorder):
    """The inbound event store plus the ``number_routes`` view."""

    def __init__(self, datastore: PostgresDatastore) -> None:
        super().__init__(
            datastore, events_table_name=EVENTS_TABLE, tracking_table_name=TRACKING_TABLE
        )
        self.routes_table = SQL("{}.{}").format(
            Identifier(datastore.schema), Identifier("number_routes")
        )
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {} ("
                "phone_number_id text PRIMARY KEY, workspace_id uuid NOT NULL)"
            ).format(self.routes_table)
        )

    def route(self, phone_number_id: str) -> UUID | None:
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                SQL("SELECT workspace_id FROM {} WHERE phone_number_id = %s").format(
                    self.routes_table
                ),
                (phone_number_id,),
            )
            row = cursor.fetchone()
        return None if row is None else UUID(str(row["workspace_id"]))

    def record_route(
        self, phone_number_id: str | None, workspace_id: UUID | None, tracking: Tracking
    ) -> None:
        """Store a route (or nothing, for other directory events) with the position."""
        with self.datastore.transaction(commit=True) as cursor:
            if phone_number_id is not None and workspace_id is not None:
                cursor.execute(
                    SQL(
                        "INSERT INTO {} (phone_number_id, workspace_id) VALUES (%s, %s) "
                        "ON CONFLICT (phone_number_id) DO UPDATE SET workspace_id = "
                        "EXCLUDED.workspace_id"
                    ).format(self.routes_table),
                    (phone_number_id, workspace_id),
                )
            self._insert_tracking(cursor, tracking)
