"""The flows service's own view of the directory: flow versions, active flows, switches, zones.

Written from directory events in the unit of work that records their position, in the flows
schema beside the flow-run event store; read in the unit of work that decides a run, so a
batch that both learns a flow and starts a conversation sees what it learned.
:class:`PostgresFlowDirectory` keeps it in tables, :class:`MemoryFlowDirectory` in memory
(tests without I/O); both apply the same rules (:func:`rows_of` says what an event adds).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.postgres import PostgresDatastore
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier
from psycopg.types.json import Jsonb

from events.directory import AgentConversationsSet, BusinessNumberConnected, WorkspaceCreated
from events.envelope import Envelope
from events.flows import ActiveFlowChosen, FlowPublished, upcast_flow_definition_v1
from runtime.memory import MemoryWork
from runtime.store import StoreRecorder
from runtime.work import Work, cursor_of
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


class FlowsRecorder(StoreRecorder):
    """The flows event store plus the directory view's tables."""

    def __init__(self, datastore: PostgresDatastore) -> None:
        super().__init__(datastore)
        for statement in VIEW_TABLES:
            self.sql_create_statements.append(self.sql(statement))

    def definition(self, flow_id: UUID, version: int) -> dict[str, Any] | None:
        """A published version's definition, outside any unit of work (operators, tests)."""
        with self.datastore.transaction(commit=False) as cursor:
            return PostgresFlowDirectory(self.datastore.schema).definition_in(
                cursor, flow_id, version
            )


@dataclass(frozen=True)
class PublishedVersion:
    flow_id: UUID
    version: int
    definition: dict[str, Any]
    published_at: datetime


@dataclass(frozen=True)
class Choice:
    phone_number_id: str
    chosen_at: datetime
    event_id: UUID
    flow_id: UUID


@dataclass(frozen=True)
class Switch:
    phone_number_id: str
    change: SwitchChange
    event_id: UUID


@dataclass(frozen=True)
class Zone:
    workspace_id: UUID
    time_zone: str


Row = PublishedVersion | Choice | Switch | Zone


def rows_of(envelope: Envelope) -> list[Row]:
    """What one directory event adds to the view (nothing for the events it does not keep).

    Dated by the event's time, the instant the gateway received the admin's command.
    """
    at = envelope.occurred_at
    match envelope.payload:
        case FlowPublished(flow_id=flow_id, version=version, definition=definition):
            return [PublishedVersion(flow_id, version, dict(definition), at)]
        case ActiveFlowChosen(phone_number_id=number, flow_id=flow_id):
            return [Choice(number, at, envelope.event_id, flow_id)]
        case BusinessNumberConnected(phone_number_id=number, agent_conversations=on):
            return [Switch(number, SwitchChange(at, "connected", on), envelope.event_id)]
        case AgentConversationsSet(phone_number_id=number, enabled=on):
            return [Switch(number, SwitchChange(at, "set", on), envelope.event_id)]
        case WorkspaceCreated(workspace_id=workspace_id, time_zone=zone):
            return [Zone(workspace_id, zone)]
        case _:
            return []


class FlowDirectory(Protocol):
    """The view as a handler reads and writes it, within a unit of work."""

    def record(self, work: Work, envelope: Envelope) -> None:
        """Keep what a directory event says (a repeat changes nothing)."""
        ...

    def active_flow(self, work: Work, phone_number_id: str, at: datetime) -> ActiveFlow | None:
        """The flow chosen for the number as of ``at``, at its latest version as of ``at``.

        Choices and versions are dated by the directory's events, which carry the instant
        the gateway received the admin's command; ``at`` is the instant the gateway received
        the conversation's first message (``decide.arrival``): both clocks are the gateway's.
        """
        ...

    def definition(self, work: Work, flow_id: UUID, version: int) -> dict[str, Any] | None: ...

    def switches(self, work: Work, phone_number_id: str) -> list[SwitchChange]:
        """Every change of the number's agent-conversations switch, oldest first."""
        ...

    def time_zone(self, work: Work, workspace_id: UUID) -> str | None: ...


class PostgresFlowDirectory:
    """The view in the flows schema's tables, through the unit of work's transaction."""

    def __init__(self, schema: str) -> None:
        self.schema = Identifier(schema)

    def _sql(self, statement: str) -> Composed:
        return SQL(statement).format(s=self.schema)

    def _one(self, cursor: Cursor[DictRow], statement: str, *params: Any) -> dict[str, Any] | None:
        cursor.execute(self._sql(statement), params, prepare=True)
        row: dict[str, Any] | None = cursor.fetchone()
        return row

    def record(self, work: Work, envelope: Envelope) -> None:
        cursor = cursor_of(work)
        for row in rows_of(envelope):
            match row:
                case PublishedVersion():
                    cursor.execute(
                        self._sql(
                            "INSERT INTO {s}.flow_versions (flow_id, version, definition,"
                            " published_at, schema_version) VALUES (%s, %s, %s, %s, %s)"
                            " ON CONFLICT DO NOTHING"
                        ),
                        (
                            row.flow_id,
                            row.version,
                            Jsonb(row.definition),
                            row.published_at,
                            FlowPublished.schema_version,
                        ),
                    )
                case Choice():
                    cursor.execute(
                        self._sql(
                            "INSERT INTO {s}.flow_choices VALUES (%s, %s, %s, %s)"
                            " ON CONFLICT DO NOTHING"
                        ),
                        (row.phone_number_id, row.chosen_at, row.event_id, row.flow_id),
                    )
                case Switch(change=change):
                    cursor.execute(
                        self._sql(
                            "INSERT INTO {s}.agent_conversation_switches"
                            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
                        ),
                        (row.phone_number_id, change.at, row.event_id, change.kind, change.enabled),
                    )
                case Zone():
                    cursor.execute(
                        self._sql(
                            "INSERT INTO {s}.workspace_zones VALUES (%s, %s) ON CONFLICT"
                            " (workspace_id) DO UPDATE SET time_zone = EXCLUDED.time_zone"
                        ),
                        (row.workspace_id, row.time_zone),
                    )

    def active_flow(self, work: Work, phone_number_id: str, at: datetime) -> ActiveFlow | None:
        row = self._one(
            cursor_of(work),
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

    def definition(self, work: Work, flow_id: UUID, version: int) -> dict[str, Any] | None:
        return self.definition_in(cursor_of(work), flow_id, version)

    def definition_in(
        self, cursor: Cursor[DictRow], flow_id: UUID, version: int
    ) -> dict[str, Any] | None:
        row = self._one(
            cursor,
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

    def switches(self, work: Work, phone_number_id: str) -> list[SwitchChange]:
        cursor = cursor_of(work)
        cursor.execute(
            self._sql(
                "SELECT set_at, kind, enabled FROM {s}.agent_conversation_switches"
                " WHERE phone_number_id = %s ORDER BY set_at, event_id"
            ),
            (phone_number_id,),
            prepare=True,
        )
        return [SwitchChange(row["set_at"], row["kind"], row["enabled"]) for row in cursor]

    def time_zone(self, work: Work, workspace_id: UUID) -> str | None:
        row = self._one(
            cursor_of(work),
            "SELECT time_zone FROM {s}.workspace_zones WHERE workspace_id = %s",
            workspace_id,
        )
        return None if row is None else str(row["time_zone"])


VIEW = "flows.directory"


class MemoryFlowDirectory:
    """The same view in one in-memory table of the unit of work (keyed by each row)."""

    def record(self, work: Work, envelope: Envelope) -> None:
        table = _table(work)
        for row in rows_of(envelope):
            match row:
                case PublishedVersion():
                    table.setdefault(("version", row.flow_id, row.version), row)
                case Choice():
                    table.setdefault(("choice", row.event_id), row)
                case Switch():
                    table.setdefault(("switch", row.event_id), row)
                case Zone():
                    table[("zone", row.workspace_id)] = row

    def active_flow(self, work: Work, phone_number_id: str, at: datetime) -> ActiveFlow | None:
        rows = _table(work).values()
        choices = [
            row
            for row in rows
            if isinstance(row, Choice) and row.phone_number_id == phone_number_id
            if row.chosen_at <= at
        ]
        if not choices:
            return None
        chosen = max(choices, key=lambda row: (row.chosen_at, row.event_id))
        versions = [
            row.version
            for row in rows
            if isinstance(row, PublishedVersion)
            if row.flow_id == chosen.flow_id and row.published_at <= at
        ]
        return ActiveFlow(chosen.flow_id, max(versions)) if versions else None

    def definition(self, work: Work, flow_id: UUID, version: int) -> dict[str, Any] | None:
        row = _table(work).get(("version", flow_id, version))
        return None if row is None else dict(row.definition)

    def switches(self, work: Work, phone_number_id: str) -> list[SwitchChange]:
        rows = [
            row
            for row in _table(work).values()
            if isinstance(row, Switch) and row.phone_number_id == phone_number_id
        ]
        return [row.change for row in sorted(rows, key=lambda row: (row.change.at, row.event_id))]

    def time_zone(self, work: Work, workspace_id: UUID) -> str | None:
        row = _table(work).get(("zone", workspace_id))
        return None if row is None else row.time_zone


def _table(work: Work) -> dict[Any, Any]:
    if not isinstance(work, MemoryWork):
        raise TypeError(f"an in-memory view was given a {type(work).__name__}")
    return work.table(VIEW)
