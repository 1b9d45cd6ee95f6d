"""Operational records: what could not be routed or handled, kept with the reason."""

from __future__ import annotations

from events.base import Payload


class InboundRecordUnrouted(Payload):
    """A webhook record for a business number no workspace owns; the record is kept whole."""

    event_type = "operations.inbound_record_unrouted"

    phone_number_id: str
    reason: str
    record: str  # the original record, as UTF-8 JSON text


class RecordDeadLettered(Payload):
    """A record a consumer could not handle, parked with the reason; the consumer moved on."""

    event_type = "operations.record_dead_lettered"

    consumer: str
    source_topic: str
    source_partition: int
    source_offset: int
    key: str | None
    value_base64: str
    reason: str


OPERATIONS_EVENTS: tuple[type[Payload], ...] = (InboundRecordUnrouted, RecordDeadLettered)
