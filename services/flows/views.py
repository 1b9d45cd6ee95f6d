"""The flows service's own view of the directory: flow versions, active flows, time zones.

Written from directory events with the tracking position, in the flows schema, beside the
flow-run event store (one recorder, one tracking table).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError, Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresProcessRecorder
from psycopg.sql import SQL, Composed, Identifier
from psycopg.types.json import Jsonb

from events.directory import WorkspaceCreated
from events.envelope import Envelope
from events.flows import ActiveFlowChosen, FlowPublished
from services.flows.decide import ActiveFlow
from services.store import EVENTS_TABLE, TRACKING_TABLE, AlreadyTracked

VIEW_TABLES = (
    """CREATE TABLE IF NOT EXISTS {s}.flow_versions (
        flow_id uuid NOT NULL, version integer NOT NULL, definition jsonb NOT NULL,
        PRIMARY KEY (flow_id, version))""",
    """CREATE TABLE IF NOT EXISTS {s}.active_flows (
        phone_number_id text PRIMARY KEY, flow_id uuid NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS {s}.workspace_zones (
        workspace_id uuid PRIMARY KEY, time_zone text NOT NULL)""",
)


class FlowsRecorder(PostgresProcessRecorder):
    def __init__(self, datastore: PostgresDatastore) -> None:
        super().__init__(
            datastore, events_table_name=EVENTS_TABLE, tracking_table_name=TRACKING_TABLE
        )
        self.schema = Identifier(datastore.schema)
        for statement in VIEW_TABLES:
            self.sql_create_statements.append(self._sql(statement))

    def _sql(self, statement: str) -> Composed:
        return SQL(statement).format(s=self.schema)

    def _one(self, statement: str, *params: Any) -> dict[str, Any] | None:
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(self._sql(statement), params)
            row: dict[str, Any] | None = cursor.fetchone()
            return row

    def active_flow(self, phone_number_id: str) -> ActiveFlow | None:
        """The flow chosen for the number, at its latest published version."""
        row = self._one(
            "SELECT a.flow_id, max(v.version) AS version FROM {s}.active_flows a"
            " JOIN {s}.flow_versions v USING (flow_id) WHERE a.phone_number_id = %s"
            " GROUP BY a.flow_id",
            phone_number_id,
        )
        return None if row is None else ActiveFlow(UUID(str(row["flow_id"])), row["version"])

    def definition(self, flow_id: UUID, version: int) -> dict[str, Any] | None:
        row = self._one(
            "SELECT definition FROM {s}.flow_versions WHERE flow_id = %s AND version = %s",
            flow_id,
            version,
        )
        return None if row is None else dict(row["definition"])

    def time_zone(self, workspace_id: UUID) -> str | None:
        row = self._one(
            "SELECT time_zone FROM {s}.workspace_zones WHERE workspace_id = %s", workspace_id
        )
        return None if row is None else str(row["time_zone"])

    def record_directory(self, envelope: Envelope, tracking: Tracking) -> None:
        try:
            with self.datastore.transaction(commit=True) as cursor:
                self._insert_tracking(cursor, tracking)
                match envelope.payload:
                    case FlowPublished(flow_id=flow_id, version=version, definition=definition):
                        cursor.execute(
                            self._sql(
                                "INSERT INTO {s}.flow_versions VALUES (%s, %s, %s)"
                                " ON CONFLICT DO NOTHING"
                            ),
                            (flow_id, version, Jsonb(definition)),
                        )
                    case ActiveFlowChosen(phone_number_id=number, flow_id=flow_id):
                        cursor.execute(
                            self._sql(
                                "INSERT INTO {s}.active_flows VALUES (%s, %s) ON CONFLICT"
                                " (phone_number_id) DO UPDATE SET flow_id = EXCLUDED.flow_id"
                            ),
                            (number, flow_id),
                        )
                    case WorkspaceCreated(workspace_id=workspace_id, time_zone=zone):
                        cursor.execute(
                            self._sql(
                                "INSERT INTO {s}.workspace_zones VALUES (%s, %s) ON CONFLICT"
                                " (workspace_id) DO UPDATE SET time_zone = EXCLUDED.time_zone"
                            ),
                            (workspace_id, zone),
                        )
                    case _:
                        pass
        except IntegrityError:
            raise AlreadyTracked(tracking.application_name) from None
