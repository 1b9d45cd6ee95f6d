"""Publish stored events to their Kafka topics in notification order, then record how far.

The position is written only after Kafka acknowledged every record before it, so a crash
between the two publishes some records again on restart; consumers recognise them by event
id and position. One relay runs per store at a time: it holds a Postgres advisory lock for
as long as it runs, and a second relay waits as a hot standby. A database restart drops the
lock with its connection, so after a failure the relay checks that it still holds it and
otherwise takes it again (waiting, if a standby took it meanwhile).

The relay does not poll: a trigger on the store's events table notifies when a transaction
that appended commits (``runtime.store``), which wakes it (``runtime.notify``); a slow
periodic look (``check_seconds``) also checks that it still holds its lock.

A stored event that can never be published (it cannot be read, no topic carries its type,
Kafka refuses it as too large) is parked: a dead letter takes its place in the store, in
the same transaction as the position that passes it, and the relay goes on. Kafka or the
database being away is never a reason to park: the relay waits and sends the same records
again.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID, uuid5

import anyio.to_thread
import structlog
from eventsourcing.persistence import Notification, Tracking

from events.catalogue import topic_of
from events.codec import CodecError, read_header
from events.envelope import Actor, Envelope
from events.operations import StoredEventDeadLettered
from runtime import metrics
from runtime.notify import wait_for
from runtime.outages import outage_of
from runtime.postgres import advisory_lock
from runtime.producer import HealingProducer, KafkaRecord, PublishFailed, RecordUnencodable
from runtime.store import RELAY_TRACKING, EventStore, NewEvent, StreamConflict

log = structlog.get_logger(__name__)
BATCH = 500
MAX_BACKOFF_SECONDS = 5.0
# How long a batch may wait for Kafka's acknowledgements before it is sent again.
ACK_TIMEOUT_SECONDS = 30.0
# How often an idle relay looks for events without being woken, and makes sure it still
# holds its lock (a restarted database drops it).
CHECK_SECONDS = 10.0
# A parked event's bytes travel in its dead letter up to this size; the whole event stays
# in the store. Larger, and the dead letter of a record too large for Kafka would be too.
MAX_PARKED_BYTES = 256 * 1024
PARKED_NAMESPACE = UUID("0f3e8d6a-2b71-4c59-9a1e-6d4b8c2f7e15")


@dataclass(frozen=True)
class Settled:
    """What a batch's outcomes allow: the position to record (everything up to it was
    acknowledged), the index of an event to park there, or the failure to wait out."""

    position: int | None
    park: int | None
    failure: PublishFailed | None


def settle(ids: Sequence[int], outcomes: Sequence[PublishFailed | None]) -> Settled:
    """Walk a batch in store order up to its first failure.

    A permanent failure is parked at its place (the position then passes it); a transient
    one stops the walk, and it and everything after it is sent again later. Nothing after
    the first failure counts, even if acknowledged: the position never skips a record.
    """
    position: int | None = None
    for index, (notification_id, outcome) in enumerate(zip(ids, outcomes, strict=True)):
        if outcome is None:
            position = notification_id
        elif outcome.permanent:
            return Settled(position, index, outcome)
        else:
            return Settled(position, None, outcome)
    return Settled(position, None, None)


class Relay:
    def __init__(
        self,
        name: str,
        store: EventStore,
        producer: HealingProducer,
        *,
        topic_prefix: str,
        wake: asyncio.Event,
        check_seconds: float = CHECK_SECONDS,
        ack_timeout: float = ACK_TIMEOUT_SECONDS,
    ) -> None:
        self.name = name
        self.store = store
        self.producer = producer
        self.topic_prefix = topic_prefix
        self.wake = wake  # set when the store's events table grew (or to look anyway)
        self.check_seconds = check_seconds
        self.ack_timeout = ack_timeout
        self.progress = metrics.RelayProgress(name)

    async def run(self, conninfo: str, lock_key: str) -> None:
        """Publish forever (until cancelled), holding this store's relay lock."""
        delay = 0.0
        while True:
            try:
                async with advisory_lock(conninfo, lock_key, holder="relay") as lock:
                    log.info("relay active", store=self.name)
                    self.progress.active = True
                    delay = 0.0
                    try:
                        await self._publish_while(lock)
                    finally:
                        self.progress.active = False
                    log.warning("relay lost its lock; taking it again", store=self.name)
            except Exception as error:
                if outage_of(error) is None:
                    raise
                delay = min(max(delay * 2, 0.2), MAX_BACKOFF_SECONDS)
                log.error(
                    "relay cannot take its lock; retrying",
                    store=self.name,
                    error=repr(error),
                    delay=delay,
                )
                await asyncio.sleep(delay)

    async def _publish_while(self, lock: advisory_lock) -> None:
        """Publish whenever woken (or every ``check_seconds``) until the lock is found lost."""
        delay = 0.0
        while True:
            self.wake.clear()  # a commit after this look wakes the next one
            try:
                sent = await self.publish_pending()
            except Exception as error:
                # Kafka or Postgres away: the records not acknowledged are sent again once
                # they are back (consumers recognise the re-sends).
                delay = min(max(delay * 2, 0.2), MAX_BACKOFF_SECONDS)
                log.error("relay failed; retrying", store=self.name, error=repr(error), delay=delay)
                await asyncio.sleep(delay)
                if not await lock.held():
                    return
                continue
            delay = 0.0
            if sent:
                continue  # there may be more: look again at once
            if not await wait_for(self.wake, self.check_seconds) and not await lock.held():
                return

    async def publish_pending(self) -> int:
        """Publish one batch after the recorded position; how many events it passed."""
        position = await anyio.to_thread.run_sync(self.store.position, RELAY_TRACKING) or 0
        batch = await anyio.to_thread.run_sync(self.store.notifications, position, BATCH)
        passed = await self._publish(batch)
        if len(batch) < BATCH:
            # The batch held everything stored after the position when it was read.
            self.progress.lag = len(batch) - passed
        else:
            self.progress.lag = await anyio.to_thread.run_sync(
                self.store.count_after, batch[passed - 1].id if passed else position
            )
        return passed

    async def _publish(self, batch: Sequence[Notification]) -> int:
        if not batch:
            return 0
        records, unreadable = self._records(batch)
        outcomes = await self.producer.send(records, within=self.ack_timeout)
        if unreadable is not None:
            outcomes.append(unreadable)
        step = settle([notification.id for notification in batch[: len(outcomes)]], outcomes)
        if step.park is not None:
            assert step.failure is not None
            await anyio.to_thread.run_sync(self._park, batch[step.park], str(step.failure))
            return step.park + 1
        if step.position is not None:
            await anyio.to_thread.run_sync(
                self.store.recorder.insert_tracking, Tracking(RELAY_TRACKING, step.position)
            )
            log.debug("relayed", store=self.name, position=step.position)
        if step.failure is not None:
            raise step.failure
        return len(batch)

    def _records(
        self, batch: Sequence[Notification]
    ) -> tuple[list[KafkaRecord], RecordUnencodable | None]:
        """The batch's records up to the first event that cannot be made one (and why not)."""
        records: list[KafkaRecord] = []
        for notification in batch:
            try:
                header = read_header(notification.state)
                topic = topic_of(header.event_type).qualified(self.topic_prefix)
            except (CodecError, LookupError) as error:
                return records, RecordUnencodable(f"{type(error).__name__}: {error}")
            if header.event_type != notification.topic:
                reason = f"stored as {notification.topic!r} but reads {header.event_type!r}"
                return records, RecordUnencodable(reason)
            records.append(
                KafkaRecord(
                    topic=topic,
                    key=header.stream_id.encode(),
                    value=notification.state,
                    headers=header.kafka_headers(),
                )
            )
        return records, None

    def _park(self, notification: Notification, reason: str) -> None:
        """Put a dead letter in the event's place: stored with the position that passes it."""
        log.error(
            "stored event dead-lettered",
            store=self.name,
            notification_id=notification.id,
            reason=reason,
        )
        metrics.DEAD_LETTERS.labels("stored_event", self.name).inc()
        tracking = Tracking(RELAY_TRACKING, notification.id)
        try:
            self.store.append([parked_event(self.name, notification, reason)], tracking)
        except StreamConflict:  # parked before, its position not recorded: move on now
            self.store.recorder.insert_tracking(tracking)


def parked_event(store: str, notification: Notification, reason: str) -> NewEvent:
    """The dead letter of a stored event; its id derives from the store and the place."""
    event_id = uuid5(PARKED_NAMESPACE, f"{store}:{notification.id}")
    try:
        stream_id: str | None = read_header(notification.state).stream_id
    except CodecError:
        stream_id = None
    # A dead letter that could not be published itself is parked without its bytes, so
    # parking always ends.
    kept = 0 if notification.topic == StoredEventDeadLettered.event_type else MAX_PARKED_BYTES
    payload = StoredEventDeadLettered(
        store=store,
        notification_id=notification.id,
        stored_type=notification.topic,
        stream_id=stream_id,
        value_base64=base64.b64encode(notification.state[:kept]).decode(),
        value_bytes=len(notification.state),
        reason=reason[:2000],
    )
    envelope = Envelope.wrap(
        payload,
        event_id=event_id,
        stream_id=stream_id or "",
        workspace_id=None,
        occurred_at=datetime.now(UTC),
        correlation_id=event_id,
        causation_id=None,
        actor=Actor(kind="system", id=f"relay:{store}"),
    )
    return NewEvent(originator_id=event_id, originator_version=1, envelope=envelope)
