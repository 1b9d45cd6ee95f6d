"""What the runtime counts and what readiness answers, without I/O.

Counters are process-wide (prometheus-client's registry), so each test names its own
consumer and reads the samples of that name only.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition
from prometheus_client import REGISTRY, generate_latest
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from runtime import metrics
from runtime.consumer import Consumer
from runtime.observe import Found, readiness
from runtime.records import Record
from runtime.work import Work
from services import registry
from services.gateway.observability import request_id_of, route_of
from services.settings import Settings, SettingsError
from services.supervisor import child_env
from tests.memory import InMemory, Topic
from tests.unit.test_runtime import a_record, count

pytestmark = pytest.mark.unit


def records(consumer: str, topic: str, outcome: str) -> float:
    labels = {"consumer": consumer, "topic": topic, "outcome": outcome}
    return REGISTRY.get_sample_value("switchboard_records_total", labels) or 0.0


def a_name() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


async def test_a_batch_counts_each_record_by_what_became_of_it() -> None:
    name = a_name()
    tally = InMemory(name, count)
    topic = Topic("some.topic")
    first, second = a_record(), a_record()
    await tally.consumer.handle_batch(tally.received([topic.record(first), topic.record(second)]))
    # The relay publishes the first again (a new offset), and a tombstone arrives.
    again = [topic.record(first), topic.record(None), topic.record(a_record())]
    await tally.consumer.handle_batch(tally.received(again))
    assert records(name, "some.topic", metrics.HANDLED) == 3
    assert records(name, "some.topic", metrics.SKIPPED_DUPLICATE) == 1
    assert records(name, "some.topic", metrics.PARKED) == 1
    dead = {"kind": "record", "source": name}
    assert REGISTRY.get_sample_value("switchboard_dead_letters_total", dead) == 1
    batches = REGISTRY.get_sample_value("switchboard_batch_seconds_count", {"consumer": name})
    assert batches == 2


async def test_a_redelivered_batch_counts_as_skipped_not_handled_again() -> None:
    name = a_name()
    tally = InMemory(name, count)
    deliveries = [Topic("some.topic").record(a_record()) for _ in range(3)]
    await tally.consumer.handle_batch(tally.received(deliveries))
    # Another replica, or this one after a restart, is handed the same offsets again.
    other = Consumer(name, tally.consumer.registry)
    other.bind(tally.store, count)
    await other.handle_batch([other.received(delivery) for delivery in deliveries])
    assert records(name, "some.topic", metrics.HANDLED) == 3
    assert records(name, "some.topic", metrics.SKIPPED_DUPLICATE) == 3


async def test_a_record_that_keeps_failing_is_counted_parked_once() -> None:
    name = a_name()

    def fail(work: Work, record: Record) -> None:
        raise RuntimeError("always")

    failing = InMemory(name, fail)
    await failing.handle_each(Topic("some.topic").record(a_record()))
    assert records(name, "some.topic", metrics.PARKED) == 1
    assert records(name, "some.topic", metrics.HANDLED) == 0
    dead = {"kind": "record", "source": name}
    assert REGISTRY.get_sample_value("switchboard_dead_letters_total", dead) == 1


@dataclass
class KafkaConsumerSeen:
    """What the lag reads of aiokafka's consumer: its assignment and high watermarks."""

    high: dict[TopicPartition, int | None] = field(default_factory=dict)

    def assignment(self) -> set[TopicPartition]:
        return set(self.high)

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.high[tp]


def test_lag_is_the_end_of_each_partition_minus_the_next_offset_to_handle() -> None:
    positions = {("t", 0): 10, ("t", 1): 7}
    progress = metrics.ConsumerProgress(a_name(), positions)
    kafka = KafkaConsumerSeen({TopicPartition("t", 0): 10, TopicPartition("t", 1): 2007})
    progress.kafka = lambda: kafka
    progress.joined = True
    assert progress.lags() == {("t", 0): 0, ("t", 1): 2000}
    assert progress.behind(2000) == []
    assert progress.behind(1999) == [f"{progress.consumer} t#1: 2000 records behind"]
    exposed = generate_latest(REGISTRY).decode()
    assert (
        f'switchboard_consumer_lag_records{{consumer="{progress.consumer}",partition="1",'
        f'topic="t"}} 2000.0' in exposed
    )


def test_a_consumer_is_not_caught_up_before_it_joined_or_while_an_end_is_unknown() -> None:
    progress = metrics.ConsumerProgress(a_name(), {})
    assert progress.behind(10) == [f"{progress.consumer}: no partitions assigned yet"]
    progress.joined = True
    assert progress.behind(10) == []  # joined with no partition: a spare replica
    kafka = KafkaConsumerSeen({TopicPartition("t", 0): None})
    progress.kafka = lambda: kafka
    assert progress.behind(10) == [f"{progress.consumer} t#0: end offset not known yet"]


def test_only_the_active_relay_can_be_behind() -> None:
    relay = metrics.RelayProgress(a_name())
    assert relay.behind(0) == []  # a standby
    relay.active = True
    assert relay.behind(0) == [f"relay of {relay.store}: has not read its store yet"]
    relay.lag = 5
    assert relay.behind(5) == []
    assert relay.behind(4) == [f"relay of {relay.store}: 5 events not yet published"]


def test_ready_when_everything_answers_and_nothing_is_behind() -> None:
    status, body = readiness(Found(kafka=None, database=None, behind=()))
    assert status == 200
    assert body == {"status": "ready", "kafka": "up", "database": "up", "caught_up": "yes"}


def test_not_ready_names_each_part_that_is_not() -> None:
    found = Found(
        kafka="KafkaConnectionError: Unable to bootstrap from [('127.0.0.1', 1)]",
        database=None,
        behind=("inbound t#0: 5000 records behind",),
    )
    status, body = readiness(found)
    assert status == 503
    assert body["detail"].startswith("not ready: Kafka (down: KafkaConnectionError")
    assert "caught up (no: inbound t#0: 5000 records behind)" in body["detail"]
    assert "PostgreSQL" not in body["detail"]
    assert body["database"] == "up"
    assert body["status"] == "unavailable"


def test_a_request_id_is_taken_from_the_caller_only_when_it_is_a_sane_token() -> None:
    assert request_id_of([(b"X-Request-ID", b"abc-123.x:y_z")]) == "abc-123.x:y_z"
    for insane in (b"", b"a b", b"x" * 129, b"\xff\xfe", b"a\nb"):
        made = request_id_of([(b"x-request-id", insane)])
        assert made != insane.decode(errors="replace")
        assert len(made) == 32


def test_the_route_is_the_template_or_unmatched() -> None:
    route = SimpleNamespace(path="/api/conversations/{conversation_id}")
    assert route_of({"route": route}) == "/api/conversations/{conversation_id}"
    assert route_of({}) == "unmatched"
    # Routes FastAPI does not record in the scope are matched again as the request arrived.
    routes = [Route("/openapi.json", PlainTextResponse("")), Mount("/static", routes=[])]

    def arriving(path: str) -> dict[str, Any]:
        return {"type": "http", "method": "GET", "path": path, "root_path": ""}

    assert route_of({}, routes, arriving("/openapi.json")) == "/openapi.json"
    assert route_of({}, routes, arriving("/static/app.js")) == "/static"
    assert route_of({}, routes, arriving("/wp-login.php")) == "unmatched"


def test_the_metrics_port_is_the_registrys_unless_set_and_zero_turns_it_off() -> None:
    assert Settings.from_env({}).metrics_port is None
    assert Settings.from_env({"SWITCHBOARD_METRICS_PORT": "0"}).metrics_port == 0
    assert Settings.from_env({"SWITCHBOARD_METRICS_PORT": "9300"}).metrics_port == 9300
    for wrong in ("nine", "70000", "-1"):
        with pytest.raises(SettingsError, match="SWITCHBOARD_METRICS_PORT"):
            Settings.from_env({"SWITCHBOARD_METRICS_PORT": wrong})
    with pytest.raises(SettingsError, match="SWITCHBOARD_READY_MAX_LAG"):
        Settings.from_env({"SWITCHBOARD_READY_MAX_LAG": "-5"})


def test_run_all_passes_on_only_a_metrics_port_of_zero() -> None:
    env: dict[str, Any] = {"SWITCHBOARD_METRICS_PORT": "9300", "OTHER": "x"}
    assert "SWITCHBOARD_METRICS_PORT" not in child_env(env)
    assert child_env({"SWITCHBOARD_METRICS_PORT": "0"})["SWITCHBOARD_METRICS_PORT"] == "0"
    assert child_env(env)["SWITCHBOARD_LOG_FORMAT"] == "json"


def test_every_consumer_and_the_relay_has_a_metrics_port_of_its_own() -> None:
    # ``make run`` starts one of each on one machine: two on one port would not start.
    ports = [p.metrics_port for p in registry.PROCESSES if p.kind != "http"]
    assert all(port for port in ports)
    assert len(set(ports)) == len(ports)
    gateway_port = Settings().http_port
    assert gateway_port not in ports
