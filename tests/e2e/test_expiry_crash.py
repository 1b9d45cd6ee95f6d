"""SIGKILL of the expiry process while hundreds of deadlines are due: none lost, none twice.

``switchboard run expiry`` (with a maximum age of a few seconds) runs beside the directory,
inbound, projector, relay and gateway processes. 300 customers write while the expiry
process is down, and their deadlines pass before it starts; it then learns of them and
fires, is killed mid-burst, and restarted. Each conversation must close exactly once, with
reason ``expired``, after exactly one ``expiry.conversation_expired``. (Nothing here races
the wall clock: the deadlines are long past whenever the expiry process gets to them.)
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import httpx
import psycopg
import pytest

from events.catalogue import CONVERSATION_EVENTS_TOPIC, EXPIRY_EVENTS_TOPIC
from events.conversation import ConversationClosed, ConversationStarted
from events.expiry import ConversationExpired
from services.settings import Settings
from tests.conftest import TEST_APP_SECRET
from tests.e2e.conftest import create_workspace_cli, wait_for_gateway
from tests.harness import Processes, eventually, free_port, query, topic_records
from tests.webhooks import Text, messages_webhook, signed_headers

pytestmark = pytest.mark.e2e
CUSTOMERS = 300
PER_WEBHOOK = 50
MAX_AGE_SECONDS = 5
NUMBER = "480112093385611"


@pytest.fixture
def e2e_env(isolated_env: dict[str, str]) -> dict[str, str]:
    return {
        **isolated_env,
        "SWITCHBOARD_HTTP_PORT": str(free_port()),
        "SWITCHBOARD_EXPIRY_MAX_AGE_SECONDS": str(MAX_AGE_SECONDS),
    }


async def count(settings: Settings, statement: str, *params: object) -> int:
    try:
        rows = await query(settings, "expiry", statement, *params)
    except psycopg.errors.UndefinedTable:
        return 0  # the expiry process has not created its tables yet
    return int(rows[0]["n"])


async def test_sigkill_of_expiry_with_deadlines_due_loses_and_duplicates_nothing(
    processes: Processes, http: httpx.AsyncClient, e2e_env: dict[str, str]
) -> None:
    settings = Settings.from_env(e2e_env)
    for name in ("directory", "inbound", "projector", "relay", "gateway"):
        processes.start(name)
    await wait_for_gateway(http)
    await create_workspace_cli(e2e_env, "Acme", NUMBER)

    at = int(time.time())
    customers = [f"5730{n:08d}" for n in range(CUSTOMERS)]
    for first in range(0, CUSTOMERS, PER_WEBHOOK):
        body = messages_webhook(
            NUMBER,
            [Text(c, f"wamid.{c}", "hola", at) for c in customers[first : first + PER_WEBHOOK]],
        )
        response = await http.post(
            "/webhooks/whatsapp", content=body, headers=signed_headers(TEST_APP_SECRET, body)
        )
        assert response.status_code == 200, response.text

    recorded = "SELECT count(*) AS n FROM {s}.events WHERE topic = %s"

    async def started_conversations() -> int:
        records = await topic_records(settings, CONVERSATION_EVENTS_TOPIC)
        return sum(isinstance(e.payload, ConversationStarted) for e in records)

    await eventually(started_conversations, lambda n: n == CUSTOMERS, within=60, interval=0.5)
    await asyncio.sleep(max(0.0, at + MAX_AGE_SECONDS + 1 - time.time()))

    processes.start("expiry")
    await eventually(
        lambda: count(settings, recorded, ConversationExpired.event_type),
        lambda n: n >= 10,
        within=60,
        interval=0.005,
    )
    processes.kill("expiry")  # mid-burst: some fired, most still due
    fired_at_kill = await count(settings, recorded, ConversationExpired.event_type)
    assert fired_at_kill < CUSTOMERS, "the kill came after the burst: it proved nothing"
    processes.start("expiry")

    pending = "SELECT count(*) AS n FROM {s}.deadlines"
    await eventually(lambda: count(settings, pending), lambda n: n == 0, within=60, interval=0.2)
    await eventually(
        lambda: topic_records(settings, CONVERSATION_EVENTS_TOPIC),
        lambda found: sum(isinstance(e.payload, ConversationClosed) for e in found) >= CUSTOMERS,
        within=60,
        interval=0.5,
    )
    await asyncio.sleep(1.0)  # anything duplicated would have followed by now
    conversation_events = await topic_records(settings, CONVERSATION_EVENTS_TOPIC)
    expiry_events = await topic_records(settings, EXPIRY_EVENTS_TOPIC)

    started = {
        e.payload.conversation_id
        for e in conversation_events
        if isinstance(e.payload, ConversationStarted)
    }
    assert len(started) == CUSTOMERS
    closed = [e.payload for e in conversation_events if isinstance(e.payload, ConversationClosed)]
    assert Counter(c.conversation_id for c in closed) == Counter(dict.fromkeys(started, 1))
    assert {c.reason for c in closed} == {"expired"}
    expiries = [e.payload for e in expiry_events if isinstance(e.payload, ConversationExpired)]
    assert Counter(x.conversation_id for x in expiries) == Counter(dict.fromkeys(started, 1))
    assert await count(settings, recorded, ConversationExpired.event_type) == CUSTOMERS
    for expiry in expiries:
        assert expiry.deadline.timestamp() == at + MAX_AGE_SECONDS
