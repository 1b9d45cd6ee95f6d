"""A broker restart under load: the system recovers by itself and loses or repeats nothing.

Kafka stops for ~15 s while signed webhooks arrive at 20/s; the gateway answers 503 meanwhile
(Meta retries, and so does the load). Once the broker is back, the gateway must accept again
within seconds and the relay must publish again, without any process being restarted, and
every message accepted with 200 must be in its conversation's history exactly once.

How soon the gateway can accept depends first on the broker: a restarted broker answers an
admin request before it takes records (on a loaded machine with thousands of partitions, tens
of seconds before: it answers "not leader" for each partition until it has taken it over).
So the gateway's recovery is measured against a new producer, started after the broker
answered, that sends to every partition of the gateway's topic until all of them acknowledge
(to within the probe's own retries, so the gateway may well be first).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from datetime import UTC, datetime

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from events.catalogue import WHATSAPP_INBOUND
from services.gateway.dependencies import kafka_record
from services.gateway.webhook import split_webhook
from tests.e2e.conftest import create_workspace_cli, own_infrastructure, wait_for_gateway
from tests.harness import Processes, eventually
from tests.load import WebhookLoad, history_difference
from tests.webhooks import Text, messages_webhook

pytestmark = pytest.mark.e2e
OUTAGE_SECONDS = 15.0
PROBE_NUMBER = "480000999"  # no workspace owns it
# Seconds after a new producer can publish to the gateway's topic again within which the
# gateway must accept webhooks again: at worst a start of its producer begun just before the
# broker served (cut after 5 s, services/producer.py) and one publish timeout (3 s in the
# tests), with room for a loaded machine.
RECOVERY_BOUND_SECONDS = 12.0


async def first_publish(bootstrap: str, topic: str, partitions: int) -> float:
    """When a new idempotent producer first has a record acknowledged by every partition of
    the gateway's topic (monotonic time): the broker takes records there again. (Each
    partition's leadership comes back in its own time on a broker with many partitions.)

    The record is a message for a number no workspace owns, so the inbound service keeps it
    whole on ``whatsapp.unrouted`` and nothing else happens.
    """
    split = split_webhook(
        messages_webhook(PROBE_NUMBER, [Text("573000999", "wamid.probe", "probe")]),
        received_at=datetime.now(UTC),
    )
    probe = kafka_record(topic, split.inbound[0])
    while True:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", enable_idempotence=True
        )
        try:
            await asyncio.wait_for(producer.start(), 3)
            acks = [
                await producer.send(
                    topic,
                    probe.value,
                    key=probe.key,
                    partition=partition,
                    headers=list(probe.headers),
                )
                for partition in range(partitions)
            ]
            await asyncio.wait_for(asyncio.gather(*acks), 3)
            return time.monotonic()
        except Exception:
            await asyncio.sleep(0.2)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), 5)


async def test_a_broker_restart_under_load_recovers_by_itself_and_keeps_every_message_once(
    processes: Processes, http: httpx.AsyncClient, e2e_env: dict[str, str]
) -> None:
    infra = own_infrastructure(e2e_env)
    for name in ("directory", "inbound", "projector", "relay", "gateway"):
        processes.start(name)
    await wait_for_gateway(http)
    workspace = await create_workspace_cli(e2e_env, "Outage", "480199")
    contacts = ("573000101", "573000102", "573000103", "573000104")
    bootstrap = e2e_env["SWITCHBOARD_KAFKA_BOOTSTRAP"]
    inbound = WHATSAPP_INBOUND.qualified(e2e_env["SWITCHBOARD_TOPIC_PREFIX"])
    async with WebhookLoad(http, "480199", contacts, tag="kafka") as load:
        await asyncio.sleep(3)
        await asyncio.to_thread(subprocess.run, [*infra, "kafka-stop"], check=True)
        try:
            await asyncio.sleep(2)
            health = await http.get("/healthz")
            await asyncio.sleep(OUTAGE_SECONDS - 2)
        finally:
            await asyncio.to_thread(subprocess.run, [*infra, "kafka-start"], check=True)
        back = time.monotonic()
        publishable = await asyncio.wait_for(
            first_publish(bootstrap, inbound, WHATSAPP_INBOUND.partitions), 180
        )
        recovery = await eventually(
            lambda: asyncio.sleep(0, load.first_accepted_after(back)),
            lambda seconds: seconds is not None,
            within=60,
            interval=0.2,
        )
        assert recovery is not None
        lag = back + recovery - publishable
        print(
            f"\nbroker answered; a new producer published {publishable - back:.1f}s later;"
            f" the gateway accepted again {recovery:.1f}s after the broker answered"
            f" ({lag:+.1f}s from when a new producer could)"
        )
        await asyncio.sleep(5)  # the load goes on after the recovery
        await load.stop(drain_within=60)

    assert health.status_code == 503, health.text
    assert health.json()["kafka"].startswith("down: "), health.text
    assert load.unexpected == []
    assert load.answers[503] > 0, "the outage was not seen: the broker did not stop?"
    assert lag < RECOVERY_BOUND_SECONDS, f"answers: {dict(load.answers)}"
    print(f"answers: {dict(load.answers)}; {len(load.accepted)} messages accepted")
    difference = await history_difference(
        http, workspace["admin_token"], contacts, load.accepted, within=90
    )
    assert difference == {"missing": [], "repeated": [], "never accepted": []}
