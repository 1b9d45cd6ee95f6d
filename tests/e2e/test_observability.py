"""Every process as a user runs it reports itself: ``/metrics``, ``/readyz``, JSON logs.

The figures are checked against what the test sent (counts, not timings): records handled,
skipped and parked by a consumer of each runtime (``inbound`` on the batch runtime, ``flows``
on the per-record one), the gateway's requests by route template and status. Readiness is
checked with a Kafka and a PostgreSQL of the process's own that are not there (closed
ports), never by stopping the shared broker.
"""

from __future__ import annotations

import asyncio
import functools
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from events.catalogue import CONVERSATION_EVENTS_TOPIC, WHATSAPP_INBOUND
from services import registry
from services.settings import Settings
from tests.conftest import TEST_APP_SECRET
from tests.e2e.conftest import wait_for_gateway
from tests.harness import Processes, eventually, free_port, topic_values
from tests.webhooks import Text, messages_webhook, signed_headers

pytestmark = pytest.mark.e2e

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(url: str) -> Samples:
    """Every sample ``url`` (a ``/metrics``) exposes, by name and labels."""
    async with httpx.AsyncClient(timeout=10) as client:
        answer = await client.get(url)
    assert answer.status_code == 200, answer.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def readyz(port: int) -> tuple[int, dict[str, Any]]:
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            answer = await client.get(f"http://127.0.0.1:{port}/readyz")
    except httpx.TransportError as error:
        return 0, {"detail": repr(error)}
    return answer.status_code, answer.json()


async def produce(settings: Settings, topic: str, values: list[bytes | None]) -> None:
    """Raw records, as anything with access to the topic could write them."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        for item in values:
            await producer.send_and_wait(topic, item, key=b"observability-test")
    finally:
        await producer.stop()


def log_lines(processes: Processes, name: str) -> list[dict[str, Any]]:
    """Every line the process wrote, each parsed as JSON (fails on the first that is not)."""
    parsed = []
    for number, line in enumerate(processes.log(name).splitlines(), 1):
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"{name}.log line {number} is not JSON: {line!r}") from None
    return parsed


async def test_a_consumer_of_each_runtime_and_the_gateway_count_what_they_were_sent(
    processes: Processes, e2e_env: dict[str, str], http: httpx.AsyncClient
) -> None:
    settings = Settings.from_env(e2e_env)
    ports = {"inbound": free_port(), "flows": free_port()}
    # Logs on "auto": a file is not a terminal, so every line must come out as JSON.
    for name in ("gateway", "inbound", "flows"):
        extra = {"SWITCHBOARD_LOG_FORMAT": "auto"}
        if name in ports:
            extra["SWITCHBOARD_METRICS_PORT"] = str(ports[name])
        processes.start(name, env=extra)
    await wait_for_gateway(http)
    for port in ports.values():
        await eventually(functools.partial(readyz, port), lambda found: found[0] == 200, within=60)
    gateway_before = await scrape(str(http.base_url).rstrip("/") + "/metrics")

    # Five deliveries of one message each, to a number no workspace owns (inbound parks
    # them as unrouted: handled all the same), one of them with a request id of ours.
    number = "4803" + uuid.uuid4().hex[:6]
    for n in range(5):
        body = messages_webhook(number, [Text(f"57300{n:07d}", f"wamid.obs{n}", "hola")])
        headers = signed_headers(TEST_APP_SECRET, body)
        if n == 0:
            headers["X-Request-ID"] = "obs-test-request-1"
        answer = await http.post("/webhooks/whatsapp", content=body, headers=headers)
        assert answer.status_code == 200, answer.text
        if n == 0:
            assert answer.headers["X-Request-ID"] == "obs-test-request-1"
    unsigned = await http.post(
        "/webhooks/whatsapp", content=b"{}", headers={"X-Hub-Signature-256": "sha256=0"}
    )
    assert unsigned.status_code == 401
    anonymous = await http.get(f"/api/conversations/{uuid.uuid4()}")
    assert anonymous.status_code == 401

    inbound_topic = WHATSAPP_INBOUND.qualified(settings.topic_prefix)
    # One record published again (a new offset, the same event id), one that is not JSON.
    first = (await topic_values(settings, WHATSAPP_INBOUND))[0]
    await produce(settings, inbound_topic, [first, b"not an envelope"])
    # The per-record runtime: two records that are not envelopes and a tombstone.
    conversation_topic = CONVERSATION_EVENTS_TOPIC.qualified(settings.topic_prefix)
    await produce(settings, conversation_topic, [b"not json", b"{}", None])

    inbound_url = f"http://127.0.0.1:{ports['inbound']}/metrics"

    def inbound_done(samples: Samples) -> bool:
        counted = sum(
            value(
                samples,
                "switchboard_records_total",
                consumer="inbound",
                topic=inbound_topic,
                outcome=outcome,
            )
            for outcome in ("handled", "skipped-duplicate", "parked")
        )
        return counted >= 7

    inbound = await eventually(lambda: scrape(inbound_url), inbound_done, within=60, interval=0.3)
    by_outcome = {
        outcome: value(
            inbound,
            "switchboard_records_total",
            consumer="inbound",
            topic=inbound_topic,
            outcome=outcome,
        )
        for outcome in ("handled", "skipped-duplicate", "parked")
    }
    assert by_outcome == {"handled": 5, "skipped-duplicate": 1, "parked": 1}
    assert value(inbound, "switchboard_dead_letters_total", kind="record", source="inbound") == 1
    assert value(inbound, "switchboard_record_seconds_count", consumer="inbound") == 7
    assert value(inbound, "switchboard_batch_seconds_count", consumer="inbound") >= 1
    lags = {
        dict(labels)["partition"]: sample
        for (name, labels), sample in inbound.items()
        if name == "switchboard_consumer_lag_records"
        and dict(labels)["consumer"] == "inbound"
        and dict(labels)["topic"] == inbound_topic
    }
    assert set(lags) == {str(p) for p in range(WHATSAPP_INBOUND.partitions)}
    assert all(lag == 0 for lag in lags.values()), lags

    flows_url = f"http://127.0.0.1:{ports['flows']}/metrics"
    flows = await eventually(
        lambda: scrape(flows_url),
        lambda samples: (
            value(
                samples,
                "switchboard_records_total",
                consumer="flows",
                topic=conversation_topic,
                outcome="parked",
            )
            >= 3
        ),
        within=60,
        interval=0.3,
    )
    assert (
        value(
            flows,
            "switchboard_records_total",
            consumer="flows",
            topic=conversation_topic,
            outcome="parked",
        )
        == 3
    )
    assert value(flows, "switchboard_dead_letters_total", kind="record", source="flows") == 3
    assert value(flows, "switchboard_batch_seconds_count", consumer="flows") == 3

    gateway = await scrape(str(http.base_url).rstrip("/") + "/metrics")

    def moved(**labels: str) -> float:
        name = "switchboard_http_requests_total"
        return value(gateway, name, **labels) - value(gateway_before, name, **labels)

    assert moved(method="POST", route="/webhooks/whatsapp", status="200") == 5
    assert moved(method="POST", route="/webhooks/whatsapp", status="401") == 1
    assert moved(method="GET", route="/api/conversations/{conversation_id}", status="401") == 1
    assert value(gateway, "switchboard_stream_clients") == 0

    requests = [line for line in log_lines(processes, "gateway") if line.get("event") == "request"]
    ours = [line for line in requests if line.get("request_id") == "obs-test-request-1"]
    assert len(ours) == 1
    assert ours[0]["route"] == "/webhooks/whatsapp"
    assert ours[0]["method"] == "POST"
    assert ours[0]["status"] == 200
    assert ours[0]["duration_ms"] >= 0
    for name in ("inbound", "flows"):
        assert any(line.get("logger") == "faststream" for line in log_lines(processes, name))


async def test_readyz_names_what_is_away_and_says_ready_once_it_is_there(
    processes: Processes, e2e_env: dict[str, str]
) -> None:
    port = free_port()
    away = {
        "SWITCHBOARD_METRICS_PORT": str(port),
        # Nothing listens on these: a broker and a database of this process's own, away.
        "SWITCHBOARD_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
        "SWITCHBOARD_DATABASE_URL": f"postgresql://switchboard:x@127.0.0.1:{free_port()}/none",
    }
    processes.start("inbound", env=away)
    status, body = await eventually(lambda: readyz(port), lambda found: found[0] != 0, within=30)
    assert status == 503, body
    assert body["status"] == "unavailable"
    assert body["kafka"].startswith("down: ")
    assert body["database"].startswith("down: ")
    assert "Kafka" in body["detail"]
    assert "PostgreSQL" in body["detail"]
    processes.kill("inbound")

    processes.start("inbound", env={"SWITCHBOARD_METRICS_PORT": str(port)})
    status, body = await eventually(
        lambda: readyz(port), lambda found: found[0] == 200, within=60, interval=0.3
    )
    assert body == {"status": "ready", "kafka": "up", "database": "up", "caught_up": "yes"}
    log_lines(processes, "inbound")  # the waiting included, every line JSON


async def test_every_process_of_make_run_answers_metrics_and_becomes_ready(
    processes: Processes, e2e_env: dict[str, str], http: httpx.AsyncClient, tmp_path: Path
) -> None:
    ports: dict[str, int] = {}
    for declared in registry.PROCESSES:
        if declared.kind == "http":
            processes.start(declared.name)
        else:
            ports[declared.name] = free_port()
            processes.start(
                declared.name, env={"SWITCHBOARD_METRICS_PORT": str(ports[declared.name])}
            )
    await wait_for_gateway(http)
    ready = await eventually(
        lambda: asyncio.gather(*(readyz(port) for port in ports.values())),
        lambda found: all(status == 200 for status, _ in found),
        within=90,
        interval=0.5,
    )
    assert len(ready) == len(registry.PROCESSES) - 1
    gateway_ready = await http.get("/readyz")
    assert gateway_ready.status_code == 200, gateway_ready.text
    assert (await http.get("/metrics")).status_code == 200

    def every_store(samples: Samples) -> bool:
        relayed = {
            dict(labels)["store"]
            for (metric, labels) in samples
            if metric == "switchboard_relay_lag_events"
        }
        return relayed == set(registry.relayed_stores())

    def lagging(samples: Samples) -> bool:
        return any(metric == "switchboard_consumer_lag_records" for metric, _ in samples)

    for name, port in ports.items():
        url = f"http://127.0.0.1:{port}/metrics"
        # A rebalance (the processes joining their groups one after the other) takes a
        # consumer's partitions away for a moment: its lag shows again once it holds them.
        if name == "relay":
            await eventually(functools.partial(scrape, url), every_store, within=30)
        else:
            await eventually(functools.partial(scrape, url), lagging, within=30, interval=0.3)
    for name in ports:
        log_lines(processes, name)
    assert orjson.loads((await http.get("/readyz")).content)["caught_up"] == "yes"
