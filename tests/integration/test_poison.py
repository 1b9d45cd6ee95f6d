"""Poison in the relay and the expiry timer: parked with its reason, the rest goes on.

A stored event the relay can never publish (unreadable, of a type no topic carries, too large
for Kafka) and a due deadline the timer can never fire used to be retried forever, holding up
everything behind them. Real PostgreSQL stores, the real broker, the real relay and timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import anyio.to_thread
import pytest
from eventsourcing.persistence import StoredEvent

from events.base import Payload
from events.catalogue import DEAD_LETTERS, build_registry
from events.codec import encode
from events.envelope import Actor, Envelope
from events.expiry import ConversationExpired, DeadlineSet
from events.operations import DeadlineDeadLettered, RecordDeadLettered, StoredEventDeadLettered
from runtime.postgres import open_datastore, open_recorder
from runtime.relay.app import run_relays
from runtime.store import RELAY_TRACKING, EventStore, NewEvent
from services.expiry.decide import deadline_stream
from services.expiry.handlers import DeadlineFirer
from services.expiry.recorder import ExpiryRecorder
from services.expiry.timer import ExpiryTimer
from services.settings import Settings
from tests.harness import eventually, query, topic_records

pytestmark = pytest.mark.integration
REGISTRY = build_registry()
NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


def stored(payload: Payload, stream: UUID, version: int = 1, **fields: Any) -> NewEvent:
    event_id = uuid4()
    envelope = Envelope.wrap(
        payload,
        event_id=event_id,
        stream_id=fields.get("stream_id", str(stream)),
        workspace_id=fields.get("workspace_id"),
        occurred_at=NOW,
        correlation_id=event_id,
        causation_id=None,
        actor=Actor(kind="system", id="test"),
    )
    return NewEvent(stream, version, envelope)


def dead_letter(reason: str, value: str = "e30=") -> RecordDeadLettered:
    return RecordDeadLettered(
        consumer="test",
        source_topic="whatsapp.inbound",
        source_partition=0,
        source_offset=0,
        key=None,
        value_base64=value,
        reason=reason,
    )


def raw(topic: str, state: bytes) -> StoredEvent:
    return StoredEvent(originator_id=uuid4(), originator_version=1, topic=topic, state=state)


@contextlib.asynccontextmanager
async def running(work: Callable[[], Any]) -> AsyncIterator[None]:
    task = asyncio.create_task(work())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_the_relay_parks_what_it_can_never_publish_and_publishes_what_follows(
    settings: Settings,
) -> None:
    datastore = await anyio.to_thread.run_sync(
        functools.partial(open_datastore, settings, settings.schema("directory"), pool_size=2)
    )
    try:
        store = await anyio.to_thread.run_sync(EventStore.create, settings, datastore, REGISTRY)
        unknown = orjson_envelope("nobody.carries_this")
        huge = stored(dead_letter("huge", value="A" * 1_200_000), uuid4())  # > 1 MiB request

        def fill() -> None:
            store.append([stored(dead_letter("before"), uuid4())], None)
            store.recorder.insert_events([raw("directory.workspace_created", b"{not json")])
            store.recorder.insert_events([raw("nobody.carries_this", unknown)])
            store.append([huge], None)
            store.append([stored(dead_letter("after"), uuid4())], None)

        await anyio.to_thread.run_sync(fill)
        async with running(lambda: run_relays(settings, stores=("directory",))):
            records = await eventually(
                lambda: topic_records(settings, DEAD_LETTERS),
                lambda found: len(found) >= 5,
                within=30,
            )
            # Five events and the three dead letters, all passed.
            await eventually(lambda: relay_position(settings), lambda n: n == 8)
    finally:
        datastore.close()

    published = [r.payload.reason for r in records if isinstance(r.payload, RecordDeadLettered)]
    assert published == ["before", "after"]
    parked = [r.payload for r in records if isinstance(r.payload, StoredEventDeadLettered)]
    assert [(p.stored_type, p.store) for p in parked] == [
        ("directory.workspace_created", "directory"),
        ("nobody.carries_this", "directory"),
        (RecordDeadLettered.event_type, "directory"),
    ]
    unreadable, untyped, too_large = parked
    assert "not JSON" in unreadable.reason
    assert "no topic carries 'nobody.carries_this'" in untyped.reason
    assert "MessageSizeTooLargeError" in too_large.reason
    # The whole event stays in the store; its dead letter carries a bounded part of it.
    assert too_large.value_bytes > 1_200_000
    assert len(too_large.value_base64) < 400_000


async def relay_position(settings: Settings) -> int | None:
    rows = await query(
        settings,
        "directory",
        "SELECT max(notification_id) AS n FROM {s}.tracking WHERE application_name = %s",
        RELAY_TRACKING,
    )
    position: int | None = rows[0]["n"]
    return position


def orjson_envelope(event_type: str) -> bytes:
    """A well-formed record of a type this version does not know."""
    record = encode(stored(dead_letter("x"), uuid4()).envelope)
    return record.replace(RecordDeadLettered.event_type.encode(), event_type.encode())


class Later:
    """The wall clock a day ahead: every deadline set for now is due."""

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(days=1)


async def test_the_timer_gives_up_a_deadline_it_cannot_fire_and_fires_the_others(
    settings: Settings,
) -> None:
    recorder = await anyio.to_thread.run_sync(open_recorder, settings, "expiry", ExpiryRecorder)
    store = EventStore(recorder, REGISTRY)
    poisoned, healthy = uuid4(), uuid4()

    def deadline(conversation: UUID) -> NewEvent:
        return stored(
            DeadlineSet(
                conversation_id=conversation,
                workspace_id=uuid4(),
                phone_number_id="480112093385611",
                contact_wa_id="573154440021",
                deadline=datetime.now(UTC),
                latest=datetime.now(UTC) + timedelta(days=1),
                cause="meta_24h",
            ),
            deadline_stream(conversation),
        )

    def fill() -> None:
        store.append([deadline(poisoned), deadline(healthy)], None)
        # A later event of the poisoned stream that this version cannot read.
        recorder.insert_events(
            [
                StoredEvent(
                    originator_id=deadline_stream(poisoned),
                    originator_version=2,
                    topic="expiry.from_the_future",
                    state=b'{"event_type": "expiry.from_the_future"}',
                )
            ]
        )

    await anyio.to_thread.run_sync(fill)
    timer = ExpiryTimer(recorder, DeadlineFirer(store), Later())
    try:
        async with running(
            lambda: timer.run(settings.database().conninfo(), f"timer-{settings.schema('x')}")
        ):
            await eventually(
                lambda: query(settings, "expiry", "SELECT * FROM {s}.deadlines"),
                lambda rows: rows == [],
                within=20,
            )
            fired = [e.payload for e in store.load(deadline_stream(healthy)).envelopes]
            parked = await eventually(
                lambda: query(
                    settings,
                    "expiry",
                    "SELECT state FROM {s}.events WHERE topic = %s",
                    DeadlineDeadLettered.event_type,
                ),
                lambda rows: len(rows) == 1,
            )
    finally:
        recorder.datastore.close()
    assert any(isinstance(payload, ConversationExpired) for payload in fired)
    [row] = parked
    reason = bytes(row["state"]).decode()
    assert str(poisoned) in reason
    assert "after 3 attempts" in reason
    assert "expiry.from_the_future" in reason
