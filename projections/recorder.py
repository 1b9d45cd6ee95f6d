"""The read models' tables and their writer: rows and Kafka position in one transaction.

Built on the eventsourcing library's tracking recorder, as its own projection examples
are: the view's tables sit beside the tracking table in the ``projections`` schema.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.persistence import IntegrityError, Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresProcessRecorder
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier
from psycopg.types.json import Jsonb

from events.envelope import Envelope
from projections.conversations import (
    ConversationRow,
    apply_conversation,
    history_entry,
    later_status,
)
from projections.directory import MemberRow, NumberRow, OutcomeRow, WorkspaceRow, directory_row
from services.store import EVENTS_TABLE, RELAY_TRACKING, TRACKING_TABLE, AlreadyTracked

TABLES = (
    "applied_events",
    "conversations",
    "conversation_history",
    "workspaces",
    "business_numbers",
    "members",
    "command_outcomes",
)

SCHEMA_STATEMENTS = (
    # The relay may publish an event twice (after a crash); a second copy sits at another
    # offset, so positions alone cannot recognise it: event ids do.
    """CREATE TABLE IF NOT EXISTS {s}.applied_events (event_id uuid PRIMARY KEY)""",
    """CREATE TABLE IF NOT EXISTS {s}.conversations (
        conversation_id uuid PRIMARY KEY,
        workspace_id uuid NOT NULL,
        phone_number_id text NOT NULL,
        display_phone_number text NOT NULL,
        contact_wa_id text NOT NULL,
        contact_name text,
        status text NOT NULL,
        started_at timestamptz NOT NULL,
        closed_at timestamptz,
        close_reason text,
        last_activity_at timestamptz NOT NULL,
        message_count integer NOT NULL)""",
    """CREATE INDEX IF NOT EXISTS conversations_by_contact
        ON {s}.conversations (workspace_id, contact_wa_id, started_at)""",
    """CREATE TABLE IF NOT EXISTS {s}.conversation_history (
        conversation_id uuid NOT NULL,
        position integer NOT NULL,
        event_id uuid NOT NULL UNIQUE,
        kind text NOT NULL,
        author_kind text NOT NULL,
        author_id text,
        author_name text,
        wamid text,
        message_type text,
        text text,
        reply_id text,
        content jsonb,
        status text,
        errors jsonb,
        occurred_at timestamptz NOT NULL,
        PRIMARY KEY (conversation_id, position))""",
    """CREATE INDEX IF NOT EXISTS conversation_history_by_wamid
        ON {s}.conversation_history (wamid) WHERE kind = 'message'""",
    """CREATE TABLE IF NOT EXISTS {s}.workspaces (
        workspace_id uuid PRIMARY KEY,
        name text NOT NULL,
        time_zone text NOT NULL,
        created_at timestamptz NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS {s}.business_numbers (
        phone_number_id text PRIMARY KEY,
        workspace_id uuid NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS {s}.members (
        member_id uuid PRIMARY KEY,
        workspace_id uuid NOT NULL,
        name text NOT NULL,
        role text NOT NULL,
        capacity integer NOT NULL,
        token_hash text NOT NULL UNIQUE,
        active boolean NOT NULL DEFAULT true)""",
    """CREATE TABLE IF NOT EXISTS {s}.command_outcomes (
        command_id uuid PRIMARY KEY,
        command_type text NOT NULL,
        outcome text NOT NULL,
        reason text NOT NULL,
        decided_at timestamptz NOT NULL)""",
)

CONVERSATION_COLUMNS = (
    "conversation_id",
    "workspace_id",
    "phone_number_id",
    "display_phone_number",
    "contact_wa_id",
    "contact_name",
    "status",
    "started_at",
    "closed_at",
    "close_reason",
    "last_activity_at",
    "message_count",
)


class ProjectionRecorder(PostgresProcessRecorder):
    """Read models plus the projector's own small event store (its dead letters)."""

    def __init__(self, datastore: PostgresDatastore) -> None:
        super().__init__(
            datastore, events_table_name=EVENTS_TABLE, tracking_table_name=TRACKING_TABLE
        )
        self.schema = Identifier(datastore.schema)
        for statement in SCHEMA_STATEMENTS:
            self.sql_create_statements.append(self._sql(statement))

    def _sql(self, statement: str) -> Composed:
        return SQL(statement).format(s=self.schema)

    def project(self, envelope: Envelope, tracking: Tracking) -> None:
        """Apply one event to every read model it touches, with its position, atomically."""
        try:
            with self.datastore.transaction(commit=True) as cursor:
                self._insert_tracking(cursor, tracking)
                if not self._first_time(cursor, envelope):
                    return
                self._project_conversation(cursor, envelope)
                row = directory_row(envelope)
                if row is not None:
                    self._write_directory(cursor, row)
        except IntegrityError:
            if self.has_tracking_id(tracking.application_name, tracking.notification_id):
                raise AlreadyTracked(tracking.application_name) from None
            raise

    def rebuild(self) -> None:
        """Empty every read model and forget every Kafka position: the next start replays all.

        The projector's dead letters and the relay's position stay: they are events, not views.
        """
        with self.datastore.transaction(commit=True) as cursor:
            for table in TABLES:
                cursor.execute(SQL("TRUNCATE {}.{}").format(self.schema, Identifier(table)))
            cursor.execute(
                SQL("DELETE FROM {}.{} WHERE application_name <> ALL(%s)").format(
                    self.schema, Identifier(self.tracking_table_name)
                ),
                ([self.table_migration_identifier, RELAY_TRACKING],),
            )

    def _first_time(self, cursor: Cursor[DictRow], envelope: Envelope) -> bool:
        cursor.execute(
            self._sql(
                "INSERT INTO {s}.applied_events VALUES (%s) ON CONFLICT DO NOTHING RETURNING 1"
            ),
            (envelope.event_id,),
        )
        return cursor.fetchone() is not None

    def _project_conversation(self, cursor: Cursor[DictRow], envelope: Envelope) -> None:
        conversation_id = getattr(envelope.payload, "conversation_id", None)
        if conversation_id is None:
            return
        cursor.execute(
            self._sql("SELECT * FROM {s}.conversations WHERE conversation_id = %s"),
            (conversation_id,),
        )
        found = cursor.fetchone()
        before = ConversationRow(**{c: found[c] for c in CONVERSATION_COLUMNS}) if found else None
        after = apply_conversation(before, envelope)
        if after is not None and after != before:
            self._upsert_conversation(cursor, after)
        entry = history_entry(envelope, after)
        if entry is None:
            return
        cursor.execute(
            self._sql(
                "INSERT INTO {s}.conversation_history (conversation_id, position, event_id, kind,"
                " author_kind, author_id, author_name, wamid, message_type, text, reply_id,"
                " content, status, errors, occurred_at)"
                " SELECT %(conversation_id)s, COALESCE(MAX(position), 0) + 1, %(event_id)s,"
                " %(kind)s, %(author_kind)s, %(author_id)s, %(author_name)s, %(wamid)s,"
                " %(message_type)s, %(text)s, %(reply_id)s, %(content)s, %(status)s,"
                " %(errors)s, %(occurred_at)s"
                " FROM {s}.conversation_history WHERE conversation_id = %(conversation_id)s"
                " ON CONFLICT (event_id) DO NOTHING"
            ),
            {
                **entry.__dict__,
                "content": Jsonb(entry.content) if entry.content is not None else None,
                "errors": Jsonb(entry.errors) if entry.errors is not None else None,
            },
        )
        if entry.kind == "status" and entry.wamid is not None and entry.status is not None:
            self._advance_message_status(cursor, entry.wamid, entry.status)

    def _advance_message_status(self, cursor: Cursor[DictRow], wamid: str, status: str) -> None:
        cursor.execute(
            self._sql(
                "SELECT conversation_id, position, status FROM {s}.conversation_history"
                " WHERE wamid = %s AND kind = 'message'"
            ),
            (wamid,),
        )
        for row in cursor.fetchall():
            advanced = later_status(row["status"], status)
            if advanced != row["status"]:
                cursor.execute(
                    self._sql(
                        "UPDATE {s}.conversation_history SET status = %s"
                        " WHERE conversation_id = %s AND position = %s"
                    ),
                    (advanced, row["conversation_id"], row["position"]),
                )

    def _upsert_conversation(self, cursor: Cursor[DictRow], row: ConversationRow) -> None:
        columns = ", ".join(CONVERSATION_COLUMNS)
        values = ", ".join(f"%({c})s" for c in CONVERSATION_COLUMNS)
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in CONVERSATION_COLUMNS[1:])
        cursor.execute(
            self._sql(
                f"INSERT INTO {{s}}.conversations ({columns}) VALUES ({values})"
                f" ON CONFLICT (conversation_id) DO UPDATE SET {updates}"
            ),
            row.__dict__,
        )

    def _write_directory(
        self, cursor: Cursor[DictRow], row: WorkspaceRow | NumberRow | MemberRow | OutcomeRow
    ) -> None:
        match row:
            case WorkspaceRow():
                statement = (
                    "INSERT INTO {s}.workspaces VALUES (%(workspace_id)s, %(name)s,"
                    " %(time_zone)s, %(created_at)s) ON CONFLICT (workspace_id) DO UPDATE"
                    " SET name = EXCLUDED.name, time_zone = EXCLUDED.time_zone"
                )
            case NumberRow():
                statement = (
                    "INSERT INTO {s}.business_numbers VALUES (%(phone_number_id)s,"
                    " %(workspace_id)s) ON CONFLICT (phone_number_id) DO UPDATE"
                    " SET workspace_id = EXCLUDED.workspace_id"
                )
            case MemberRow():
                statement = (
                    "INSERT INTO {s}.members (member_id, workspace_id, name, role, capacity,"
                    " token_hash) VALUES (%(member_id)s, %(workspace_id)s, %(name)s, %(role)s,"
                    " %(capacity)s, %(token_hash)s) ON CONFLICT (member_id) DO UPDATE SET"
                    " name = EXCLUDED.name, role = EXCLUDED.role, capacity = EXCLUDED.capacity,"
                    " token_hash = EXCLUDED.token_hash"
                )
            case OutcomeRow():
                statement = (
                    "INSERT INTO {s}.command_outcomes VALUES (%(command_id)s, %(command_type)s,"
                    " %(outcome)s, %(reason)s, %(decided_at)s) ON CONFLICT DO NOTHING"
                )
        params: dict[str, Any] = row.__dict__
        cursor.execute(self._sql(statement), params)
