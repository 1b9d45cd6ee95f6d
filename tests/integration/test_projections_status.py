"""``switchboard projections status`` on the real broker and database: lag before a consumer
runs, none once it has handled everything, and the relay's waiting events while it is away."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from services.settings import Settings
from tests.conftest import TEST_APP_SECRET
from tests.e2e.conftest import cli
from tests.harness import consumers, eventually, gateway_client
from tests.webhooks import Text, messages_webhook, signed_headers

pytestmark = pytest.mark.integration
NOBODYS_NUMBER = "480777000"  # no workspace owns it: inbound keeps each message as unrouted


async def status(env: dict[str, str]) -> list[dict[str, Any]]:
    done = await asyncio.to_thread(cli, env, "projections", "status", "--json")
    assert done.returncode == 0, done.stderr
    return [orjson.loads(line) for line in done.stdout.splitlines()]


def inbound_lag(lines: list[dict[str, Any]]) -> int:
    return sum(
        line["lag"]
        for line in lines
        if line["kind"] == "partition"
        and line["process"] == "inbound"
        and line["topic"] == "whatsapp.inbound"
    )


async def test_status_shows_each_consumers_lag_and_the_relays_waiting_events(
    isolated_env: dict[str, str],
) -> None:
    settings = Settings.from_env(isolated_env)
    async with gateway_client(settings) as client:
        for n in range(3):
            body = messages_webhook(NOBODYS_NUMBER, [Text("573001", f"wamid.status.{n}", "hola")])
            answer = await client.post(
                "/webhooks/whatsapp", content=body, headers=signed_headers(TEST_APP_SECRET, body)
            )
            assert answer.status_code == 200, answer.text

    before = await status(isolated_env)
    assert inbound_lag(before) == 3
    partitions = [line for line in before if line["kind"] == "partition"]
    assert {line["process"] for line in partitions} >= {"inbound", "projector", "metrics"}
    assert all(line["position"] is None for line in partitions)  # nothing ran yet

    async with consumers(settings, relay=False):
        after = await eventually(
            lambda: status(isolated_env), lambda lines: inbound_lag(lines) == 0, within=60
        )
    inbound = [
        line for line in after if line["kind"] == "partition" and line["process"] == "inbound"
    ]
    assert any(line["position"] for line in inbound if line["topic"] == "whatsapp.inbound")
    relays = {line["store"]: line for line in after if line["kind"] == "relay"}
    # Three unrouted messages stored, none published: the relay was not running.
    assert relays["inbound"]["published"] == 0
    assert relays["inbound"]["waiting"] == relays["inbound"]["stored"] >= 3

    table = await asyncio.to_thread(cli, isolated_env, "projections", "status", "--partitions")
    assert table.returncode == 0, table.stderr
    assert "whatsapp.inbound" in table.stdout
    assert "relay of store" in table.stdout
