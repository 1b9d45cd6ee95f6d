"""The fault suite (``make test-faults``; issue 10): each scenario under steady load, then the
invariants (``tests/faults/invariants.py``) and a fresh rebuild of the read models.

Every process of the registry runs as a user runs it (``switchboard run NAME``), the dispatcher
against a fake Graph API. Two loads of signed webhooks run throughout, retrying what is
refused as Meta does: customers who ask the flow for an agent (a hand-off each, into a group
of three available agents) and then keep writing to them, and customers who never choose an
option (the flow asks again, gives up and ends the conversation; their next message starts a
new one). The fault happens a few seconds into the load, which goes on after it.

Each scenario prints a line (and appends it to ``.local/faults-report.jsonl``): records sent
and accepted, how soon after the fault the gateway accepted again, how long until every
invariant held once the load stopped, and each invariant's violations.
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from events.catalogue import (
    ASSIGNMENT_EVENTS_TOPIC,
    CONVERSATION_COMMANDS_TOPIC,
    CONVERSATION_EVENTS_TOPIC,
    CONVERSATION_NOTES_TOPIC,
    CONVERSATION_READS_TOPIC,
    DIRECTORY_COMMANDS_TOPIC,
    DIRECTORY_CREDENTIALS_TOPIC,
    DIRECTORY_EVENTS_TOPIC,
    EXPIRY_EVENTS_TOPIC,
    FLOW_EVENTS_TOPIC,
    HAND_OFF_REQUESTS_TOPIC,
    OUTBOUND_EVENTS_TOPIC,
    OUTBOUND_MESSAGES_TOPIC,
    WHATSAPP_INBOUND,
)
from events.operations import RecordDeadLettered
from services.registry import PROCESSES, relayed_stores
from services.settings import Settings
from tests.e2e.conftest import create_workspace_cli, own_infrastructure, wait_for_gateway
from tests.e2e.test_flows_burst import office_hours_flow
from tests.faults.invariants import fresh_rebuild_difference, settled, stored
from tests.harness import ROOT, Processes, query
from tests.load import WebhookLoad, history_difference

# A scenario runs every process twice over and waits for them: minutes on a loaded machine.
pytestmark = [pytest.mark.faults, pytest.mark.timeout(900)]
CONSUMERS = tuple(p.name for p in PROCESSES if p.kind == "consumer")
NUMBER = "4809001"
HAND_OFF_CONTACTS = tuple(f"57390{n:04d}" for n in range(30))
CHATTY_CONTACTS = tuple(f"57391{n:04d}" for n in range(30))
REPORT = ROOT / ".local" / "faults-report.jsonl"
# Every topic some consumer reads (whatsapp.business, whatsapp.rejected, whatsapp.unrouted
# and operations.dead_letters are kept for people and analytics: nothing consumes them).
CONSUMED_TOPICS = (
    WHATSAPP_INBOUND,
    CONVERSATION_EVENTS_TOPIC,
    CONVERSATION_COMMANDS_TOPIC,
    CONVERSATION_NOTES_TOPIC,
    CONVERSATION_READS_TOPIC,
    DIRECTORY_COMMANDS_TOPIC,
    DIRECTORY_EVENTS_TOPIC,
    DIRECTORY_CREDENTIALS_TOPIC,
    FLOW_EVENTS_TOPIC,
    HAND_OFF_REQUESTS_TOPIC,
    ASSIGNMENT_EVENTS_TOPIC,
    OUTBOUND_MESSAGES_TOPIC,
    OUTBOUND_EVENTS_TOPIC,
    EXPIRY_EVENTS_TOPIC,
)


@dataclass
class System:
    settings: Settings
    env: dict[str, str]
    processes: Processes
    http: httpx.AsyncClient
    admin_token: str


@pytest.fixture
async def system(processes: Processes, http: httpx.AsyncClient, flow_env: dict[str, str]) -> System:
    processes.env.update(flow_env)
    for process in PROCESSES:
        processes.start(process.name)
    await wait_for_gateway(http)
    workspace = await create_workspace_cli(flow_env, "Faults", NUMBER, agent_conversations=True)
    admin = {"Authorization": f"Bearer {workspace['admin_token']}"}
    group = (await http.post("/api/groups", json={"name": "Billing"}, headers=admin)).json()
    for name in ("Ana", "Beto", "Carla"):
        added = await http.post("/api/members", json={"name": name, "capacity": 100}, headers=admin)
        assert added.status_code == 201, added.text
        member = added.json()
        joined = await http.put(
            f"/api/groups/{group['group_id']}/members/{member['member_id']}", headers=admin
        )
        assert joined.status_code == 200, joined.text
        own = {"Authorization": f"Bearer {member['token']}"}
        available = await http.put("/api/me/status", json={"status": "available"}, headers=own)
        assert available.status_code == 200, available.text
    flow = await http.post("/api/flows", json=office_hours_flow(group["group_id"]), headers=admin)
    assert flow.status_code == 201, flow.text
    chosen = await http.put(
        f"/api/numbers/{NUMBER}/flow", json={"flow_id": flow.json()["flow_id"]}, headers=admin
    )
    assert chosen.status_code == 200, chosen.text
    return System(Settings.from_env(flow_env), flow_env, processes, http, workspace["admin_token"])


Fault = Callable[[System], Awaitable[dict[str, Any]]]


async def under_load(system: System, scenario: str, fault: Fault) -> None:
    """Run ``fault`` a few seconds into the load; check and report everything afterwards."""
    hand_offs = WebhookLoad(
        system.http,
        NUMBER,
        HAND_OFF_CONTACTS,
        per_second=8,
        tag=f"{scenario}.h",
        script=("hola", "Facturación"),
    )
    chatty = WebhookLoad(system.http, NUMBER, CHATTY_CONTACTS, per_second=8, tag=f"{scenario}.c")
    async with hand_offs, chatty:
        await asyncio.sleep(6)
        detail = await fault(system)
        over = time.monotonic()
        await asyncio.sleep(6)  # the load goes on after the fault
        await hand_offs.stop(drain_within=120)
        await chatty.stop(drain_within=120)
    stopped = time.monotonic()
    accepted = {**hand_offs.accepted, **chatty.accepted}
    recovery = [
        seconds
        for seconds in (hand_offs.first_accepted_after(over), chatty.first_accepted_after(over))
        if seconds is not None
    ]
    report = await settled(system.settings, accepted, within=180)
    settle_seconds = time.monotonic() - stopped
    history = await history_difference(
        system.http,
        system.admin_token,
        HAND_OFF_CONTACTS + CHATTY_CONTACTS,
        accepted,
        within=180,  # the projector may be far behind on a loaded machine: it catches up
    )
    rebuild = await fresh_rebuild_difference(system.settings, within=180)
    line = {
        "scenario": scenario,
        "sent": hand_offs.sent + chatty.sent,
        "accepted": len(accepted),
        "answers": {str(k): v for k, v in (hand_offs.answers + chatty.answers).items()},
        "accepted again after s": round(min(recovery), 1) if recovery else None,
        "invariants held after s": round(settle_seconds, 1),
        "violations": report.summary(),
        "history": {k: len(v) for k, v in history.items()},
        "read models unlike a fresh rebuild": sorted(rebuild),
        **detail,
    }
    REPORT.parent.mkdir(exist_ok=True)
    with REPORT.open("ab") as out:
        out.write(orjson.dumps(line) + b"\n")
    print(f"\n{orjson.dumps(line).decode()}")
    assert hand_offs.unexpected == []
    assert chatty.unexpected == []
    assert report.holds, {k: v[:5] for k, v in report.violations.items() if v}
    assert history == {"missing": [], "repeated": [], "never accepted": []}
    assert rebuild == {}
    for name, child in system.processes.children.items():
        assert child.poll() is None, f"{name} exited with {child.returncode}"


async def test_sigkill_of_every_consumer_at_random_moments_twice(system: System) -> None:
    async def kill_each(system: System) -> dict[str, Any]:
        chance = random.Random()
        kills = 0
        for _ in range(2):
            for name in chance.sample(CONSUMERS, len(CONSUMERS)):
                system.processes.kill(name)
                kills += 1
                await asyncio.sleep(chance.uniform(0.2, 1.5))
                system.processes.start(name)
        return {"kills": kills}

    await under_load(system, "sigkill", kill_each)


@pytest.mark.whole_fault_suite
async def test_kafka_stopped_and_started(system: System) -> None:
    infra = own_infrastructure(system.env)

    async def outage(system: System) -> dict[str, Any]:
        await asyncio.to_thread(subprocess.run, [*infra, "kafka-stop"], check=True)
        try:
            await asyncio.sleep(10)
        finally:
            await asyncio.to_thread(subprocess.run, [*infra, "kafka-start"], check=True)
        return {"outage s": 10}

    await under_load(system, "kafka", outage)


@pytest.mark.whole_fault_suite
async def test_postgres_stopped_and_started(system: System) -> None:
    infra = own_infrastructure(system.env)

    async def outage(system: System) -> dict[str, Any]:
        await asyncio.to_thread(subprocess.run, [*infra, "pg-stop"], check=True)
        try:
            await asyncio.sleep(10)
        finally:
            await asyncio.to_thread(subprocess.run, [*infra, "pg-start"], check=True)
        return {"outage s": 10}

    await under_load(system, "postgres", outage)


@pytest.mark.whole_fault_suite
async def test_two_replicas_of_each_consumer_with_rebalances(system: System) -> None:
    async def rebalance(system: System) -> dict[str, Any]:
        for name in (*CONSUMERS, "relay"):
            system.processes.start(name, replica=2)
        await asyncio.sleep(8)
        for name in (*CONSUMERS, "relay"):
            system.processes.stop(name)  # the second replicas take everything over
        return {"replicas": 2}

    await under_load(system, "replicas", rebalance)


def poison_records() -> dict[str, bytes | None]:
    """Bad bytes, an unknown type, a version from the future, a tombstone (no value)."""
    valid: dict[str, Any] = {
        "event_id": "00000000-0000-4000-8000-000000000001",
        "event_type": "conversation.closed",
        "schema_version": 1,
        "payload": {},
    }
    return {
        "bad bytes": b"\xff\x00 not json",
        "unknown type": orjson.dumps({**valid, "event_type": "nobody.knows_this"}),
        "future version": orjson.dumps({**valid, "schema_version": 99}),
        "tombstone": None,
    }


async def parked(settings: Settings) -> set[tuple[str, int, int]]:
    """Where every record parked by a consumer came from (topic, partition, offset)."""
    places: set[tuple[str, int, int]] = set()
    for store in relayed_stores():
        for envelope in await stored(settings, store):
            if isinstance(envelope.payload, RecordDeadLettered):
                letter = envelope.payload
                places.add((letter.source_topic, letter.source_partition, letter.source_offset))
    return places


async def test_poison_records_on_every_consumed_topic(system: System) -> None:
    async def poison(system: System) -> dict[str, Any]:
        producer = AIOKafkaProducer(bootstrap_servers=system.settings.kafka_bootstrap)
        await producer.start()
        places: set[tuple[str, int, int]] = set()
        try:
            for topic in CONSUMED_TOPICS:
                name = topic.qualified(system.settings.topic_prefix)
                for value in poison_records().values():
                    sent = await producer.send_and_wait(name, value, key=b"poison")
                    places.add((name, sent.partition, sent.offset))
        finally:
            await producer.stop()
        deadline = time.monotonic() + 180
        while missing := places - await parked(system.settings):
            assert time.monotonic() < deadline, f"never parked: {sorted(missing)}"
            await asyncio.sleep(1)
        return {"poison records": len(places)}

    await under_load(system, "poison", poison)


async def test_the_relay_publishes_an_already_published_range_again(system: System) -> None:
    async def republish(system: System) -> dict[str, Any]:
        system.processes.stop("relay")
        rewound = 0
        for store in relayed_stores():
            rows = await query(
                system.settings,
                store,
                "SELECT coalesce(max(notification_id), 0) AS n FROM {s}.tracking"
                " WHERE application_name = '__relay__'",
            )
            half = int(rows[0]["n"]) // 2
            rewound += int(rows[0]["n"]) - half
            await query(
                system.settings,
                store,
                "DELETE FROM {s}.tracking WHERE application_name = '__relay__'"
                " AND notification_id > %s",
                half,
            )
        system.processes.start("relay")
        return {"events published again": rewound}

    await under_load(system, "republish", republish)
