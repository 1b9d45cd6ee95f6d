"""Two replicas of every consumer under load, with rebalances in the middle (issue 10, part 5).

Every consumer of a flow's conversation runs as a user scales it: ``switchboard run NAME``
once, and, while a burst of 200 conversations is under way, a second time (its consumer group
rebalances: partitions move to the new replica while records are in flight); later the first
replica of each is stopped with SIGTERM as an orchestrator scales down (a second rebalance:
everything moves to the survivors). The relay and the expiry timer run twice as well (one lock
holder, one standing by, which takes over when the first stops).

Nothing may be lost or done twice across the moves: every customer gets exactly the flow's
messages, in order, each reaching the Graph API once; every hand-off is decided once; every
customer message is in the history once.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from uuid import UUID

import httpx
import pytest

from events.assignment import ConversationAssigned, ConversationQueued, HandOffDeclined
from events.catalogue import ASSIGNMENT_EVENTS_TOPIC
from services.settings import Settings
from tests.e2e.test_flows_burst import (
    AFTER_HOURS,
    EVENING,
    IN_OFFICE,
    OFFICE,
    post,
    start_with_flow,
)
from tests.fake_graph import FakeGraphApi
from tests.harness import Processes, eventually, topic_records
from tests.load import history_wamids
from tests.webhooks import Text, messages_webhook

pytestmark = pytest.mark.e2e
CONSUMERS = ("directory", "inbound", "flows", "dispatcher", "expiry", "assignment", "projector")
CUSTOMERS = 200
DECISIONS = (ConversationAssigned, ConversationQueued, HandOffDeclined)


async def test_two_replicas_of_every_consumer_through_two_rebalances_under_load(
    processes: Processes, http: httpx.AsyncClient, flow_env: dict[str, str], graph: FakeGraphApi
) -> None:
    settings = Settings.from_env(flow_env)
    number = "4803010"
    workspace = await start_with_flow(processes, http, flow_env, number)
    processes.start("expiry")
    processes.start("assignment")
    customers = [f"5732{n:06d}" for n in range(CUSTOMERS)]
    expected = {c: IN_OFFICE if n % 2 == 0 else AFTER_HOURS for n, c in enumerate(customers)}
    total = sum(len(texts) for texts in expected.values())

    async def load() -> None:
        for start in range(0, CUSTOMERS, 10):
            batch = customers[start : start + 10]
            at = [(c, OFFICE if n % 2 == 0 else EVENING) for n, c in enumerate(batch, start)]
            await post(
                http, messages_webhook(number, [Text(c, f"w.{c}.1", "hola", t) for c, t in at])
            )
            answers = [Text(c, f"w.{c}.2", "Facturación", t + 9) for c, t in at]
            await post(http, messages_webhook(number, answers))
            await asyncio.sleep(0.3)  # spread the load over the rebalances

    sender = asyncio.create_task(load())
    try:
        await eventually(
            lambda: asyncio.sleep(0, len(graph.received)), lambda n: n >= 60, within=120
        )
        for name in (*CONSUMERS, "relay"):
            processes.start(name, replica=2)  # scale up: the groups rebalance under load
        scaled_up_at = len(graph.received)
        await eventually(
            lambda: asyncio.sleep(0, len(graph.received)),
            lambda n: n >= scaled_up_at + 150,
            within=180,
        )
        for name in (*CONSUMERS, "relay"):
            processes.stop(name)  # scale down: the second replicas take everything over
        scaled_down_at = len(graph.received)
        await sender
    finally:
        sender.cancel()
    assert scaled_down_at < total, "the load was over before the second rebalance"

    sent = await eventually(
        lambda: asyncio.sleep(0, len(graph.received)), lambda n: n >= total, within=240
    )
    await asyncio.sleep(2)  # anything sent twice would have arrived by now
    print(f"\nscaled up after {scaled_up_at}, down after {scaled_down_at} of {sent} messages")
    sends = Counter((r.to, r.text) for r in graph.received)
    assert max(sends.values()) == 1, [key for key, n in sends.items() if n > 1][:5]
    for customer, texts in expected.items():
        assert [r.text for r in graph.received_to(customer)] == texts, customer

    # One decision per hand-off (each office-hours customer asked for an agent once).
    async def decisions() -> dict[UUID, set[UUID]]:
        by_conversation: dict[UUID, set[UUID]] = defaultdict(set)
        for record in await topic_records(settings, ASSIGNMENT_EVENTS_TOPIC):
            if isinstance(record.payload, DECISIONS):
                by_conversation[record.payload.conversation_id].add(record.event_id)
        return by_conversation

    decided = await eventually(decisions, lambda found: len(found) >= CUSTOMERS // 2, within=60)
    assert len(decided) == CUSTOMERS // 2
    assert {len(ids) for ids in decided.values()} == {1}

    # Every customer message in the history once.
    seen = await eventually(
        lambda: history_wamids(http, workspace["admin_token"], tuple(customers)),
        lambda found: len(found) >= 2 * CUSTOMERS,
        within=120,
        interval=2,
    )
    assert set(seen) == {f"w.{c}.{n}" for c in customers for n in (1, 2)}
    assert set(seen.values()) == {1}
