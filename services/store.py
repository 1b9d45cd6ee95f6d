"""A service's own event store: the eventsourcing library's process recorder, in its schema.

Events are stored as the codec's bytes, under the aggregate (originator) the service
decides on, and each append carries the tracking position of the record that caused it,
in one transaction. The stored order (notification id) is what the relay publishes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from eventsourcing.persistence import IntegrityError, Notification, StoredEvent, Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresProcessRecorder

from events.codec import Registry, decode, encode
from events.envelope import Envelope
from services.postgres import create_tables
from services.settings import Settings

RELAY_TRACKING = "__relay__"
EVENTS_TABLE = "events"
TRACKING_TABLE = "tracking"


class AlreadyTracked(Exception):
    """The record's position is already recorded: it was handled before (a redelivery)."""


class StreamConflict(Exception):
    """Another writer appended to one of the streams first; reload and decide again."""


@dataclass(frozen=True)
class NewEvent:
    originator_id: UUID
    originator_version: int
    envelope: Envelope


@dataclass(frozen=True)
class StoredStream:
    originator_id: UUID
    version: int
    envelopes: tuple[Envelope, ...]


class EventStore:
    """Append with tracking, load a stream, read the notification log."""

    def __init__(self, recorder: PostgresProcessRecorder, registry: Registry) -> None:
        self.recorder = recorder
        self.registry = registry

    @classmethod
    def create(
        cls, settings: Settings, datastore: PostgresDatastore, registry: Registry
    ) -> EventStore:
        """A store with the plain recorder (services with views use a recorder subclass)."""
        recorder = PostgresProcessRecorder(
            datastore, events_table_name=EVENTS_TABLE, tracking_table_name=TRACKING_TABLE
        )
        create_tables(settings, recorder)
        return cls(recorder, registry)

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
        stored = [
            StoredEvent(
                originator_id=event.originator_id,
                originator_version=event.originator_version,
                topic=event.envelope.event_type,
                state=encode(event.envelope),
            )
            for event in events
        ]
        try:
            self.recorder.insert_events(stored, tracking=tracking)
        except IntegrityError:
            if tracking is not None and self.recorder.has_tracking_id(
                tracking.application_name, tracking.notification_id
            ):
                raise AlreadyTracked(tracking.application_name) from None
            raise StreamConflict(", ".join(str(event.originator_id) for event in events)) from None

    def position(self, tracking_name: str) -> int | None:
        position: int | None = self.recorder.max_tracking_id(tracking_name)
        return position

    def notifications(self, after: int, limit: int) -> Sequence[Notification]:
        """Stored events after notification id ``after``, in store order."""
        batch: Sequence[Notification] = self.recorder.select_notifications(
            start=after, limit=limit, inclusive_of_start=False
        )
        return batch
