"""``switchboard demo-setup`` (what ``make run`` calls) on the real broker and database: the
demo team and flow are made once, kept on later runs, and a customer reaches a demo agent."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from services.demo_setup import AGENT_NAMES, GROUP_NAME, DemoSetup, sign_in_sheet
from services.gateway.sandbox import meta
from services.settings import Settings
from tests.conftest import TEST_APP_SECRET
from tests.harness import ROOT, consumers, eventually, gateway_client
from tests.webhooks import signed_headers

pytestmark = pytest.mark.integration
NUMBER = "480112093344001"


async def test_the_demo_is_made_once_and_hands_customers_to_its_agents(
    settings: Settings, tmp_path: Path
) -> None:
    state_file = tmp_path / "demo-workspace.json"
    async with consumers(settings), gateway_client(settings) as client:
        demo = DemoSetup(settings, client, state_file, NUMBER, ROOT / "deploy" / "demo-flow.yaml")
        state = await demo.ensure()
        admin = {"Authorization": f"Bearer {state['admin_token']}"}

        [group] = (await client.get("/api/groups", headers=admin)).json()["groups"]
        assert group["name"] == GROUP_NAME
        assert [agent["name"] for agent in state["agents"]] == list(AGENT_NAMES)
        assert sorted(group["member_ids"]) == sorted(a["member_id"] for a in state["agents"])
        [number] = (await client.get("/api/numbers", headers=admin)).json()["numbers"]
        assert number["active_flow_id"] == state["flow_id"]
        assert number["agent_conversations"] is True
        for agent in state["agents"]:
            me = await client.get("/api/me", headers={"Authorization": f"Bearer {agent['token']}"})
            assert (me.json()["role"], me.json()["status"]) == ("agent", "available")
        assert orjson.loads(state_file.read_bytes()) == state

        # A second run keeps everything: same tokens, one group, the flow's first version.
        again = await demo.ensure()
        assert again == state
        assert len((await client.get("/api/groups", headers=admin)).json()["groups"]) == 1
        [flow] = (await client.get("/api/flows", headers=admin)).json()["flows"]
        assert (flow["flow_id"], flow["latest_version"]) == (state["flow_id"], 1)

        sheet = sign_in_sheet(state, "http://127.0.0.1:8000", sandbox=True)
        assert "http://127.0.0.1:8000/sandbox" in sheet
        assert "http://127.0.0.1:8000/ " in sheet
        assert all(a["token"] in sheet for a in state["agents"])
        assert state["admin_token"] in sheet

        # A customer asks for an agent: a demo agent gets the conversation.
        await asyncio.sleep(1.05 - time.time() % 1)  # see tests/integration/test_sandbox.py
        customer = "5731" + str(uuid.uuid4().int)[:8]
        hello = meta.text_message(f"wamid.{uuid.uuid4().hex}", customer, datetime.now(UTC), "hola")
        await _post(client, meta.messages_webhook(NUMBER, customer, "Lucía", hello))
        conversation = await _conversation(client, admin, customer)
        await eventually(lambda: _lines(client, admin, conversation), lambda lines: len(lines) >= 3)
        tap = {
            "from": customer,
            "id": f"wamid.{uuid.uuid4().hex}",
            "timestamp": str(int(time.time()) + 1),
            "type": "interactive",
            "interactive": {
                "type": "button_reply",
                "button_reply": {"id": "talk_to_agent", "title": "Hablar con un asesor"},
            },
        }
        await _post(client, meta.messages_webhook(NUMBER, customer, "Lucía", tap))
        held = await eventually(
            lambda: client.get(f"/api/conversations/{conversation}", headers=admin),
            lambda r: r.json()["assignment_state"] == "assigned",
        )
        assert held.json()["assignee_id"] in {a["member_id"] for a in state["agents"]}
        assert held.json()["group_id"] == state["group_id"]


async def _post(client: httpx.AsyncClient, document: dict[str, Any]) -> None:
    body = orjson.dumps(document)
    response = await client.post(
        "/webhooks/whatsapp", content=body, headers=signed_headers(TEST_APP_SECRET, body)
    )
    assert response.status_code == 200, response.text


async def _conversation(client: httpx.AsyncClient, admin: dict[str, str], customer: str) -> str:
    async def found() -> list[dict[str, Any]]:
        response = await client.get(
            "/api/conversations", params={"contact": customer}, headers=admin
        )
        rows: list[dict[str, Any]] = response.json()["conversations"]
        return rows

    [row] = await eventually(found, lambda rows: len(rows) == 1)
    return str(row["conversation_id"])


async def _lines(client: httpx.AsyncClient, admin: dict[str, str], conversation: str) -> list[Any]:
    response = await client.get(f"/api/conversations/{conversation}/history", headers=admin)
    lines: list[Any] = response.json()["history"]
    return lines
