"""The envelope every record carries on Kafka and in the event stores."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal
from uuid import UUID, uuid5

from pydantic import BaseModel, ConfigDict, SerializeAsAny

from events.base import Id, Instant, Payload

ActorKind = Literal["customer", "member", "bot", "system", "meta"]

# Deterministic ids: the same cause always yields the same event id, so a replay or a
# redelivery produces byte-identical events and downstream dedup can rely on the id.
EVENT_ID_NAMESPACE = UUID("8b1d3f52-6a0e-4c55-9a53-4f1c7f0b2a10")


class Actor(BaseModel):
    """Who caused the event: a customer (by WhatsApp id), a member, the bot, the system."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    kind: ActorKind
    id: str | None = None


class Envelope(BaseModel):
    """Metadata plus payload. ``stream_id`` is the Kafka key: the ordering unit."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    event_id: Id
    event_type: str
    schema_version: int
    stream_id: str
    # None only for raw inbound records, which are routed to a workspace downstream.
    workspace_id: Id | None
    occurred_at: Instant
    correlation_id: Id
    causation_id: Id | None
    actor: Actor
    payload: SerializeAsAny[Payload]

    @classmethod
    def wrap(
        cls,
        payload: Payload,
        *,
        event_id: UUID,
        stream_id: str,
        workspace_id: UUID | None,
        occurred_at: Instant,
        correlation_id: UUID,
        causation_id: UUID | None,
        actor: Actor,
    ) -> Envelope:
        """Build an envelope whose type and version come from the payload's class."""
        return cls(
            event_id=event_id,
            event_type=payload.event_type,
            schema_version=payload.schema_version,
            stream_id=stream_id,
            workspace_id=workspace_id,
            occurred_at=occurred_at,
            correlation_id=correlation_id,
            causation_id=causation_id,
            actor=actor,
            payload=payload,
        )

    def caused(
        self,
        payloads: list[Payload],
        *,
        stream_of: Callable[[Payload], str],
        workspace_id: UUID | None,
        occurred_at: Instant,
        actor: Actor,
        scope: str = "",
    ) -> list[Envelope]:
        """Envelopes for the events this one caused: same correlation, derived ids.

        ``stream_of`` names each event's stream (its Kafka key), e.g. its conversation id.
        ``scope`` names what else makes the cause unique when this envelope's id does not
        (the workspace a raw webhook record was routed to); it enters every derived id.
        """
        prefix = f"{scope}/" if scope else ""
        return [
            Envelope.wrap(
                payload,
                # The type is part of the cause: two services reacting to one event (the
                # flows' run start and the expiry's deadline, both first of what a
                # conversation's start causes) must not make one id, or a reader that
                # recognises events by id (the projector) keeps only one of them.
                event_id=uuid5(
                    EVENT_ID_NAMESPACE, f"{prefix}{self.event_id}/{payload.event_type}/{index}"
                ),
                stream_id=stream_of(payload),
                workspace_id=workspace_id,
                occurred_at=occurred_at,
                correlation_id=self.correlation_id,
                causation_id=self.event_id,
                actor=actor,
            )
            for index, payload in enumerate(payloads)
        ]
