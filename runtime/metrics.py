"""The Prometheus metrics every process reports, and the progress its readiness reads.

The metrics live in prometheus-client's process-wide registry, declared here once (declaring
one connects nothing): a process has exactly one ``/metrics``, and Prometheus adds which
process and instance it scraped. They are counted by the shared runtime — the batch runtime
(``runtime.consumer``), the relay and the gateway's HTTP middleware — so a service reports
them without a line of its own.

Lags are not counted but read when scraped: each consumer runtime and each relay owns a
*progress* object (what it handled, next to what Kafka or its store holds), and the collector
here walks those still alive (weakly held, so a stopped app's go with it). Readiness
(``runtime.observe``) reads the same objects: a process is caught up when every partition it
holds and every store it relays is within a bound.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# Seconds: a batch of 500 records commits in tens of milliseconds; an outage waited out
# lands in the last buckets.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

HANDLED = "handled"
SKIPPED_DUPLICATE = "skipped-duplicate"
PARKED = "parked"

RECORDS = Counter(
    "switchboard_records",
    "Records a consumer took from Kafka, by what became of them once committed: handled,"
    " skipped-duplicate (its offset or its event id was handled before), parked (dead-lettered).",
    ["consumer", "topic", "outcome"],
)
BATCH_SECONDS = Histogram(
    "switchboard_batch_seconds",
    "How long a consumer took to handle a batch in one transaction (the per-record runtime:"
    " a batch of one).",
    ["consumer"],
    buckets=LATENCY_BUCKETS,
)
RECORD_SECONDS = Histogram(
    "switchboard_record_seconds",
    "From the poll that fetched a record to its effects committed (retries and outages"
    " waited out included).",
    ["consumer"],
    buckets=LATENCY_BUCKETS,
)
DEAD_LETTERS = Counter(
    "switchboard_dead_letters",
    "What was parked with a reason: kind record (a consumer's, source its name) or"
    " stored_event (the relay's, source its store).",
    ["kind", "source"],
)
HTTP_REQUESTS = Counter(
    "switchboard_http_requests",
    "HTTP requests answered, by method, route template (unmatched for no route) and status.",
    ["method", "route", "status"],
)
HTTP_SECONDS = Histogram(
    "switchboard_http_request_seconds",
    "From a request's arrival to the end of its answer (a stream: until the client left).",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
STREAM_CLIENTS = Gauge(
    "switchboard_stream_clients", "Clients connected to the live stream (GET /api/stream)."
)


class ConsumerProgress:
    """How far one consumer (one consumer group) is in the partitions its process holds.

    ``next_offset`` is the runtime's own map (the next offset to handle per partition);
    ``kafka`` gives the aiokafka consumer once the subscriber started, whose assignment and
    high watermarks (learnt with every fetch, empty ones included) are the other side.
    """

    def __init__(self, consumer: str, next_offset: dict[tuple[str, int], int]) -> None:
        self.consumer = consumer
        self.next_offset = next_offset
        self.kafka: Callable[[], Any] = lambda: None
        # Set by the first rebalance, even one that gave this replica no partition.
        self.joined = False
        _CONSUMERS.add(self)

    def lags(self) -> dict[tuple[str, int], int | None]:
        """Records behind the end of each partition held; None while not known yet."""
        kafka = self.kafka()
        if kafka is None:
            return {}
        try:
            # Read from the scraping thread: a rebalance may change the set meanwhile.
            held = list(kafka.assignment())
        except Exception:
            return {}
        lags: dict[tuple[str, int], int | None] = {}
        for tp in held:
            try:
                high: int | None = kafka.highwater(tp)
            except Exception:  # revoked meanwhile
                continue
            position = self.next_offset.get((tp.topic, tp.partition))
            key = (tp.topic, tp.partition)
            lags[key] = None if high is None or position is None else max(high - position, 0)
        return lags

    def behind(self, max_lag: int) -> list[str]:
        """What keeps this consumer from being caught up (empty when it is)."""
        if not self.joined:
            return [f"{self.consumer}: no partitions assigned yet"]
        problems = []
        for (topic, partition), lag in sorted(self.lags().items()):
            where = f"{self.consumer} {topic}#{partition}"
            if lag is None:
                problems.append(f"{where}: end offset not known yet")
            elif lag > max_lag:
                problems.append(f"{where}: {lag} records behind")
        return problems


class RelayProgress:
    """How many of a store's events the relay has not published yet (None: not looked yet),
    and whether this relay is the active one (a standby publishes nothing, and is fine)."""

    def __init__(self, store: str) -> None:
        self.store = store
        self.lag: int | None = None
        self.active = False
        _RELAYS.add(self)

    def behind(self, max_lag: int) -> list[str]:
        if not self.active:
            return []
        if self.lag is None:
            return [f"relay of {self.store}: has not read its store yet"]
        if self.lag > max_lag:
            return [f"relay of {self.store}: {self.lag} events not yet published"]
        return []


_CONSUMERS: weakref.WeakSet[ConsumerProgress] = weakref.WeakSet()
_RELAYS: weakref.WeakSet[RelayProgress] = weakref.WeakSet()


def not_caught_up(max_lag: int) -> list[str]:
    """Every consumer partition and relayed store of this process more than ``max_lag``
    behind (or not known yet)."""
    problems: list[str] = []
    for consumer in sorted(_CONSUMERS, key=lambda progress: progress.consumer):
        problems.extend(consumer.behind(max_lag))
    for relay in sorted(_RELAYS, key=lambda progress: progress.store):
        problems.extend(relay.behind(max_lag))
    return problems


class ProgressCollector(Collector):
    """Consumer lag per partition and relay lag per store, read when scraped."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        consumer_lag = GaugeMetricFamily(
            "switchboard_consumer_lag_records",
            "Records between a partition's end (its high watermark) and the next offset the"
            " consumer will handle, per partition this process holds.",
            labels=["consumer", "topic", "partition"],
        )
        for progress in list(_CONSUMERS):
            for (topic, partition), lag in progress.lags().items():
                if lag is not None:
                    consumer_lag.add_metric([progress.consumer, topic, str(partition)], lag)
        yield consumer_lag
        relay_lag = GaugeMetricFamily(
            "switchboard_relay_lag_events",
            "Stored events the active relay has not yet published, per store.",
            labels=["store"],
        )
        for relay in list(_RELAYS):
            if relay.active and relay.lag is not None:
                relay_lag.add_metric([relay.store], relay.lag)
        yield relay_lag


REGISTRY.register(ProgressCollector())
