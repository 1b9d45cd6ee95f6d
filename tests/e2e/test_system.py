"""Acceptance of the first slice with every process running as its own OS process."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.settings import Settings
from tests.conftest import TEST_APP_SECRET
from tests.e2e.conftest import cli, create_workspace_cli, wait_for_gateway
from tests.harness import Processes, eventually, query
from tests.webhooks import Text, messages_webhook, signed_headers

pytestmark = pytest.mark.e2e
FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "whatsapp"
ALL = ("directory", "inbound", "projector", "relay", "gateway")


async def post(http: httpx.AsyncClient, body: bytes) -> httpx.Response:
    return await http.post(
        "/webhooks/whatsapp", content=body, headers=signed_headers(TEST_APP_SECRET, body)
    )


async def history(http: httpx.AsyncClient, token: str, contact: str) -> list[dict[str, Any]]:
    """The customer's messages, over all the contact's conversations."""
    auth = {"Authorization": f"Bearer {token}"}
    found = (await http.get("/api/conversations", params={"contact": contact}, headers=auth)).json()
    lines: list[dict[str, Any]] = []
    for conversation in found["conversations"]:
        response = await http.get(
            f"/api/conversations/{conversation['conversation_id']}/history", headers=auth
        )
        lines.extend(
            line for line in response.json()["history"] if line["author_kind"] == "customer"
        )
    return lines


async def test_the_sample_webhook_shows_in_the_history_within_a_second(
    processes: Processes, http: httpx.AsyncClient, e2e_env: dict[str, str]
) -> None:
    for name in ALL:
        processes.start(name)
    await wait_for_gateway(http)
    workspace = await create_workspace_cli(e2e_env, "Acme", "480112093385611")
    body = (FIXTURES / "text_message.json").read_bytes()  # Meta's bytes, untouched

    wrong = await http.post(
        "/webhooks/whatsapp", content=body, headers=signed_headers("wrong-secret", body)
    )
    assert wrong.status_code == 401

    started = time.monotonic()
    assert (await post(http, body)).status_code == 200
    lines = await eventually(
        lambda: history(http, workspace["admin_token"], "573154440021"),
        lambda found: len(found) == 1,
        within=5,
        interval=0.02,
    )
    elapsed = time.monotonic() - started
    assert lines[0]["text"] == "Hola, necesito ayuda con mi pedido"
    assert elapsed < 1.0, f"the history took {elapsed:.2f}s"


async def test_sigkill_of_inbound_and_relay_mid_burst_loses_and_duplicates_nothing(
    processes: Processes, http: httpx.AsyncClient, e2e_env: dict[str, str]
) -> None:
    settings = Settings.from_env(e2e_env)
    for name in ALL:
        processes.start(name)
    await wait_for_gateway(http)
    number = "4801" + uuid.uuid4().hex[:6]
    workspace = await create_workspace_cli(e2e_env, "Burst", number)
    contacts = [f"5730{n:06d}" for n in range(50)]
    bodies = [
        messages_webhook(
            number,
            [
                Text(
                    contacts[(batch * 5 + i) % 50],
                    f"wamid.burst.{batch * 5 + i}",
                    f"m{batch * 5 + i}",
                    1764000000 + batch,
                )
                for i in range(5)
            ],
        )
        for batch in range(200)
    ]

    async def stored_messages() -> int:
        rows = await query(
            settings,
            "inbound",
            "SELECT count(*) AS n FROM {s}.events"
            " WHERE topic = 'conversation.customer_message_received'",
        )
        return int(rows[0]["n"])

    async def send_all() -> None:
        for body in bodies:
            response = await post(http, body)
            assert response.status_code == 200, response.text

    sender = asyncio.create_task(send_all())
    await eventually(stored_messages, lambda n: n >= 150, within=60, interval=0.01)
    processes.kill("inbound")
    killed_at = await stored_messages()
    processes.start("inbound")
    # The relay too, while it is publishing: what it sent but had not recorded goes again.
    await eventually(stored_messages, lambda n: n >= 500, within=60, interval=0.01)
    processes.kill("relay")
    processes.start("relay")
    await sender

    await eventually(stored_messages, lambda n: n >= 1000, within=120, interval=0.2)
    await asyncio.sleep(1)  # anything extra would show up now
    assert killed_at < 1000, "the kill came after the burst: it proved nothing"
    rows = await query(
        settings,
        "inbound",
        "SELECT count(*) AS n, count(DISTINCT convert_from(state, 'UTF8')::jsonb"
        "->'payload'->>'wamid') AS distinct_wamids FROM {s}.events"
        " WHERE topic = 'conversation.customer_message_received'",
    )
    assert rows[0] == {"n": 1000, "distinct_wamids": 1000}
    started = await query(
        settings,
        "inbound",
        "SELECT count(*) AS n FROM {s}.events WHERE topic = 'conversation.started'",
    )
    assert started[0]["n"] == 50

    async def projected() -> dict[str, Any]:
        found = await query(
            settings,
            "projections",
            "SELECT count(*) AS n, count(DISTINCT wamid) AS distinct_wamids"
            " FROM {s}.conversation_history WHERE kind = 'message'",
        )
        return found[0]

    assert await eventually(projected, lambda r: r["n"] >= 1000, within=60) == {
        "n": 1000,
        "distinct_wamids": 1000,
    }
    counted = await query(
        settings, "projections", "SELECT sum(message_count) AS n FROM {s}.conversations"
    )
    assert counted[0]["n"] == 1000
    sample = await history(http, workspace["admin_token"], contacts[7])
    assert [line["text"] for line in sample] == [f"m{n}" for n in range(7, 1000, 50)]


async def test_rebuilding_the_history_from_offset_zero_gives_the_same_rows(
    processes: Processes, http: httpx.AsyncClient, e2e_env: dict[str, str]
) -> None:
    settings = Settings.from_env(e2e_env)
    for name in ALL:
        processes.start(name)
    await wait_for_gateway(http)
    number = "4802" + uuid.uuid4().hex[:6]
    await create_workspace_cli(e2e_env, "Rebuild", number)
    for batch in range(20):
        body = messages_webhook(
            number,
            [
                Text(f"5731{i:04d}", f"wamid.r.{batch}.{i}", f"b{batch} c{i}", 1764000000 + batch)
                for i in range(5)
            ],
        )
        assert (await post(http, body)).status_code == 200

    snapshot_sql = "SELECT * FROM {s}.conversation_history ORDER BY event_id"
    conversations_sql = "SELECT * FROM {s}.conversations ORDER BY conversation_id"
    await eventually(
        lambda: query(
            settings, "projections", "SELECT count(*) AS n FROM {s}.conversation_history"
        ),
        lambda rows: rows[0]["n"] == 100,
    )
    before = await query(settings, "projections", snapshot_sql)
    before_conversations = await query(settings, "projections", conversations_sql)

    processes.kill("projector")
    rebuilt = await asyncio.to_thread(cli, e2e_env, "projections", "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    emptied = await query(
        settings, "projections", "SELECT count(*) AS n FROM {s}.conversation_history"
    )
    assert emptied[0]["n"] == 0
    processes.start("projector")
    await eventually(
        lambda: query(
            settings, "projections", "SELECT count(*) AS n FROM {s}.conversation_history"
        ),
        lambda rows: rows[0]["n"] == 100,
        within=60,
    )
    await asyncio.sleep(0.5)
    assert await query(settings, "projections", snapshot_sql) == before
    assert await query(settings, "projections", conversations_sql) == before_conversations
