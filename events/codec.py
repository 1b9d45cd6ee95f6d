"""The one codec every producer and consumer uses: envelopes to bytes and back, with orjson.

Decoding looks the payload class up by ``event_type``, runs the registered upcasters from
the record's ``schema_version`` to the class's current one, then validates strictly.
Anything that cannot be decoded raises :class:`CodecError` with a message saying why; the
consumers turn that into a dead-letter record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from events.base import JsonObject, Payload
from events.envelope import Envelope

Upcaster = Callable[[JsonObject], JsonObject]


class CodecError(ValueError):
    """Bytes that are not a valid switchboard record (bad JSON, unknown type, bad fields)."""


class Registry:
    """Payload classes by wire name, and the upcasters between their schema versions."""

    def __init__(self, payload_classes: Iterable[type[Payload]] = ()) -> None:
        self._classes: dict[str, type[Payload]] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}
        for payload_class in payload_classes:
            self.add(payload_class)

    def add(self, payload_class: type[Payload]) -> None:
        existing = self._classes.get(payload_class.event_type)
        if existing is not None and existing is not payload_class:
            raise ValueError(f"event type {payload_class.event_type!r} registered twice")
        self._classes[payload_class.event_type] = payload_class

    def add_upcaster(self, event_type: str, from_version: int, upcaster: Upcaster) -> None:
        """Register the step that turns a ``from_version`` payload into ``from_version + 1``."""
        self._upcasters[(event_type, from_version)] = upcaster

    def payload_class(self, event_type: str) -> type[Payload]:
        try:
            return self._classes[event_type]
        except KeyError:
            raise CodecError(f"unknown event type {event_type!r}") from None

    def upcast(self, event_type: str, version: int, data: JsonObject) -> JsonObject:
        current = self.payload_class(event_type).schema_version
        if version > current:
            raise CodecError(
                f"{event_type} schema version {version} is newer than this reader's {current}"
            )
        while version < current:
            step = self._upcasters.get((event_type, version))
            if step is None:
                raise CodecError(f"no upcaster for {event_type} from version {version}")
            data = step(data)
            version += 1
        return data

    def known_versions(self) -> set[tuple[str, int]]:
        """Every (event type, schema version) this registry decodes: each class's current
        version and every earlier one an upcaster lifts."""
        current = {(name, cls.schema_version) for name, cls in self._classes.items()}
        return current | set(self._upcasters)

    def __contains__(self, event_type: object) -> bool:
        return event_type in self._classes


CONTENT_TYPE = b"application/json"


@dataclass(frozen=True)
class RecordHeader:
    """What a producer reads from a record without validating its payload: where it goes and
    the Kafka headers that repeat its type, version and id for filtering without parsing."""

    event_type: str
    schema_version: int
    event_id: str
    stream_id: str

    @classmethod
    def of(cls, envelope: Envelope) -> RecordHeader:
        return cls(
            event_type=envelope.event_type,
            schema_version=envelope.schema_version,
            event_id=str(envelope.event_id),
            stream_id=envelope.stream_id,
        )

    def kafka_headers(self) -> tuple[tuple[str, bytes], ...]:
        """The headers every switchboard record carries, whichever process produced it."""
        return (
            ("event_type", self.event_type.encode()),
            ("schema_version", str(self.schema_version).encode()),
            ("event_id", self.event_id.encode()),
            ("content-type", CONTENT_TYPE),
        )


def read_header(data: bytes) -> RecordHeader:
    """The header fields of an encoded record, or :class:`CodecError` saying which is wrong.

    The payload is not validated: a process that only forwards records (the relay) must not
    refuse a version newer than the classes it knows.
    """
    try:
        raw: Any = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise CodecError(f"not JSON: {error}") from None
    if not isinstance(raw, dict):
        raise CodecError(f"a record is a JSON object, got {type(raw).__name__}")
    event_type, version = raw.get("event_type"), raw.get("schema_version")
    event_id, stream_id = raw.get("event_id"), raw.get("stream_id")
    if not isinstance(event_type, str) or not event_type:
        raise CodecError("missing or non-string 'event_type'")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CodecError(f"{event_type}: missing or invalid 'schema_version'")
    if not isinstance(event_id, str) or not event_id:
        raise CodecError(f"{event_type}: missing or non-string 'event_id'")
    if not isinstance(stream_id, str):
        raise CodecError(f"{event_type}: missing or non-string 'stream_id'")
    return RecordHeader(event_type, version, event_id, stream_id)


def encode(envelope: Envelope) -> bytes:
    """Serialise an envelope; payload fields are written in their JSON forms."""
    return orjson.dumps(envelope.model_dump(mode="json"))


def decode(data: bytes, registry: Registry) -> Envelope:
    """Parse, upcast and strictly validate one record, or raise :class:`CodecError`."""
    try:
        raw: Any = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise CodecError(f"not JSON: {error}") from None
    if not isinstance(raw, dict):
        raise CodecError(f"a record is a JSON object, got {type(raw).__name__}")
    event_type = raw.get("event_type")
    version = raw.get("schema_version")
    payload = raw.get("payload")
    if not isinstance(event_type, str):
        raise CodecError("missing or non-string 'event_type'")
    if not isinstance(version, int) or version < 1:
        raise CodecError(f"{event_type}: missing or invalid 'schema_version'")
    if not isinstance(payload, dict):
        raise CodecError(f"{event_type}: missing or non-object 'payload'")
    payload_class = registry.payload_class(event_type)
    try:
        upcasted = registry.upcast(event_type, version, payload)
        model = payload_class.model_validate(upcasted)
        return Envelope.model_validate(
            {**raw, "schema_version": payload_class.schema_version, "payload": model}
        )
    except ValidationError as error:
        raise CodecError(f"{event_type} v{version}: {_describe(error)}") from None
    except (KeyError, TypeError, ValueError) as error:
        raise CodecError(f"{event_type} v{version}: upcasting failed: {error}") from None


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False):
        location = ".".join(str(part) for part in item["loc"]) or "(record)"
        parts.append(f"{location}: {item['msg']}")
    return "; ".join(parts)
