"""A database restart under load: every consumer waits for it, and parks nothing for it.

Every process runs as a user runs it. PostgreSQL is stopped with ``pg_ctl stop -m fast``
(clients are cut off mid-transaction: "terminating connection due to administrator command")
for ~12 s while signed webhooks arrive at 20/s, then started again. Afterwards no store holds
a dead letter, none reached ``operations.dead_letters``, every message is in its history
exactly once, and each relay holds its store's lock again (the restart dropped them).
"""

from __future__ import annotations

import asyncio
import subprocess

import httpx
import pytest

from events.catalogue import DEAD_LETTERS
from events.operations import DEAD_LETTER_EVENTS
from services.registry import relayed_stores
from services.settings import Settings
from services.supervisor import PROCESSES
from tests.e2e.conftest import create_workspace_cli, own_infrastructure, wait_for_gateway
from tests.harness import Processes, eventually, query, topic_size
from tests.load import WebhookLoad, history_difference, history_wamids

pytestmark = pytest.mark.e2e
OUTAGE_SECONDS = 12.0
RELAYED_STORES = relayed_stores()


async def dead_letters(settings: Settings) -> dict[str, int]:
    kinds = [payload.event_type for payload in DEAD_LETTER_EVENTS]
    counts = {}
    for store in RELAYED_STORES:
        rows = await query(
            settings, store, "SELECT count(*) AS n FROM {s}.events WHERE topic = ANY(%s)", kinds
        )
        counts[store] = rows[0]["n"]
    return counts


async def relay_locks_held(settings: Settings) -> int:
    """How many stores' relay locks are granted now (session advisory locks on bigints show
    as classid = high 32 bits, objid = low 32 bits)."""
    keys = [f"switchboard-relay:{settings.schema(store)}" for store in RELAYED_STORES]
    rows = await query(
        settings,
        "projections",
        "SELECT count(*) AS n FROM pg_locks l JOIN unnest(%s::text[]) AS k(key)"
        " ON (l.classid::bigint << 32) | l.objid::bigint = hashtextextended(k.key, 0)"
        " WHERE l.locktype = 'advisory' AND l.granted",
        keys,
    )
    return int(rows[0]["n"])


async def test_a_database_restart_under_load_parks_nothing_and_keeps_every_message_once(
    processes: Processes, http: httpx.AsyncClient, e2e_env: dict[str, str]
) -> None:
    infra = own_infrastructure(e2e_env)
    settings = Settings.from_env(e2e_env)
    for name in PROCESSES:  # what `switchboard run all` starts
        processes.start(name)
    await wait_for_gateway(http)
    workspace = await create_workspace_cli(e2e_env, "Restart", "480177")
    contacts = ("573000201", "573000202", "573000203", "573000204")
    async with WebhookLoad(http, "480177", contacts, tag="pg") as load:
        await asyncio.sleep(3)
        # Stop while the consumers are idle, as they mostly are in production: the next record
        # then meets the dead connections first (a consumer in the middle of an append would
        # wait inside the event store's own retries instead).
        load.pause()
        await eventually(
            lambda: history_wamids(http, workspace["admin_token"], contacts),
            lambda found: found.total() >= len(load.accepted) and not load.pending,
            within=60,
            interval=0.5,
        )
        await asyncio.to_thread(subprocess.run, [*infra, "pg-stop"], check=True)
        load.resume()
        try:
            # The gateway's reads meanwhile: 503 (retry), never a 500.
            health, read, _ = await asyncio.gather(
                http.get("/healthz"),
                http.get(
                    "/api/conversations",
                    params={"contact": contacts[0]},
                    headers={"Authorization": f"Bearer {workspace['admin_token']}"},
                ),
                asyncio.sleep(OUTAGE_SECONDS),
            )
        finally:
            await asyncio.to_thread(subprocess.run, [*infra, "pg-start"], check=True)
        await asyncio.sleep(5)  # the load goes on after the restart
        await load.stop(drain_within=60)

    assert health.status_code == 503, health.text
    assert health.json()["database"].startswith("down: "), health.text
    assert read.status_code == 503, read.text
    assert read.headers["retry-after"] == "5"
    assert load.unexpected == []
    print(f"\nanswers: {dict(load.answers)}; {len(load.accepted)} messages accepted")
    difference = await history_difference(
        http, workspace["admin_token"], contacts, load.accepted, within=90
    )
    assert difference == {"missing": [], "repeated": [], "never accepted": []}
    assert await dead_letters(settings) == dict.fromkeys(RELAYED_STORES, 0)
    assert await topic_size(settings, DEAD_LETTERS) == 0
    held = await eventually(
        lambda: relay_locks_held(settings), lambda n: n == len(RELAYED_STORES), within=30
    )
    assert held == len(RELAYED_STORES)
