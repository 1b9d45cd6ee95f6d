"""The dispatcher's store: its event store plus two views, in the ``dispatcher`` schema.

* ``windows`` — conversation id -> the time of the customer's last message, from
  ``conversation.events``, written in the unit of work of the records that move it (so with
  their positions).
* ``messages`` — one row per outbound message: the request as queued (a retry needs its
  body; the request is not an event of this store) and the message's status, with the
  partition whose record last moved it. The status is derived from the events *inside the
  transaction that stores them* (``_insert_events``, which the unit of work calls as it
  stages them), so the view can never disagree with the streams; the dispatcher uses it to
  find, on a partition assignment, the sends that a crash left without a result.

The views are read and written through a unit of work's cursor (``runtime.work.cursor_of``)
while a batch is handled; the methods that open a transaction of their own serve what runs
outside a batch (settling sends on an assignment, seeding a store in tests).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent, Tracking
from eventsourcing.postgres import PostgresDatastore
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

from events.outbound import (
    OutboundMessageFailed,
    OutboundMessageRefused,
    OutboundMessageSent,
    OutboundOutcomeUnknown,
    OutboundSendAttempted,
)
from runtime.store import StoreRecorder

STATUS_OF_EVENT = {
    OutboundSendAttempted.event_type: "attempting",
    OutboundMessageSent.event_type: "sent",
    OutboundMessageFailed.event_type: "failed",
    OutboundOutcomeUnknown.event_type: "unknown",
    OutboundMessageRefused.event_type: "refused",
}


class DispatcherRecorder(StoreRecorder):
    """The dispatcher's events and tracking, plus the ``windows`` and ``messages`` views."""

    def __init__(self, datastore: PostgresDatastore) -> None:
        super().__init__(datastore)
        schema = Identifier(datastore.schema)
        self.windows_table = SQL("{}.{}").format(schema, Identifier("windows"))
        self.messages_table = SQL("{}.{}").format(schema, Identifier("messages"))
        self.sql_create_statements.extend(
            [
                SQL(
                    "CREATE TABLE IF NOT EXISTS {} ("
                    "conversation_id uuid PRIMARY KEY, "
                    "last_customer_message_at timestamptz NOT NULL)"
                ).format(self.windows_table),
                SQL(
                    "CREATE TABLE IF NOT EXISTS {} ("
                    "message_id uuid PRIMARY KEY, "
                    "conversation_id uuid NOT NULL, "
                    "status text NOT NULL, "
                    "source text NOT NULL, "
                    "request bytea NOT NULL)"
                ).format(self.messages_table),
                # Only in-flight sends are looked up by partition, on each assignment.
                SQL(
                    "CREATE INDEX IF NOT EXISTS messages_in_flight ON {} (source) "
                    "WHERE status = 'attempting'"
                ).format(self.messages_table),
            ]
        )

    # -- windows ---------------------------------------------------------------------------

    def window(self, cursor: Cursor[DictRow], conversation_id: UUID) -> datetime | None:
        """When the customer last wrote in the conversation, as far as the view has read."""
        cursor.execute(
            SQL("SELECT last_customer_message_at FROM {} WHERE conversation_id = %s").format(
                self.windows_table
            ),
            (conversation_id,),
            prepare=True,
        )
        row = cursor.fetchone()
        if row is None:
            return None
        moment: datetime = row["last_customer_message_at"]
        return moment

    def record_window(
        self, cursor: Cursor[DictRow], conversation_id: UUID, sent_at: datetime
    ) -> None:
        """Move the window forward (never back: records may be replayed)."""
        cursor.execute(
            SQL(
                "INSERT INTO {0} (conversation_id, last_customer_message_at) "
                "VALUES (%s, %s) ON CONFLICT (conversation_id) DO UPDATE SET "
                "last_customer_message_at = GREATEST("
                "{0}.last_customer_message_at, EXCLUDED.last_customer_message_at)"
            ).format(self.windows_table),
            (conversation_id, sent_at),
            prepare=True,
        )

    # -- messages --------------------------------------------------------------------------

    def remember_request(
        self,
        cursor: Cursor[DictRow],
        message_id: UUID,
        conversation_id: UUID,
        source: str,
        request: bytes,
    ) -> None:
        """Keep the request before anything is decided on it (a second time changes nothing).

        In the unit of work of the record that queued it: a crash before it commits leaves
        nothing, and the redelivered record decides as if it were the first.
        """
        cursor.execute(
            SQL(
                "INSERT INTO {} (message_id, conversation_id, status, source, request) "
                "VALUES (%s, %s, 'new', %s, %s) ON CONFLICT (message_id) DO NOTHING"
            ).format(self.messages_table),
            (message_id, conversation_id, source, request),
            prepare=True,
        )

    def moved_by(self, cursor: Cursor[DictRow], message_id: UUID, source: str) -> None:
        """The partition whose record last moved the message (``in_flight`` looks it up)."""
        cursor.execute(
            SQL("UPDATE {} SET source = %s WHERE message_id = %s").format(self.messages_table),
            (source, message_id),
            prepare=True,
        )

    def request(self, cursor: Cursor[DictRow], message_id: UUID) -> bytes | None:
        cursor.execute(
            SQL("SELECT request FROM {} WHERE message_id = %s").format(self.messages_table),
            (message_id,),
            prepare=True,
        )
        row = cursor.fetchone()
        return None if row is None else bytes(row["request"])

    def in_flight(self, sources: Iterable[str]) -> list[UUID]:
        """Messages whose last attempt has no result, moved last by these partitions."""
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                SQL(
                    "SELECT message_id FROM {} WHERE status = 'attempting' AND source = ANY(%s)"
                    " ORDER BY message_id"
                ).format(self.messages_table),
                (list(sources),),
            )
            return [UUID(str(row["message_id"])) for row in cursor.fetchall()]

    def _insert_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        """Within the append's transaction: the position, then each message's new status."""
        super()._insert_events(curs, stored_events, **kwargs)
        tracking: Tracking | None = kwargs.get("tracking")
        for event in stored_events:
            status = STATUS_OF_EVENT.get(event.topic)
            if status is None:
                continue  # a dead letter, which is no message's
            if tracking is None:
                curs.execute(
                    SQL("UPDATE {} SET status = %s WHERE message_id = %s").format(
                        self.messages_table
                    ),
                    (status, event.originator_id),
                )
            else:
                curs.execute(
                    SQL("UPDATE {} SET status = %s, source = %s WHERE message_id = %s").format(
                        self.messages_table
                    ),
                    (status, tracking.application_name, event.originator_id),
                )
