"""The WhatsApp sandbox with the real pipeline behind it: the gateway on a real socket in
sandbox mode, every consumer and the dispatcher in-process, the real broker and database.

A customer writes through the sandbox's API, the flow answers with buttons that the
dispatcher sends to the sandbox's Graph API stand-in, the tap goes back as Meta's
``button_reply`` webhook, an agent's reply reaches the phone, and statuses come back as
signed webhooks until the history says ``read``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from events.catalogue import WHATSAPP_INBOUND
from events.whatsapp import WhatsAppMessageReceived, WhatsAppStatusReceived
from services.dispatcher.app import create_app as create_dispatcher
from services.gateway.app import create_app as create_gateway
from services.gateway.sandbox.meta import display_number
from services.settings import Settings, sandbox_access_token
from services.workspaces import create_workspace
from tests.conftest import TEST_APP_SECRET
from tests.harness import (
    ROOT,
    consumers,
    eventually,
    free_port,
    gateway_client,
    query,
    topic_records,
)
from tests.integration.test_stream import served

pytestmark = pytest.mark.integration
NUMBER = "480112093366001"
TEST_SECRET = TEST_APP_SECRET


def sandbox_settings(env: dict[str, str], port: int) -> Settings:
    """Sandbox mode as ``make run`` sets it: the dispatcher sends to this gateway."""
    return Settings.from_env(
        {**env, "SWITCHBOARD_SANDBOX": "1", "SWITCHBOARD_HTTP_PORT": str(port)}
    )


def buttons_flow(group: str) -> dict[str, Any]:
    """Greet, ask with two buttons, hand off to ``group`` whatever the answer."""
    return {
        "name": "Sandbox",
        "start": "greet",
        "blocks": [
            {"id": "greet", "type": "message", "text": "Hola {{contact.name}}", "next": "ask"},
            {
                "id": "ask",
                "type": "question",
                "text": "¿En qué te ayudamos?",
                "variable": "topic",
                "buttons": [
                    {"id": "talk_to_agent", "title": "Hablar con alguien"},
                    {"id": "order", "title": "Mi pedido"},
                ],
                "next": "agent",
                "fallback": "agent",
            },
            {
                "id": "agent",
                "type": "connect_to_agent",
                "group": group,
                "rotation": "available",
                "text": "Te comunico con un asesor",
            },
        ],
    }


@dataclass
class SandboxSystem:
    url: str
    settings: Settings
    client: httpx.AsyncClient  # the served gateway, over TCP
    admin: dict[str, str]
    agent: dict[str, str]
    group: str

    async def conversation_of(self, contact: str) -> str:
        async def found() -> list[dict[str, Any]]:
            response = await self.client.get(
                "/api/conversations", params={"contact": contact}, headers=self.admin
            )
            rows: list[dict[str, Any]] = response.json()["conversations"]
            return rows

        [row] = await eventually(found, lambda rows: len(rows) == 1)
        return str(row["conversation_id"])

    async def history(self, conversation: str) -> list[dict[str, Any]]:
        response = await self.client.get(
            f"/api/conversations/{conversation}/history", headers=self.admin
        )
        lines: list[dict[str, Any]] = response.json()["history"]
        return lines

    async def phone(self, contact: str) -> list[dict[str, Any]]:
        response = await self.client.get(
            "/sandbox/api/messages", params={"phone_number_id": NUMBER, "contact": contact}
        )
        assert response.status_code == 200, response.text
        rows: list[dict[str, Any]] = response.json()["messages"]
        return sorted(rows, key=lambda row: row["seq"])


@asynccontextmanager
async def sandbox_system(
    env: dict[str, str], *, flow: dict[str, Any] | None = None
) -> AsyncIterator[SandboxSystem]:
    """The whole system in sandbox mode with a workspace, an available agent in a group and
    ``flow`` (default: :func:`buttons_flow`) active on NUMBER, agent conversations on."""
    port = free_port()
    settings = sandbox_settings(env, port)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(consumers(settings))
        dispatcher = create_dispatcher(settings)
        await stack.enter_async_context(dispatcher.lifespan_context())
        await dispatcher.start()
        stack.push_async_callback(dispatcher.stop)
        url = await stack.enter_async_context(served(settings, port=port))
        client = await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=30))
        workspace = await create_workspace(
            settings, name="Sandbox Co", phone_number_id=NUMBER, agent_conversations=True
        )
        admin = {"Authorization": f"Bearer {workspace['admin_token']}"}
        group = (await client.post("/api/groups", json={"name": "Support"}, headers=admin)).json()
        created = await client.post(
            "/api/members", json={"name": "Ana", "role": "agent"}, headers=admin
        )
        agent = {"Authorization": f"Bearer {created.json()['token']}"}
        joined = await client.put(
            f"/api/groups/{group['group_id']}/members/{created.json()['member_id']}",
            headers=admin,
        )
        assert joined.status_code == 200, joined.text
        status = await client.put("/api/me/status", json={"status": "available"}, headers=agent)
        assert status.status_code == 200, status.text
        published = await client.post(
            "/api/flows", json=flow or buttons_flow(group["group_id"]), headers=admin
        )
        assert published.status_code == 201, published.text
        chosen = await client.put(
            f"/api/numbers/{NUMBER}/flow",
            json={"flow_id": published.json()["flow_id"]},
            headers=admin,
        )
        assert chosen.status_code == 200, chosen.text
        # The sandbox stamps messages with the current whole second, as Meta does, and a
        # conversation runs the flow chosen before that stamp (issue 8, item 11): start the
        # customers in the next second.
        await asyncio.sleep(1.05 - time.time() % 1)
        yield SandboxSystem(url, settings, client, admin, agent, group["group_id"])


def customer() -> dict[str, str]:
    return {"wa_id": "5731" + str(uuid.uuid4().int)[:8], "name": "Valentina"}


async def test_a_customer_in_the_sandbox_talks_to_the_bot_and_an_agent(
    isolated_env: dict[str, str],
) -> None:
    async with sandbox_system(isolated_env) as system:
        client = system.client
        contact = customer()
        wrote = await client.post(
            "/sandbox/api/messages",
            json={"phone_number_id": NUMBER, "contact": contact, "text": "hola"},
        )
        assert wrote.status_code == 201, wrote.text
        assert wrote.json()["status"] == "delivered"  # switchboard's webhook answered 200
        conversation = await system.conversation_of(contact["wa_id"])

        # The bot's greeting and buttons went through the dispatcher to the sandbox's phone.
        rows = await eventually(
            lambda: system.phone(contact["wa_id"]),
            lambda rows: len([r for r in rows if r["direction"] == "to_customer"]) == 2,
        )
        greeting, question = [r for r in rows if r["direction"] == "to_customer"]
        assert greeting["message"]["text"] == {"body": "Hola Valentina"}
        interactive = question["message"]["interactive"]
        assert interactive["type"] == "button"
        assert [b["reply"]["id"] for b in interactive["action"]["buttons"]] == [
            "talk_to_agent",
            "order",
        ]

        # Sent and delivered statuses came back as signed webhooks: the history shows them.
        async def bot_statuses() -> list[str | None]:
            lines = await system.history(conversation)
            return [
                line["status"]
                for line in lines
                if line["author_kind"] == "bot" and line["kind"] == "message"
            ]

        await eventually(bot_statuses, lambda found: found == ["delivered", "delivered"])

        # The phone showed the question: Meta's read status goes to switchboard.
        read = await client.post(f"/sandbox/api/messages/{question['wamid']}/read")
        assert read.status_code == 200, read.text
        await eventually(bot_statuses, lambda found: found == ["delivered", "read"])

        # A tap on a button is Meta's button_reply, answering that message.
        tapped = await client.post(
            "/sandbox/api/messages",
            json={
                "phone_number_id": NUMBER,
                "contact": contact,
                "reply": {"to": question["wamid"], "id": "talk_to_agent"},
            },
        )
        assert tapped.status_code == 201, tapped.text
        tap = tapped.json()["message"]
        assert tap["context"] == {"from": display_number(NUMBER), "id": question["wamid"]}
        assert tap["interactive"] == {
            "type": "button_reply",
            "button_reply": {"id": "talk_to_agent", "title": "Hablar con alguien"},
        }
        records = await topic_records(system.settings, WHATSAPP_INBOUND)
        [raw] = [
            r.payload
            for r in records
            if isinstance(r.payload, WhatsAppMessageReceived)
            and r.payload.message["id"] == tap["id"]
        ]
        assert raw.message == tap  # exactly what Meta's webhook would carry
        lines = await eventually(
            lambda: system.history(conversation),
            lambda lines: any(line["reply_id"] == "talk_to_agent" for line in lines),
        )
        [answer] = [line for line in lines if line["reply_id"] == "talk_to_agent"]
        assert (answer["message_type"], answer["text"]) == ("interactive", "Hablar con alguien")

        # The flow handed it to the group; the available agent holds it and replies.
        await eventually(
            lambda: client.get(f"/api/conversations/{conversation}", headers=system.admin),
            lambda r: r.json()["assignment_state"] == "assigned",
        )
        replied = await client.post(
            f"/api/conversations/{conversation}/messages",
            json={"text": "Hola, soy Ana. ¿En qué te ayudo?"},
            headers=system.agent,
        )
        assert replied.status_code == 202, replied.text
        said = "Hola, soy Ana. ¿En qué te ayudo?"

        def replies(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [r for r in rows if r["message"].get("text", {}).get("body") == said]

        rows = await eventually(lambda: system.phone(contact["wa_id"]), lambda r: bool(replies(r)))
        [reply] = replies(rows)

        async def agent_status() -> list[str | None]:
            lines = await system.history(conversation)
            return [line["status"] for line in lines if line["author_kind"] == "member"]

        await eventually(agent_status, lambda found: found == ["delivered"])
        read = await client.post(f"/sandbox/api/messages/{reply['wamid']}/read")
        assert read.status_code == 200, read.text
        await eventually(agent_status, lambda found: found == ["read"])
        # Reading again changes nothing (Meta sends one read).
        again = await client.post(f"/sandbox/api/messages/{reply['wamid']}/read")
        assert again.json() == {"wamid": reply["wamid"], "status": "read"}


async def test_the_phone_refuses_what_the_message_does_not_offer(
    isolated_env: dict[str, str],
) -> None:
    async with sandbox_system(isolated_env) as system:
        client = system.client
        contact = customer()
        wrote = await client.post(
            "/sandbox/api/messages",
            json={"phone_number_id": NUMBER, "contact": contact, "text": "hola"},
        )
        assert wrote.status_code == 201, wrote.text
        rows = await eventually(
            lambda: system.phone(contact["wa_id"]),
            lambda rows: any("interactive" in r["message"] for r in rows),
        )
        [question] = [r for r in rows if "interactive" in r["message"]]
        tap = {"phone_number_id": NUMBER, "contact": contact}
        wrong_option = await client.post(
            "/sandbox/api/messages", json={**tap, "reply": {"to": question["wamid"], "id": "x"}}
        )
        assert wrong_option.status_code == 422
        assert "offers no option 'x'" in wrong_option.json()["detail"]
        someone_else = await client.post(
            "/sandbox/api/messages",
            json={**tap, "contact": customer(), "reply": {"to": question["wamid"], "id": "order"}},
        )
        assert someone_else.status_code == 404
        both = await client.post(
            "/sandbox/api/messages",
            json={**tap, "text": "a", "reply": {"to": question["wamid"], "id": "order"}},
        )
        assert both.status_code == 422
        neither = await client.post("/sandbox/api/messages", json=tap)
        assert neither.status_code == 422
        assert "either 'text' or 'reply'" in neither.text
        bad_number = await client.post(
            "/sandbox/api/messages", json={**tap, "contact": {"wa_id": "+57 300", "name": "X"}}
        )
        assert bad_number.status_code == 422
        forged = await client.post(
            "/sandbox/api/messages",
            json={**tap, "text": "hola"},
            headers={"Origin": "https://evil.example"},
        )
        assert forged.status_code == 403


async def test_the_graph_api_stand_in_answers_as_meta(isolated_env: dict[str, str]) -> None:
    async with sandbox_system(isolated_env) as system:
        client = system.client
        graph = f"/sandbox/graph/v21.0/{NUMBER}/messages"
        token = {"Authorization": f"Bearer {sandbox_access_token(TEST_SECRET)}"}
        text = {"messaging_product": "whatsapp", "to": "573100000001", "type": "text"}

        no_token = await client.post(graph, json={**text, "text": {"body": "hola"}})
        assert no_token.status_code == 401
        assert no_token.json()["error"]["code"] == 190
        invalid = await client.post(graph, json=text, headers=token)
        assert invalid.status_code == 400
        assert invalid.json()["error"]["code"] == 131008
        details = invalid.json()["error"]["error_data"]["details"]
        assert details == "text is required for a message of type 'text'"

        # A customer who last wrote to the sandbox 25 hours ago: accepted (as Meta does),
        # then failed with 131047.
        await query(
            system.settings,
            "sandbox",
            "INSERT INTO {s}.phone_messages (version, wamid, phone_number_id, contact_wa_id,"
            " direction, message, status, created_at) VALUES"
            " (nextval('{s}.phone_versions'), 'wamid.old', %s,"
            " '573100000001', 'from_customer', '{{}}', 'delivered', now() - interval '25 hours')",
            NUMBER,
        )
        sent = await client.post(graph, json={**text, "text": {"body": "hola"}}, headers=token)
        assert sent.status_code == 200, sent.text
        answer = sent.json()
        assert answer["contacts"] == [{"input": "573100000001", "wa_id": "573100000001"}]
        wamid = answer["messages"][0]["id"]
        rows = await eventually(
            lambda: system.phone("573100000001"),
            lambda rows: [r["status"] for r in rows] == ["delivered", "failed"],
        )
        assert rows[1]["wamid"] == wamid
        records = await topic_records(system.settings, WHATSAPP_INBOUND)
        [failed] = [
            r.payload.status
            for r in records
            if isinstance(r.payload, WhatsAppStatusReceived) and r.payload.status["id"] == wamid
        ]
        assert failed["status"] == "failed"
        assert failed["errors"][0]["code"] == 131047

        # A customer the sandbox never saw write (its messages reached switchboard another
        # way): delivered, the window being switchboard's to keep.
        other = {**text, "to": "573100000002", "text": {"body": "hola"}}
        assert (await client.post(graph, json=other, headers=token)).status_code == 200
        await eventually(
            lambda: system.phone("573100000002"), lambda rows: rows[0]["status"] == "delivered"
        )


async def test_no_sandbox_route_answers_when_sandbox_mode_is_off(settings: Settings) -> None:
    assert settings.sandbox is False
    async with gateway_client(settings) as client:
        for method, path in (
            ("GET", "/sandbox"),
            ("GET", "/sandbox/static/sandbox.js"),
            ("GET", "/sandbox/api/numbers"),
            ("GET", "/sandbox/api/messages?phone_number_id=1&contact=5731000000"),
            ("POST", "/sandbox/api/messages"),
            ("POST", "/sandbox/graph/v21.0/4801/messages"),
        ):
            response = await client.request(method, path)
            assert response.status_code == 404, (method, path, response.status_code)
    assert not any("/sandbox" in path for path in create_gateway(settings).openapi()["paths"])


@pytest.mark.parametrize("process", ["gateway", "dispatcher"])
def test_sandbox_mode_refuses_to_start_with_a_real_token(process: str) -> None:
    env = {
        **os.environ,
        "SWITCHBOARD_SANDBOX": "1",
        "WHATSAPP_ACCESS_TOKEN": "EAAGreal",
        "WHATSAPP_APP_SECRET": TEST_SECRET,
    }
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "run", process],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "refuses to start with WHATSAPP_ACCESS_TOKEN set" in done.stderr
