"""docs/schemas/ is the analytics contract: it must say exactly what the models say, and a
model changed under a published version must fail with what to do."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Literal
from uuid import UUID

import orjson
import pytest
from jsonschema import Draft202012Validator

from events import published_schemas
from events.base import Id, Instant, Payload
from events.catalogue import build_registry
from events.codec import RecordHeader, decode
from events.conversation import ConversationClosed
from events.earlier_versions import earlier_payloads

pytestmark = pytest.mark.unit
REGISTRY = build_registry()
PUBLISHED = Path(__file__).resolve().parents[2] / "docs" / "schemas"


def test_the_published_files_match_the_models() -> None:
    comparison = published_schemas.check(PUBLISHED)
    assert comparison, f"docs/schemas differs from events/:\n{comparison.report()}"


def test_every_version_the_registry_decodes_has_a_model_and_a_file() -> None:
    published = {
        (payload.event_type, payload.schema_version) for payload in published_schemas.all_payloads()
    }
    decoded = published_schemas.registered_versions()
    assert decoded - published == set(), (
        "the registry upcasts these versions but events/earlier_versions.py has no model of"
        " them (copy the class as it was, then `switchboard schemas write`)"
    )
    assert published - decoded == set(), "a model of a version no upcaster lifts"
    assert len(published) == len(published_schemas.all_payloads()), "a version modelled twice"
    for payload in earlier_payloads():
        assert (
            PUBLISHED / published_schemas.schema_path(payload.event_type, payload.schema_version)
        ).is_file()


def test_the_listed_headers_are_those_every_record_carries() -> None:
    header = RecordHeader("conversation.closed", 1, str(UUID(int=1)), "stream")
    assert [name for name, _ in published_schemas.HEADERS] == [
        name for name, _ in header.kafka_headers()
    ]


# A change to ConversationClosed, as a developer might make it in events/conversation.py.
class ClosedWithANewField(Payload):
    """What happened in conversations: closed."""

    event_type = "conversation.closed"

    conversation_id: Id
    reason: Literal["agent", "flow_ended", "expired", "admin"]
    closed_at: Instant
    closed_by: Id | None


class ClosedWithNewWording(Payload):
    """The conversation is over: no one answers it any more (a reworded docstring, and a
    class renamed: its name in ``$defs`` is wording too)."""

    event_type = "conversation.closed"

    conversation_id: Id
    reason: Literal["agent", "flow_ended", "expired", "admin"]
    closed_at: Instant


class ClosedVersion2(ClosedWithANewField):
    schema_version = 2


class ClosedVersion1AsItWas(Payload):
    event_type = "conversation.closed"

    conversation_id: Id
    reason: Literal["agent", "flow_ended", "expired", "admin"]
    closed_at: Instant


def models_with(
    monkeypatch: pytest.MonkeyPatch, *replacements: type[Payload], old: type[Payload] | None = None
) -> None:
    """Pretend ``ConversationClosed`` is ``replacements`` (and ``old`` an earlier version)."""
    original = published_schemas.all_payloads()

    def payloads() -> tuple[type[Payload], ...]:
        kept = tuple(payload for payload in original if payload is not ConversationClosed)
        index = original.index(ConversationClosed)
        extra = (old,) if old is not None else ()
        return (*kept[:index], *replacements, *kept[index:], *extra)

    monkeypatch.setattr(published_schemas, "all_payloads", payloads)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    copy = tmp_path / "schemas"
    shutil.copytree(PUBLISHED, copy)
    return copy


def test_a_model_changed_under_its_version_fails_and_says_to_add_a_version(
    monkeypatch: pytest.MonkeyPatch, folder: Path
) -> None:
    models_with(monkeypatch, ClosedWithANewField)

    comparison = published_schemas.check(folder)

    problems = {item.path: item.problem for item in comparison.differences}
    assert not comparison
    assert "give the payload class a new schema_version" in problems["conversation.closed/v1.json"]
    assert "events/earlier_versions.py" in problems["conversation.closed/v1.json"]
    # Writing does not make it pass: a published version's structure is not rewritten.
    report = published_schemas.write(folder)
    assert [item.path for item in report.refused] == ["conversation.closed/v1.json"]
    assert not published_schemas.check(folder)
    assert (folder / "conversation.closed/v1.json").read_bytes() == (
        PUBLISHED / "conversation.closed/v1.json"
    ).read_bytes()


def test_a_new_version_with_the_old_model_kept_is_written_beside_the_old_file(
    monkeypatch: pytest.MonkeyPatch, folder: Path
) -> None:
    models_with(monkeypatch, ClosedVersion2, old=ClosedVersion1AsItWas)

    before = published_schemas.check(folder)
    assert [item.path for item in before.differences if "missing" in item.problem] == [
        "conversation.closed/v2.json"
    ]
    report = published_schemas.write(folder)

    assert "conversation.closed/v2.json" in report.written
    assert report.refused == []
    assert published_schemas.check(folder), published_schemas.check(folder).report()
    # v1's file may take the kept class's wording, never another structure.
    assert published_schemas.structure(
        orjson.loads((folder / "conversation.closed/v1.json").read_bytes())
    ) == published_schemas.structure(
        orjson.loads((PUBLISHED / "conversation.closed/v1.json").read_bytes())
    )


def test_reworded_documentation_is_rewritten_without_a_new_version(
    monkeypatch: pytest.MonkeyPatch, folder: Path
) -> None:
    models_with(monkeypatch, ClosedWithNewWording)

    comparison = published_schemas.check(folder)
    assert [(item.path, item.problem) for item in comparison.differences] == [
        (
            "conversation.closed/v1.json",
            "wording or listing changed; run `switchboard schemas write`",
        )
    ]
    assert published_schemas.write(folder).written == ["conversation.closed/v1.json"]
    assert published_schemas.check(folder)


def test_a_published_file_whose_model_is_gone_fails(folder: Path) -> None:
    (folder / "conversation.closed/v7.json").write_bytes(
        (folder / "conversation.closed/v1.json").read_bytes()
    )

    comparison = published_schemas.check(folder)

    assert [item.path for item in comparison.differences] == ["conversation.closed/v7.json"]
    assert "keep its model" in comparison.differences[0].problem


def test_structure_keeps_names_and_shapes_and_drops_wording() -> None:
    schema = {
        "title": "x",
        "description": "words",
        "properties": {
            "description": {"type": "string", "title": "Description"},
            "actor": {"$ref": "#/$defs/Actor"},
        },
        "required": ["description", "actor"],
        "$defs": {"Actor": {"title": "Actor", "type": "object"}},
    }
    assert published_schemas.structure(schema) == {
        "properties": {"description": {"type": "string"}, "actor": {"type": "object"}},
        "required": ["actor", "description"],
    }


def sample(schema: Any, definitions: dict[str, Any]) -> Any:
    """A small instance of ``schema``: every required property, the first choice of each
    union, an empty object or list (enough to tell whether a reader accepts the shape)."""
    if "$ref" in schema:
        return sample(definitions[schema["$ref"].removeprefix("#/$defs/")], definitions)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if "anyOf" in schema:
        return sample(schema["anyOf"][0], definitions)
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties", {})
        return {name: sample(properties[name], definitions) for name in schema.get("required", [])}
    values: dict[str | None, Any] = {
        "array": [],
        "integer": 1,
        "number": 1.5,
        "boolean": True,
        "null": None,
    }
    if kind == "string":
        formats = {"uuid": str(UUID(int=5)), "date-time": "2026-11-23T09:00:00Z"}
        return formats.get(schema.get("format"), "text")
    return values[kind]


@pytest.mark.parametrize(
    "payload",
    published_schemas.all_payloads(),
    ids=lambda payload: f"{payload.event_type}-v{payload.schema_version}",
)
def test_a_record_as_its_schema_describes_it_is_read_by_the_registry(
    payload: type[Payload],
) -> None:
    """Each published version, earlier ones included, is what the registry's upcasters lift:
    a record built from the schema alone validates against it and decodes."""
    schema = orjson.loads(
        (
            PUBLISHED / published_schemas.schema_path(payload.event_type, payload.schema_version)
        ).read_bytes()
    )
    record = sample(schema, schema.get("$defs", {}))
    # Any field a version reads (an upcaster's "text", a flow's "definition") is there.
    assert list(Draft202012Validator(schema).iter_errors(record)) == []

    decoded = decode(orjson.dumps(record), REGISTRY)

    assert decoded.event_type == payload.event_type
    assert decoded.schema_version == REGISTRY.payload_class(payload.event_type).schema_version
