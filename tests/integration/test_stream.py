"""``GET /api/stream`` over a real HTTP server: an agent hears of what it may see, nothing of
another workspace's, and goes offline when its last session ends."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
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
