"""Activating agent conversations per business number, on the real broker and database.

A new workspace's number starts with agent conversations off: a flow's connect-to-agent
block follows its fallback and the history says why. The admin turns them on
(``PUT /api/numbers/{id}/agent-conversations``, answered with the directory's verdict) and the
next conversation is handed to the group.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from services.settings import Settings
from services.workspaces import create_workspace
from tests.conftest import TEST_APP_SECRET
from tests.harness import consumers, eventually, gateway_client
from tests.unit.test_agent_conversations import hand_off_flow
from tests.webhooks import Text, messages_webhook, signed_headers

pytestmark = pytest.mark.integration
NUMBER = "480112093377001"
# Customers write after the switch was set (conversations read it as of their start).
MONDAY_10_UTC = int(datetime(2027, 3, 1, 10, 0, tzinfo=UTC).timestamp())


class Desk:
    def __init__(self, client: httpx.AsyncClient, admin: dict[str, str]) -> None:
        self.client = client
        self.admin = admin
        self.customers = 0

    async def write(self, text: str) -> str:
        """A new customer writes; the id of the conversation once its run has gone on."""
        self.customers += 1
        customer = f"5731770{self.customers:05d}"
        at = MONDAY_10_UTC + self.customers * 60
        body = messages_webhook(NUMBER, [Text(customer, f"w.{uuid.uuid4().hex}", text, at)])
        response = await self.client.post(
            "/webhooks/whatsapp", content=body, headers=signed_headers(TEST_APP_SECRET, body)
        )
        assert response.status_code == 200, response.text

        async def conversations() -> list[dict[str, Any]]:
            found = await self.client.get(
                "/api/conversations", params={"contact": customer}, headers=self.admin
            )
            rows: list[dict[str, Any]] = found.json()["conversations"]
            return rows

        [row] = await eventually(conversations, lambda rows: len(rows) == 1)
        return str(row["conversation_id"])

    async def history(self, conversation: str, *, until: tuple[str, ...]) -> list[str]:
        """The history's lines once each of ``until`` shows in one (topics project apart)."""

        async def lines() -> list[str]:
            found = await self.client.get(
                f"/api/conversations/{conversation}/history", headers=self.admin
            )
            return [line["text"] or "" for line in found.json()["history"]]

        return await eventually(
            lines, lambda texts: all(any(part in text for text in texts) for part in until)
        )

    async def numbers(self) -> list[dict[str, Any]]:
        found = await self.client.get("/api/numbers", headers=self.admin)
        assert found.status_code == 200, found.text
        rows: list[dict[str, Any]] = found.json()["numbers"]
        return rows


async def test_off_follows_the_fallback_with_the_reason_and_on_hands_off(
    settings: Settings,
) -> None:
    async with consumers(settings), gateway_client(settings) as client:
        workspace = await create_workspace(settings, name="Acme", phone_number_id=NUMBER)
        admin = {"Authorization": f"Bearer {workspace['admin_token']}"}
        desk = Desk(client, admin)
        group = await client.post("/api/groups", json={"name": "Support"}, headers=admin)
        assert group.status_code == 201, group.text
        flow = hand_off_flow()
        flow["blocks"][1]["group"] = group.json()["group_id"]
        published = await client.post("/api/flows", json=flow, headers=admin)
        assert published.status_code == 201, published.text
        flow_id = published.json()["flow_id"]
        chosen = await client.put(
            f"/api/numbers/{NUMBER}/flow", json={"flow_id": flow_id}, headers=admin
        )
        assert chosen.status_code == 200, chosen.text

        # A new number: off until an admin turns it on.
        assert await desk.numbers() == [
            {
                "phone_number_id": NUMBER,
                "display_phone_number": None,
                "active_flow_id": flow_id,
                "agent_conversations": False,
            }
        ]
        first = await desk.write("hola")
        lines = await desk.history(first, until=("Gracias", "not handed to agents", "flow_ended"))
        reason = f"agent conversations are off on business number {NUMBER}"
        assert any(
            f"not handed to agents at agent: {reason}" in line and "'later'" in line
            for line in lines
        ), lines
        assert "Hoy no hay asesores" in lines
        assert "Te paso con un asesor" not in lines
        row = (await client.get(f"/api/conversations/{first}", headers=admin)).json()
        assert row["assignment_state"] is None  # nobody was asked to take it
        assert row["status"] == "closed"  # the fallback path ended the flow

        # Only an admin turns it on; a bad body or another number says what is wrong.
        agent = await client.post(
            "/api/members", json={"name": "Agent", "role": "agent"}, headers=admin
        )
        agent_auth = {"Authorization": f"Bearer {agent.json()['token']}"}
        url = f"/api/numbers/{NUMBER}/agent-conversations"
        refused = await client.put(url, json={"enabled": True}, headers=agent_auth)
        assert refused.status_code == 403
        unknown = await client.put(
            "/api/numbers/999/agent-conversations", json={"enabled": True}, headers=admin
        )
        assert unknown.status_code == 404
        assert "999" in unknown.json()["detail"]
        bad = await client.put(url, json={"enabled": "yes"}, headers=admin)
        assert bad.status_code == 422

        turned_on = await client.put(url, json={"enabled": True}, headers=admin)
        assert turned_on.status_code == 200, turned_on.text
        assert turned_on.json()["agent_conversations"] is True
        assert turned_on.json()["phone_number_id"] == NUMBER
        [number] = await desk.numbers()
        assert number["agent_conversations"] is True
        assert number["display_phone_number"] == "573001112233"  # as Meta's webhook said

        second = await desk.write("hola")
        lines = await desk.history(second, until=("handed to agents", "Te paso"))
        assert "Te paso con un asesor" in lines
        assert not any("not handed to agents" in line for line in lines)
        held = await eventually(
            lambda: client.get(f"/api/conversations/{second}", headers=admin),
            lambda r: r.json()["assignment_state"] == "queued",
        )
        assert held.json()["group_id"] == group.json()["group_id"]
