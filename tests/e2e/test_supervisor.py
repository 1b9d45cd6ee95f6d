"""``switchboard run all`` (what ``make run`` uses) survives a SIGKILL of its consumers."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from services.supervisor import PROCESSES
from tests.conftest import TEST_APP_SECRET
from tests.e2e.conftest import create_workspace_cli, wait_for_gateway
from tests.harness import ROOT, eventually
from tests.webhooks import Text, messages_webhook, signed_headers

pytestmark = pytest.mark.e2e
CONSUMERS = tuple(name for name in PROCESSES if name != "gateway")


def pids(output: Path) -> dict[str, list[int]]:
    """Every pid the supervisor printed for each process, in start order."""
    found: dict[str, list[int]] = {}
    for name, pid in re.findall(r"^\s+(\w+)\s+pid (\d+)", output.read_text(), re.MULTILINE):
        found.setdefault(name, []).append(int(pid))
    return found


def start_supervisor(env: dict[str, str], log_dir: Path, output: Path) -> subprocess.Popen[bytes]:
    """``switchboard run all`` as ``make run`` starts it, printing to ``output``."""
    with output.open("wb") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "services.cli", "run", "all", "--log-dir", str(log_dir)],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


def stop(supervisor: subprocess.Popen[bytes]) -> None:
    supervisor.send_signal(signal.SIGTERM)
    try:
        supervisor.wait(timeout=30)
    except subprocess.TimeoutExpired:
        supervisor.kill()
        supervisor.wait()


async def test_every_consumer_killed_at_once_is_started_again_and_the_pipeline_works(
    e2e_env: dict[str, str], http: httpx.AsyncClient, tmp_path: Path
) -> None:
    output = tmp_path / "supervisor.out"
    supervisor = start_supervisor(e2e_env, tmp_path, output)
    try:
        await wait_for_gateway(http)
        number = "4802" + uuid.uuid4().hex[:6]
        workspace = await create_workspace_cli(e2e_env, "Supervised", number)
        first = pids(output)
        assert set(first) == set(PROCESSES)

        for name in CONSUMERS:
            os.kill(first[name][-1], signal.SIGKILL)
        restarted = await eventually(
            lambda: asyncio.to_thread(pids, output),
            lambda found: all(len(found.get(name, [])) == 2 for name in CONSUMERS),
            within=30,
            interval=0.2,
        )
        assert supervisor.poll() is None, output.read_text()
        assert restarted["gateway"] == first["gateway"]  # untouched
        text = output.read_text()
        for name in CONSUMERS:
            assert f"{name} exited with signal 9; starting it again" in text

        body = messages_webhook(number, [Text("573009998877", f"wamid.{uuid.uuid4().hex}", "hi")])
        response = await http.post(
            "/webhooks/whatsapp", content=body, headers=signed_headers(TEST_APP_SECRET, body)
        )
        assert response.status_code == 200
        auth = {"Authorization": f"Bearer {workspace['admin_token']}"}

        async def conversations() -> list[object]:
            found = await http.get(
                "/api/conversations", params={"contact": "573009998877"}, headers=auth
            )
            result: list[object] = found.json()["conversations"]
            return result

        await eventually(conversations, lambda found: len(found) == 1, within=60, interval=0.2)
    finally:
        await asyncio.to_thread(stop, supervisor)
    assert "stopped" in output.read_text()
