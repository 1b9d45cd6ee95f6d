"""The e2e tests run switchboard's processes as a user does: ``switchboard run <name>``."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fake_graph import FakeGraphApi
from tests.harness import ROOT, Processes, eventually, free_port


@pytest.fixture
def e2e_env(isolated_env: dict[str, str]) -> dict[str, str]:
    return {**isolated_env, "SWITCHBOARD_HTTP_PORT": str(free_port())}


@pytest.fixture
def processes(e2e_env: dict[str, str], tmp_path: Path) -> Iterator[Processes]:
    group = Processes(e2e_env, tmp_path)
    yield group
    group.stop_all()
    # pytest shows a test's captured output only when it fails: the processes' last words
    # then say why, since the processes outlive nothing that could be inspected later.
    for log in sorted(tmp_path.glob("*.log")):
        print(f"--- last lines of {log.name}")
        print("\n".join(log.read_text(errors="replace").splitlines()[-40:]))


@pytest.fixture
async def http(e2e_env: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    url = f"http://127.0.0.1:{e2e_env['SWITCHBOARD_HTTP_PORT']}"
    async with httpx.AsyncClient(base_url=url, timeout=20) as client:
        yield client


@pytest.fixture
def graph() -> Iterator[FakeGraphApi]:
    """A fake Graph API the dispatcher sends to (``tests/fake_graph.py``)."""
    with FakeGraphApi() as fake:
        yield fake


@pytest.fixture
def flow_env(e2e_env: dict[str, str], graph: FakeGraphApi) -> dict[str, str]:
    """The e2e environment with the dispatcher pointed at ``graph``."""
    e2e_env.update(
        WHATSAPP_API_BASE_URL=graph.base_url,
        WHATSAPP_ACCESS_TOKEN="test-graph-token",
        SWITCHBOARD_DISPATCH_BACKOFF_SECONDS="0.05",
    )
    return e2e_env


async def wait_for_gateway(http: httpx.AsyncClient) -> None:
    async def health() -> int:
        try:
            return (await http.get("/healthz")).status_code
        except httpx.TransportError:
            return 0

    await eventually(health, lambda code: code == 200, within=60, interval=0.2)


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``switchboard ARGS`` as a user would, with this test's environment."""
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def own_infrastructure(env: dict[str, str]) -> list[str]:
    """The command that stops and starts this session's Kafka and PostgreSQL (``infra.sh``).

    Skips the test unless both are the project's own (``deploy/infra.sh``), since it stops
    them: give such a test a broker and a database of its own (see the README).
    """
    infra = ["bash", str(ROOT / "deploy" / "infra.sh")]
    exports = subprocess.run([*infra, "env"], capture_output=True, text=True, check=True).stdout
    own = dict(
        line.removeprefix("export ").split("=", 1)
        for line in exports.splitlines()
        if line.startswith("export ")
    )
    for name in ("SWITCHBOARD_KAFKA_BOOTSTRAP", "SWITCHBOARD_DATABASE_URL"):
        if env[name] != own.get(name):
            pytest.skip(f"{name} is not the project's own server; this test stops and starts it")
    return infra


async def create_workspace_cli(
    env: dict[str, str], name: str, number: str, *, agent_conversations: bool = False
) -> dict[str, Any]:
    """``switchboard workspace create`` exactly as the README shows it."""
    options = ["--agent-conversations"] if agent_conversations else []
    done = await asyncio.to_thread(
        cli, env, "workspace", "create", name, "--phone-number-id", number, *options
    )
    assert done.returncode == 0, done.stderr
    created: dict[str, Any] = json.loads(done.stdout)
    return created
