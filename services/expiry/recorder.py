"""The expiry store: its event store plus the ``deadlines`` view, in the ``expiry`` schema.

``deadlines`` holds one row per conversation whose deadline is pending: its due time, indexed,
so the timer finds the earliest ones with one ``ORDER BY due_at LIMIT n`` query however many
conversations are open. The rows are derived from the events *inside the transaction that
stores them* (``_insert_events``, which the batch runtime's unit of work calls as each event
is staged, and the timer's append as it stores a firing): a deadline set, moved, cancelled,
fired or given up (its dead letter) changes the view atomically with the stream and the
tracking position, so the view never disagrees with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresDatastore
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

from events.expiry import ConversationExpired, DeadlineCancelled, DeadlineSet
from events.operations import DeadlineDeadLettered
from runtime.store import StoreRecorder

ENDS_DEADLINE = (DeadlineCancelled.event_type, ConversationExpired.event_type)


class ExpiryRecorder(StoreRecorder):
    """The expiry service's events, tracking and handled ids, plus the ``deadlines`` view."""

    def __init__(self, datastore: PostgresDatastore) -> None:
        super().__init__(datastore)
        self.deadlines_table = SQL("{}.{}").format(
            Identifier(datastore.schema), Identifier("deadlines")
        )
        self.sql_create_statements.extend(
            [
                SQL(
                    "CREATE TABLE IF NOT EXISTS {} ("
                    "conversation_id uuid PRIMARY KEY, "
                    "due_at timestamptz NOT NULL)"
                ).format(self.deadlines_table),
                SQL("CREATE INDEX IF NOT EXISTS deadlines_due_at ON {} (due_at)").format(
                    self.deadlines_table
                ),
            ]
        )

    def due(self, now: datetime, limit: int) -> list[tuple[UUID, datetime]]:
        """The conversations whose deadline is ``now`` or earlier, with it, earliest first."""
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                SQL(
                    "SELECT conversation_id, due_at FROM {} WHERE due_at <= %s"
                    " ORDER BY due_at LIMIT %s"
                ).format(self.deadlines_table),
                (now, limit),
            )
            return [(UUID(str(row["conversation_id"])), row["due_at"]) for row in cursor.fetchall()]

    def next_due(self) -> datetime | None:
        """The earliest pending deadline, if any."""
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                SQL("SELECT due_at FROM {} ORDER BY due_at LIMIT 1").format(self.deadlines_table)
            )
            row = cursor.fetchone()
        if row is None:
            return None
        due: datetime = row["due_at"]
        return due

    def _insert_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        """Within the append's transaction: the events, then the deadlines they move."""
        super()._insert_events(curs, stored_events, **kwargs)
        for event in stored_events:
            if event.topic == DeadlineSet.event_type:
                payload = orjson.loads(event.state)["payload"]
                curs.execute(
                    SQL(
                        "INSERT INTO {} (conversation_id, due_at) VALUES (%s, %s) "
                        "ON CONFLICT (conversation_id) DO UPDATE SET due_at = EXCLUDED.due_at"
                    ).format(self.deadlines_table),
                    (
                        UUID(payload["conversation_id"]),
                        datetime.fromisoformat(payload["deadline"]),
                    ),
                )
            elif event.topic in ENDS_DEADLINE:
                payload = orjson.loads(event.state)["payload"]
                curs.execute(
                    SQL("DELETE FROM {} WHERE conversation_id = %s").format(self.deadlines_table),
                    (UUID(payload["conversation_id"]),),
                )
            elif event.topic == DeadlineDeadLettered.event_type:
                # Given up by the timer: only that deadline, not one set since.
                payload = orjson.loads(event.state)["payload"]
                curs.execute(
                    SQL("DELETE FROM {} WHERE conversation_id = %s AND due_at = %s").format(
                        self.deadlines_table
                    ),
                    (UUID(payload["conversation_id"]), datetime.fromisoformat(payload["due_at"])),
                )
