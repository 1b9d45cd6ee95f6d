"""The flows issue's acceptance, with every process running and a fake Graph API.

Signed webhooks in; the bot's messages out at the (fake) Graph API in order; Meta's status
webhooks back into the history; and a burst of 500 conversations during which the flows
consumer and the dispatcher are killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from services.settings import Settings
from tests.conftest import TEST_APP_SECRET
from tests.e2e.conftest import create_workspace_cli, wait_for_gateway
from tests.fake_graph import FakeGraphApi, Reply
from tests.flow_samples import support_flow
from tests.harness import Processes, eventually, query
from tests.webhooks import Text, messages_webhook, signed_headers

pytestmark = pytest.mark.e2e
ALL = ("directory", "inbound", "flows", "dispatcher", "projector", "relay", "gateway")
# The customers write within the last day (the dispatcher answers only in Meta's 24-hour
# window, and a time in the future is clamped to its arrival: issue 8, item 11); the flow's
# office hours are set around OFFICE and away from EVENING (see ``office_hours_flow``).
OFFICE = int(time.time()) - 600
EVENING = OFFICE - 6 * 3600
IN_OFFICE = ["Hola Valentina Ruiz", "¿En qué te ayudamos?", "Te comunico con un asesor"]
AFTER_HOURS = [
    "Hola Valentina Ruiz",
    "¿En qué te ayudamos?",
    "Escríbenos en horario de oficina",
    "¡Gracias, Valentina Ruiz!",
]


def office_hours_flow(group: str) -> dict[str, Any]:
    """The support flow, open every day (UTC) from two hours before OFFICE to two after."""
    flow = support_flow(group, time_zone="UTC")
    office = datetime.fromtimestamp(OFFICE, UTC)
    hours = {
        "from": (office - timedelta(hours=2)).strftime("%H:%M"),
        "to": (office + timedelta(hours=2)).strftime("%H:%M"),
    }
    for block in flow["blocks"]:
        for rule in block.get("rules", []):
            for clause in rule["if"]:
                if "days" in clause:
                    clause["days"] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
                if "time" in clause:
                    clause["time"] = hours
    flow["holidays"] = []
    return flow


async def start_with_flow(
    processes: Processes, http: httpx.AsyncClient, env: dict[str, str], number: str
) -> dict[str, Any]:
    processes.env.update(env)
    for name in ALL:
        processes.start(name)
    await wait_for_gateway(http)
    workspace = await create_workspace_cli(env, "Acme", number, agent_conversations=True)
    # create_workspace_cli uses the CLI default zone (UTC); the flow names Bogotá itself.
    auth = {"Authorization": f"Bearer {workspace['admin_token']}"}
    group = await http.post("/api/groups", json={"name": "Billing"}, headers=auth)
    assert group.status_code == 201, group.text
    published = await http.post(
        "/api/flows", json=office_hours_flow(group.json()["group_id"]), headers=auth
    )
    assert published.status_code == 201, published.text
    chosen = await http.put(
        f"/api/numbers/{number}/flow", json={"flow_id": published.json()["flow_id"]}, headers=auth
    )
    assert chosen.status_code == 200, chosen.text
    return workspace


async def post(http: httpx.AsyncClient, body: bytes) -> None:
    response = await http.post(
        "/webhooks/whatsapp", content=body, headers=signed_headers(TEST_APP_SECRET, body)
    )
    assert response.status_code == 200, response.text


async def test_the_bot_talks_through_the_graph_api_and_statuses_come_back(
    processes: Processes, http: httpx.AsyncClient, flow_env: dict[str, str], graph: FakeGraphApi
) -> None:
    number = "4803001"
    workspace = await start_with_flow(processes, http, flow_env, number)
    auth = {"Authorization": f"Bearer {workspace['admin_token']}"}
    await post(http, messages_webhook(number, [Text("573001", "w.a", "hola", OFFICE)]))
    await post(http, messages_webhook(number, [Text("573001", "w.b", "Facturación", OFFICE + 9)]))
    await post(http, messages_webhook(number, [Text("573002", "w.c", "hola", EVENING)]))
    await post(http, messages_webhook(number, [Text("573002", "w.d", "Otro", EVENING + 9)]))

    sent_to_office = await eventually(
        lambda: asyncio.sleep(0, graph.received_to("573001")), lambda r: len(r) >= 3, within=30
    )
    assert [r.text for r in sent_to_office] == IN_OFFICE
    assert sent_to_office[1].body["interactive"]["action"]["buttons"][0]["reply"]["id"] == "billing"
    assert sent_to_office[0].authorization == "Bearer test-graph-token"
    assert sent_to_office[0].phone_number_id == number
    sent_after = await eventually(
        lambda: asyncio.sleep(0, graph.received_to("573002")), lambda r: len(r) >= 4, within=30
    )
    assert [r.text for r in sent_after] == AFTER_HOURS

    # Meta reports the greeting delivered, then read: the history shows it.
    wamid = sent_to_office[0].wamid
    assert wamid is not None
    for status, at in (("delivered", OFFICE + 20), ("read", OFFICE + 30)):
        body = orjson.dumps(
            {
                "object": "whatsapp_business_account",
                "entry": [
                    {
                        "id": "1",
                        "changes": [
                            {
                                "field": "messages",
                                "value": {
                                    "messaging_product": "whatsapp",
                                    "metadata": {
                                        "display_phone_number": "57300",
                                        "phone_number_id": number,
                                    },
                                    "statuses": [
                                        {
                                            "id": wamid,
                                            "status": status,
                                            "timestamp": str(at),
                                            "recipient_id": "573001",
                                        }
                                    ],
                                },
                            }
                        ],
                    }
                ],
            }
        )
        await post(http, body)

    async def greeting() -> dict[str, Any]:
        found = await http.get("/api/conversations", params={"contact": "573001"}, headers=auth)
        conversation = found.json()["conversations"][0]["conversation_id"]
        lines = (await http.get(f"/api/conversations/{conversation}/history", headers=auth)).json()
        line: dict[str, Any] = next(
            line for line in lines["history"] if line["text"] == "Hola Valentina Ruiz"
        )
        return line

    line = await eventually(greeting, lambda found: found["status"] == "read", within=30)
    assert line["wamid"] == wamid


async def test_sigkill_of_flows_and_dispatcher_in_a_burst_of_500_conversations(
    processes: Processes,
    http: httpx.AsyncClient,
    flow_env: dict[str, str],
    graph: FakeGraphApi,
) -> None:
    settings = Settings.from_env(flow_env)
    number = "4803002"
    await start_with_flow(processes, http, flow_env, number)
    customers = [f"5731{n:06d}" for n in range(500)]
    expected = {c: IN_OFFICE if n % 2 == 0 else AFTER_HOURS for n, c in enumerate(customers)}

    async def burst() -> None:
        for start in range(0, 500, 10):
            batch = customers[start : start + 10]
            hello = [
                Text(c, f"w.{c}.1", "hola", OFFICE if n % 2 == 0 else EVENING)
                for n, c in enumerate(batch, start)
            ]
            answer = [
                Text(c, f"w.{c}.2", "Facturación", (OFFICE if n % 2 == 0 else EVENING) + 9)
                for n, c in enumerate(batch, start)
            ]
            await post(http, messages_webhook(number, hello))
            await post(http, messages_webhook(number, answer))

    sender = asyncio.create_task(burst())
    await eventually(lambda: asyncio.sleep(0, len(graph.received)), lambda n: n >= 200, within=120)
    processes.kill("flows")
    processes.kill("dispatcher")
    killed_at = len(graph.received)
    processes.start("flows")
    processes.start("dispatcher")
    await sender

    async def finished_runs() -> int:
        rows = await query(
            settings,
            "flows",
            "SELECT count(*) AS n FROM {s}.events"
            " WHERE topic IN ('flow.hand_off_requested', 'flow.ended')",
        )
        return int(rows[0]["n"])

    assert await eventually(finished_runs, lambda n: n >= 500, within=180) == 500

    async def outcomes() -> list[dict[str, Any]]:
        return await query(
            settings,
            "dispatcher",
            "SELECT topic, count(*) AS n FROM {s}.events WHERE topic <> 'outbound.send_attempted'"
            " GROUP BY topic ORDER BY topic",
        )

    total = sum(len(texts) for texts in expected.values())  # 1,750 bot messages
    final = await eventually(
        outcomes, lambda rows: sum(r["n"] for r in rows) >= total, within=180, interval=0.5
    )
    await asyncio.sleep(1)
    by_outcome = {row["topic"]: row["n"] for row in await outcomes()}
    assert sum(by_outcome.values()) == total, final
    assert killed_at < total, "the kill came after the burst: it proved nothing"

    # Never twice: each (customer, text) reached the Graph API at most once.
    sends = Counter((r.to, r.text) for r in graph.received)
    assert max(sends.values()) == 1
    # Every conversation reached the state it reaches without a crash, in order; a message
    # whose send was in flight at the kill is the only one allowed to be missing (its
    # outcome is recorded as unknown, not silently retried).
    unknown = by_outcome.get("outbound.outcome_unknown", 0)
    assert unknown <= 2
    assert by_outcome["outbound.message_sent"] == total - unknown
    for customer, texts in expected.items():
        received = [r.text for r in graph.received_to(customer)]
        assert received == texts or (
            unknown and len(received) == len(texts) - 1 and set(received) < set(texts)
        ), (customer, received)


async def test_a_failed_message_is_sent_again_only_when_an_admin_decides_so(
    processes: Processes, http: httpx.AsyncClient, flow_env: dict[str, str], graph: FakeGraphApi
) -> None:
    number = "4803003"
    workspace = await start_with_flow(processes, http, flow_env, number)
    auth = {"Authorization": f"Bearer {workspace['admin_token']}"}
    graph.script("573009", Reply.bad_request())  # Meta refuses the greeting once
    await post(http, messages_webhook(number, [Text("573009", "w.r", "hola", OFFICE)]))

    async def greeting() -> dict[str, Any]:
        found = await http.get("/api/conversations", params={"contact": "573009"}, headers=auth)
        conversations = found.json()["conversations"]
        if not conversations:
            return {"status": None}
        conversation = conversations[0]["conversation_id"]
        lines = (await http.get(f"/api/conversations/{conversation}/history", headers=auth)).json()
        line: dict[str, Any] = next(
            (line for line in lines["history"] if line["text"] == "Hola Valentina Ruiz"),
            {"status": None},
        )
        return {**line, "conversation_id": conversation}

    failed = await eventually(greeting, lambda line: line["status"] == "failed", within=30)
    assert "Recipient not allowed" in orjson.dumps(failed["errors"]).decode()
    assert [r.status for r in graph.received_to("573009")][:1] == [400]
    path = f"/api/conversations/{failed['conversation_id']}/messages/{failed['message_id']}/retry"
    question = await eventually(
        lambda: asyncio.sleep(0, graph.received_to("573009")), lambda r: len(r) >= 2, within=30
    )
    assert question[1].text == "¿En qué te ayudamos?"  # the conversation went on meanwhile
    retried = await http.post(path, headers=auth)
    assert retried.status_code == 202, retried.text
    sent = await eventually(greeting, lambda line: line["status"] == "sent", within=30)
    assert sent["wamid"] is not None
    greetings = [r for r in graph.received_to("573009") if r.text == "Hola Valentina Ruiz"]
    assert [r.status for r in greetings] == [400, 200]
    again = await http.post(path, headers=auth)
    assert again.status_code == 409  # a sent message is never sent twice
