"""The AsyncAPI 3.0 document: the contract for whoever reads switchboard's topics.

Generated from two sources and nothing else: the topic catalogue (``events/catalogue.py``:
every topic, its key, partitions, retention and the event types it carries) and the process
registry (``services/registry.py``: who reads each topic, and who writes it). Each event type
at each version a reader can meet is a message whose payload is the JSON Schema of the whole
record (envelope and payload) that ``switchboard schemas write`` publishes under
``docs/schemas/`` (``events.published_schemas.record_schema``: one generator for both).

Who writes a topic: a consumer's stored events reach Kafka through the relay, so its send
operations say "stored by X, published by the relay"; a process that writes with its own
producer (the gateway) declares the topics in its registry line (``Process.publishes``).

``switchboard asyncapi write`` writes ``docs/asyncapi.yaml``; ``switchboard asyncapi check``
(and ``tests/unit/test_asyncapi.py``) fails when it differs from what the code says, and
``tests/integration/test_asyncapi_validation.py`` runs the official AsyncAPI parser on it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from events.base import JsonObject, Payload
from events.catalogue import (
    TOPICS,
    Topic,
    topic_of,
)
from events.published_schemas import (
    HEADERS,
    all_payloads,
    envelope_schema,
    record_schema,
    schema_path,
)
from runtime.process import Process, Service
from services import registry
from services.settings import DEFAULT_KAFKA, Settings

ASYNCAPI_VERSION = "3.0.0"
# The Kafka bindings of AsyncAPI 3.0 (channel, operation and message bindings).
KAFKA_BINDING_VERSION = "0.5.0"
DEFAULT_PATH = Path("docs/asyncapi.yaml")
REGENERATE = "switchboard asyncapi write"
# AsyncAPI's component and operation keys allow only these characters.
_KEY_CHARACTERS = re.compile(r"[^A-Za-z0-9.\-_]")


@dataclass(frozen=True)
class Reader:
    """One consumer (a consumer group) of a process, and the topics it reads."""

    process: str
    consumer: str
    topics: tuple[Topic, ...]
    description: str


@dataclass(frozen=True)
class Writer:
    """A process whose events reach ``topics``: from its store through the relay, or
    straight from its own producer."""

    process: str
    topics: tuple[Topic, ...]
    store: str | None


def readers(processes: Iterable[Process] = registry.PROCESSES) -> list[Reader]:
    """Every consumer of every consumer process, in registry order."""
    found: list[Reader] = []
    for declared in processes:
        if declared.kind != "consumer":
            continue
        found.extend(
            Reader(declared.name, sub.consumer, sub.topics, sub.description)
            for sub in _service(declared).subscriptions
        )
    return found


def _service(declared: Process) -> Service:
    target = declared.load()
    if not isinstance(target, Service):
        raise TypeError(f"{declared.name}: a consumer's registry line must name its Service")
    return target


def emits(declared: Process) -> tuple[Topic, ...]:
    """The topics a relayed store's events go to."""
    return _service(declared).emits if declared.kind == "consumer" else ()


def writers(processes: Iterable[Process] = registry.PROCESSES) -> list[Writer]:
    """Every process that writes to a topic, in registry order."""
    found: list[Writer] = []
    for declared in processes:
        if declared.relayed:
            found.append(Writer(declared.name, emits(declared), declared.store))
        if declared.publishes:
            found.append(Writer(declared.name, declared.publishes, None))
    return found


def asyncapi_document() -> JsonObject:
    """The whole document, deterministic (the committed file is compared byte for byte)."""
    schemas: JsonObject = {}
    schemas["envelope"] = _lift(envelope_schema(), "envelope", into=schemas)
    messages: JsonObject = {}
    for payload in sorted(all_payloads(), key=_message_key):
        key = _message_key(payload)
        schemas[key] = _lift(record_schema(payload), key, into=schemas)
        messages[key] = _message(payload, key)
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": _info(),
        "defaultContentType": "application/json",
        "servers": {
            "development": {
                "host": DEFAULT_KAFKA,
                "protocol": "kafka",
                "description": "The broker `make run` and `make test` start (deploy/infra.sh);"
                " in a deployment, SWITCHBOARD_KAFKA_BOOTSTRAP. A deployment may prefix every"
                " topic name (SWITCHBOARD_TOPIC_PREFIX).",
            }
        },
        "channels": {topic.name: _channel(topic) for topic in TOPICS},
        "operations": _operations(),
        "components": {"schemas": schemas, "messages": messages},
    }


def _info() -> JsonObject:
    return {
        "title": "switchboard",
        "version": metadata.version("switchboard"),
        "description": "Every Kafka topic of switchboard, the event types each carries (every"
        " version a reader from the beginning meets: topics keep their whole history), their"
        " record keys and headers, and which process writes and which reads each topic."
        " Each record's value is a JSON envelope whose `payload` follows the schema of its"
        " `event_type` and `schema_version`; the same schemas, one file per type and version,"
        " are in docs/schemas/. Generated from events/catalogue.py and services/registry.py"
        f" by `{REGENERATE}`: do not edit.",
    }


def _message_key(payload: type[Payload]) -> str:
    return f"{payload.event_type}.v{payload.schema_version}"


def _message(payload: type[Payload], key: str) -> JsonObject:
    topic = topic_of(payload.event_type)
    current = any(payload is carried for carried in topic.carries)
    summary = (payload.__doc__ or "").strip().split("\n\n")[0]
    summary = " ".join(summary.split())
    if not current:
        summary = (
            f"An earlier version, on the topic in records written before the current one;"
            f" switchboard's readers upcast it. {summary}"
        )
    message: JsonObject = {
        "name": payload.event_type,
        "title": f"{payload.event_type} v{payload.schema_version}",
        "contentType": "application/json",
        "headers": _headers(payload),
        "payload": {"$ref": f"#/components/schemas/{key}"},
        "correlationId": {
            "description": "The conversation of work this record belongs to (a customer"
            " message and every event it caused share it).",
            "location": "$message.payload#/correlation_id",
        },
        "bindings": {
            "kafka": {
                "key": {"type": "string", "description": topic.key},
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
        # The same schema as a file, relative to the repository (an extension: externalDocs
        # would need an absolute URI, and the document does not know where it is served).
        "x-switchboard-schema-file": "docs/schemas/"
        + schema_path(payload.event_type, payload.schema_version),
    }
    if summary:
        message["summary"] = summary
    return message


def _headers(payload: type[Payload]) -> JsonObject:
    """The Kafka headers of a record of this type and version (``RecordHeader``)."""
    described = dict(HEADERS)
    values: dict[str, JsonObject] = {
        "event_type": {"type": "string", "const": payload.event_type},
        "schema_version": {"type": "string", "const": str(payload.schema_version)},
        "event_id": {"type": "string", "format": "uuid"},
        "content-type": {"type": "string", "const": described["content-type"]},
    }
    if set(values) != set(described):  # a new header must be described here too
        raise ValueError(f"headers {sorted(described)} are not all described in the document")
    return {
        "type": "object",
        "required": list(values),
        "properties": {
            name: {**schema, "description": described[name]} for name, schema in values.items()
        },
    }


def _channel(topic: Topic) -> JsonObject:
    restricted = (
        " Restricted: carries credentials (token hashes); on a cluster with authorization only"
        " the processes named here may read it."
        if topic.restricted
        else ""
    )
    return {
        "address": topic.name,
        "title": topic.name,
        "description": f"{topic.description}{restricted} Key: {topic.key}.",
        "messages": {
            _message_key(payload): {"$ref": f"#/components/messages/{_message_key(payload)}"}
            for payload in sorted(_payloads_on(topic), key=_message_key)
        },
        "bindings": {
            "kafka": {
                "topic": topic.name,
                "partitions": topic.partitions,
                "topicConfiguration": {"retention.ms": topic.retention_ms},
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
    }


def _payloads_on(topic: Topic) -> list[type[Payload]]:
    """The current and the earlier versions of every event type the topic carries."""
    types = {payload.event_type for payload in topic.carries}
    return [payload for payload in all_payloads() if payload.event_type in types]


def _channel_messages(topic: Topic, *, current_only: bool = False) -> list[JsonObject]:
    """The channel's messages an operation handles: a reader meets every version on the
    topic; a writer writes only the current ones."""
    payloads = topic.carries if current_only else _payloads_on(topic)
    return [
        {"$ref": f"#/channels/{topic.name}/messages/{_message_key(payload)}"}
        for payload in sorted(payloads, key=_message_key)
    ]


def _operations() -> JsonObject:
    operations: JsonObject = {}
    for writer in writers():
        for topic in writer.topics:
            if writer.store is not None:
                how = (
                    f"Stored by {writer.process} in its event store (schema `{writer.store}`)"
                    " and published by the relay in store order, with an idempotent producer"
                    " (acks=all)."
                )
                sender = "relay"
            else:
                how = f"Written by {writer.process} with its own idempotent producer (acks=all)."
                sender = writer.process
            operations[_key(f"{writer.process}.send.{topic.name}")] = {
                "action": "send",
                "channel": {"$ref": f"#/channels/{topic.name}"},
                "title": f"{writer.process} writes {topic.name}",
                "description": how,
                "messages": _channel_messages(topic, current_only=True),
                "x-switchboard-process": writer.process,
                "x-switchboard-producer": sender,
            }
    for reader in readers():
        group = Settings().group_id(reader.consumer)
        for topic in reader.topics:
            operations[_key(f"{reader.consumer}.receive.{topic.name}")] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{topic.name}"},
                "title": f"{reader.consumer} reads {topic.name}",
                "description": f"{reader.description} (process `{reader.process}`; positions"
                " kept in PostgreSQL with its effects, every partition in order.)",
                "messages": _channel_messages(topic),
                "bindings": {
                    "kafka": {
                        "groupId": {
                            "type": "string",
                            "const": group,
                            "description": "With the deployment's SWITCHBOARD_TOPIC_PREFIX"
                            " (or SWITCHBOARD_GROUP_PREFIX) in front.",
                        },
                        "bindingVersion": KAFKA_BINDING_VERSION,
                    }
                },
                "x-switchboard-process": reader.process,
                "x-switchboard-consumer": reader.consumer,
            }
    return operations


def _key(name: str) -> str:
    return _KEY_CHARACTERS.sub("_", name)


def _lift(schema: JsonObject, key: str, *, into: JsonObject) -> JsonObject:
    """A generated JSON Schema, made to live in the document's components.

    pydantic's ``$defs`` are local to a schema file (``#/$defs/Name``); inside the document
    they move to ``components.schemas`` (shared by name where identical, else named after
    the message) and every reference follows. ``$schema`` goes: the document's schema
    format is AsyncAPI's (a superset of JSON Schema draft 07, which these schemas keep to).
    """
    definitions: JsonObject = schema.get("$defs", {})
    names = {name: _key(name) for name in definitions}
    while True:  # a renamed definition changes those that refer to it: until nothing moves
        lifted = {name: _rewrite(value, names) for name, value in definitions.items()}
        clashing = [
            name
            for name, value in lifted.items()
            if names[name] in into and into[names[name]] != value
        ]
        if not clashing:
            break
        for name in clashing:
            names[name] = _key(f"{key}.{name}")
    for name, value in lifted.items():
        into[names[name]] = value
    return {
        field: _rewrite(value, names)
        for field, value in schema.items()
        if field not in ("$defs", "$schema")
    }


def _rewrite(node: Any, names: dict[str, str]) -> Any:
    if isinstance(node, list):
        return [_rewrite(item, names) for item in node]
    if not isinstance(node, dict):
        return node
    rewritten = {}
    for field, value in node.items():
        if field == "$ref" and isinstance(value, str) and value.startswith("#/$defs/"):
            value = f"#/components/schemas/{names[value.removeprefix('#/$defs/')]}"
        rewritten[field] = _rewrite(value, names)
    return rewritten


def render(document: JsonObject) -> str:
    """The document as YAML, in the order it was built (the file people read)."""
    text: str = yaml.safe_dump(
        document, sort_keys=False, allow_unicode=True, width=100, default_flow_style=False
    )
    return (
        f"# Generated by `{REGENERATE}` from events/ and services/registry.py: do not edit.\n{text}"
    )


def check(path: Path = DEFAULT_PATH) -> str | None:
    """None when the file says what the code says, else what is wrong."""
    expected = render(asyncapi_document())
    if not path.exists():
        return f"{path} is missing; run `{REGENERATE}`"
    if path.read_text() != expected:
        return f"{path} differs from what events/ and services/registry.py say; run `{REGENERATE}`"
    return None


def write(path: Path = DEFAULT_PATH) -> bool:
    """Write the file if it differs; True when it was written."""
    expected = render(asyncapi_document())
    if path.exists() and path.read_text() == expected:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(expected)
    return True
