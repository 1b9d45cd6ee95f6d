"""The unit of work: everything a batch of records does to a store, committed at once.

A unit of work is one transaction on one connection. Handlers read streams and views through
it and stage new events and view rows in it; later records of the same batch see what earlier
ones staged (a stream's state and version, a view row written through its cursor). The
runtime adds each record's position and event id. ``commit()`` then writes, in one
transaction: the events (in the order they were staged, which is the order the relay
publishes them in), the positions of every partition the batch read, and the handled event
ids; on any error nothing is written.

Two implementations share the staging logic: :class:`PostgresWork` on the eventsourcing
library's PostgreSQL recorder (its ``_insert_stored_events`` and ``_insert_tracking`` take a
cursor, so they run in our transaction; its ``_insert_events`` hook derives a service's
views from its events in the same transaction) and ``runtime.memory.MemoryWork`` on the
library's in-memory (POPO) recorder, for tests without I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING, Protocol, TypeVar
from uuid import UUID

import psycopg
from eventsourcing.persistence import IntegrityError, StoredEvent, Tracking
from psycopg import Connection, Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

from events.codec import Registry, decode
from events.envelope import Envelope
from runtime.decider import Decider, Folded, StreamCache
from runtime.store import AlreadyTracked, NewEvent, StreamConflict

if TYPE_CHECKING:
    from eventsourcing.postgres import PostgresProcessRecorder

    from runtime.store import EventStore

S = TypeVar("S")


class Work(Protocol):
    """What a handler may do within a unit of work."""

    def fold(self, decider: Decider[S], stream_id: UUID) -> S:
        """The stream's state as of this unit of work (its staged events included)."""
        ...

    def version(self, stream_id: UUID) -> int:
        """The stream's version as of this unit of work (0: no such stream)."""
        ...

    def emit(self, stream_id: UUID, envelopes: Sequence[Envelope]) -> None:
        """Stage ``envelopes`` as the stream's next events (numbered after its version)."""
        ...

    def append(self, events: Sequence[NewEvent]) -> None:
        """Stage events numbered by the caller; a taken version is a :class:`StreamConflict`."""
        ...

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once this unit of work has committed (never if it did not)."""
        ...

    def before_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` as the unit of work commits, after every record of the batch was
        handled and before anything is written: a handler that stages a batch's writes
        set-based (the projector) sends them here. Raising fails the whole batch."""
        ...

    def after_rollback(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` when this unit of work ends without committing (in its thread):
        to undo what a handler noted in memory for a commit that did not happen."""
        ...


class StagedWork:
    """The staging every unit of work shares; subclasses read and write the store."""

    def __init__(self, cache: StreamCache, registry: Registry) -> None:
        self.cache = cache
        self.registry = registry
        self._streams: dict[UUID, Folded] = {}  # read or written by this unit of work
        self._staged: dict[UUID, list[Envelope]] = {}  # events staged, by stream
        self._events: list[NewEvent] = []
        self._positions: dict[str, int] = {}
        self._handled: dict[str, list[UUID]] = {}
        self._after_commit: list[Callable[[], None]] = []
        self._before_commit: list[Callable[[], None]] = []
        self._after_rollback: list[Callable[[], None]] = []
        self.committed = False

    # -- what handlers use ---------------------------------------------------------------

    def fold(self, decider: Decider[S], stream_id: UUID) -> S:
        known = self._streams.get(stream_id)
        if known is None or known.decider is None or known.decider.name != decider.name:
            known = self._read(decider, stream_id)
            self._streams[stream_id] = known
        state: S = known.state
        return state

    def version(self, stream_id: UUID) -> int:
        known = self._streams.get(stream_id)
        if known is None:
            cached = self.cache.get(stream_id)
            known = cached if cached is not None else Folded(self._load_version(stream_id))
            self._streams[stream_id] = known
        return known.version

    def emit(self, stream_id: UUID, envelopes: Sequence[Envelope]) -> None:
        version = self.version(stream_id)
        self.append(
            [
                NewEvent(stream_id, version + index, envelope)
                for index, envelope in enumerate(envelopes, start=1)
            ]
        )

    def append(self, events: Sequence[NewEvent]) -> None:
        if not events:
            return
        for event in events:
            stream_id = event.originator_id
            expected = self.version(stream_id) + 1
            if event.originator_version != expected:
                raise StreamConflict(
                    f"stream {stream_id} is at version {expected - 1} here,"
                    f" not {event.originator_version - 1}"
                )
            known = self._streams[stream_id]
            state = known.state
            if known.decider is not None:
                state = known.decider.evolve(state, event.envelope.payload)
            self._streams[stream_id] = Folded(event.originator_version, known.decider, state)
            self._staged.setdefault(stream_id, []).append(event.envelope)
        self._events.extend(events)
        self._stage(events)

    def after_commit(self, callback: Callable[[], None]) -> None:
        self._after_commit.append(callback)

    def before_commit(self, callback: Callable[[], None]) -> None:
        self._before_commit.append(callback)

    def after_rollback(self, callback: Callable[[], None]) -> None:
        self._after_rollback.append(callback)

    def ended(self) -> None:
        """Called once the unit of work is over: if it did not commit, undo what handlers
        noted for it (``after_rollback``)."""
        if not self.committed:
            callbacks, self._after_rollback = self._after_rollback, []
            for callback in callbacks:
                callback()

    # -- what the runtime uses -------------------------------------------------------------

    @property
    def touched(self) -> set[UUID]:
        """Every stream this unit of work read or wrote (dropped from the cache on a conflict)."""
        return set(self._streams)

    def advance(self, tracking: Tracking) -> None:
        """Record a partition's position (the highest given wins) with this unit of work."""
        current = self._positions.get(tracking.application_name)
        if current is None or tracking.notification_id > current:
            self._positions[tracking.application_name] = tracking.notification_id

    def mark_handled(self, consumer: str, event_id: UUID) -> None:
        self._handled.setdefault(consumer, []).append(event_id)

    def commit(self) -> list[Callable[[], None]]:
        """Write everything staged at once; the callbacks to run now that it is committed.

        Raises :class:`StreamConflict` when a stream moved on meanwhile and
        :class:`AlreadyTracked` when a position did; nothing is written then.
        """
        while self._before_commit:
            self._before_commit.pop(0)()
        self._flush()
        self.committed = True
        self.cache.put_all(self._streams.items())
        return list(self._after_commit)

    # -- for subclasses ----------------------------------------------------------------------

    def _read(self, decider: Decider[S], stream_id: UUID) -> Folded:
        """The stream under ``decider``: from the cache when this unit of work has not touched
        it yet, else from the store, with whatever this unit of work staged for it."""
        known = self._streams.get(stream_id)
        if known is None:
            cached = self.cache.get(stream_id)
            if (
                cached is not None
                and cached.decider is not None
                and cached.decider.name == decider.name
            ):
                return cached
        version, envelopes = self._load(stream_id)
        staged = self._staged.get(stream_id, [])
        if known is not None and version + len(staged) != known.version:
            # Read at one version, now at another: someone else appended meanwhile.
            raise StreamConflict(f"stream {stream_id} moved on while this batch was deciding")
        payloads = [envelope.payload for envelope in (*envelopes, *staged)]
        return Folded(version + len(staged), decider, decider.fold(stream_id, payloads))

    def _load(self, stream_id: UUID) -> tuple[int, list[Envelope]]:
        """The stream's committed version and events."""
        raise NotImplementedError

    def _load_version(self, stream_id: UUID) -> int:
        raise NotImplementedError

    def _stage(self, events: Sequence[NewEvent]) -> None:
        """Called as events are staged (PostgreSQL derives the service's views here)."""

    def _flush(self) -> None:
        raise NotImplementedError


class PostgresWork(StagedWork):
    """A unit of work in one PostgreSQL transaction on one of the store's pooled connections.

    ``cursor`` is the transaction's cursor: a service's views are read and written through
    it, so they commit (or roll back) with the events and positions.
    """

    def __init__(self, store: EventStore, connection: Connection[DictRow]) -> None:
        super().__init__(store.cache, store.registry)
        self.recorder: PostgresProcessRecorder = store.recorder
        self.connection = connection
        self._exits = ExitStack()
        self._exits.enter_context(connection.transaction())
        self.cursor: Cursor[DictRow] = self._exits.enter_context(connection.cursor())
        schema = Identifier(self.recorder.datastore.schema)
        self.schema = self.recorder.datastore.schema
        self._select_stream = SQL(
            "SELECT originator_version, state FROM {}.{} WHERE originator_id = %s"
            " ORDER BY originator_version"
        ).format(schema, Identifier(self.recorder.events_table_name))
        self._select_version = SQL(
            "SELECT max(originator_version) AS version FROM {}.{} WHERE originator_id = %s"
        ).format(schema, Identifier(self.recorder.events_table_name))
        self._tracking_table = SQL("{}.{}").format(
            schema, Identifier(self.recorder.tracking_table_name)
        )
        self._handled_table = SQL("{}.{}").format(schema, Identifier("handled_events"))

    def close(self) -> None:
        """End the transaction: committed if ``commit()`` succeeded, else rolled back."""
        rollback = psycopg.Rollback()
        # psycopg's transaction block swallows Rollback after rolling back; once committed
        # (or after a failed commit), the stack is empty and this does nothing.
        try:
            self._exits.__exit__(type(rollback), rollback, None)
        finally:
            self.ended()

    # -- positions and handled ids, under the partitions' locks -------------------------------

    def positions(self, names: Iterable[str]) -> dict[str, int | None]:
        """The recorded position of each partition, read under a lock per partition held until
        this transaction ends: two replicas handling one partition (a rebalance) take turns,
        and the second finds the first's records handled."""
        wanted = sorted(set(names))
        if not wanted:
            return {}
        self.cursor.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s || name, 0))"
            " FROM unnest(%s::text[]) AS name",
            (f"switchboard-position:{self.schema}:", wanted),
        )
        self.cursor.execute(
            SQL(
                "SELECT application_name, notification_id FROM {} WHERE application_name = ANY(%s)"
            ).format(self._tracking_table),
            (wanted,),
        )
        found = {row["application_name"]: row["notification_id"] for row in self.cursor}
        return {name: found.get(name) for name in wanted}

    def handled_among(self, consumer: str, event_ids: Iterable[UUID]) -> set[UUID]:
        ids = list(set(event_ids))
        if not ids:
            return set()
        self.cursor.execute(
            SQL("SELECT event_id FROM {} WHERE consumer = %s AND event_id = ANY(%s)").format(
                self._handled_table
            ),
            (consumer, ids),
        )
        return {row["event_id"] for row in self.cursor}

    # -- reading and writing ------------------------------------------------------------------

    def _load(self, stream_id: UUID) -> tuple[int, list[Envelope]]:
        self.cursor.execute(self._select_stream, (stream_id,), prepare=True)
        rows = self.cursor.fetchall()
        version = int(rows[-1]["originator_version"]) if rows else 0
        return version, [decode(bytes(row["state"]), self.registry) for row in rows]

    def _load_version(self, stream_id: UUID) -> int:
        self.cursor.execute(self._select_version, (stream_id,), prepare=True)
        row = self.cursor.fetchone()
        return int(row["version"]) if row is not None and row["version"] is not None else 0

    def _stage(self, events: Sequence[NewEvent]) -> None:
        # The recorder's hook derives the service's views from its events (the expiry
        # deadlines, the dispatcher's message statuses, the assignment guards); it runs now,
        # so later records of the batch read those views as these events left them.
        self.recorder._insert_events(self.cursor, [event.stored() for event in events])

    def _flush(self) -> None:
        try:
            if self._events:
                stored: list[StoredEvent] = [event.stored() for event in self._events]
                self.recorder._insert_stored_events(self.cursor, stored)
        except (psycopg.errors.UniqueViolation, IntegrityError) as error:
            raise StreamConflict(str(error)) from None
        try:
            for name, position in sorted(self._positions.items()):
                self.recorder._insert_tracking(self.cursor, Tracking(name, position))
        except (psycopg.errors.UniqueViolation, IntegrityError) as error:
            raise AlreadyTracked(str(error)) from None
        for consumer, ids in self._handled.items():
            self.cursor.execute(
                SQL("INSERT INTO {} (consumer, event_id) SELECT %s, unnest(%s::uuid[])").format(
                    self._handled_table
                ),
                (consumer, ids),
            )
        self._exits.close()  # commits the transaction


def cursor_of(work: Work) -> Cursor[DictRow]:
    """The transaction's cursor of a PostgreSQL unit of work (for a service's SQL views)."""
    if not isinstance(work, PostgresWork):
        raise TypeError(f"a PostgreSQL view was given a {type(work).__name__}")
    return work.cursor
