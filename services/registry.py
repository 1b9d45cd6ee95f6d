"""Every process of switchboard, one line each: the only place the list is written.

The CLI (``switchboard run NAME``), the supervisor (``switchboard run all``, what ``make run``
starts), the relay (which stores it publishes), the AsyncAPI document and
``switchboard processes`` (what deployment files are generated from) all read it. A consumer
line names its service declaration (``services/<name>/app.py:SERVICE``); a new consumer is
a folder with such a declaration plus one line here.

Metrics ports: each consumer and the relay serves ``/metrics``, ``/readyz`` and ``/healthz``
on its own port (``runtime.observe``), so that ``make run`` — every process on one machine —
needs no configuration; a deployment running replicas side by side sets
``SWITCHBOARD_METRICS_PORT`` per replica. The gateway serves them on its HTTP port.

Replicas: consumers share their topics' partitions within one consumer group, so each may
run as several; a relay and the expiry timer keep one active lock holder per store and the
others stand by; the gateway is stateless behind a load balancer.
"""

from __future__ import annotations

from events.catalogue import (
    CONVERSATION_COMMANDS_TOPIC,
    CONVERSATION_READS_TOPIC,
    DIRECTORY_COMMANDS_TOPIC,
    HAND_OFF_REQUESTS_TOPIC,
    OUTBOUND_MESSAGES_TOPIC,
    WHATSAPP_BUSINESS,
    WHATSAPP_INBOUND,
    WHATSAPP_REJECTED,
)
from runtime.process import Process

# What the gateway writes with its own producer (no store): webhook records, admin commands,
# claims and transfers, agents' replies, closes and read markers.
GATEWAY_PUBLISHES = (
    WHATSAPP_INBOUND,
    WHATSAPP_BUSINESS,
    WHATSAPP_REJECTED,
    DIRECTORY_COMMANDS_TOPIC,
    HAND_OFF_REQUESTS_TOPIC,
    OUTBOUND_MESSAGES_TOPIC,
    CONVERSATION_COMMANDS_TOPIC,
    CONVERSATION_READS_TOPIC,
)

# fmt: off
PROCESSES: tuple[Process, ...] = (
    Process("directory", "consumer", "services.directory.app:SERVICE", "workspaces, numbers, members, groups, flows", replicas=2, store="directory", relayed=True, metrics_port=9101),
    Process("inbound", "consumer", "services.inbound.app:SERVICE", "webhook records into conversations", replicas=2, store="inbound", relayed=True, metrics_port=9102),
    Process("flows", "consumer", "services.flows.app:SERVICE", "each conversation's flow run", replicas=2, store="flows", relayed=True, metrics_port=9103),
    Process("dispatcher", "consumer", "services.dispatcher.app:SERVICE", "outbound messages to the WhatsApp Cloud API, at most once", replicas=2, store="dispatcher", relayed=True, metrics_port=9104),
    Process("expiry", "consumer", "services.expiry.app:SERVICE", "deadlines and the timer that closes conversations", replicas=2, store="expiry", relayed=True, metrics_port=9105),
    Process("assignment", "consumer", "services.assignment.app:SERVICE", "who takes each hand-off, and why", replicas=2, store="assignment", relayed=True, metrics_port=9106),
    Process("projector", "consumer", "projections.app:SERVICE", "the read models the HTTP API serves", replicas=2, store="projections", relayed=True, metrics_port=9107),
    Process("metrics", "consumer", "projections.metrics.app:SERVICE", "service metrics per group, agent and day", replicas=2, store="metrics", relayed=True, metrics_port=9109),
    Process("relay", "relay", "runtime.relay.app:run_relays", "every relayed store's events, to Kafka", replicas=2, metrics_port=9108),
    Process("gateway", "http", "services.gateway.app:create_app", "webhooks, the HTTP API, the agent suite", replicas=2, health="/healthz", publishes=GATEWAY_PUBLISHES),
)
# fmt: on


def process(name: str) -> Process:
    for declared in PROCESSES:
        if declared.name == name:
            return declared
    raise LookupError(f"no process is called {name!r}; see services/registry.py")


def names() -> tuple[str, ...]:
    return tuple(declared.name for declared in PROCESSES)


def relayed_stores() -> tuple[str, ...]:
    """The stores (by schema name) the relay publishes."""
    return tuple(p.store for p in PROCESSES if p.relayed and p.store is not None)
