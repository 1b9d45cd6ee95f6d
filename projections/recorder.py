"""The read models' tables and their writer: rows and Kafka position in one transaction.

Built on the eventsourcing library's tracking recorder, as its own projection examples
are: the view's tables sit beside the tracking table in the ``projections`` schema.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError, Tracking
from eventsourcing.postgres import PostgresDatastore
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier, Literal
from psycopg.types.json import Jsonb

from events.conversation import MessageStatusUpdated
from events.directory import (
    AgentConversationsSet,
    AgentStatusChanged,
    NotificationSettingsChanged,
)
from events.envelope import Envelope
from projections.assignments import (
    apply_assignment,
    assignment_change,
    assignment_entry,
    assignment_outcome,
    change_cause,
)
from projections.batch import Batch, Change
from projections.conversations import (
    DeliveryUpdate,
    LineEdit,
    LineRevoke,
    LineVersion,
    apply_conversation,
    delivery_update,
    edited_line,
    history_entry,
    later_status,
    line_change,
    line_status,
)
from projections.directory import (
    ActiveFlowRow,
    CannedResponseDeletion,
    CannedResponseRow,
    CredentialRow,
    DirectoryRow,
    FlowVersionRow,
    GroupDeletion,
    GroupMemberRemoval,
    GroupMemberRow,
    GroupName,
    GroupRow,
    MemberDeactivation,
    MemberDetails,
    MemberNotifications,
    MemberRow,
    MemberStatus,
    NumberAgentConversations,
    NumberDisplay,
    NumberRow,
    OutcomeRow,
    WorkspaceRow,
    directory_rows,
)
from projections.inbox import (
    ReadMarker,
    deadline_row,
    flow_step_entry,
    last_assignment,
    later_marker,
    read_marker,
)
from projections.queries import change_channel
from projections.readable import write_readably
from runtime.store import HANDLED_TABLE, RELAY_TRACKING, AlreadyTracked, StoreRecorder

# Bump when a read model's tables change shape: the projector then drops the read models
# and rebuilds them from offset zero (they are views; the events are the truth).
READ_MODEL_VERSION = 10

TABLES = (
    "applied_events",
    "conversations",
    "conversation_history",
    "workspaces",
    "business_numbers",
    "members",
    "member_credentials",
    "command_outcomes",
    "flow_versions",
    "active_flows",
    "canned_responses",
    "groups",
    "deliveries",
    "wamid_statuses",
    "group_members",
    "conversation_assignments",
    "changes",
    "conversation_reads",
    "conversation_deadlines",
    "group_last_assignments",
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
        message_count integer NOT NULL,
        contact_user_id text,
        contact_username text,
        contact_country_code text)""",
    """CREATE INDEX IF NOT EXISTS conversations_by_contact
        ON {s}.conversations (workspace_id, contact_wa_id, started_at)""",
    """CREATE INDEX IF NOT EXISTS conversations_by_user_id
        ON {s}.conversations (workspace_id, contact_user_id, started_at)""",
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
        errors jsonb,
        refs jsonb,
        reply_to text,
        forwarded boolean NOT NULL DEFAULT false,
        frequently_forwarded boolean NOT NULL DEFAULT false,
        context jsonb,
        referral jsonb,
        group_id text,
        edited_at timestamptz,
        previous jsonb,
        revoked_at timestamptz)""",
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
        workspace_id uuid NOT NULL,
        display_phone_number text,
        agent_conversations boolean NOT NULL DEFAULT false)""",
    """CREATE TABLE IF NOT EXISTS {s}.members (
        member_id uuid PRIMARY KEY,
        workspace_id uuid NOT NULL,
        name text NOT NULL,
        role text NOT NULL,
        capacity integer NOT NULL,
        active boolean NOT NULL DEFAULT true,
        status text NOT NULL DEFAULT 'offline',
        status_changed_at timestamptz,
        desktop_notifications boolean NOT NULL DEFAULT true,
        sound_notifications boolean NOT NULL DEFAULT true)""",
    """CREATE INDEX IF NOT EXISTS members_by_workspace ON {s}.members (workspace_id, name)""",
    # From directory.credentials (restricted): what authenticates a member's token.
    """CREATE TABLE IF NOT EXISTS {s}.member_credentials (
        member_id uuid PRIMARY KEY,
        workspace_id uuid NOT NULL,
        token_hash text NOT NULL UNIQUE,
        issued_at timestamptz NOT NULL)""",
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
        errors jsonb,
        workspace_id uuid)""",
    """CREATE INDEX IF NOT EXISTS deliveries_by_wamid ON {s}.deliveries (wamid)""",
    # Meta's furthest status of each message the business sent, per workspace: a wamid is
    # Meta's, and the same one replayed into another workspace is another message.
    """CREATE TABLE IF NOT EXISTS {s}.wamid_statuses (
        workspace_id uuid NOT NULL,
        wamid text NOT NULL,
        status text NOT NULL,
        errors jsonb,
        PRIMARY KEY (workspace_id, wamid))""",
    # Added without a READ_MODEL_VERSION bump: no canned response existed before the table.
    """CREATE TABLE IF NOT EXISTS {s}.canned_responses (
        canned_response_id uuid PRIMARY KEY,
        workspace_id uuid NOT NULL,
        shortcut text NOT NULL,
        text text NOT NULL,
        updated_at timestamptz NOT NULL,
        deleted_at timestamptz)""",
    """CREATE INDEX IF NOT EXISTS canned_responses_by_workspace
        ON {s}.canned_responses (workspace_id, shortcut)""",
    """CREATE TABLE IF NOT EXISTS {s}.groups (
        group_id uuid PRIMARY KEY,
        workspace_id uuid NOT NULL,
        name text NOT NULL,
        created_at timestamptz NOT NULL,
        deleted_at timestamptz)""",
    """CREATE TABLE IF NOT EXISTS {s}.group_members (
        group_id uuid NOT NULL,
        member_id uuid NOT NULL,
        workspace_id uuid NOT NULL,
        added_at timestamptz NOT NULL,
        PRIMARY KEY (group_id, member_id))""",
    """CREATE INDEX IF NOT EXISTS group_members_by_member ON {s}.group_members (member_id)""",
    # NULL group_id: the workspace's queue.
    """CREATE TABLE IF NOT EXISTS {s}.conversation_assignments (
        conversation_id uuid PRIMARY KEY,
        workspace_id uuid NOT NULL,
        group_id uuid,
        state text NOT NULL,
        assignee_id uuid,
        rotation text,
        claim_only boolean NOT NULL DEFAULT false,
        queued_at timestamptz,
        queue_arrival integer,
        assigned_at timestamptz,
        updated_at timestamptz NOT NULL)""",
    """CREATE INDEX IF NOT EXISTS conversation_assignments_queued
        ON {s}.conversation_assignments (workspace_id, group_id, queued_at)
        WHERE state = 'queued'""",
    """CREATE INDEX IF NOT EXISTS conversation_assignments_assigned
        ON {s}.conversation_assignments (assignee_id) WHERE state = 'assigned'""",
    # The feed of what agents see change (GET /api/stream). A feed, not a fold: its seq is
    # the order rows were projected in.
    """CREATE TABLE IF NOT EXISTS {s}.changes (
        seq bigserial PRIMARY KEY,
        workspace_id uuid NOT NULL,
        conversation_id uuid,
        group_id uuid,
        member_id uuid,
        kind text NOT NULL,
        occurred_at timestamptz NOT NULL,
        caused_by uuid)""",
    """CREATE INDEX IF NOT EXISTS changes_by_workspace ON {s}.changes (workspace_id, seq)""",
    # The agent suite's inbox (projections/inbox.py): read markers, deadlines, last turns.
    """CREATE TABLE IF NOT EXISTS {s}.conversation_reads (
        conversation_id uuid NOT NULL,
        member_id uuid NOT NULL,
        workspace_id uuid NOT NULL,
        up_to integer NOT NULL,
        read_at timestamptz NOT NULL,
        PRIMARY KEY (conversation_id, member_id))""",
    """CREATE TABLE IF NOT EXISTS {s}.conversation_deadlines (
        conversation_id uuid PRIMARY KEY,
        deadline timestamptz NOT NULL,
        cause text NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS {s}.group_last_assignments (
        group_id uuid NOT NULL,
        member_id uuid NOT NULL,
        assigned_at timestamptz NOT NULL,
        PRIMARY KEY (group_id, member_id))""",
    """CREATE TABLE IF NOT EXISTS {s}.active_flows (
        phone_number_id text PRIMARY KEY,
        workspace_id uuid NOT NULL,
        flow_id uuid NOT NULL,
        chosen_at timestamptz NOT NULL)""",
)


class ProjectionRecorder(StoreRecorder):
    """Read models plus the projector's own small event store (its dead letters, the
    positions and the handled event ids of the batch runtime, ``runtime.consumer``)."""

    def __init__(self, datastore: PostgresDatastore) -> None:
        super().__init__(datastore)
        self.schema = Identifier(datastore.schema)
        self.change_channel = change_channel(datastore.schema)
        for statement in SCHEMA_STATEMENTS:
            self.sql_create_statements.append(self._sql(statement))

    def _sql(self, statement: str) -> Composed:
        return SQL(statement).format(s=self.schema)

    def project(self, envelope: Envelope, tracking: Tracking) -> None:
        """Apply one event to every read model it touches, with its position, atomically
        (``projections.as_of`` folds this way; the projector folds batches, ``fold``)."""
        try:
            with self.datastore.transaction(commit=True) as cursor:
                self._insert_tracking(cursor, tracking)
                self.fold(cursor, [envelope])
        except IntegrityError:
            if self.has_tracking_id(tracking.application_name, tracking.notification_id):
                raise AlreadyTracked(tracking.application_name) from None
            raise

    def fold(self, cursor: Cursor[DictRow], envelopes: Sequence[Envelope]) -> Batch:
        """Apply ``envelopes``, in order, to every read model they touch, in the transaction
        of ``cursor`` (the caller commits it with the positions). An event applied before
        (the relay published it again) changes nothing. The hot writes go set-based
        (``projections.batch``); what the batch sent is returned for the curious."""
        write_readably(cursor)
        batch = Batch(cursor, self.datastore.schema)
        new = batch.first_time(envelopes)
        batch.load(_conversation_ids(e for e in envelopes if e.event_id in new))
        for envelope in envelopes:
            if envelope.event_id in new:
                new.discard(envelope.event_id)  # a second copy in the same batch: once
                self._apply(batch, envelope)
        batch.finish()
        return batch

    def _apply(self, batch: Batch, envelope: Envelope) -> None:
        """One event into every read model it touches (through ``batch``)."""
        cursor = batch.cursor
        change = self._project_conversation(batch, envelope)
        change = self._project_assignment(batch, envelope) or change
        change = self._project_inbox(batch, envelope) or change
        for row in directory_rows(envelope):
            self._write_directory(cursor, row)
        if isinstance(envelope.payload, AgentStatusChanged | NotificationSettingsChanged):
            # The member's other browsers show the switch as it is now.
            change = Change(None, None, envelope.payload.member_id)
        if isinstance(envelope.payload, AgentConversationsSet):
            change = Change(None, None, None)  # admins' screens show the switch
        if change is not None and envelope.workspace_id is not None:
            # Written at the end of the batch: see Batch.finish.
            batch.add_change(envelope, change, change_cause(envelope))

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
            # The runtime skips an event id its consumer handled before: forgotten with the
            # positions, or the replay would skip every event.
            cursor.execute(SQL("TRUNCATE {}.{}").format(self.schema, Identifier(HANDLED_TABLE)))

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
            cursor.execute(
                SQL(
                    "DO $$ BEGIN IF to_regclass({}) IS NOT NULL THEN TRUNCATE {}.{}; END IF; END $$"
                ).format(
                    Literal(f"{self.datastore.schema}.{HANDLED_TABLE}"),
                    self.schema,
                    Identifier(HANDLED_TABLE),
                )
            )
        return row is not None

    def _project_conversation(self, batch: Batch, envelope: Envelope) -> Change | None:
        """The conversation row, history line and delivery status an event changes; what an
        agent sees change, if anything."""
        cursor = batch.cursor
        payload = envelope.payload
        if isinstance(payload, MessageStatusUpdated) and envelope.workspace_id is not None:
            # Kept by wamid even when no conversation of the thread sent the message: the
            # line of whoever sent it shows it (a bot turn, an agent's reply, an echo).
            batch.settle()  # it updates history lines, joined to their conversations
            self._record_meta_status(
                cursor, envelope.workspace_id, payload.wamid, payload.status, payload.errors
            )
        conversation_id = getattr(payload, "conversation_id", None)
        if conversation_id is None:
            return None
        before = batch.conversation(conversation_id)
        after = apply_conversation(before, envelope)
        visible = after != before
        if after is not None and after != before:
            batch.put_conversation(after)
        entry = history_entry(envelope, after) or flow_step_entry(envelope)
        if entry is not None:
            visible = True
            batch.add_history(entry)
            if entry.author_kind == "business" and after is not None:
                batch.settle()
                self._refresh_echo(cursor, after.workspace_id, entry.wamid)
            if entry.message_id is not None:
                batch.settle()
                self._refresh_message(cursor, entry.message_id)
        change = line_change(envelope)
        if change is not None:
            visible = True
            batch.settle()
            self._change_line(cursor, change)
        update = delivery_update(envelope)
        if update is not None:
            visible = True
            batch.settle()
            self._record_delivery(cursor, update)
        if not visible:
            return None
        return batch.holders(conversation_id)

    def _project_inbox(self, batch: Batch, envelope: Envelope) -> Change | None:
        """Read markers, deadlines and last assignments (``projections/inbox.py``)."""
        cursor = batch.cursor
        marker = read_marker(envelope)
        if marker is not None:
            cursor.execute(
                self._sql(
                    "SELECT * FROM {s}.conversation_reads"
                    " WHERE conversation_id = %s AND member_id = %s"
                ),
                (marker.conversation_id, marker.member_id),
            )
            found = cursor.fetchone()
            current = ReadMarker(**found) if found else None
            furthest = later_marker(current, marker)
            if furthest == current:
                return None
            cursor.execute(
                self._sql(
                    "INSERT INTO {s}.conversation_reads VALUES (%(conversation_id)s,"
                    " %(member_id)s, %(workspace_id)s, %(up_to)s, %(read_at)s)"
                    " ON CONFLICT (conversation_id, member_id) DO UPDATE"
                    " SET up_to = EXCLUDED.up_to, read_at = EXCLUDED.read_at"
                ),
                furthest.__dict__,
            )
            # Only the reader's own screens (its other tabs) change.
            return Change(marker.conversation_id, None, marker.member_id)
        deadline = deadline_row(envelope)
        if deadline is not None:
            cursor.execute(
                self._sql(
                    "INSERT INTO {s}.conversation_deadlines VALUES (%(conversation_id)s,"
                    " %(deadline)s, %(cause)s) ON CONFLICT (conversation_id) DO UPDATE"
                    " SET deadline = EXCLUDED.deadline, cause = EXCLUDED.cause"
                ),
                deadline.__dict__,
            )
            return batch.holders(deadline.conversation_id)
        turn = last_assignment(envelope)
        if turn is not None:
            cursor.execute(
                self._sql(
                    "INSERT INTO {s}.group_last_assignments VALUES (%(group_id)s, %(member_id)s,"
                    " %(assigned_at)s) ON CONFLICT (group_id, member_id) DO UPDATE"
                    " SET assigned_at = GREATEST({s}.group_last_assignments.assigned_at,"
                    " EXCLUDED.assigned_at)"
                ),
                turn.__dict__,
            )
        return None

    def _change_line(self, cursor: Cursor[DictRow], change: LineEdit | LineRevoke) -> None:
        """An edit or a deletion changes the message's own line, never adds one."""
        if isinstance(change, LineRevoke):
            # What the author deleted is no longer shown (the event keeps it).
            cursor.execute(
                self._sql(
                    "UPDATE {s}.conversation_history SET revoked_at = %s, text = NULL,"
                    " content = NULL, previous = NULL WHERE conversation_id = %s"
                    " AND wamid = %s AND kind = 'message'"
                ),
                (change.revoked_at, change.conversation_id, change.wamid),
            )
            return
        cursor.execute(
            self._sql(
                "SELECT event_id, message_type, text, content, previous"
                " FROM {s}.conversation_history"
                " WHERE conversation_id = %s AND wamid = %s AND kind = 'message'"
            ),
            (change.conversation_id, change.wamid),
        )
        for row in cursor.fetchall():
            current = LineVersion(row["message_type"], row["text"], row["content"], row["previous"])
            edited = edited_line(current, change)
            cursor.execute(
                self._sql(
                    "UPDATE {s}.conversation_history SET message_type = %s, text = %s,"
                    " content = %s, previous = %s, edited_at = %s WHERE event_id = %s"
                ),
                (
                    edited.message_type,
                    edited.text,
                    Jsonb(edited.content),
                    Jsonb(edited.previous),
                    change.edited_at,
                    row["event_id"],
                ),
            )

    def _project_assignment(self, batch: Batch, envelope: Envelope) -> Change | None:
        """Who holds the conversation, the decision's history line and the verdict on a claim
        or transfer; what an agent sees change, if anything."""
        outcome = assignment_outcome(envelope)
        if outcome is not None:
            self._write_directory(batch.cursor, outcome)
        visible = assignment_change(envelope)
        if visible is None:
            return None
        conversation_id, group_id, member_id = visible
        before = batch.assignment(conversation_id)
        after = apply_assignment(before, envelope)
        if after is not None and after != before:
            batch.put_assignment(after)
        entry = assignment_entry(envelope)
        if entry is not None:
            batch.add_history(entry)
        return Change(conversation_id, group_id, member_id)

    # What the dispatcher and Meta said of an outbound message is kept apart from its
    # history line, keyed by message id and by wamid: the three arrive on different topics
    # in any order, and the line is recomputed from whatever is known each time.

    def _record_delivery(self, cursor: Cursor[DictRow], update: DeliveryUpdate) -> None:
        cursor.execute(
            self._sql(
                "INSERT INTO {s}.deliveries (message_id, status, wamid, errors, workspace_id)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (message_id)"
                " DO UPDATE SET status = EXCLUDED.status,"
                " wamid = COALESCE(EXCLUDED.wamid, {s}.deliveries.wamid),"
                " errors = COALESCE(EXCLUDED.errors, {s}.deliveries.errors),"
                " workspace_id = COALESCE(EXCLUDED.workspace_id, {s}.deliveries.workspace_id)"
            ),
            (
                update.message_id,
                update.status,
                update.wamid,
                Jsonb(update.errors) if update.errors else None,
                update.workspace_id,
            ),
        )
        self._refresh_message(cursor, update.message_id)

    def _record_meta_status(
        self,
        cursor: Cursor[DictRow],
        workspace_id: UUID,
        wamid: str,
        status: str,
        errors: list[dict[str, Any]] | None,
    ) -> None:
        cursor.execute(
            self._sql(
                "SELECT status FROM {s}.wamid_statuses WHERE workspace_id = %s AND wamid = %s"
            ),
            (workspace_id, wamid),
        )
        found = cursor.fetchone()
        furthest = later_status(found["status"] if found else None, status)
        cursor.execute(
            self._sql(
                "INSERT INTO {s}.wamid_statuses VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (workspace_id, wamid) DO UPDATE SET status = EXCLUDED.status,"
                " errors = COALESCE(EXCLUDED.errors, {s}.wamid_statuses.errors)"
            ),
            (workspace_id, wamid, furthest, Jsonb(errors) if errors else None),
        )
        cursor.execute(
            self._sql(
                "SELECT message_id FROM {s}.deliveries WHERE wamid = %s AND workspace_id = %s"
            ),
            (wamid, workspace_id),
        )
        for row in cursor.fetchall():
            self._refresh_message(cursor, row["message_id"])
        self._refresh_echo(cursor, workspace_id, wamid)

    def _refresh_echo(self, cursor: Cursor[DictRow], workspace_id: UUID, wamid: str | None) -> None:
        """A message the business sent from its app shows Meta's furthest status, whichever
        of the two (the echo, the status) was projected first."""
        cursor.execute(
            self._sql(
                "UPDATE {s}.conversation_history h SET status = w.status, errors = w.errors"
                " FROM {s}.wamid_statuses w, {s}.conversations c"
                " WHERE w.workspace_id = %s AND w.wamid = %s AND h.wamid = w.wamid"
                " AND h.author_kind = 'business' AND h.kind = 'message'"
                " AND c.conversation_id = h.conversation_id AND c.workspace_id = w.workspace_id"
            ),
            (workspace_id, wamid),
        )

    def _refresh_message(self, cursor: Cursor[DictRow], message_id: UUID) -> None:
        cursor.execute(
            self._sql(
                "SELECT d.status, d.wamid, d.errors, w.status AS meta_status,"
                " w.errors AS meta_errors FROM {s}.deliveries d"
                " LEFT JOIN {s}.wamid_statuses w ON w.wamid = d.wamid"
                " AND w.workspace_id = d.workspace_id WHERE d.message_id = %s"
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
                    "INSERT INTO {s}.business_numbers (phone_number_id, workspace_id,"
                    " agent_conversations) VALUES (%(phone_number_id)s, %(workspace_id)s,"
                    " %(agent_conversations)s) ON CONFLICT (phone_number_id) DO UPDATE"
                    " SET workspace_id = EXCLUDED.workspace_id,"
                    " agent_conversations = EXCLUDED.agent_conversations"
                )
            case NumberAgentConversations():
                statement = (
                    "UPDATE {s}.business_numbers SET agent_conversations ="
                    " %(agent_conversations)s WHERE phone_number_id = %(phone_number_id)s"
                )
            case NumberDisplay():
                # A conversation's start may be projected before the number's connection
                # (other topic): the row is made here then, and completed by it.
                statement = (
                    "INSERT INTO {s}.business_numbers (phone_number_id, workspace_id,"
                    " display_phone_number) VALUES (%(phone_number_id)s, %(workspace_id)s,"
                    " %(display_phone_number)s) ON CONFLICT (phone_number_id) DO UPDATE"
                    " SET display_phone_number = EXCLUDED.display_phone_number"
                )
            case MemberRow():
                statement = (
                    "INSERT INTO {s}.members (member_id, workspace_id, name, role, capacity)"
                    " VALUES (%(member_id)s, %(workspace_id)s, %(name)s, %(role)s,"
                    " %(capacity)s) ON CONFLICT (member_id) DO UPDATE SET"
                    " name = EXCLUDED.name, role = EXCLUDED.role, capacity = EXCLUDED.capacity"
                )
            case CredentialRow():
                statement = (
                    "INSERT INTO {s}.member_credentials VALUES (%(member_id)s,"
                    " %(workspace_id)s, %(token_hash)s, %(issued_at)s) ON CONFLICT (member_id)"
                    " DO UPDATE SET token_hash = EXCLUDED.token_hash,"
                    " issued_at = EXCLUDED.issued_at"
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
                    "INSERT INTO {s}.groups (group_id, workspace_id, name, created_at) VALUES"
                    " (%(group_id)s, %(workspace_id)s, %(name)s, %(created_at)s)"
                    " ON CONFLICT DO NOTHING"
                )
            case ActiveFlowRow():
                statement = (
                    "INSERT INTO {s}.active_flows VALUES (%(phone_number_id)s, %(workspace_id)s,"
                    " %(flow_id)s, %(chosen_at)s) ON CONFLICT (phone_number_id) DO UPDATE"
                    " SET flow_id = EXCLUDED.flow_id, chosen_at = EXCLUDED.chosen_at"
                )
            case MemberDetails():
                statement = (
                    "UPDATE {s}.members SET name = %(name)s, role = %(role)s,"
                    " capacity = %(capacity)s WHERE member_id = %(member_id)s"
                )
            case MemberDeactivation():
                statement = "UPDATE {s}.members SET active = false WHERE member_id = %(member_id)s"
            case MemberStatus():
                statement = (
                    "UPDATE {s}.members SET status = %(status)s,"
                    " status_changed_at = %(status_changed_at)s WHERE member_id = %(member_id)s"
                )
            case MemberNotifications():
                statement = (
                    "UPDATE {s}.members SET desktop_notifications = %(desktop_notifications)s,"
                    " sound_notifications = %(sound_notifications)s"
                    " WHERE member_id = %(member_id)s"
                )
            case CannedResponseRow():
                statement = (
                    "INSERT INTO {s}.canned_responses VALUES (%(canned_response_id)s,"
                    " %(workspace_id)s, %(shortcut)s, %(text)s, %(updated_at)s, NULL)"
                    " ON CONFLICT (canned_response_id) DO UPDATE SET shortcut ="
                    " EXCLUDED.shortcut, text = EXCLUDED.text, updated_at = EXCLUDED.updated_at"
                )
            case CannedResponseDeletion():
                statement = (
                    "UPDATE {s}.canned_responses SET deleted_at = %(deleted_at)s"
                    " WHERE canned_response_id = %(canned_response_id)s"
                )
            case GroupName():
                statement = "UPDATE {s}.groups SET name = %(name)s WHERE group_id = %(group_id)s"
            case GroupDeletion():
                statement = (
                    "UPDATE {s}.groups SET deleted_at = %(deleted_at)s"
                    " WHERE group_id = %(group_id)s"
                )
            case GroupMemberRow():
                statement = (
                    "INSERT INTO {s}.group_members VALUES (%(group_id)s, %(member_id)s,"
                    " %(workspace_id)s, %(added_at)s) ON CONFLICT DO NOTHING"
                )
            case GroupMemberRemoval():
                statement = (
                    "DELETE FROM {s}.group_members"
                    " WHERE group_id = %(group_id)s AND member_id = %(member_id)s"
                )
        params: dict[str, Any] = {
            key: Jsonb(value) if isinstance(value, dict) else value
            for key, value in row.__dict__.items()
        }
        cursor.execute(self._sql(statement), params)


def _conversation_ids(envelopes: Iterable[Envelope]) -> list[UUID]:
    """The conversations ``envelopes`` concern, read together at the start of a batch."""
    found: list[UUID] = []
    for envelope in envelopes:
        conversation_id = getattr(envelope.payload, "conversation_id", None)
        if isinstance(conversation_id, UUID):
            found.append(conversation_id)
    return found
