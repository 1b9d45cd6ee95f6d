"""``GET /api/stream`` over a real HTTP server: an agent hears of what it may see, nothing of
another workspace's, and goes offline when its last session ends."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import uvicorn

from services.gateway.app import create_app
from services.settings import Settings
from services.workspaces import create_workspace
from tests.harness import consumers, eventually, free_port, gateway_client
from tests.integration.test_agents import NUMBER, Team, build_team

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def served(settings: Settings, *, port: int | None = None) -> AsyncIterator[str]:
    """The gateway on a real socket: SSE needs a streaming transport, not ASGI calls."""
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host="127.0.0.1",
            port=port,
            log_config=None,
            access_log=False,
            # A test that fails with a stream still open must not wait for it forever.
            timeout_graceful_shutdown=2,
        )
    )
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        return bool(server.started)

    await eventually(started, bool, within=15)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def listen(
    url: str, auth: dict[str, str], seen: list[dict[str, Any]], ready: asyncio.Event
) -> None:
    async with (
        httpx.AsyncClient(base_url=url, timeout=None) as client,
        client.stream("GET", "/api/stream", headers=auth) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        event: dict[str, Any] = {}
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                event["event"] = line[7:]
            elif line.startswith("id: "):
                event["id"] = int(line[4:])
            elif line.startswith("data: "):
                event["data"] = orjson.loads(line[6:])
            elif line == "" and event:
                if event.get("event") == "ready":
                    ready.set()
                seen.append(event)
                event = {}


async def test_agents_hear_their_changes_and_go_offline_when_the_session_ends(
    settings: Settings,
) -> None:
    # No grace: offline as soon as the last stream ends (the grace has a test of its own).
    settings = dataclasses.replace(settings, presence_grace_seconds=0.0)
    async with consumers(settings), gateway_client(settings) as client, served(settings) as url:
        team: Team = await build_team(settings, client, capacity=5)
        await team.set_status("A", "available")
        other = await create_workspace(settings, name="Other", phone_number_id=NUMBER + "9")
        other_auth = {"Authorization": f"Bearer {other['admin_token']}"}

        heard: list[dict[str, Any]] = []
        overheard: list[dict[str, Any]] = []
        ready, other_ready = asyncio.Event(), asyncio.Event()
        agent = asyncio.create_task(listen(url, team.agents["A"], heard, ready))
        intruder = asyncio.create_task(listen(url, other_auth, overheard, other_ready))
        await asyncio.wait_for(asyncio.gather(ready.wait(), other_ready.wait()), 10)

        conversation = await team.hand_off("available")
        assert await team.assignee(conversation) == "A"

        def assigned(events: list[dict[str, Any]]) -> bool:
            return any(
                e.get("event") == "assignment.conversation_assigned"
                and e["data"]["conversation_id"] == conversation
                for e in events
            )

        async def heard_so_far() -> list[dict[str, Any]]:
            return heard

        await eventually(heard_so_far, assigned, within=10)
        assert [e["id"] for e in heard] == sorted(e["id"] for e in heard)
        # The other workspace's admin heard nothing of this one.
        assert all(e.get("data", {}).get("conversation_id") != conversation for e in overheard)
        assert [e["event"] for e in overheard] == ["ready"]

        agent.cancel()
        intruder.cancel()
        for task in (agent, intruder):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        me = await eventually(
            lambda: client.get("/api/me", headers=team.agents["A"]),
            lambda response: response.json()["status"] == "offline",
            within=10,
        )
        assert me.status_code == 200


async def test_a_page_streams_from_where_it_was_read_so_a_change_in_between_is_not_missed(
    settings: Settings,
) -> None:
    """A suite page carries the change feed's end as it was read (``data-stream-after``); its
    stream starts there, so a change projected after the page was read but before the
    browser opened the stream still reaches it (and refreshes the page)."""
    async with consumers(settings), gateway_client(settings) as client, served(settings) as url:
        team: Team = await build_team(settings, client, capacity=5)
        await team.set_status("A", "available")
        token = team.agents["A"]["Authorization"].removeprefix("Bearer ")
        async with httpx.AsyncClient(base_url=url, timeout=30) as browser:
            signed_in = await browser.post("/sign-in", data={"token": token})
            assert signed_in.status_code == 303, signed_in.text
            page = await browser.get("/")
            assert page.status_code == 200
            found = re.search(r'data-stream-after="(\d+)"', page.text)
            assert found is not None, "the page does not say where its stream starts"
            after = int(found.group(1))

            # The page is read; a conversation is assigned before the stream opens.
            conversation = await team.hand_off("available")
            assert await team.assignee(conversation) == "A"

            heard: list[dict[str, Any]] = []
            async with browser.stream("GET", f"/api/stream?after={after}") as response:
                assert response.status_code == 200
                event: dict[str, Any] = {}
                async for line in response.aiter_lines():
                    if line.startswith("event: "):
                        event["event"] = line[7:]
                    elif line.startswith("data: "):
                        event["data"] = orjson.loads(line[6:])
                    elif line == "" and event:
                        heard.append(event)
                        event = {}
                        if any(
                            e.get("event") == "assignment.conversation_assigned"
                            and e["data"].get("conversation_id") == conversation
                            for e in heard
                        ):
                            break
            assert heard[0]["event"] == "ready"
            assert heard[0]["data"]["after"] == after
