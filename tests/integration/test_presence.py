"""Presence over two gateway replicas: a stream that drops and comes back (on the same replica
or the other one) within the grace period keeps the agent's status; one that does not come
back leaves the agent offline once the grace has passed. Notification hints ride along."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from typing import Any

import pytest

from services.settings import Settings
from services.workspaces import create_workspace
from tests.harness import consumers, eventually, gateway_client
from tests.integration.test_stream import listen, served

pytestmark = pytest.mark.integration
NUMBER = "480112093355001"
GRACE = 1.0


class Stream:
    """One ``/api/stream`` session of a member on one replica."""

    def __init__(self, url: str, auth: dict[str, str]) -> None:
        self.seen: list[dict[str, Any]] = []
        ready = asyncio.Event()
        self.ready = ready
        self.task = asyncio.create_task(listen(url, auth, self.seen, ready))

    async def open(self) -> Stream:
        await asyncio.wait_for(self.ready.wait(), 10)
        return self

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def test_a_stream_back_within_the_grace_keeps_the_status_and_none_sets_offline(
    settings: Settings,
) -> None:
    settings = dataclasses.replace(settings, presence_grace_seconds=GRACE)
    async with (
        consumers(settings),
        gateway_client(settings) as client,
        served(settings) as replica_a,
        served(settings) as replica_b,
    ):
        workspace = await create_workspace(settings, name="Presence", phone_number_id=NUMBER)
        admin = {"Authorization": f"Bearer {workspace['admin_token']}"}
        created = await client.post(
            "/api/members", json={"name": "Ana", "role": "agent"}, headers=admin
        )
        assert created.status_code == 201, created.text
        agent = {"Authorization": f"Bearer {created.json()['token']}"}

        async def status() -> str:
            me = await client.get("/api/me", headers=agent)
            found: str = me.json()["status"]
            return found

        first = await Stream(replica_a, agent).open()
        changed = await client.put("/api/me/status", json={"status": "available"}, headers=agent)
        assert changed.status_code == 200, changed.text
        # The stream is told of the agent's own status change, with no hint.
        await eventually(
            lambda: asyncio.sleep(0, first.seen),
            lambda seen: any(e.get("event") == "directory.agent_status_changed" for e in seen),
        )
        [change] = [e for e in first.seen if e.get("event") == "directory.agent_status_changed"]
        assert change["data"]["notify_desktop"] is False
        assert change["data"]["play_sound"] is False

        # A reload on the same replica, then a dropped connection that comes back on the
        # other replica: each time the stream is back within the grace.
        await first.close()
        reloaded = await Stream(replica_a, agent).open()
        await reloaded.close()
        moved = await Stream(replica_b, agent).open()
        try:
            # Well past the grace (and several sweeps of both replicas): still available.
            await asyncio.sleep(GRACE * 3)
            assert await status() == "available"
        finally:
            # The last stream ends and nothing comes back: offline once the grace has passed.
            await moved.close()
        await eventually(status, lambda found: found == "offline", within=15)
