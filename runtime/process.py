"""Declarations: what a process is, what a consumer service subscribes to and emits.

A :class:`Process` is one line of the registry (``services/registry.py``), which the CLI
(``switchboard run NAME``), the supervisor (``run all``), the relay (its list of stores),
the AsyncAPI document, ``make run`` and the deployment files all read. A consumer process
points at a :class:`Service`: its store, its subscriptions and, once its resources exist,
the handler of each (``start``). ``runtime.app.consumer_app`` turns a service into a
running FastStream app; nothing else about a consumer is written anywhere.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Literal

from events.catalogue import Topic
from runtime.config import Connections
from runtime.consumer import Handler, OnAssigned, Prepare
from runtime.store import EventStore, StoreRecorder

Kind = Literal["consumer", "relay", "http"]


@dataclass(frozen=True)
class Process:
    """One process of the system, as the registry declares it."""

    name: str
    kind: Kind
    # "module:attribute": a consumer's Service, or the function a relay or HTTP process runs.
    target: str
    description: str
    # How many run in a deployment: consumers share their partitions (one consumer group),
    # relays and the expiry timer keep one active holder of a lock (the others stand by).
    replicas: int = 1
    # The PostgreSQL schema of the process's event store, and whether the relay publishes it.
    store: str | None = None
    relayed: bool = False
    # An HTTP path answering 200 while the process is ready (HTTP processes only).
    health: str | None = None
    # The topics it writes with its own producer, not through a store and the relay (the
    # gateway's webhook records and commands): the AsyncAPI document's send operations.
    publishes: tuple[Topic, ...] = ()
    # Where a consumer or the relay serves /metrics, /readyz and /healthz unless
    # SWITCHBOARD_METRICS_PORT says otherwise (an HTTP process serves them on its own port).
    metrics_port: int | None = None

    def load(self) -> Any:
        module, _, attribute = self.target.partition(":")
        return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class Subscription:
    """A consumer (its name is its consumer group and its key in the handled ids) and the
    topics it reads."""

    consumer: str
    topics: tuple[Topic, ...]
    description: str
    # At most this many records a batch (None: ``SWITCHBOARD_BATCH_MAX_RECORDS``). A consumer
    # whose records each cause an external call after the commit (the dispatcher's sends)
    # keeps its batches small: every record of a batch is committed before the first call.
    max_records: int | None = None


@dataclass(frozen=True)
class Binding:
    """What a subscription's records are handled by, once the process has started."""

    handler: Handler
    prepare: Prepare | None = None
    on_assigned: OnAssigned | None = None


@dataclass(frozen=True)
class Context:
    """What a service's ``start`` is given: the settings and its open store."""

    settings: Any
    store: EventStore


Start = Callable[..., AbstractAsyncContextManager[Mapping[str, Binding]]]
"""``start(context, **options)``: build the handlers (and start background tasks) once the
store is open, yield each subscription's binding, clean up after."""


@dataclass(frozen=True)
class Service:
    """A consumer process: its store, what it subscribes to, what its store emits."""

    name: str
    open_recorder: Callable[[Connections], StoreRecorder]
    subscriptions: tuple[Subscription, ...]
    start: Start
    # The topics its stored events go to (through the relay), for the AsyncAPI document.
    emits: tuple[Topic, ...] = field(default=())
