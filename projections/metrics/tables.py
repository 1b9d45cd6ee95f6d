"""The metrics projection's own tables, in its own schema, written in the runtime's unit of work.

* ``metric_facts``: one row per conversation, its :class:`ConversationFacts` as JSON (what
  lets a late event, or the workspace's time zone, correct rows already written);
* ``metric_days``: one row per workspace, local day, group and member, the figures summed;
* ``metric_time_zones``: each workspace's time zone, from ``directory.workspace_created``;
* ``metric_version``: the :data:`METRICS_VERSION` the tables were built by.

Positions, handled event ids and parked records are the store's own (``runtime.store``), so
the projection is rebuilt alone: :func:`rebuild` empties these tables and its positions, and
the process replays its topics from offset zero.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.postgres import PostgresDatastore
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier, Literal

from events.directory import WorkspaceCreated
from events.envelope import Envelope
from projections.metrics.fold import (
    FIGURE_NAMES,
    ConversationFacts,
    RowKey,
    apply,
    contributions,
    conversation_of,
    difference,
    no_facts,
)
from runtime.store import RELAY_TRACKING, StoreRecorder

# Bump when the fold or the tables change meaning: the tables are then built again from
# offset zero at the next start.
METRICS_VERSION = 1
CONSUMER = "metrics"
TABLES = ("metric_facts", "metric_days", "metric_time_zones")
DEFAULT_TIME_ZONE = "UTC"

_FIGURE_COLUMNS = ", ".join(
    f"{name} double precision NOT NULL DEFAULT 0"
    if name.endswith("_seconds")
    else f"{name} bigint NOT NULL DEFAULT 0"
    for name in FIGURE_NAMES
)


class MetricsRecorder(StoreRecorder):
    """The store (events for its dead letters, positions, handled ids) plus the metrics."""

    def __init__(self, datastore: PostgresDatastore) -> None:
        super().__init__(datastore)
        self.metric_statements = [
            self.sql(
                "CREATE TABLE IF NOT EXISTS {s}.metric_facts (conversation_id uuid PRIMARY"
                " KEY, workspace_id uuid, facts jsonb NOT NULL)"
            ),
            self.sql(
                "CREATE INDEX IF NOT EXISTS metric_facts_workspace"
                " ON {s}.metric_facts (workspace_id)"
            ),
            self.sql(
                "CREATE TABLE IF NOT EXISTS {s}.metric_days (workspace_id uuid NOT NULL,"
                " day date NOT NULL, group_key text NOT NULL, member_key text NOT NULL, "
                + _FIGURE_COLUMNS
                + ", PRIMARY KEY (workspace_id, day, group_key, member_key))"
            ),
            self.sql(
                "CREATE TABLE IF NOT EXISTS {s}.metric_time_zones (workspace_id uuid"
                " PRIMARY KEY, time_zone text NOT NULL)"
            ),
        ]
        self.sql_create_statements.extend(self.metric_statements)

    def replace_outdated(self) -> bool:
        """Drop tables built by another :data:`METRICS_VERSION` (and the positions and handled
        ids that went with them); True if it did. Call under the schema lock, before
        ``create_table``."""
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                self.sql("CREATE TABLE IF NOT EXISTS {s}.metric_version (version integer NOT NULL)")
            )
            cursor.execute(self.sql("SELECT version FROM {s}.metric_version"))
            row = cursor.fetchone()
            if row is not None and row["version"] == METRICS_VERSION:
                return False
            _empty(self, cursor)
            cursor.execute(self.sql("DELETE FROM {s}.metric_version"))
            cursor.execute(
                self.sql("INSERT INTO {s}.metric_version VALUES (%s)"), (METRICS_VERSION,)
            )
        return row is not None

    def rebuild(self) -> None:
        """Empty the metrics and forget the positions: the process replays from zero."""
        with self.datastore.transaction(commit=True) as cursor:
            _empty(self, cursor)


def _empty(recorder: MetricsRecorder, cursor: Cursor[DictRow]) -> None:
    schema = Identifier(recorder.datastore.schema)
    for table in TABLES:
        cursor.execute(SQL("DROP TABLE IF EXISTS {}.{}").format(schema, Identifier(table)))
    # Forget the consumer's positions and handled ids; keep the relay's position in this
    # store and the library's migration marker (the store's own events stay).
    forget = (
        (
            recorder.tracking_table_name,
            SQL("application_name <> ALL({})").format(
                Literal([recorder.table_migration_identifier, RELAY_TRACKING])
            ),
        ),
        ("handled_events", SQL("consumer = {}").format(Literal(CONSUMER))),
    )
    for table, which in forget:
        cursor.execute(
            SQL(
                "DO $$ BEGIN IF to_regclass({}) IS NOT NULL THEN"
                " DELETE FROM {}.{} WHERE {}; END IF; END $$"
            ).format(
                Literal(f"{recorder.datastore.schema}.{table}"), schema, Identifier(table), which
            )
        )
    # Recreate the tables now, in the same transaction, so readers never meet a missing one.
    for statement in recorder.metric_statements:
        cursor.execute(statement)


class MetricsWriter:
    """Folds one event into the tables through a unit of work's cursor."""

    def __init__(self, schema: str) -> None:
        self.schema = Identifier(schema)

    def _sql(self, statement: str) -> Composed:
        return SQL(statement).format(s=self.schema)

    def project(self, cursor: Cursor[DictRow], envelope: Envelope) -> None:
        if isinstance(envelope.payload, WorkspaceCreated):
            self._time_zone_known(cursor, envelope.payload)
            return
        conversation_id = conversation_of(envelope)
        if conversation_id is None:
            return
        # FOR UPDATE: another replica may hold another topic's partition of this
        # conversation; the second waits and folds into what the first wrote.
        cursor.execute(
            self._sql("SELECT facts FROM {s}.metric_facts WHERE conversation_id = %s FOR UPDATE"),
            (conversation_id,),
        )
        row = cursor.fetchone()
        before = (
            ConversationFacts.model_validate(row["facts"])
            if row is not None
            else no_facts(conversation_id)
        )
        after = apply(before, envelope)
        if after == before:
            return
        zone = self._time_zone(cursor, after.workspace_id)
        self._add(cursor, difference(contributions(before, zone), contributions(after, zone)))
        cursor.execute(
            self._sql(
                "INSERT INTO {s}.metric_facts (conversation_id, workspace_id, facts)"
                " VALUES (%s, %s, %s::jsonb) ON CONFLICT (conversation_id) DO UPDATE"
                " SET workspace_id = EXCLUDED.workspace_id, facts = EXCLUDED.facts"
            ),
            (conversation_id, after.workspace_id, after.model_dump_json()),
        )

    def _time_zone(self, cursor: Cursor[DictRow], workspace_id: UUID | None) -> str:
        if workspace_id is None:
            return DEFAULT_TIME_ZONE
        cursor.execute(
            self._sql("SELECT time_zone FROM {s}.metric_time_zones WHERE workspace_id = %s"),
            (workspace_id,),
        )
        row = cursor.fetchone()
        return str(row["time_zone"]) if row is not None else DEFAULT_TIME_ZONE

    def _time_zone_known(self, cursor: Cursor[DictRow], created: WorkspaceCreated) -> None:
        """Conversations counted before the workspace's zone was known were counted in UTC:
        count the workspace's days again in its zone."""
        cursor.execute(
            self._sql(
                "INSERT INTO {s}.metric_time_zones (workspace_id, time_zone) VALUES (%s, %s)"
                " ON CONFLICT (workspace_id) DO NOTHING RETURNING time_zone"
            ),
            (created.workspace_id, created.time_zone),
        )
        if cursor.fetchone() is None or created.time_zone == DEFAULT_TIME_ZONE:
            return  # known before (a replayed creation), or the same days as before
        cursor.execute(
            self._sql("SELECT facts FROM {s}.metric_facts WHERE workspace_id = %s FOR UPDATE"),
            (created.workspace_id,),
        )
        for row in cursor.fetchall():
            facts = ConversationFacts.model_validate(row["facts"])
            self._add(
                cursor,
                difference(
                    contributions(facts, DEFAULT_TIME_ZONE),
                    contributions(facts, created.time_zone),
                ),
            )

    def _add(self, cursor: Cursor[DictRow], delta: dict[RowKey, Any]) -> None:
        names = ", ".join(FIGURE_NAMES)
        placeholders = ", ".join(["%s"] * len(FIGURE_NAMES))
        updates = ", ".join(f"{n} = {{s}}.metric_days.{n} + EXCLUDED.{n}" for n in FIGURE_NAMES)
        statement = self._sql(
            "INSERT INTO {s}.metric_days (workspace_id, day, group_key, member_key, "
            + names
            + ") VALUES (%s, %s, %s, %s, "
            + placeholders
            + ") ON CONFLICT (workspace_id, day, group_key, member_key) DO UPDATE SET "
            + updates
        )
        # Sorted: two transactions touching the same rows lock them in the same order.
        for key in sorted(delta):
            figures = delta[key]
            cursor.execute(
                statement,
                (
                    key.workspace_id,
                    key.day,
                    key.group,
                    key.member,
                    *(getattr(figures, n) for n in FIGURE_NAMES),
                ),
                prepare=True,
            )
