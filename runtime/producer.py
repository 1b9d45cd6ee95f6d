"""How every switchboard process writes to Kafka: an idempotent producer that replaces itself.

aiokafka's idempotent producer numbers the batches it sends to each partition, and the broker
accepts only the next number. aiokafka takes the number when a batch leaves its queue, so a
batch that then fails for good leaves a gap: every later batch to that partition is refused
with ``OutOfOrderSequenceNumber``, and the producer never recovers (aio-libs/aiokafka#1017).
A broker restart under load does exactly that: batches waiting for a partition without a
leader expire (``LeaderNotAvailableError``), and the producer is broken from then on. Java's
producer repairs its sequence by bumping its epoch; aiokafka keeps no such repair.

So :class:`HealingProducer` drops its producer after any send that did not end acknowledged
and starts a new one (a new producer id, numbering from zero) for the next send. Nothing is
lost by it: the records that failed are reported to the caller, who sends them again (the
gateway answers 503 and Meta retries; the relay sends its batch again), and consumers
recognise a record sent twice by its event id. The dropped producer is stopped in the
background; what it still delivers is a repeat, recognised the same way.

Failures are classified here once, for every caller: :class:`BrokerUnavailable` (try again
later) or :class:`RecordRejected` (this record can never be published: too large, or not
encodable), so no caller retries a record forever or refuses one for a passing outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka import errors as kafka_errors

from runtime.config import Connections

log = structlog.get_logger(__name__)

# How long one start (bootstrap, then a producer id) may take before the next caller tries
# anew: a start begun while a restarting broker is not yet serving must not hold the callers
# back long after it is (one that connected too early can hang until this runs out).
START_TIMEOUT_SECONDS = 5.0
# How long a process tries to connect at start-up before it gives up and says why.
STARTUP_SECONDS = 30.0
# Retried sends of a request: the first through the producer at hand, the second (only for a
# failure another producer might not have) through a new one.
SEND_ATTEMPTS = 2


@dataclass(frozen=True)
class KafkaRecord:
    topic: str
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]


class PublishFailed(Exception):
    """A record Kafka did not acknowledge. ``permanent``: sending it again cannot help."""

    permanent: ClassVar[bool] = False


class BrokerUnavailable(PublishFailed):
    """Kafka cannot be reached, did not acknowledge in time, or refused for a passing reason
    (no leader, not enough replicas, a broken producer sequence): send again later."""


class RecordRejected(PublishFailed):
    """This record can never be published as it is."""

    permanent = True


class RecordTooLarge(RecordRejected):
    """Larger than the producer's request limit or the broker's message limit."""


class RecordUnencodable(RecordRejected):
    """Cannot be written as a switchboard record (or the broker calls it invalid)."""


# Kafka's verdicts on a record itself (not on the cluster's state).
TOO_LARGE: tuple[type[BaseException], ...] = (
    kafka_errors.MessageSizeTooLargeError,
    kafka_errors.RecordTooLargeError,
    kafka_errors.RecordListTooLargeError,
)
INVALID: tuple[type[BaseException], ...] = (kafka_errors.InvalidTimestampError,)


def classify(error: BaseException) -> PublishFailed:
    """The kind of a send's failure; anything not about the record itself is transient."""
    if isinstance(error, PublishFailed):
        return error
    described = f"{type(error).__name__}: {error}"
    if isinstance(error, TOO_LARGE):
        return RecordTooLarge(described)
    if isinstance(error, INVALID):
        return RecordUnencodable(described)
    return BrokerUnavailable(described)


def idempotent_producer(settings: Connections, *, client_id: str) -> AIOKafkaProducer:
    """acks=all with idempotence: a retried send neither duplicates nor reorders a record."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=0,  # a webhook waits for its ack: lingering would only add latency
        request_timeout_ms=int(settings.publish_timeout_seconds * 1000) + 5000,
    )


class HealingProducer:
    """An idempotent producer, replaced by a new one whenever a send did not fully succeed.

    Safe to share between concurrent tasks: one producer serves them all, and one start is
    made at a time when it must be replaced (callers waiting for it share that start).
    """

    def __init__(
        self,
        factory: Callable[[], AIOKafkaProducer],
        *,
        name: str,
        start_timeout: float = START_TIMEOUT_SECONDS,
    ) -> None:
        self.factory = factory
        self.name = name
        self.start_timeout = start_timeout
        self.generation = 0  # how many producers were started; 1 while none was replaced
        self._current: AIOKafkaProducer | None = None
        self._starting: asyncio.Task[AIOKafkaProducer] | None = None
        self._retiring: set[asyncio.Task[None]] = set()

    @classmethod
    def for_settings(cls, settings: Connections, *, client_id: str) -> HealingProducer:
        return cls(lambda: idempotent_producer(settings, client_id=client_id), name=client_id)

    async def start(self, *, within: float = STARTUP_SECONDS) -> None:
        """Connect now: a process that cannot reach Kafka at start-up says so (after trying
        for ``within`` seconds: a busy broker may take more than one start's timeout)."""
        deadline = time.monotonic() + within
        while True:
            try:
                await self._producer()
                return
            except Exception as error:
                if time.monotonic() >= deadline:
                    raise BrokerUnavailable(f"cannot connect to Kafka: {error!r}") from error
                await asyncio.sleep(0.5)

    async def stop(self, *, grace: float = 5.0) -> None:
        """Flush and close the producer, and those being retired (within ``grace`` seconds)."""
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
        current, self._current = self._current, None
        if current is not None:
            self._retire(current)
        if self._retiring:
            _done, pending = await asyncio.wait(self._retiring, timeout=grace)
            for task in pending:
                task.cancel()

    async def send(
        self, records: Sequence[KafkaRecord], *, within: float
    ) -> list[PublishFailed | None]:
        """Send ``records`` in order, waiting ``within`` seconds at most; for each, None once
        acknowledged, else why not.

        Records after one that could not be queued are not sent (their outcome says so), so
        a caller that publishes in order can trust the acknowledged prefix.
        """
        deadline = time.monotonic() + within
        outcomes: list[PublishFailed | None] = [None] * len(records)
        if not records:
            return outcomes
        try:
            producer = await asyncio.wait_for(self._producer(), within)
        except Exception as error:
            unreachable = BrokerUnavailable(f"cannot connect to Kafka: {error!r}")
            return [unreachable] * len(records)
        acks: dict[int, asyncio.Future[object]] = {}
        broken = False
        for index, record in enumerate(records):
            try:
                acks[index] = await asyncio.wait_for(
                    producer.send(
                        record.topic,
                        value=record.value,
                        key=record.key,
                        headers=list(record.headers),
                    ),
                    max(0.0, deadline - time.monotonic()),
                )
            except Exception as error:
                # Refused before it was queued: a record over the producer's size limit leaves
                # the producer sound; anything else (no metadata in time, a producer whose
                # sender died) means it must be replaced.
                outcomes[index] = classify(error)
                broken = broken or not isinstance(error, kafka_errors.MessageSizeTooLargeError)
                for later in range(index + 1, len(records)):
                    outcomes[later] = BrokerUnavailable(f"not sent: record {index} failed first")
                break
        if acks:
            await asyncio.wait(acks.values(), timeout=max(0.0, deadline - time.monotonic()))
        for index, ack in acks.items():
            if not ack.done():
                outcomes[index] = BrokerUnavailable(f"not acknowledged within {within:g}s")
                ack.add_done_callback(_retrieve)
            elif ack.cancelled():
                outcomes[index] = BrokerUnavailable("the send was cancelled")
            elif (failure := ack.exception()) is not None:
                outcomes[index] = classify(failure)
            else:
                continue
            broken = True
        if broken:
            self._replace(producer)
        return outcomes

    async def send_all(self, records: Sequence[KafkaRecord], *, within: float) -> None:
        """Every record acknowledged within ``within`` seconds, or raise why not.

        A transient failure is tried once more through a new producer if time remains: a
        broken sequence heals that way without the caller seeing it. A permanent one is
        raised at once.
        """
        deadline = time.monotonic() + within
        pending = list(records)
        for attempt in range(1, SEND_ATTEMPTS + 1):
            outcomes = await self.send(pending, within=max(0.0, deadline - time.monotonic()))
            failed = [(r, o) for r, o in zip(pending, outcomes, strict=True) if o is not None]
            if not failed:
                return
            rejected = next((o for _, o in failed if o.permanent), None)
            if rejected is not None:
                raise rejected
            if attempt == SEND_ATTEMPTS or time.monotonic() >= deadline:
                raise failed[0][1]
            pending = [record for record, _ in failed]
        raise AssertionError("unreachable")  # pragma: no cover

    async def broker_problem(self, within: float) -> str | None:
        """None when a broker answers this producer within ``within`` seconds; else what is
        wrong."""
        try:
            producer = await asyncio.wait_for(self._producer(), within)
            node = producer.client.get_random_node()
            if node is None:
                return "no broker known"
            if not await asyncio.wait_for(producer.client.ready(node), within):
                return f"broker {node} does not answer"
        except Exception as error:
            return f"{type(error).__name__}: {error}"
        return None

    async def _producer(self) -> AIOKafkaProducer:
        if self._current is not None:
            return self._current
        if self._starting is None or self._starting.done():
            self._starting = asyncio.create_task(self._start_new())
            self._starting.add_done_callback(_retrieve)
        # Shielded: a caller that gives up does not cancel the start the others wait for.
        return await asyncio.shield(self._starting)

    async def _start_new(self) -> AIOKafkaProducer:
        producer = self.factory()
        try:
            await asyncio.wait_for(producer.start(), self.start_timeout)
        except BaseException:
            await producer.stop()  # close what the half-made start opened
            raise
        self._current = producer
        self.generation += 1
        if self.generation > 1:
            log.warning("Kafka producer replaced", producer=self.name, generation=self.generation)
        return producer

    def _replace(self, producer: AIOKafkaProducer) -> None:
        """Stop using ``producer`` (if it is still the current one); the next send starts anew."""
        if self._current is producer:
            self._current = None
            log.warning(
                "Kafka producer dropped after a failed send; the next send starts a new one",
                producer=self.name,
                generation=self.generation,
            )
            self._retire(producer)

    def _retire(self, producer: AIOKafkaProducer) -> None:
        # stop() flushes what is still queued, which may wait for the broker to come back.
        task = asyncio.create_task(producer.stop())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)
        task.add_done_callback(_retrieve)


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Read a finished future's exception so asyncio does not report it as never retrieved
    (its outcome was already reported to the caller, or no caller is left to tell)."""
    if not future.cancelled():
        with contextlib.suppress(BaseException):
            future.exception()
