"""Another workspace's token can read or change nothing of this one: every API route.

Workspace 1 has an agent, a group, a flow, and a conversation handed to the group; workspace
2's admin then calls every ``/api`` route with workspace 1's ids. Reads answer 404 or lists
without workspace 1's data; writes answer 404 (or 422 where the id is the caller's to choose)
and change nothing. The test fails if a route exists that the table below does not cover.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from services.gateway.app import create_app
from services.settings import Settings
from services.workspaces import create_workspace
from tests.conftest import TEST_APP_SECRET
from tests.harness import consumers, eventually, gateway_client
from tests.integration.test_agents import MONDAY_10_UTC, routing_flow
from tests.webhooks import Text, messages_webhook, signed_headers

pytestmark = pytest.mark.integration
NUMBER_1, NUMBER_2 = "480199990001", "480199990002"
CUSTOMER = "573001112233"


async def test_another_workspace_sees_and_changes_nothing(settings: Settings) -> None:
    async with consumers(settings, metrics=True), gateway_client(settings) as client:
        one = await create_workspace(
            settings, name="One", phone_number_id=NUMBER_1, agent_conversations=True
        )
        two = await create_workspace(settings, name="Two", phone_number_id=NUMBER_2)
        admin1 = {"Authorization": f"Bearer {one['admin_token']}"}
        intruder = {"Authorization": f"Bearer {two['admin_token']}"}

        agent = (
            await client.post("/api/members", json={"name": "Ana", "capacity": 2}, headers=admin1)
        ).json()
        group = (await client.post("/api/groups", json={"name": "G"}, headers=admin1)).json()
        gid, mid = group["group_id"], agent["member_id"]
        assert (
            await client.put(f"/api/groups/{gid}/members/{mid}", headers=admin1)
        ).status_code == 200
        flow = (await client.post("/api/flows", json=routing_flow(gid, mid), headers=admin1)).json()
        chosen = await client.put(
            f"/api/numbers/{NUMBER_1}/flow", json={"flow_id": flow["flow_id"]}, headers=admin1
        )
        assert chosen.status_code == 200, chosen.text
        for index, text in enumerate(("hola", "no_owner")):
            body = messages_webhook(
                NUMBER_1, [Text(CUSTOMER, f"w.iso.{index}", text, MONDAY_10_UTC + index)]
            )
            posted = await client.post(
                "/webhooks/whatsapp", content=body, headers=signed_headers(TEST_APP_SECRET, body)
            )
            assert posted.status_code == 200

        async def conversation() -> dict[str, Any]:
            found = await client.get(
                "/api/conversations", params={"contact": CUSTOMER}, headers=admin1
            )
            rows = found.json()["conversations"]
            return rows[0] if rows else {}

        row = await eventually(conversation, lambda r: r.get("assignment_state") == "queued")
        cid = row["conversation_id"]
        history = (await client.get(f"/api/conversations/{cid}/history", headers=admin1)).json()
        message = next(
            line
            for line in history["history"]
            if line["author_kind"] == "bot" and line["kind"] == "message"
        )
        canned = await client.post(
            "/api/canned-responses",
            json={"shortcut": "saludo", "text": "Hola {{contact.name}}"},
            headers=admin1,
        )
        assert canned.status_code == 201, canned.text
        canned_id = canned.json()["canned_response_id"]
        await eventually(
            lambda: client.get("/api/canned-responses", headers=admin1),
            lambda r: canned_id in r.text,
        )
        before = await snapshot(client, admin1, cid, gid, flow["flow_id"])

        checks: dict[tuple[str, str], Callable[[httpx.Response], bool]] = {}
        not_found: Callable[[httpx.Response], bool] = lambda r: r.status_code == 404  # noqa: E731

        def none_of_one(r: httpx.Response) -> bool:
            return r.status_code in (200, 201) and not any(
                value in r.text for value in (cid, gid, mid, flow["flow_id"], CUSTOMER)
            )

        calls: list[
            tuple[str, str, str, dict[str, Any] | None, Callable[[httpx.Response], bool]]
        ] = [
            (
                "GET",
                "/api/conversations",
                f"/api/conversations?contact={CUSTOMER}",
                None,
                none_of_one,
            ),
            (
                "GET",
                "/api/conversations/{conversation_id}",
                f"/api/conversations/{cid}",
                None,
                not_found,
            ),
            (
                "GET",
                "/api/conversations/{conversation_id}/history",
                f"/api/conversations/{cid}/history",
                None,
                not_found,
            ),
            (
                "POST",
                "/api/conversations/{conversation_id}/claim",
                f"/api/conversations/{cid}/claim",
                None,
                not_found,
            ),
            (
                "POST",
                "/api/conversations/{conversation_id}/transfer",
                f"/api/conversations/{cid}/transfer",
                {"member_id": mid},
                not_found,
            ),
            (
                "POST",
                "/api/conversations/{conversation_id}/messages",
                f"/api/conversations/{cid}/messages",
                {"text": "hi"},
                not_found,
            ),
            (
                "POST",
                "/api/conversations/{conversation_id}/read",
                f"/api/conversations/{cid}/read",
                {"up_to": 1},
                not_found,
            ),
            (
                "POST",
                "/api/conversations/{conversation_id}/close",
                f"/api/conversations/{cid}/close",
                None,
                not_found,
            ),
            (
                "POST",
                "/api/conversations/{conversation_id}/messages/{message_id}/retry",
                f"/api/conversations/{cid}/messages/{message['message_id']}/retry",
                None,
                not_found,
            ),
            ("GET", "/api/me/inbox", "/api/me/inbox", None, none_of_one),
            ("GET", "/api/me", "/api/me", None, none_of_one),
            ("PUT", "/api/me/status", "/api/me/status", {"status": "available"}, none_of_one),
            (
                "PUT",
                "/api/me/notifications",
                "/api/me/notifications",
                {"desktop": False, "sound": False},
                none_of_one,
            ),
            ("GET", "/api/members", "/api/members", None, none_of_one),
            ("POST", "/api/members", "/api/members", {"name": "Eve"}, none_of_one),
            ("GET", "/api/members/{member_id}", f"/api/members/{mid}", None, not_found),
            (
                "PATCH",
                "/api/members/{member_id}",
                f"/api/members/{mid}",
                {"capacity": 9},
                not_found,
            ),
            ("DELETE", "/api/members/{member_id}", f"/api/members/{mid}", None, not_found),
            (
                "POST",
                "/api/members/{member_id}/token",
                f"/api/members/{mid}/token",
                None,
                not_found,
            ),
            ("GET", "/api/groups", "/api/groups", None, none_of_one),
            ("POST", "/api/groups", "/api/groups", {"name": "G"}, none_of_one),
            ("GET", "/api/groups/{group_id}", f"/api/groups/{gid}", None, not_found),
            ("PATCH", "/api/groups/{group_id}", f"/api/groups/{gid}", {"name": "Mine"}, not_found),
            ("DELETE", "/api/groups/{group_id}", f"/api/groups/{gid}", None, not_found),
            (
                "PUT",
                "/api/groups/{group_id}/members/{member_id}",
                f"/api/groups/{gid}/members/{mid}",
                None,
                not_found,
            ),
            (
                "DELETE",
                "/api/groups/{group_id}/members/{member_id}",
                f"/api/groups/{gid}/members/{mid}",
                None,
                not_found,
            ),
            ("GET", "/api/groups/{group_id}/roster", f"/api/groups/{gid}/roster", None, not_found),
            ("GET", "/api/groups/{group_id}/queue", f"/api/groups/{gid}/queue", None, not_found),
            ("GET", "/api/queue", "/api/queue", None, none_of_one),
            ("GET", "/api/flows", "/api/flows", None, none_of_one),
            (
                "POST",
                "/api/flows",
                "/api/flows",
                {**routing_flow(gid, mid), "id": flow["flow_id"]},
                lambda r: r.status_code in (400, 422),
            ),
            (
                "GET",
                "/api/flows/{flow_id}/versions",
                f"/api/flows/{flow['flow_id']}/versions",
                None,
                not_found,
            ),
            (
                "PUT",
                "/api/numbers/{phone_number_id}/flow",
                f"/api/numbers/{NUMBER_1}/flow",
                {"flow_id": flow["flow_id"]},
                lambda r: r.status_code == 422,
            ),
            (
                "GET",
                "/api/numbers",
                "/api/numbers",
                None,
                lambda r: none_of_one(r) and NUMBER_1 not in r.text,
            ),
            (
                "PUT",
                "/api/numbers/{phone_number_id}/agent-conversations",
                f"/api/numbers/{NUMBER_1}/agent-conversations",
                {"enabled": False},
                not_found,
            ),
            (
                "GET",
                "/api/canned-responses",
                "/api/canned-responses",
                None,
                lambda r: none_of_one(r) and canned_id not in r.text and "saludo" not in r.text,
            ),
            (
                # The shortcut is workspace 1's; in workspace 2 it is free (its own response).
                "POST",
                "/api/canned-responses",
                "/api/canned-responses",
                {"shortcut": "saludo", "text": "otro"},
                lambda r: r.status_code == 201 and canned_id not in r.text,
            ),
            (
                "PUT",
                "/api/canned-responses/{canned_response_id}",
                f"/api/canned-responses/{canned_id}",
                {"shortcut": "saludo", "text": "cambiado"},
                lambda r: r.status_code in (404, 422),
            ),
            (
                "DELETE",
                "/api/canned-responses/{canned_response_id}",
                f"/api/canned-responses/{canned_id}",
                None,
                lambda r: r.status_code in (404, 422),
            ),
            (
                "GET",
                "/api/conversations/{conversation_id}/canned-responses",
                f"/api/conversations/{cid}/canned-responses",
                None,
                not_found,
            ),
            (
                "POST",
                "/api/conversations/{conversation_id}/notes",
                f"/api/conversations/{cid}/notes",
                {"text": "una nota"},
                not_found,
            ),
            ("GET", "/api/metrics", "/api/metrics", None, none_of_one),
            ("GET", "/api/metrics.csv", "/api/metrics.csv", None, none_of_one),
            # The stream starts at "now" and filters by workspace; test_stream covers its events.
            ("GET", "/api/stream", "/api/stream?probe=1", None, lambda r: True),
        ]
        for method, route, url, payload, expected in calls:
            checks[(method, route)] = expected
            if route == "/api/stream":
                continue  # an endless response; covered by tests/integration/test_stream.py
            response = await client.request(method, url, json=payload, headers=intruder)
            assert expected(response), f"{method} {url}: {response.status_code} {response.text}"

        # Every route the OpenAPI document publishes (routers included).
        paths = create_app(settings).openapi()["paths"]
        routes = {
            (method.upper(), path)
            for path, operations in paths.items()
            if path.startswith("/api")
            for method in operations
        }
        assert routes == set(checks), f"routes without an isolation check: {routes - set(checks)}"
        assert await snapshot(client, admin1, cid, gid, flow["flow_id"]) == before


async def snapshot(
    client: httpx.AsyncClient, auth: dict[str, str], cid: str, gid: str, flow_id: str
) -> list[Any]:
    """What workspace 1's admin sees of everything the intruder aimed at."""
    urls = (
        f"/api/conversations/{cid}",
        f"/api/conversations/{cid}/history",
        "/api/members",
        "/api/groups",
        f"/api/groups/{gid}/roster",
        f"/api/groups/{gid}/queue",
        "/api/flows",
        f"/api/flows/{flow_id}/versions",
        "/api/numbers",
        "/api/canned-responses",
        "/api/metrics",
    )
    return [(await client.get(url, headers=auth)).json() for url in urls]
