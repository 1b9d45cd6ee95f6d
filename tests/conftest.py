"""Session-wide infrastructure: one real Kafka broker and one PostgreSQL for the whole run.

`make test` starts both (deploy/infra.sh) and exports their addresses; run directly,
pytest starts them the same way. Each test gets its own topic prefix, consumer-group
prefix and schema prefix, so tests never see each other's data.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from services.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
TEST_APP_SECRET = "test-app-secret"


@pytest.fixture(scope="session")
def infrastructure() -> dict[str, str]:
    """Addresses of the session's Kafka and Postgres, started if nobody started them."""
    if not (
        os.environ.get("SWITCHBOARD_KAFKA_BOOTSTRAP") and os.environ.get("SWITCHBOARD_DATABASE_URL")
    ):
        subprocess.run(["bash", str(ROOT / "deploy" / "infra.sh"), "up"], check=True)
        exports = subprocess.run(
            ["bash", str(ROOT / "deploy" / "infra.sh"), "env"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        for line in exports.splitlines():
            name, _, value = line.removeprefix("export ").partition("=")
            os.environ[name] = value
    return {
        "SWITCHBOARD_KAFKA_BOOTSTRAP": os.environ["SWITCHBOARD_KAFKA_BOOTSTRAP"],
        "SWITCHBOARD_DATABASE_URL": os.environ["SWITCHBOARD_DATABASE_URL"],
    }


@pytest.fixture(scope="session")
def used_topic_prefixes(infrastructure: dict[str, str]) -> Iterator[list[str]]:
    """The topic prefixes this session's tests used; their topics are deleted at its end.

    A broker that keeps every run's partitions spends its heap on their metadata. Deleting
    them test by test instead keeps the controller busy while the next test creates its own
    topics (slower leader elections, tests timing out), so it happens once, at the end.
    (Schemas are left for a look after a failure.)
    """
    prefixes: list[str] = []
    yield prefixes
    delete_topics(infrastructure["SWITCHBOARD_KAFKA_BOOTSTRAP"], tuple(prefixes))


@pytest.fixture
def isolated_env(infrastructure: dict[str, str], used_topic_prefixes: list[str]) -> dict[str, str]:
    """Environment for one test's processes: unique topics, groups and schemas."""
    return new_isolated_env(infrastructure, used_topic_prefixes)


def new_isolated_env(
    infrastructure: dict[str, str], used_topic_prefixes: list[str]
) -> dict[str, str]:
    """Unique topics, groups and schemas (for fixtures shared by a module's tests too)."""
    tag = uuid.uuid4().hex[:10]
    used_topic_prefixes.append(f"t{tag}.")
    return {
        **infrastructure,
        "SWITCHBOARD_TOPIC_PREFIX": f"t{tag}.",
        "SWITCHBOARD_SCHEMA_PREFIX": f"t{tag}_",
        "WHATSAPP_APP_SECRET": TEST_APP_SECRET,
        "WHATSAPP_VERIFY_TOKEN": "test-verify-token",
        "SWITCHBOARD_SESSION_SECRET": f"test-session-secret-{tag}-{uuid.uuid4().hex}",
        "SWITCHBOARD_PUBLISH_TIMEOUT": "3",
        # Each process's metrics endpoint is off unless a test asks for it on a free port:
        # the registry's fixed ports would collide between tests running side by side.
        "SWITCHBOARD_METRICS_PORT": "0",
    }


def delete_topics(bootstrap: str, prefixes: tuple[str, ...]) -> None:
    """Delete every topic whose name starts with one of ``prefixes``; a broker that is down
    is left alone."""

    async def delete() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
        await admin.start()
        try:
            names = [name for name in await admin.list_topics() if name.startswith(prefixes)]
            for start in range(0, len(names), 200):  # a few hundred per request
                await admin.delete_topics(names[start : start + 200], timeout_ms=30_000)
        finally:
            await admin.close()

    # Its own thread and loop: pytest-asyncio may still own this thread's loop.
    def run() -> None:
        with contextlib.suppress(Exception):
            asyncio.run(asyncio.wait_for(delete(), timeout=120))

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=150)


@pytest.fixture
def settings(isolated_env: dict[str, str]) -> Settings:
    return Settings.from_env(isolated_env)
