"""The read models' tables and their writer: rows and Kafka position in one transaction.

Built on the eventsourcing library's tracking recorder, as its own projection examples
are: the view's tables sit beside the tracking table in the ``projections`` schema.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError, Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresProcessRecorder
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier, Literal
from psycopg.types.json import Jsonb

from events.envelope import Envelope
from projections.conversations import (
    ConversationRow,
    DeliveryUpdate,
    apply_conversation,
    delivery_update,
    history_entry,
    later_status,
    line_status,
)
from projections.directory import (
    ActiveFlowRow,
    DirectoryRow,
    FlowVersionRow,
    GroupRow,
    MemberRow,
    NumberRow,
    OutcomeRow,
    WorkspaceRow,
    directory_rows,
)
from services.store import EVENTS_TABLE, RELAY_TRACKING, TRACKING_TABLE, AlreadyTracked

# Bump when a read model's tables change shape: the projector then drops the read models
# and rebuilds them from offset zero (they are views; the events are the truth).
READ_MODEL_VERSION = 4

TABLES = (
    "applied_events",
    "conversations",
    "conversation_history",
    "workspaces",
    "business_numbers",
    "members",
    "command_outcomes",
    "flow_versions",
    "active_flows",
    "groups",
    "deliveries",
    "wamid_statuses",
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
        event_id uuid PRIMARY KEY,
        conversation_id uuid NOT NULL,
        occurred_at timestamptz NOT NULL,
        rank smallint NOT NULL,
        seq integer NOT NULL,
        kind text NOT NULL,
        author_kind text NOT NULL,
        author_id text,
        author_name text,
        message_id uuid,
        wamid text,
        message_type text,
        text text,
        reply_id text,
        content jsonb,
        status text,
        errors jsonb)""",
    """CREATE INDEX IF NOT EXISTS conversation_history_in_order
        ON {s}.conversation_history (conversation_id, occurred_at, rank, seq, event_id)""",
    """CREATE INDEX IF NOT EXISTS conversation_history_by_wamid
        ON {s}.conversation_history (wamid) WHERE kind = 'message'""",
    """CREATE INDEX IF NOT EXISTS conversation_history_by_message
        ON {s}.conversation_history (message_id) WHERE message_id IS NOT NULL""",
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
        decided_at timestamptz NOT NULL,
        result jsonb)""",
    """CREATE TABLE IF NOT EXISTS {s}.flow_versions (
        flow_id uuid NOT NULL,
        version integer NOT NULL,
        workspace_id uuid NOT NULL,
        name text NOT NULL,
        definition jsonb NOT NULL,
        published_by uuid NOT NULL,
        published_at timestamptz NOT NULL,
        PRIMARY KEY (flow_id, version))""",
    """CREATE TABLE IF NOT EXISTS {s}.deliveries (
        message_id uuid PRIMARY KEY,
        status text NOT NULL,
        wamid text,
        errors jsonb)""",
    """CREATE INDEX IF NOT EXISTS deliveries_by_wamid ON {s}.deliveries (wamid)""",
    """CREATE TABLE IF NOT EXISTS {s}.wamid_statuses (
        wamid text PRIMARY KEY,
        status text NOT NULL,
        errors jsonb)""",
    """CREATE TABLE IF NOT EXISTS {s}.groups (
        group_id uuid PRIMARY KEY,
        workspace_id uuid NOT NULL,
        name text NOT NULL,
        created_at timestamptz NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS {s}.active_flows (
        phone_number_id text PRIMARY KEY,
        workspace_id uuid NOT NULL,
        flow_id uuid NOT NULL,
        chosen_at timestamptz NOT NULL)""",
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
                for row in directory_rows(envelope):
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

    def replace_outdated(self) -> bool:
        """Drop read models built by another ``READ_MODEL_VERSION``; True if it did.

        Call before ``create_table`` (under the schema lock): the tables are then created
        in their current shape and, with no positions left, filled again from offset zero.
        """
        marker = Identifier("read_model_version")
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                SQL("CREATE TABLE IF NOT EXISTS {}.{} (version integer NOT NULL)").format(
                    self.schema, marker
                )
            )
            cursor.execute(SQL("SELECT version FROM {}.{}").format(self.schema, marker))
            row = cursor.fetchone()
            if row is not None and row["version"] == READ_MODEL_VERSION:
                return False
            for table in TABLES:
                cursor.execute(
                    SQL("DROP TABLE IF EXISTS {}.{}").format(self.schema, Identifier(table))
                )
            cursor.execute(SQL("DELETE FROM {}.{}").format(self.schema, marker))
            cursor.execute(
                SQL("INSERT INTO {}.{} VALUES (%s)").format(self.schema, marker),
                (READ_MODEL_VERSION,),
            )
            cursor.execute(
                SQL(
                    "DO $$ BEGIN IF to_regclass({}) IS NOT NULL THEN"
                    " DELETE FROM {}.{} WHERE application_name <> ALL({}); END IF; END $$"
                ).format(
                    Literal(f"{self.datastore.schema}.{self.tracking_table_name}"),
                    self.schema,
                    Identifier(self.tracking_table_name),
                    Literal([self.table_migration_identifier, RELAY_TRACKING]),
                )
            )
        return row is not None

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
        if entry is not None:
            cursor.execute(
                self._sql(
                    "INSERT INTO {s}.conversation_history (event_id, conversation_id, occurred_at,"
                    " rank, seq, kind, author_kind, author_id, author_name, message_id, wamid,"
                    " message_type, text, reply_id, content, status, errors) VALUES"
                    " (%(event_id)s, %(conversation_id)s, %(occurred_at)s, %(rank)s, %(seq)s,"
                    " %(kind)s, %(author_kind)s, %(author_id)s, %(author_name)s, %(message_id)s,"
                    " %(wamid)s, %(message_type)s, %(text)s, %(reply_id)s, %(content)s,"
                    " %(status)s, %(errors)s) ON CONFLICT (event_id) DO NOTHING"
                ),
                {
                    **entry.__dict__,
                    "content": Jsonb(entry.content) if entry.content is not None else None,
                    "errors": Jsonb(entry.errors) if entry.errors is not None else None,
                },
            )
            if entry.kind == "status" and entry.wamid is not None and entry.status is not None:
                self._record_meta_status(cursor, entry.wamid, entry.status, entry.errors)
            if entry.message_id is not None:
                self._refresh_message(cursor, entry.message_id)
        update = delivery_update(envelope)
        if update is not None:
            self._record_delivery(cursor, update)

    # What the dispatcher and Meta said of an outbound message is kept apart from its
    # history line, keyed by message id and by wamid: the three arrive on different topics
    # in any order, and the line is recomputed from whatever is known each time.

    def _record_delivery(self, cursor: Cursor[DictRow], update: DeliveryUpdate) -> None:
        cursor.execute(
            self._sql(
                "INSERT INTO {s}.deliveries VALUES (%s, %s, %s, %s) ON CONFLICT (message_id)"
                " DO UPDATE SET status = EXCLUDED.status,"
                " wamid = COALESCE(EXCLUDED.wamid, {s}.deliveries.wamid),"
                " errors = COALESCE(EXCLUDED.errors, {s}.deliveries.errors)"
            ),
            (
                update.message_id,
                update.status,
                update.wamid,
                Jsonb(update.errors) if update.errors else None,
            ),
        )
        self._refresh_message(cursor, update.message_id)

    def _record_meta_status(
        self,
        cursor: Cursor[DictRow],
        wamid: str,
        status: str,
        errors: list[dict[str, Any]] | None,
    ) -> None:
        cursor.execute(
            self._sql("SELECT status FROM {s}.wamid_statuses WHERE wamid = %s"), (wamid,)
        )
        found = cursor.fetchone()
        furthest = later_status(found["status"] if found else None, status)
        cursor.execute(
            self._sql(
                "INSERT INTO {s}.wamid_statuses VALUES (%s, %s, %s) ON CONFLICT (wamid)"
                " DO UPDATE SET status = EXCLUDED.status,"
                " errors = COALESCE(EXCLUDED.errors, {s}.wamid_statuses.errors)"
            ),
            (wamid, furthest, Jsonb(errors) if errors else None),
        )
        cursor.execute(
            self._sql("SELECT message_id FROM {s}.deliveries WHERE wamid = %s"), (wamid,)
        )
        for row in cursor.fetchall():
            self._refresh_message(cursor, row["message_id"])

    def _refresh_message(self, cursor: Cursor[DictRow], message_id: UUID) -> None:
        cursor.execute(
            self._sql(
                "SELECT d.status, d.wamid, d.errors, w.status AS meta_status,"
                " w.errors AS meta_errors FROM {s}.deliveries d"
                " LEFT JOIN {s}.wamid_statuses w ON w.wamid = d.wamid WHERE d.message_id = %s"
            ),
            (message_id,),
        )
        known = cursor.fetchone()
        if known is None:
            return  # the dispatcher has said nothing yet: the line stays "queued"
        status = line_status(known["status"], known["meta_status"])
        errors = known["meta_errors"] if status == known["meta_status"] else known["errors"]
        cursor.execute(
            self._sql(
                "UPDATE {s}.conversation_history SET status = %s, wamid = %s, errors = %s"
                " WHERE message_id = %s AND kind = 'message'"
            ),
            (status, known["wamid"], Jsonb(errors) if errors else None, message_id),
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

    def _write_directory(self, cursor: Cursor[DictRow], row: DirectoryRow) -> None:
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
                    " %(outcome)s, %(reason)s, %(decided_at)s, %(result)s) ON CONFLICT DO NOTHING"
                )
            case FlowVersionRow():
                statement = (
                    "INSERT INTO {s}.flow_versions VALUES (%(flow_id)s, %(version)s,"
                    " %(workspace_id)s, %(name)s, %(definition)s, %(published_by)s,"
                    " %(published_at)s) ON CONFLICT DO NOTHING"
                )
            case GroupRow():
                statement = (
                    "INSERT INTO {s}.groups VALUES (%(group_id)s, %(workspace_id)s, %(name)s,"
                    " %(created_at)s) ON CONFLICT DO NOTHING"
                )
            case ActiveFlowRow():
                statement = (
                    "INSERT INTO {s}.active_flows VALUES (%(phone_number_id)s, %(workspace_id)s,"
                    " %(flow_id)s, %(chosen_at)s) ON CONFLICT (phone_number_id) DO UPDATE"
                    " SET flow_id = EXCLUDED.flow_id, chosen_at = EXCLUDED.chosen_at"
                )
        params: dict[str, Any] = {
            key: Jsonb(value) if isinstance(value, dict) else value
            for key, value in row.__dict__.items()
        }
        cursor.execute(self._sql(statement), params)
