"""What the agent suite needs from the API, on the real broker and database: the inbox's
facts (last message, unread per member, waiting since, deadline, service window), the flow's
steps in the history, read markers, and the browser session (cookie, CSRF, sign-out)."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest

from services.gateway.change_signal import ChangeSignal
from services.settings import Settings
from services.workspaces import create_workspace
from tests.conftest import TEST_APP_SECRET
from tests.harness import consumers, eventually, gateway_client
from tests.integration.test_expiry import expiry_running
from tests.webhooks import Text, messages_webhook, signed_headers

pytestmark = pytest.mark.integration
NUMBER = "480112093311001"
CUSTOMER = "573004445566"


def asking_flow(group: str) -> dict[str, Any]:
    return {
        "name": "Ask then hand off",
        "start": "ask",
        "blocks": [
            {
                "id": "ask",
                "type": "question",
                "text": "¿Facturación u otro?",
                "variable": "topic",
                "buttons": [
                    {"id": "billing", "title": "Facturación"},
                    {"id": "other", "title": "Otro"},
                ],
                "next": "route",
                "fallback": "agents",
            },
            {
                "id": "route",
                "type": "condition",
                "rules": [
                    {
                        "if": [{"variable": "topic", "equals": "billing"}],
                        "next": "agents",
                    }
                ],
                "default": "agents",
            },
            {
                "id": "agents",
                "type": "connect_to_agent",
                "group": group,
                "rotation": "available",
                "text": "Te comunico con un asesor",
            },
        ],
    }


async def ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    found: dict[str, Any] = response.json()
    return found


async def test_the_inbox_says_what_each_conversation_needs_and_unread_is_per_member(
    settings: Settings,
) -> None:
    async with consumers(settings), expiry_running(settings), gateway_client(settings) as client:
        workspace = await create_workspace(
            settings, name="Suite", phone_number_id=NUMBER, agent_conversations=True
        )
        admin = {"Authorization": f"Bearer {workspace['admin_token']}"}
        agent = await ok(
            await client.post("/api/members", json={"name": "Ana"}, headers=admin), 201
        )
        ana = {"Authorization": f"Bearer {agent['token']}"}
        group = await ok(await client.post("/api/groups", json={"name": "G"}, headers=admin), 201)
        await ok(
            await client.put(
                f"/api/groups/{group['group_id']}/members/{agent['member_id']}", headers=admin
            )
        )
        flow = await ok(
            await client.post("/api/flows", json=asking_flow(group["group_id"]), headers=admin),
            201,
        )
        await ok(
            await client.put(
                f"/api/numbers/{NUMBER}/flow", json={"flow_id": flow["flow_id"]}, headers=admin
            )
        )
        await ok(await client.put("/api/me/status", json={"status": "available"}, headers=ana))

        first = int(time.time()) - 10  # in the past: Meta's stamps are never ahead of us
        for index, text in enumerate(("hola", "Facturación")):
            # The answer comes a second later, as a person's would.
            body = messages_webhook(
                NUMBER, [Text(CUSTOMER, f"w.suite.{index}", text, first + index)]
            )
            await ok(
                await client.post(
                    "/webhooks/whatsapp",
                    content=body,
                    headers=signed_headers(TEST_APP_SECRET, body),
                )
            )

        async def mine() -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = (
                await ok(await client.get("/api/me/inbox", headers=ana))
            )["assigned"]
            return found

        def settled(items: list[dict[str, Any]]) -> bool:
            return bool(items) and items[0]["closes_at"] is not None and items[0]["unread"] == 2

        [item] = await eventually(mine, settled, within=30)
        conversation = item["conversation_id"]
        sent_at = datetime.fromtimestamp(first, UTC)
        answered_at = sent_at + timedelta(seconds=1)
        assert item["last_message"]["text"] == "Te comunico con un asesor"
        assert item["last_message"]["author_kind"] == "bot"
        assert item["service_window_open"] is True
        # The window runs from her last message; the deadline from the start.
        window_until = datetime.fromisoformat(item["service_window_until"])
        assert window_until == answered_at + timedelta(hours=24)
        # Nobody answered her yet: she waits since her first message.
        assert datetime.fromisoformat(item["waiting_since"]) == sent_at
        assert item["closes_because"] == "meta_24h"
        assert datetime.fromisoformat(item["closes_at"]) == sent_at + timedelta(hours=24)
        assert item["group_name"] == "G"

        # The history shows the flow's steps: what was captured, which branch and why.
        history = (
            await ok(await client.get(f"/api/conversations/{conversation}/history", headers=ana))
        )["history"]
        steps = [
            line["content"].get("step", "started") for line in history if line["kind"] == "flow"
        ]
        assert steps == ["started", "answer_captured", "condition_evaluated"]
        branch = next(
            line for line in history if line["kind"] == "flow" and "Branch" in line["text"]
        )
        assert branch["text"].startswith("Branch at 'route': to 'agents' — rule 1 held")
        kinds = [(line["kind"], line["author_kind"]) for line in history]
        # The run starts after the message that started the conversation, before the bot
        # asks anything.
        assert kinds[:3] == [("message", "customer"), ("flow", "bot"), ("message", "bot")]

        # Reading moves my marker only: the admin's unread count stays.
        read = await client.post(
            f"/api/conversations/{conversation}/read", json={"up_to": 1}, headers=ana
        )
        assert read.status_code == 202, read.text
        [item] = await eventually(mine, lambda items: items[0]["unread"] == 1)
        assert item["read_up_to"] == 1
        again = await client.post(
            f"/api/conversations/{conversation}/read", json={"up_to": 1}, headers=ana
        )
        assert (again.status_code, again.json()) == (200, {"read_up_to": 1})
        beyond = await client.post(
            f"/api/conversations/{conversation}/read", json={"up_to": 3}, headers=ana
        )
        assert beyond.status_code == 422
        assert "2 customer messages" in beyond.json()["detail"]
        everyone = await ok(await client.get("/api/me/inbox", headers=admin))
        [seen_by_admin] = [c for c in everyone["all"] if c["conversation_id"] == conversation]
        assert (seen_by_admin["unread"], seen_by_admin["assignee_name"]) == (2, "Ana")

        # An answer from the agent: the customer no longer waits.
        await ok(
            await client.post(
                f"/api/conversations/{conversation}/messages", json={"text": "Hola"}, headers=ana
            ),
            202,
        )
        [item] = await eventually(mine, lambda items: items[0]["waiting_since"] is None)
        assert item["last_message"]["author_kind"] == "member"


def csrf_of(page: str) -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]+)"', page)
    assert found is not None, "the page carries no CSRF token"
    return found.group(1)


async def test_a_browser_session_is_a_signed_cookie_and_cookie_writes_need_the_pages_token(
    settings: Settings,
) -> None:
    async with consumers(settings), gateway_client(settings) as client:
        workspace = await create_workspace(settings, name="Cookies", phone_number_id=NUMBER)
        admin = {"Authorization": f"Bearer {workspace['admin_token']}"}
        agent = await ok(
            await client.post("/api/members", json={"name": "Bea"}, headers=admin), 201
        )

        # Signed out: pages send the browser to sign in, fragments and the API answer 401.
        page = await client.get("/admin/members?x=1")
        assert (page.status_code, page.headers["location"]) == (
            303,
            "/sign-in?next=%2Fadmin%2Fmembers%3Fx%3D1",
        )
        assert (await client.get("/ui/inbox")).status_code == 401
        assert (await client.get("/api/me")).status_code == 401

        wrong = await client.post("/sign-in", data={"token": "nope", "next": "/"})
        assert wrong.status_code == 401
        assert "unknown" in wrong.text
        away = await client.post(
            "/sign-in", data={"token": agent["token"], "next": "//evil.example/"}
        )
        assert (away.status_code, away.headers["location"]) == (303, "/")
        cookie = away.headers["set-cookie"]
        assert agent["token"] not in cookie
        for attribute in ("HttpOnly", "SameSite=strict", "Max-Age=43200", "Path=/"):
            assert attribute.lower() in cookie.lower(), cookie

        me = await ok(await client.get("/api/me"))
        assert me["name"] == "Bea"
        token = csrf_of((await client.get("/")).text)
        own = {"Origin": "http://gateway"}
        refused = await client.put("/api/me/status", json={"status": "available"}, headers=own)
        assert refused.status_code == 403
        assert "X-CSRF-Token" in refused.json()["detail"]
        forged = await client.put(
            "/api/me/status",
            json={"status": "available"},
            headers={"Origin": "http://127.0.0.1:9999", "X-CSRF-Token": token},
        )
        assert forged.status_code == 403
        assert "http://127.0.0.1:9999" in forged.json()["detail"]
        done = await client.put(
            "/api/me/status", json={"status": "available"}, headers={**own, "X-CSRF-Token": token}
        )
        assert done.status_code == 200, done.text

        # Agents do not get admin pages; the bearer API is as it was (no CSRF for it).
        assert (await client.get("/admin/members")).status_code == 403
        bearer = await client.get(
            "/api/members", headers={**admin, "Origin": "http://127.0.0.1:9999"}
        )
        assert bearer.status_code == 200

        # An altered cookie is no session.
        value = client.cookies["switchboard_session"]
        client.cookies.clear()
        client.cookies.set("switchboard_session", value[:-3] + "abc")
        assert (await client.get("/api/me")).status_code == 401
        client.cookies.clear()
        await client.post("/sign-in", data={"token": agent["token"]})
        token = csrf_of((await client.get("/")).text)

        # Signing out needs the page's token too, then the cookie is gone.
        assert (await client.post("/sign-out", data={}, headers=own)).status_code == 403
        out = await client.post("/sign-out", data={"csrf": token}, headers=own)
        assert (out.status_code, out.headers["location"]) == (303, "/sign-in")
        assert 'switchboard_session=""' in out.headers["set-cookie"]
        assert (await client.get("/api/me")).status_code == 401

        # A new token ends the sessions the old one opened (a leaked token is rotated).
        await client.post("/sign-in", data={"token": agent["token"]})
        assert (await client.get("/api/me")).status_code == 200
        rotated = await ok(
            await client.post(f"/api/members/{agent['member_id']}/token", headers=admin)
        )
        assert (await client.get("/api/me")).status_code == 401
        assert (await client.get("/")).status_code == 303

        # A deactivated member's session ends with its token.
        await client.post("/sign-in", data={"token": rotated["token"]})
        assert (await client.get("/api/me")).status_code == 200
        await ok(await client.delete(f"/api/members/{agent['member_id']}", headers=admin))
        assert (await client.get("/api/me")).status_code == 401
        assert (await client.get("/")).status_code == 303


async def test_a_change_in_the_feed_wakes_the_streams_of_its_workspace_at_once(
    settings: Settings,
) -> None:
    """The projector notifies PostgreSQL's channel as it commits a change; the gateway's
    listener counts it for the workspace (the poll is only the fallback)."""
    async with consumers(settings), gateway_client(settings) as client:
        workspace = await create_workspace(settings, name="Signal", phone_number_id=NUMBER)
        admin = {"Authorization": f"Bearer {workspace['admin_token']}"}
        other = await create_workspace(settings, name="Quiet", phone_number_id=NUMBER + "7")
        signal = ChangeSignal(settings.database().conninfo(), settings.schema("projections"))
        signal.start()
        try:
            await asyncio.wait_for(signal.listening.wait(), 30)
            ours, theirs = UUID(workspace["workspace_id"]), UUID(other["workspace_id"])
            mark, quiet = signal.mark(ours), signal.mark(theirs)
            status = {"status": "available"}
            await ok(await client.put("/api/me/status", json=status, headers=admin))
            await signal.wait(ours, mark, at_most=30)
            assert signal.mark(ours) > mark  # woken by the notification, not the time limit
            assert signal.mark(theirs) == quiet
        finally:
            await signal.stop()
