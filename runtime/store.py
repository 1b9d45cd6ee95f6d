"""A service's own event store: the eventsourcing library's process recorder, in its schema.

Events are stored as the codec's bytes, under the aggregate (originator) the service decides
on, and each commit carries the positions of the records that caused it. The stored order
(notification id) is what the relay publishes; a trigger on the events table wakes it
(``NOTIFY switchboard_events`` with the schema's name) when a transaction that appended
commits.

Besides the library's ``events`` and ``tracking`` tables, every store has ``handled_events``:
the ids of the records each of its consumers handled, written in the same transaction as
their effects, so a record the relay publishes again (same event id, a new offset) changes
nothing (``runtime.consumer``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError, Notification, StoredEvent, Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresProcessRecorder
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier, Literal

from events.codec import Registry, decode, encode
from events.envelope import Envelope
from runtime.config import Connections
from runtime.decider import DEFAULT_CACHE_SIZE, StreamCache
from runtime.postgres import create_tables

if TYPE_CHECKING:
    from collections.abc import Iterator

    from runtime.work import PostgresWork

RELAY_TRACKING = "__relay__"
EVENTS_TABLE = "events"
TRACKING_TABLE = "tracking"
HANDLED_TABLE = "handled_events"
# One channel for every store; the payload names the schema whose events table grew.
EVENTS_CHANNEL = "switchboard_events"


class AlreadyTracked(Exception):
    """The record's position is already recorded: it was handled before (a redelivery)."""


class StreamConflict(Exception):
    """Another writer appended to one of the streams first; reload and decide again."""


@dataclass(frozen=True)
class NewEvent:
    originator_id: UUID
    originator_version: int
    envelope: Envelope

    def stored(self) -> StoredEvent:
        return StoredEvent(
            originator_id=self.originator_id,
            originator_version=self.originator_version,
            topic=self.envelope.event_type,
            state=encode(self.envelope),
        )


@dataclass(frozen=True)
class StoredStream:
    originator_id: UUID
    version: int
    envelopes: tuple[Envelope, ...]


class StoreRecorder(PostgresProcessRecorder):
    """The library's process recorder with switchboard's additions: the handled-events table
    and the trigger that wakes the relay. Services with views subclass it."""

    def __init__(self, datastore: PostgresDatastore) -> None:
        super().__init__(
            datastore, events_table_name=EVENTS_TABLE, tracking_table_name=TRACKING_TABLE
        )
        schema = Identifier(datastore.schema)
        self.handled_table = SQL("{}.{}").format(schema, Identifier(HANDLED_TABLE))
        self.sql_create_statements.extend(
            [
                SQL(
                    "CREATE TABLE IF NOT EXISTS {} (consumer text NOT NULL, event_id uuid NOT"
                    " NULL, PRIMARY KEY (consumer, event_id))"
                ).format(self.handled_table),
                # Statement level: one notification per transaction that appended (PostgreSQL
                # folds identical ones), delivered when it commits.
                SQL(
                    "CREATE OR REPLACE FUNCTION {}.notify_events() RETURNS trigger"
                    " LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_notify({}, TG_TABLE_SCHEMA);"
                    " RETURN NULL; END $$"
                ).format(schema, Literal(EVENTS_CHANNEL)),
                SQL(
                    "CREATE OR REPLACE TRIGGER events_notify AFTER INSERT ON {}.{}"
                    " FOR EACH STATEMENT EXECUTE FUNCTION {}.notify_events()"
                ).format(schema, Identifier(EVENTS_TABLE), schema),
            ]
        )

    def _notify_channel(self, curs: Cursor[DictRow]) -> None:
        """The library notifies a channel named after the table, the same for every schema
        and without a payload; the trigger above says which store grew instead."""

    def sql(self, statement: str) -> Composed:
        """``statement`` with ``{s}`` standing for this store's schema."""
        return SQL(statement).format(s=Identifier(self.datastore.schema))


class EventStore:
    """A store as a process uses it: units of work, stream loads, the notification log.

    ``work()`` opens a unit of work (one transaction, see ``runtime.work``); ``cache`` holds
    the streams this process decided on lately, for every unit of work of this store.
    """

    def __init__(
        self,
        recorder: PostgresProcessRecorder,
        registry: Registry,
        *,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        self.recorder = recorder
        self.registry = registry
        self.cache = StreamCache(cache_size)

    @classmethod
    def create(
        cls, settings: Connections, datastore: PostgresDatastore, registry: Registry
    ) -> EventStore:
        """A store with the plain recorder (services with views use a recorder subclass)."""
        recorder = StoreRecorder(datastore)
        create_tables(settings, recorder)
        return cls(recorder, registry, cache_size=settings.stream_cache_size)

    @contextmanager
    def work(self) -> Iterator[PostgresWork]:
        """A unit of work on one connection, in one transaction; commit with ``commit()``
        (leaving the block without it rolls everything back)."""
        from runtime.work import PostgresWork

        with self.recorder.datastore.get_connection() as connection:
            work = PostgresWork(self, connection)
            try:
                yield work
            finally:
                work.close()

    def load(self, originator_id: UUID, *, after_version: int | None = None) -> StoredStream:
        stored = self.recorder.select_events(originator_id, gt=after_version)
        version = stored[-1].originator_version if stored else (after_version or 0)
        return StoredStream(
            originator_id=originator_id,
            version=version,
            envelopes=tuple(decode(item.state, self.registry) for item in stored),
        )

    def append(self, events: Sequence[NewEvent], tracking: Tracking | None) -> None:
        """Store ``events`` and ``tracking`` atomically; nothing is stored on any error."""
        try:
            self.recorder.insert_events([event.stored() for event in events], tracking=tracking)
        except IntegrityError:
            if tracking is not None and self.recorder.has_tracking_id(
                tracking.application_name, tracking.notification_id
            ):
                raise AlreadyTracked(tracking.application_name) from None
            raise StreamConflict(", ".join(str(event.originator_id) for event in events)) from None

    def position(self, tracking_name: str) -> int | None:
        position: int | None = self.recorder.max_tracking_id(tracking_name)
        return position

    def positions(self, tracking_names: Iterable[str]) -> dict[str, int | None]:
        """The position of each partition (None: never read), in one query: a consumer of
        ten topics is assigned dozens of partitions at once, and a pooled connection and a
        round trip for each made a busy machine's rebalance take tens of seconds."""
        names = sorted(set(tracking_names))
        if not names:
            return {}
        with self.recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                SQL(
                    "SELECT application_name, max(notification_id) AS position FROM {}.{}"
                    " WHERE application_name = ANY(%s) GROUP BY application_name"
                ).format(
                    Identifier(self.recorder.datastore.schema),
                    Identifier(self.recorder.tracking_table_name),
                ),
                (names,),
            )
            found = {row["application_name"]: row["position"] for row in cursor.fetchall()}
        return {name: found.get(name) for name in names}

    def notifications(self, after: int, limit: int) -> Sequence[Notification]:
        """Stored events after notification id ``after``, in store order."""
        batch: Sequence[Notification] = self.recorder.select_notifications(
            start=after, limit=limit, inclusive_of_start=False
        )
        return batch

    def count_after(self, after: int) -> int:
        """How many stored events have a notification id after ``after`` (the relay's lag)."""
        with self.recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                SQL("SELECT count(*) AS n FROM {}.{} WHERE notification_id > %s").format(
                    Identifier(self.recorder.datastore.schema), Identifier(EVENTS_TABLE)
                ),
                (after,),
            )
            row = first_row(cursor)
        return int(row["n"]) if row is not None else 0


def stored_events(events: Sequence[NewEvent]) -> list[StoredEvent]:
    return [event.stored() for event in events]


def first_row(cursor: Cursor[DictRow]) -> dict[str, Any] | None:
    row: dict[str, Any] | None = cursor.fetchone()
    return row
