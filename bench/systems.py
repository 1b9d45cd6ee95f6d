"""The systems under test, started as their users start them, each with its own prefixes.

* :class:`Switchboard`: ``switchboard run all`` (every process, as ``make run`` starts it),
  a workspace made with ``switchboard workspace create``, the rest through the HTTP API.
* :class:`RawPipeline`: the four processes of ``bench.raw``.

Both expose what a run needs: the webhook URL and secret, the schema and table where a
customer's line lands (for the arrival trigger), and their OS processes (for memory, CPU
and the profiler). A stand-in for Meta's Graph API answers the dispatcher (see
:class:`GraphStub`), so the bot's messages go out as they would in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import orjson
import psutil
import psycopg
from aiokafka.admin import AIOKafkaAdminClient
from psycopg import sql

from bench import arrivals
from bench.raw.config import RawConfig
from bench.raw.setup import create_tables, create_topics

ROOT = Path(__file__).resolve().parents[1]
APP_SECRET = "bench-app-secret"
START_TIMEOUT_SECONDS = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class System(Protocol):
    name: str
    url: str
    secret: str
    phone_number_id: str
    conninfo: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def processes(self) -> dict[str, psutil.Process]: ...

    def history_trigger(self, channel: str) -> list[sql.Composed]: ...

    def drop_history_trigger(self) -> list[sql.Composed]: ...


@dataclass
class Infrastructure:
    kafka: str
    database_url: str

    @classmethod
    def from_env(cls) -> Infrastructure:
        try:
            return cls(
                os.environ["SWITCHBOARD_KAFKA_BOOTSTRAP"], os.environ["SWITCHBOARD_DATABASE_URL"]
            )
        except KeyError as missing:
            raise SystemExit(
                f"{missing.args[0]} is not set: run `make bench`, or"
                ' eval "$(bash deploy/infra.sh env)" first'
            ) from None


async def wait_healthy(url: str, what: str, alive: Any) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if not alive():
                raise RuntimeError(f"{what} exited during start-up")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.get(f"{url}/healthz") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{what} did not answer /healthz within {START_TIMEOUT_SECONDS:.0f} s")


def spawn(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``command`` from the repository root with its output appended to ``log``; in a
    session of its own, so a Ctrl-C meant for the bench reaches it only through the bench."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as output:
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_process(process: subprocess.Popen[bytes], grace: float = 30.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            # run all's children first, so none is left behind without its supervisor
            with contextlib.suppress(psutil.NoSuchProcess):
                for child in psutil.Process(process.pid).children(recursive=True):
                    child.kill()
            process.kill()
            process.wait()


async def drop_prefixed(infra: Infrastructure, topic_prefix: str, schema_prefix: str) -> None:
    """Delete what a system left: its topics and its schemas."""
    with psycopg.connect(infra.database_url, autocommit=True) as connection:
        names = [
            row[0]
            for row in connection.execute("SELECT nspname FROM pg_namespace").fetchall()
            if str(row[0]).startswith(schema_prefix)
        ]
        for name in names:
            connection.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka, request_timeout_ms=30_000)
    await admin.start()
    try:
        topics = [t for t in await admin.list_topics() if t.startswith(topic_prefix)]
        if topics:
            await admin.delete_topics(topics, timeout_ms=30_000)
    finally:
        await admin.close()


class GraphStub:
    """Meta's Graph API, played by ``tests.fake_graph`` (answers 200 with a wamid), in a
    process of its own so its work is not charged to the bench's other clocks."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipe, theirs = context.Pipe()
        self._process = context.Process(target=_serve_graph, args=(theirs,), name="bench-graph")
        self.base_url = ""

    def start(self) -> None:
        self._process.start()
        if not self._pipe.poll(60):
            raise RuntimeError("the Graph API stand-in did not start")
        self.base_url = str(self._pipe.recv())

    def stop(self) -> None:
        if self._process.is_alive():
            self._pipe.send("stop")
            self._process.join(15)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()


def _serve_graph(pipe: Connection) -> None:
    from tests.fake_graph import FakeGraphApi

    with FakeGraphApi() as graph:
        pipe.send(graph.base_url)
        pipe.recv()


@dataclass
class Switchboard:
    """``switchboard run all`` with a prefix of its own."""

    infra: Infrastructure
    run_dir: Path
    graph_url: str
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    name: str = "switchboard"
    secret: str = APP_SECRET
    admin_token: str = ""
    supervisor: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.topic_prefix = f"bench{self.tag}."
        self.schema_prefix = f"bench{self.tag}_"
        self.phone_number_id = f"48{int(self.tag, 16) % 10**13:013d}"
        self.conninfo = self.infra.database_url
        self.log_dir = self.run_dir / f"switchboard-{self.tag}"

    @property
    def projections(self) -> str:
        return f"{self.schema_prefix}projections"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "SWITCHBOARD_KAFKA_BOOTSTRAP": self.infra.kafka,
            "SWITCHBOARD_DATABASE_URL": self.infra.database_url,
            "SWITCHBOARD_TOPIC_PREFIX": self.topic_prefix,
            "SWITCHBOARD_SCHEMA_PREFIX": self.schema_prefix,
            "SWITCHBOARD_HTTP_PORT": str(self.port),
            "WHATSAPP_APP_SECRET": self.secret,
            "WHATSAPP_VERIFY_TOKEN": "bench-verify-token",
            # The gateway signs the agent suite's cookies with it and refuses to start without.
            "SWITCHBOARD_SESSION_SECRET": f"bench-session-secret-{self.topic_prefix}-{self.secret}",
            "WHATSAPP_API_BASE_URL": self.graph_url,
            "WHATSAPP_ACCESS_TOKEN": "bench-graph-token",
            "SWITCHBOARD_LOG_FORMAT": "json",
            # No metrics endpoints: the registry's fixed ports would collide between systems.
            "SWITCHBOARD_METRICS_PORT": "0",
        }

    async def start(self) -> None:
        self.supervisor = spawn(
            [sys.executable, "-m", "services.cli", "run", "all", "--log-dir", str(self.log_dir)],
            self.env(),
            self.log_dir / "run-all.log",
        )
        supervisor = self.supervisor
        await wait_healthy(self.url, "switchboard run all", lambda: supervisor.poll() is None)
        await self._wait_for_table("conversation_history")
        self.admin_token = await self.cli_workspace("Bench", self.phone_number_id)

    async def _wait_for_table(self, table: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        name = f"{self.projections}.{table}"
        while time.monotonic() < deadline:
            with psycopg.connect(self.conninfo, autocommit=True) as connection:
                row = connection.execute("SELECT to_regclass(%s)", (name,)).fetchone()
            if row and row[0] is not None:
                return
            await asyncio.sleep(0.2)
        raise RuntimeError(f"the projector did not create {name}")

    async def cli_workspace(self, name: str, phone_number_id: str) -> str:
        """``switchboard workspace create`` as the README shows it; the admin token."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.cli",
            "workspace",
            "create",
            name,
            "--phone-number-id",
            phone_number_id,
            # a busy machine starts nine processes slowly; the CLI's own 60 s is tight
            "--wait",
            str(START_TIMEOUT_SECONDS),
            cwd=ROOT,
            env=self.env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), START_TIMEOUT_SECONDS + 30)
        if process.returncode != 0:
            raise RuntimeError(f"workspace create failed: {err.decode()[-2000:]}")
        token: str = orjson.loads(out)["admin_token"]
        return token

    def processes(self) -> dict[str, psutil.Process]:
        """Every child of ``run all``, named by its ``switchboard run`` argument (with a
        ``#n`` suffix when a name runs more than once, e.g. replicas)."""
        if self.supervisor is None:
            return {}
        try:
            children = psutil.Process(self.supervisor.pid).children()
        except psutil.NoSuchProcess:
            return {}
        found: dict[str, psutil.Process] = {}
        for child in sorted(children, key=lambda c: c.pid):
            with contextlib.suppress(psutil.Error):
                command = child.cmdline()
                base = command[command.index("run") + 1] if "run" in command else str(child.pid)
                label, n = base, 1
                while label in found:
                    n += 1
                    label = f"{base}#{n}"
                found[label] = child
        return found

    def history_trigger(self, channel: str) -> list[sql.Composed]:
        return arrivals.history_trigger(
            self.projections, "conversation_history", channel, customer_only=True
        )

    def drop_history_trigger(self) -> list[sql.Composed]:
        return arrivals.drop_triggers(self.projections, ["conversation_history"])

    def log_tail(self) -> str:
        lines: list[str] = []
        for path in sorted(self.log_dir.glob("*.log")):
            text = path.read_text(errors="replace").splitlines()[-5:]
            lines.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(lines)

    async def stop(self) -> None:
        if self.supervisor is not None:
            await asyncio.to_thread(stop_process, self.supervisor)
            self.supervisor = None

    async def cleanup(self) -> None:
        await drop_prefixed(self.infra, self.topic_prefix, self.schema_prefix)


@dataclass
class RawPipeline:
    """The four processes of ``bench.raw``, with a prefix of their own."""

    infra: Infrastructure
    run_dir: Path
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    name: str = "raw"
    secret: str = APP_SECRET
    phone_number_id: str = "480000000000001"
    children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    STEPS = ("history", "relay", "append", "gateway")

    def __post_init__(self) -> None:
        self.config = RawConfig(
            kafka=self.infra.kafka,
            database_url=self.infra.database_url,
            prefix=f"benchraw{self.tag}.",
            schema=f"benchraw{self.tag}",
            port=free_port(),
            secret=self.secret,
        )
        self.url = f"http://127.0.0.1:{self.config.port}"
        self.conninfo = self.infra.database_url
        self.log_dir = self.run_dir / f"raw-{self.tag}"

    async def start(self) -> None:
        await asyncio.to_thread(create_tables, self.config)
        await create_topics(self.config)
        for step in self.STEPS:
            self.children[step] = spawn(
                [sys.executable, "-m", "bench.raw", step],
                {**os.environ, **self.config.env()},
                self.log_dir / f"{step}.log",
            )
        gateway = self.children["gateway"]
        await wait_healthy(self.url, "the raw gateway", lambda: gateway.poll() is None)

    def processes(self) -> dict[str, psutil.Process]:
        found: dict[str, psutil.Process] = {}
        for step, child in self.children.items():
            with contextlib.suppress(psutil.Error):
                found[step] = psutil.Process(child.pid)
        return found

    def history_trigger(self, channel: str) -> list[sql.Composed]:
        return arrivals.history_trigger(self.config.schema, "history", channel, customer_only=False)

    def drop_history_trigger(self) -> list[sql.Composed]:
        return arrivals.drop_triggers(self.config.schema, ["history"])

    def log_tail(self) -> str:
        return "\n".join(
            f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-5:])
            for path in sorted(self.log_dir.glob("*.log"))
        )

    async def stop(self) -> None:
        for child in self.children.values():
            await asyncio.to_thread(stop_process, child, 10.0)
        self.children.clear()

    async def cleanup(self) -> None:
        await drop_prefixed(self.infra, self.config.prefix, self.config.schema)


def dead_processes(system: Switchboard | RawPipeline) -> Iterator[str]:
    """Names of the system's processes that are no longer running."""
    if isinstance(system, RawPipeline):
        for step, child in system.children.items():
            if child.poll() is not None:
                yield step
    elif system.supervisor is not None and system.supervisor.poll() is not None:
        yield "run all"
