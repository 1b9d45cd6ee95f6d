"""A process's own small HTTP endpoint: ``/metrics``, ``/readyz`` and ``/healthz``.

Consumers and the relay serve no HTTP otherwise: each one's composition root
(``switchboard run NAME``) starts this server on the port its settings give
(``SWITCHBOARD_METRICS_PORT``, else the process's default in the registry; 0 = off) before
anything connects, so ``/readyz`` says so when Kafka or PostgreSQL is away at start-up too.
It runs in threads of its own (the standard library's WSGI server, which prometheus-client
uses too): a scrape never waits for the event loop, and a process whose loop is stuck still
answers — with the lag that shows it.

* ``/metrics``: prometheus-client's exposition of the process-wide registry
  (``runtime.metrics``).
* ``/readyz``: 200 when Kafka answers a metadata request, PostgreSQL a query, and every
  partition this process holds (and every store it relays) is at most ``max_lag`` behind;
  else 503 with a body that names each part that is not ready.
* ``/healthz``: 200 while the process runs (liveness: nothing is checked).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import orjson
import psycopg
import structlog
from aiokafka.client import AIOKafkaClient
from prometheus_client import REGISTRY, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from runtime import metrics

log = structlog.get_logger(__name__)

# How long /readyz waits for each of Kafka and PostgreSQL before calling it down.
CHECK_TIMEOUT_SECONDS = 2.0
PROBLEM_JSON = "application/problem+json"

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


@dataclass(frozen=True)
class Found:
    """What a readiness check found: each dependency's problem (None when it answered) and
    what is behind (empty when caught up)."""

    kafka: str | None
    database: str | None
    behind: tuple[str, ...]


def readiness(found: Found) -> tuple[int, dict[str, Any]]:
    """The status and body ``/readyz`` answers for ``found`` (pure)."""
    parts = {
        "kafka": "up" if found.kafka is None else f"down: {found.kafka}",
        "database": "up" if found.database is None else f"down: {found.database}",
        "caught_up": "yes" if not found.behind else "no: " + "; ".join(found.behind),
    }
    not_ready = [
        f"{what} ({parts[key]})"
        for what, key, problem in (
            ("Kafka", "kafka", found.kafka),
            ("PostgreSQL", "database", found.database),
            ("caught up", "caught_up", found.behind),
        )
        if problem
    ]
    if not not_ready:
        return 200, {"status": "ready", **parts}
    detail = "not ready: " + ", ".join(not_ready)
    return 503, {"detail": detail, "status": "unavailable", **parts}


def kafka_problem(bootstrap: str, timeout: float = CHECK_TIMEOUT_SECONDS) -> str | None:
    """None when a broker of ``bootstrap`` answers a metadata request within ``timeout``."""

    async def ask() -> None:
        client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
        try:
            await asyncio.wait_for(client.bootstrap(), timeout)
        finally:
            await client.close()

    try:
        # Its own loop, in the request's thread: the process's loop is never touched.
        asyncio.run(ask())
    except Exception as error:
        return _described(error)
    return None


def database_problem(conninfo: str, timeout: float = CHECK_TIMEOUT_SECONDS) -> str | None:
    """None when PostgreSQL answers a query within ``timeout``."""
    try:
        with psycopg.connect(conninfo, connect_timeout=max(2, round(timeout))) as connection:
            connection.execute("SELECT 1")
    except Exception as error:
        return _described(error)
    return None


def _described(error: BaseException) -> str:
    name = type(error).__name__
    lines = str(error).strip().splitlines()
    first = lines[0] if lines else ""
    # aiokafka's errors already start with their class name.
    return first if first.startswith(name) else f"{name}: {first}".rstrip(": ")


@dataclass(frozen=True)
class Checks:
    """What ``/readyz`` checks for one process."""

    kafka_bootstrap: str
    conninfo: str
    max_lag: int
    timeout: float = CHECK_TIMEOUT_SECONDS

    def run(self) -> Found:
        with ThreadPoolExecutor(2, thread_name_prefix="readyz") as pool:
            kafka = pool.submit(kafka_problem, self.kafka_bootstrap, self.timeout)
            database = pool.submit(database_problem, self.conninfo, self.timeout)
            return Found(
                kafka=kafka.result(),
                database=database.result(),
                behind=tuple(metrics.not_caught_up(self.max_lag)),
            )


def wait_for_infrastructure(checks: Checks, *, cap_seconds: float = 5.0) -> None:
    """Block until Kafka and PostgreSQL both answer (a process starting during an outage
    waits it out, its ``/readyz`` saying what it waits for, instead of exiting at once)."""
    delay = 0.2
    while True:
        found = checks.run()
        missing = {
            name: problem
            for name, problem in (("kafka", found.kafka), ("database", found.database))
            if problem is not None
        }
        if not missing:
            return
        log.error("waiting to start until they answer", delay=delay, **missing)
        time.sleep(delay)
        delay = min(delay * 2, cap_seconds)


def observer_app(checks: Checks) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """The WSGI app: ``/metrics``, ``/readyz``, ``/healthz``; a 404 problem otherwise."""
    exposition = make_wsgi_app(REGISTRY)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            served: Iterable[bytes] = exposition(environ, start_response)
            return served
        if path == "/readyz":
            status, body = readiness(checks.run())
            return _json(start_response, status, body)
        if path == "/healthz":
            return _json(start_response, 200, {"status": "ok"})
        missing = {"detail": f"no {path} here: /metrics, /readyz, /healthz"}
        return _json(start_response, 404, missing)

    return app


def _json(start_response: StartResponse, status: int, body: dict[str, Any]) -> list[bytes]:
    payload = orjson.dumps(body)
    reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
    content_type = "application/json" if status == 200 else PROBLEM_JSON
    headers = [("Content-Type", content_type), ("Content-Length", str(len(payload)))]
    if status == 503:
        headers.append(("Retry-After", "5"))
    start_response(f"{status} {reason}", headers)
    return [payload]


class _QuietHandler(WSGIRequestHandler):
    """The standard library prints a plain line per request on stderr; every log line is
    structured here (and a scrape every few seconds is noise at INFO)."""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("metrics endpoint request", line=format % args)


@contextlib.contextmanager
def serving(host: str, port: int, checks: Checks) -> Iterator[WSGIServer | None]:
    """Serve ``/metrics``, ``/readyz`` and ``/healthz`` on ``host:port`` while inside; port 0
    serves nothing. A port already taken fails here, at start-up, naming it."""
    if port == 0:
        yield None
        return
    try:
        server = make_server(
            host,
            port,
            observer_app(checks),
            server_class=ThreadingWSGIServer,
            handler_class=_QuietHandler,
        )
    except OSError as error:
        where = f"{host}:{port} (SWITCHBOARD_METRICS_PORT)"
        raise OSError(error.errno, f"cannot serve /metrics on {where}: {error}") from error
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()
    log.info("serving /metrics, /readyz and /healthz", host=host, port=server.server_port)
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
