"""With Kafka stopped the webhook answers 503; once it is back, Meta's retry completes it."""

from __future__ import annotations

import asyncio
import os
import subprocess

import httpx
import pytest

from tests.conftest import TEST_APP_SECRET
from tests.e2e.conftest import create_workspace_cli, wait_for_gateway
from tests.harness import ROOT, Processes, eventually
from tests.webhooks import Text, messages_webhook, signed_headers

pytestmark = pytest.mark.e2e
INFRA = ["bash", str(ROOT / "deploy" / "infra.sh")]


def local_kafka_bootstrap() -> str:
    exports = subprocess.run([*INFRA, "env"], capture_output=True, text=True, check=True).stdout
    for line in exports.splitlines():
        if line.startswith("export SWITCHBOARD_KAFKA_BOOTSTRAP="):
            return line.split("=", 1)[1]
    raise AssertionError("deploy/infra.sh env printed no Kafka address")


async def test_webhook_answers_503_without_kafka_and_a_retry_completes_the_history(
    processes: Processes, http: httpx.AsyncClient, e2e_env: dict[str, str]
) -> None:
    if os.environ["SWITCHBOARD_KAFKA_BOOTSTRAP"] != local_kafka_bootstrap():
        pytest.skip("Kafka is not the project's own broker; this test must stop and start it")
    for name in ("directory", "inbound", "projector", "relay", "gateway"):
        processes.start(name)
    await wait_for_gateway(http)
    workspace = await create_workspace_cli(e2e_env, "Outage", "480199")
    auth = {"Authorization": f"Bearer {workspace['admin_token']}"}
    body = messages_webhook("480199", [Text("573000111", "wamid.outage", "¿hay alguien?")])
    headers = signed_headers(TEST_APP_SECRET, body)

    await asyncio.to_thread(subprocess.run, [*INFRA, "kafka-stop"], check=True)
    try:
        refused = await http.post("/webhooks/whatsapp", content=body, headers=headers)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "5"
    finally:
        await asyncio.to_thread(subprocess.run, [*INFRA, "kafka-start"], check=True)

    async def retry() -> int:
        response = await http.post("/webhooks/whatsapp", content=body, headers=headers)
        return response.status_code

    await eventually(retry, lambda code: code == 200, within=60, interval=1)
    later = messages_webhook(
        "480199", [Text("573000111", "wamid.outage.2", "sigo aquí", 1764000100)]
    )
    assert (
        await http.post(
            "/webhooks/whatsapp", content=later, headers=signed_headers(TEST_APP_SECRET, later)
        )
    ).status_code == 200

    async def lines() -> list[str]:
        found = await http.get("/api/conversations", params={"contact": "573000111"}, headers=auth)
        conversations = found.json()["conversations"]
        if not conversations:
            return []
        history = await http.get(
            f"/api/conversations/{conversations[0]['conversation_id']}/history", headers=auth
        )
        return [line["wamid"] for line in history.json()["history"]]

    assert await eventually(lines, lambda found: len(found) >= 2, within=90) == [
        "wamid.outage",
        "wamid.outage.2",
    ]
