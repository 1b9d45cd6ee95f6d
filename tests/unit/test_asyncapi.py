"""docs/asyncapi.yaml is the analytics contract in AsyncAPI: every topic, every event type at
every version with its record schema (the one docs/schemas/ publishes), the key, the headers,
and who writes and who reads each topic — generated from the catalogue and the registry, and
committed so that it cannot drift. (tests/integration/test_asyncapi_validation.py runs the
official AsyncAPI parser on it.)"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from events.base import JsonObject
from events.catalogue import DEAD_LETTERS, TOPICS, WHATSAPP_UNROUTED, topic_of
from events.published_schemas import HEADERS, all_payloads, envelope_schema, record_schema
from runtime.process import Service
from services import asyncapi, registry

pytestmark = pytest.mark.unit
COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"


@pytest.fixture(scope="module")
def document() -> JsonObject:
    return asyncapi.asyncapi_document()


def test_the_committed_document_is_what_the_code_says() -> None:
    problem = asyncapi.check(COMMITTED)
    assert problem is None, problem


def test_the_committed_file_parses_to_the_document(document: JsonObject) -> None:
    assert yaml.safe_load(COMMITTED.read_text()) == document


def test_a_document_that_drifted_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "asyncapi.yaml"
    assert asyncapi.check(path) is not None  # missing
    assert asyncapi.write(path)
    assert asyncapi.check(path) is None
    assert not asyncapi.write(path)  # nothing to do
    path.write_text(path.read_text().replace("whatsapp.unrouted", "whatsapp.unrouted_old", 1))
    problem = asyncapi.check(path)
    assert problem is not None
    assert "switchboard asyncapi write" in problem


def test_every_topic_of_the_catalogue_is_a_channel(document: JsonObject) -> None:
    channels = document["channels"]
    assert set(channels) == {topic.name for topic in TOPICS}
    for topic in (WHATSAPP_UNROUTED, DEAD_LETTERS, *TOPICS):
        channel = channels[topic.name]
        assert channel["address"] == topic.name
        assert channel["bindings"]["kafka"]["partitions"] == topic.partitions
        assert channel["bindings"]["kafka"]["topicConfiguration"] == {
            "retention.ms": topic.retention_ms
        }
        assert topic.key in channel["description"]


def test_every_event_type_at_every_version_is_a_message_of_its_topic(
    document: JsonObject,
) -> None:
    messages = document["components"]["messages"]
    payloads = all_payloads()
    assert len(messages) == len(payloads)
    for payload in payloads:
        key = f"{payload.event_type}.v{payload.schema_version}"
        message = messages[key]
        topic = topic_of(payload.event_type)
        assert document["channels"][topic.name]["messages"][key] == {
            "$ref": f"#/components/messages/{key}"
        }
        assert message["bindings"]["kafka"]["key"]["description"] == topic.key
        headers = message["headers"]["properties"]
        assert set(headers) == {name for name, _ in HEADERS}
        assert headers["event_type"]["const"] == payload.event_type
        assert headers["schema_version"]["const"] == str(payload.schema_version)
        assert message["x-switchboard-schema-file"] == (
            f"docs/schemas/{payload.event_type}/v{payload.schema_version}.json"
        )
        assert (COMMITTED.parent / "schemas" / payload.event_type).is_dir()


def test_every_payload_is_the_published_record_schema(document: JsonObject) -> None:
    """One generator: inlining the document's components gives back, field for field, the
    schema docs/schemas/ publishes for that type and version (envelope included)."""
    components = document["components"]["schemas"]
    for payload in all_payloads():
        reference = document["components"]["messages"][
            f"{payload.event_type}.v{payload.schema_version}"
        ]["payload"]
        published = record_schema(payload)
        assert _inline(reference, "#/components/schemas/", components) == _inline(
            {k: v for k, v in published.items() if k not in ("$schema", "$defs")},
            "#/$defs/",
            published.get("$defs", {}),
        ), payload.event_type
    envelope = envelope_schema()
    assert _inline(components["envelope"], "#/components/schemas/", components) == _inline(
        {k: v for k, v in envelope.items() if k not in ("$schema", "$defs")},
        "#/$defs/",
        envelope.get("$defs", {}),
    )


def _inline(node: Any, prefix: str, definitions: JsonObject, depth: int = 0) -> Any:
    assert depth < 50, "a recursive schema: compare it another way"
    if isinstance(node, list):
        return [_inline(item, prefix, definitions, depth) for item in node]
    if not isinstance(node, dict):
        return node
    reference = node.get("$ref")
    if isinstance(reference, str) and reference.startswith(prefix):
        rest = {key: value for key, value in node.items() if key != "$ref"}
        resolved = definitions[reference.removeprefix(prefix)]
        return {
            **_inline(resolved, prefix, definitions, depth + 1),
            **_inline(rest, prefix, definitions, depth),
        }
    assert "$ref" not in node, f"a reference that does not resolve here: {reference}"
    return {key: _inline(value, prefix, definitions, depth) for key, value in node.items()}


def test_every_subscription_of_the_registry_is_a_receive_operation(
    document: JsonObject,
) -> None:
    operations = document["operations"]
    received = {
        (op["x-switchboard-process"], op["x-switchboard-consumer"],
         op["channel"]["$ref"].removeprefix("#/channels/"))
        for op in operations.values()
        if op["action"] == "receive"
    }  # fmt: skip
    expected = set()
    for declared in registry.PROCESSES:
        target = declared.load() if declared.kind == "consumer" else None
        if isinstance(target, Service):
            for subscription in target.subscriptions:
                expected |= {
                    (declared.name, subscription.consumer, topic.name)
                    for topic in subscription.topics
                }
    assert expected, "no consumer on the batch runtime?"
    assert expected <= received
    # Every consumer process is there, each with its subscriptions.
    processes = {process for process, _, _ in received}
    assert processes == {p.name for p in registry.PROCESSES if p.kind == "consumer"}
    assert ("projector", "projector", "expiry.events") in received
    assert ("flows", "flows", "conversation.events") in received
    for operation in operations.values():
        if operation["action"] == "receive":  # the group the consumer joins (Settings.group_id)
            consumer = operation["x-switchboard-consumer"]
            assert operation["bindings"]["kafka"]["groupId"]["const"] == f"switchboard.{consumer}"


def test_every_topic_has_a_writer_and_every_relayed_store_sends(document: JsonObject) -> None:
    sends = [op for op in document["operations"].values() if op["action"] == "send"]
    written = {op["channel"]["$ref"].removeprefix("#/channels/") for op in sends}
    assert written == {topic.name for topic in TOPICS}
    senders = {op["x-switchboard-process"] for op in sends}
    assert {p.name for p in registry.PROCESSES if p.relayed} <= senders
    relayed = [op for op in sends if op["x-switchboard-producer"] == "relay"]
    assert relayed
    assert all("relay" in op["description"] for op in relayed)
    gateway = {
        op["channel"]["$ref"].removeprefix("#/channels/")
        for op in sends
        if op["x-switchboard-process"] == "gateway"
    }
    assert gateway == {topic.name for topic in registry.GATEWAY_PUBLISHES}


def test_readers_handle_every_version_and_writers_write_the_current_ones(
    document: JsonObject,
) -> None:
    by_name = {topic.name: topic for topic in TOPICS}
    for name, operation in document["operations"].items():
        channel = operation["channel"]["$ref"].removeprefix("#/channels/")
        listed = {message["$ref"] for message in operation["messages"]}
        if operation["action"] == "receive":
            keys = set(document["channels"][channel]["messages"])
        else:
            keys = {
                f"{payload.event_type}.v{payload.schema_version}"
                for payload in by_name[channel].carries
            }
        assert listed == {f"#/channels/{channel}/messages/{key}" for key in keys}, name
    sends = document["operations"]["flows.send.flow.events"]["messages"]
    assert {"$ref": "#/channels/flow.events/messages/flow.run_started.v2"} in sends
    assert {"$ref": "#/channels/flow.events/messages/flow.run_started.v1"} not in sends


def test_every_relayed_store_says_where_its_events_go() -> None:
    for declared in registry.PROCESSES:
        if declared.relayed:
            assert asyncapi.emits(declared), f"{declared.name}: its store's topics are unknown"


def test_a_consumer_line_that_names_no_service_is_refused() -> None:
    line = replace(registry.process("expiry"), target="services.expiry.app:create_app")
    with pytest.raises(TypeError, match="must name its Service"):
        asyncapi.readers([line])


def test_every_reference_resolves_and_no_local_definition_is_left(document: JsonObject) -> None:
    references: list[str] = []
    _collect_references(document, references)
    for reference in references:
        assert reference.startswith("#/"), reference
        node: Any = document
        for part in reference.removeprefix("#/").split("/"):
            assert part in node, f"{reference} does not resolve"
            node = node[part]
    text = yaml.safe_dump(document)
    assert "#/$defs/" not in text
    assert "$schema" not in text


def _collect_references(node: Any, into: list[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _collect_references(item, into)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                into.append(value)
            else:
                _collect_references(value, into)


def test_definitions_that_share_a_name_but_differ_are_kept_apart() -> None:
    """Two record schemas may each define a ``Thing`` of their own: the second is named
    after its message, and a definition that refers to it (``Holder``) follows."""
    into: JsonObject = {}
    first = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$defs": {
            "Thing": {"type": "string"},
            "Holder": {"properties": {"thing": {"$ref": "#/$defs/Thing"}}},
        },
        "properties": {"holder": {"$ref": "#/$defs/Holder"}},
    }
    second = {
        "$defs": {
            "Thing": {"type": "integer"},
            "Holder": {"properties": {"thing": {"$ref": "#/$defs/Thing"}}},
        },
        "properties": {"holder": {"$ref": "#/$defs/Holder"}},
    }
    assert asyncapi._lift(first, "a.v1", into=into) == {
        "properties": {"holder": {"$ref": "#/components/schemas/Holder"}}
    }
    assert asyncapi._lift(second, "b.v1", into=into) == {
        "properties": {"holder": {"$ref": "#/components/schemas/b.v1.Holder"}}
    }
    assert into == {
        "Thing": {"type": "string"},
        "Holder": {"properties": {"thing": {"$ref": "#/components/schemas/Thing"}}},
        "b.v1.Thing": {"type": "integer"},
        "b.v1.Holder": {"properties": {"thing": {"$ref": "#/components/schemas/b.v1.Thing"}}},
    }
    # The same definition again is shared, not copied.
    asyncapi._lift(first, "c.v1", into=into)
    assert len(into) == 4
