"""``switchboard_stream_clients`` follows the live streams open on the gateway."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from typing import Any

import pytest
from prometheus_client import REGISTRY

from services.settings import Settings
from tests.harness import consumers, eventually, gateway_client
from tests.integration.test_agents import Team, build_team
from tests.integration.test_stream import listen, served

pytestmark = pytest.mark.integration


def stream_clients() -> float:
    # The gateway runs in this process here: its registry is this one.
    return REGISTRY.get_sample_value("switchboard_stream_clients") or 0.0


async def test_the_stream_clients_gauge_counts_streams_open_and_drops_those_that_left(
    settings: Settings,
) -> None:
    async with consumers(settings), gateway_client(settings) as client, served(settings) as url:
        team: Team = await build_team(settings, client, capacity=5)
        before = stream_clients()
        heard: list[dict[str, Any]] = []
        ready = [asyncio.Event(), asyncio.Event()]
        streams = [
            asyncio.create_task(listen(url, team.agents[name], heard, event))
            for name, event in zip(("A", "B"), ready, strict=True)
        ]
        await asyncio.wait_for(asyncio.gather(*(event.wait() for event in ready)), 10)
        assert stream_clients() == before + 2

        async def gauge() -> float:
            return stream_clients()

        for left, stream in enumerate(streams, 1):
            stream.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stream
            # The server notices a client that left at its next look (every 0.5 s at most).
            await eventually(gauge, functools.partial(float.__eq__, before + 2 - left), within=10)
