"""The flows service's own view of the directory: flow versions, active flows, time zones.

Written from directory events with the tracking position, in the flows schema, beside the
flow-run event store (one recorder, one tracking table).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError, Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresProcessRecorder
from psycopg.sql import SQL, Composed, Identifier
from psycopg.types.json import Jsonb

from events.directory import AgentConversationsSet, BusinessNumberConnected, WorkspaceCreated
from events.envelope import Envelope
from events.flows import ActiveFlowChosen, FlowPublished, upcast_flow_definition_v1
from runtime.store import EVENTS_TABLE, TRACKING_TABLE, AlreadyTracked
from services.flows.decide import ActiveFlow, SwitchChange

# Versions and choices are kept with their event times, not overwritten: a conversation
# runs what was active when it started, so a replay months later picks the same version.
VIEW_TABLES = (
    """CREATE TABLE IF NOT EXISTS {s}.flow_versions (
        flow_id uuid NOT NULL, version integer NOT NULL, definition jsonb NOT NULL,
        published_at timestamptz NOT NULL, PRIMARY KEY (flow_id, version))""",
    """CREATE TABLE IF NOT EXISTS {s}.flow_choices (
        phone_number_id text NOT NULL, chosen_at timestamptz NOT NULL, event_id uuid NOT NULL,
        flow_id uuid NOT NULL, PRIMARY KEY (phone_number_id, chosen_at, event_id))""",
    """CREATE TABLE IF NOT EXISTS {s}.workspace_zones (
        workspace_id uuid PRIMARY KEY, time_zone text NOT NULL)""",
    # The FlowPublished schema version a row's definition was written in: rows written
    # before version 2 (grammar v1) are read through the same upcaster as the events.
    """ALTER TABLE {s}.flow_versions
        ADD COLUMN IF NOT EXISTS schema_version smallint NOT NULL DEFAULT 1""",
    # Each number's agent-conversations switch as it was set over time ('connected': its
    # value when the number joined a workspace; 'set': an admin's change). A number with no
    # row was connected before this view existed (see decide.agent_conversations_as_of).
    """CREATE TABLE IF NOT EXISTS {s}.agent_conversation_switches (
        phone_number_id text NOT NULL, set_at timestamptz NOT NULL, event_id uuid NOT NULL,
        kind text NOT NULL, enabled boolean NOT NULL,
        PRIMARY KEY (phone_number_id, set_at, event_id))""",
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

    def active_flow(self, phone_number_id: str, at: datetime) -> ActiveFlow | None:
        """The flow chosen for the number as of ``at``, at its latest version as of ``at``.

        Choices and versions are dated by the directory's events, which carry the instant the
        gateway received the admin's command; ``at`` is the instant the gateway received the
        conversation's first message (``decide.arrival``): both clocks are the gateway's.
        """
        row = self._one(
            "SELECT c.flow_id, (SELECT max(v.version) FROM {s}.flow_versions v"
            " WHERE v.flow_id = c.flow_id AND v.published_at <= %s) AS version"
            " FROM {s}.flow_choices c WHERE c.phone_number_id = %s AND c.chosen_at <= %s"
            " ORDER BY c.chosen_at DESC, c.event_id DESC LIMIT 1",
            at,
            phone_number_id,
            at,
        )
        if row is None or row["version"] is None:
            return None
        return ActiveFlow(UUID(str(row["flow_id"])), row["version"])

    def definition(self, flow_id: UUID, version: int) -> dict[str, Any] | None:
        row = self._one(
            "SELECT definition, schema_version FROM {s}.flow_versions"
            " WHERE flow_id = %s AND version = %s",
            flow_id,
            version,
        )
        if row is None:
            return None
        definition = dict(row["definition"])
        if row["schema_version"] < 2:
            definition = upcast_flow_definition_v1(definition)
        return definition

    def agent_conversation_switches(self, phone_number_id: str) -> list[SwitchChange]:
        """Every change of the number's agent-conversations switch, oldest first."""
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                self._sql(
                    "SELECT set_at, kind, enabled FROM {s}.agent_conversation_switches"
                    " WHERE phone_number_id = %s ORDER BY set_at, event_id"
                ),
                (phone_number_id,),
            )
            return [
                SwitchChange(row["set_at"], row["kind"], row["enabled"])
                for row in cursor.fetchall()
            ]

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
                                "INSERT INTO {s}.flow_versions (flow_id, version, definition,"
                                " published_at, schema_version) VALUES (%s, %s, %s, %s, %s)"
                                " ON CONFLICT DO NOTHING"
                            ),
                            (
                                flow_id,
                                version,
                                Jsonb(definition),
                                envelope.occurred_at,
                                FlowPublished.schema_version,
                            ),
                        )
                    case ActiveFlowChosen(phone_number_id=number, flow_id=flow_id):
                        cursor.execute(
                            self._sql(
                                "INSERT INTO {s}.flow_choices VALUES (%s, %s, %s, %s)"
                                " ON CONFLICT DO NOTHING"
                            ),
                            (number, envelope.occurred_at, envelope.event_id, flow_id),
                        )
                    case (
                        BusinessNumberConnected(phone_number_id=number, agent_conversations=on)
                        | AgentConversationsSet(phone_number_id=number, enabled=on)
                    ):
                        kind = (
                            "connected"
                            if isinstance(envelope.payload, BusinessNumberConnected)
                            else "set"
                        )
                        cursor.execute(
                            self._sql(
                                "INSERT INTO {s}.agent_conversation_switches"
                                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
                            ),
                            (number, envelope.occurred_at, envelope.event_id, kind, on),
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
