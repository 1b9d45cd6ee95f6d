"""Running switchboard for tests: in-process apps, or real OS processes for the e2e tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg
from aiokafka import AIOKafkaConsumer, TopicPartition
from psycopg.rows import dict_row
from psycopg.sql import SQL, Identifier

from events.catalogue import Topic, build_registry
from events.codec import decode
from events.envelope import Envelope
from services.settings import Settings

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]
REGISTRY = build_registry()


async def eventually(
    probe: Callable[[], Awaitable[T]],
    accept: Callable[[T], bool],
    *,
    within: float = 20.0,
    interval: float = 0.05,
) -> T:
    """Poll ``probe`` until ``accept`` holds; fail with the last value seen."""
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if accept(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s; last value: {value!r}")
        await asyncio.sleep(interval)


@asynccontextmanager
async def consumers(
    settings: Settings, *, relay: bool = True, metrics: bool = False
) -> AsyncIterator[None]:
    """The directory, inbound, flows, assignment and projector apps and the relay, here
    (and the metrics process, for tests that read the metrics: one consumer fewer for the
    rest on a shared 2-core machine)."""
    from projections.app import create_app as create_projector
    from projections.metrics.app import create_app as create_metrics
    from runtime.relay.app import run_relays
    from services.assignment.app import create_app as create_assignment
    from services.directory.app import create_app as create_directory
    from services.flows.app import create_app as create_flows
    from services.inbound.app import create_app as create_inbound
    from services.registry import relayed_stores

    async with AsyncExitStack() as stack:
        for create in (
            create_directory,
            create_inbound,
            create_flows,
            create_assignment,
            create_projector,
            *((create_metrics,) if metrics else ()),
        ):
            app = create(settings)
            await stack.enter_async_context(app.lifespan_context())
            await app.start()
            stack.push_async_callback(app.stop)
        if relay:
            task = asyncio.create_task(run_relays(settings, relayed_stores()))

            async def stop_relay() -> None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

            stack.push_async_callback(stop_relay)
        yield


@asynccontextmanager
async def gateway_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway app with its lifespan, called in-process through ASGI."""
    from services.gateway.app import create_app

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client


async def topic_records(settings: Settings, topic: Topic) -> list[Envelope]:
    """Every record currently on a topic (all partitions), decoded."""
    return [decode(value, REGISTRY) for value in await topic_values(settings, topic)]


async def topic_values(settings: Settings, topic: Topic) -> list[bytes]:
    """Every record's bytes currently on a topic (all partitions), as written."""
    return [value for _, _, value in await topic_entries(settings, topic)]


async def topic_entries(settings: Settings, topic: Topic) -> list[tuple[int, int, bytes]]:
    """Every record currently on a topic as (partition, offset, bytes as written)."""
    name = topic.qualified(settings.topic_prefix)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(name, p) for p in range(topic.partitions)]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        # Count what getmany returned: position() also counts records merely prefetched.
        next_offset = dict.fromkeys(partitions, 0)
        records: list[tuple[int, int, bytes]] = []
        while any(next_offset[tp] < ends[tp] for tp in partitions):
            batch = await consumer.getmany(timeout_ms=500)
            for tp, items in batch.items():
                records.extend((tp.partition, item.offset, item.value) for item in items)
                if items:
                    next_offset[tp] = items[-1].offset + 1
        return records
    finally:
        await consumer.stop()


async def topic_size(settings: Settings, topic: Topic) -> int:
    name = topic.qualified(settings.topic_prefix)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None)
    await consumer.start()
    try:
        partitions = [TopicPartition(name, p) for p in range(topic.partitions)]
        ends = await consumer.end_offsets(partitions)
        return sum(ends.values())
    finally:
        await consumer.stop()


async def projector_caught_up(settings: Settings) -> bool:
    """Whether the projector has recorded a position at the end of every partition it reads.

    After a rebuild the read models pass through every earlier state again, one topic at a
    time (a member's credential may be back before the member's removal is): only a caught-up
    projector shows what the events say now.
    """
    return not await projector_behind(settings)


async def projector_behind(settings: Settings) -> dict[str, tuple[int | None, int]]:
    """The partitions whose recorded position is short of the end: name -> (position, end)."""
    from projections.app import PROJECTED_TOPICS  # the projector's own list, not a copy

    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None)
    await consumer.start()
    try:
        ends: dict[str, int] = {}
        for topic in PROJECTED_TOPICS:
            name = topic.qualified(settings.topic_prefix)
            partitions = [TopicPartition(name, p) for p in range(topic.partitions)]
            for tp, end in (await consumer.end_offsets(partitions)).items():
                ends[f"{tp.topic}#{tp.partition}"] = end
    finally:
        await consumer.stop()
    rows = await query(
        settings,
        "projections",
        "SELECT application_name, max(notification_id) AS position FROM {s}.tracking"
        " WHERE application_name = ANY(%s) GROUP BY application_name",
        list(ends),
    )
    positions = {row["application_name"]: row["position"] for row in rows}
    return {
        name: (positions.get(name), end)
        for name, end in ends.items()
        if end and (positions.get(name) or 0) < end
    }


async def query(
    settings: Settings, schema: str, statement: str, *params: Any
) -> list[dict[str, Any]]:
    """Run ``statement`` with ``{s}`` standing for the service schema ``schema``."""
    async with await psycopg.AsyncConnection.connect(
        settings.database().conninfo(), autocommit=True, row_factory=dict_row
    ) as connection:
        cursor = await connection.execute(
            SQL(statement).format(s=Identifier(settings.schema(schema))),
            params,
        )
        return await cursor.fetchall() if cursor.description is not None else []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Processes:
    """Switchboard processes as a user runs them (``switchboard run X``), for e2e tests."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = {**os.environ, **env, "SWITCHBOARD_LOG_FORMAT": "json"}
        self.log_dir = log_dir
        self.children: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *, replica: int = 1, env: dict[str, str] | None = None) -> None:
        """Start process ``name``; a replica other than the first is known as ``name#N``;
        ``env`` adds to (or overrides) the group's environment."""
        label = name if replica == 1 else f"{name}#{replica}"
        log = (self.log_dir / f"{label}.log").open("ab")
        self.children[label] = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "run", name],
            cwd=ROOT,
            env={**self.env, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def kill(self, name: str) -> None:
        """SIGKILL: no shutdown hook, no flush, no commit."""
        child = self.children.pop(name)
        child.send_signal(signal.SIGKILL)
        child.wait()

    def stop(self, name: str) -> None:
        """SIGTERM, as an orchestrator scales a process down: it leaves its consumer group."""
        child = self.children.pop(name)
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
            raise AssertionError(f"{name} did not stop within 30 s of SIGTERM") from None

    def stop_all(self) -> None:
        for child in self.children.values():
            child.send_signal(signal.SIGTERM)
        for child in self.children.values():
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        self.children.clear()

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")
