"""A broker restart under load: the system recovers by itself and loses or repeats nothing.

Kafka stops for ~15 s while signed webhooks arrive at 20/s; the gateway answers 503 meanwhile
(Meta retries, and so does the load). Once the broker is back, the gateway must accept again
within seconds and the relay must publish again, without any process being restarted, and
every message accepted with 200 must be in its conversation's history exactly once.
"""

from __future__ import annotations

import asyncio
import subprocess
import time

import httpx
import pytest

from tests.e2e.conftest import create_workspace_cli, own_infrastructure, wait_for_gateway
from tests.harness import Processes, eventually
from tests.load import WebhookLoad, history_difference

pytestmark = pytest.mark.e2e
OUTAGE_SECONDS = 15.0
# Seconds after the broker answers again within which the gateway must accept webhooks.
RECOVERY_BOUND_SECONDS = 15.0


async def test_a_broker_restart_under_load_recovers_by_itself_and_keeps_every_message_once(
    processes: Processes, http: httpx.AsyncClient, e2e_env: dict[str, str]
) -> None:
    infra = own_infrastructure(e2e_env)
    for name in ("directory", "inbound", "projector", "relay", "gateway"):
        processes.start(name)
    await wait_for_gateway(http)
    workspace = await create_workspace_cli(e2e_env, "Outage", "480199")
    contacts = ("573000101", "573000102", "573000103", "573000104")
    async with WebhookLoad(http, "480199", contacts, tag="kafka") as load:
        await asyncio.sleep(3)
        await asyncio.to_thread(subprocess.run, [*infra, "kafka-stop"], check=True)
        try:
            await asyncio.sleep(2)
            health = await http.get("/healthz")
            await asyncio.sleep(OUTAGE_SECONDS - 2)
        finally:
            await asyncio.to_thread(subprocess.run, [*infra, "kafka-start"], check=True)
        back = time.monotonic()
        recovery = await eventually(
            lambda: asyncio.sleep(0, load.first_accepted_after(back)),
            lambda seconds: seconds is not None,
            within=60,
            interval=0.2,
        )
        print(f"\ngateway accepted again {recovery:.1f}s after the broker answered")
        await asyncio.sleep(5)  # the load goes on after the recovery
        await load.stop(drain_within=60)

    assert health.status_code == 503, health.text
    assert health.json()["kafka"].startswith("down: "), health.text
    assert load.unexpected == []
    assert load.answers[503] > 0, "the outage was not seen: the broker did not stop?"
    assert recovery is not None
    assert recovery < RECOVERY_BOUND_SECONDS, f"answers: {dict(load.answers)}"
    print(f"answers: {dict(load.answers)}; {len(load.accepted)} messages accepted")
    difference = await history_difference(
        http, workspace["admin_token"], contacts, load.accepted, within=90
    )
    assert difference == {"missing": [], "repeated": [], "never accepted": []}
