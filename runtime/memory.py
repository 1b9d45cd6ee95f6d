"""A store in memory, on the eventsourcing library's POPO recorder: handlers tested without I/O.

:class:`MemoryStore` offers what ``runtime.store.EventStore`` offers the runtime (units of
work, positions, handled ids), so a service's handler runs unchanged on either; its commit
checks versions and positions as PostgreSQL's constraints do, and writes nothing on a
conflict. A service whose handler reads views gives it their in-memory implementation.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError, StoredEvent, Tracking
from eventsourcing.popo import POPOProcessRecorder

from events.codec import Registry, decode
from events.envelope import Envelope
from runtime.decider import DEFAULT_CACHE_SIZE, StreamCache
from runtime.store import AlreadyTracked, StoredStream, StreamConflict
from runtime.work import StagedWork


class MemoryStore:
    def __init__(self, registry: Registry, *, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        self.registry = registry
        self.recorder = POPOProcessRecorder()
        self.cache = StreamCache(cache_size)
        self.handled: dict[str, set[UUID]] = {}
        # Views kept in memory, by name: what a service's in-memory view implementation reads
        # and writes through ``MemoryWork.table``.
        self.tables: dict[str, dict[Any, Any]] = {}

    def another_process(self) -> MemoryStore:
        """The same data as another process sees it: shared events, positions, handled ids
        and views, but a cache of its own (so it can be out of date, as a replica's is)."""
        other = MemoryStore(self.registry, cache_size=self.cache.size)
        other.recorder = self.recorder
        other.handled = self.handled
        other.tables = self.tables
        return other

    @contextmanager
    def work(self) -> Iterator[MemoryWork]:
        work = MemoryWork(self)
        try:
            yield work
        finally:
            work.close()

    def load(self, originator_id: UUID) -> StoredStream:
        stored = self.recorder.select_events(originator_id)
        return StoredStream(
            originator_id=originator_id,
            version=stored[-1].originator_version if stored else 0,
            envelopes=tuple(decode(item.state, self.registry) for item in stored),
        )

    def events(self) -> list[Envelope]:
        """Every stored event, in store order (what the relay would publish)."""
        return [
            decode(notification.state, self.registry)
            for notification in self.recorder.select_notifications(start=None, limit=10**9)
        ]

    def position(self, tracking_name: str) -> int | None:
        position: int | None = self.recorder.max_tracking_id(tracking_name)
        return position

    def positions(self, tracking_names: Iterable[str]) -> dict[str, int | None]:
        return {name: self.position(name) for name in sorted(set(tracking_names))}


class MemoryWork(StagedWork):
    def __init__(self, store: MemoryStore) -> None:
        super().__init__(store.cache, store.registry)
        self.store = store
        self._tables: dict[str, dict[Any, Any]] = {}

    def table(self, name: str) -> dict[Any, Any]:
        """A view's rows as this unit of work sees them: its writes become the store's when
        (and only if) it commits."""
        if name not in self._tables:
            self._tables[name] = dict(self.store.tables.get(name, {}))
        return self._tables[name]

    def positions(self, names: Iterable[str]) -> dict[str, int | None]:
        return {name: self.store.position(name) for name in sorted(set(names))}

    def handled_among(self, consumer: str, event_ids: Iterable[UUID]) -> set[UUID]:
        return self.store.handled.get(consumer, set()) & set(event_ids)

    def close(self) -> None:
        self.ended()

    def _load(self, stream_id: UUID) -> tuple[int, list[Envelope]]:
        stored = self.store.recorder.select_events(stream_id)
        version = stored[-1].originator_version if stored else 0
        return version, [decode(item.state, self.registry) for item in stored]

    def _load_version(self, stream_id: UUID) -> int:
        stored = self.store.recorder.select_events(stream_id, desc=True, limit=1)
        return stored[0].originator_version if stored else 0

    def _flush(self) -> None:
        recorder = self.store.recorder
        stored: Sequence[StoredEvent] = [event.stored() for event in self._events]
        trackings = [Tracking(name, position) for name, position in self._positions.items()]
        # The recorder's own lock and checks, then its own writes: all or nothing.
        with recorder._database_lock:
            try:
                recorder._assert_uniqueness(stored)
            except IntegrityError as error:
                raise StreamConflict(str(error)) from None
            try:
                for tracking in trackings:
                    recorder._assert_tracking_uniqueness(tracking)
            except IntegrityError as error:
                raise AlreadyTracked(str(error)) from None
            for consumer, ids in self._handled.items():
                if self.store.handled.get(consumer, set()) & set(ids):
                    raise AlreadyTracked(f"{consumer} handled some of these records before")
            recorder._update_table(stored)
            for tracking in trackings:
                recorder._insert_tracking(tracking)
            for consumer, ids in self._handled.items():
                self.store.handled.setdefault(consumer, set()).update(ids)
            self.store.tables.update(self._tables)
