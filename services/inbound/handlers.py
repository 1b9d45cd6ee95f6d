"""Thin adapters of the inbound service: which thread a record concerns, which decider.

Webhook records (messages, echoes, statuses), close commands and members' notes are decided
on the thread of their contact and business number (``decide.decide``); a record for a number
no workspace owns is kept whole on ``whatsapp.unrouted``, once the directory view is caught
up enough to be believed. Directory events feed the ``number_routes`` view. The runtime does
the rest.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid5

from events.base import Payload
from events.conversation import CloseConversation
from events.directory import BusinessNumberConnected
from events.envelope import Actor, Envelope
from events.notes import AddNote
from events.operations import InboundRecordUnrouted
from events.whatsapp import (
    WhatsAppChangeReceived,
    WhatsAppMessageEchoed,
    WhatsAppMessageReceived,
    WhatsAppStatusReceived,
    status_recipient,
)
from runtime.decider import Decider, decide_on
from runtime.records import Record
from runtime.store import NewEvent
from runtime.views import Believer
from runtime.work import Work
from services.inbound.decide import ThreadState, decide, evolve, thread_id
from services.inbound.routes import NumberRoutes

UNROUTED_NAMESPACE = UUID("c3a7e0d4-1b2f-4e6a-8d9c-0a1b2c3d4e5f")
INBOUND = Actor(kind="system", id="inbound")

THREADS: Decider[ThreadState] = Decider(
    "inbound.thread", initial=lambda thread: ThreadState(thread_id=thread), evolve=evolve
)


class InboundHandler:
    """Webhook records and conversation commands -> conversation events."""

    def __init__(self, routes: NumberRoutes, directory: Believer) -> None:
        self.routes = routes
        self.directory = directory

    def __call__(self, work: Work, record: Record) -> None:
        envelope = record.envelope
        payload = envelope.payload
        match payload:
            case WhatsAppMessageReceived() | WhatsAppMessageEchoed() | WhatsAppStatusReceived():
                contact = (
                    status_recipient(payload.status)
                    if isinstance(payload, WhatsAppStatusReceived)
                    else payload.contact_id
                )
                if contact is None:
                    raise ValueError("the status names no recipient (recipient_id, user id)")
                number = payload.phone_number_id
                workspace_id = self.routes.owner(work, number)
                if workspace_id is None:
                    self.directory.believe(record.delivery, f"who owns business number {number}")
                    unrouted(work, record, number)
                    return
                actor = Actor(
                    kind="customer" if isinstance(payload, WhatsAppMessageReceived) else "meta",
                    id=contact,
                )
                thread = thread_id(workspace_id, number, contact)
                self._decide(work, envelope, thread, workspace_id, actor)
            case CloseConversation() | AddNote():
                thread = thread_id(
                    payload.workspace_id, payload.phone_number_id, payload.contact_wa_id
                )
                self._decide(work, envelope, thread, payload.workspace_id, envelope.actor)
            case WhatsAppChangeReceived():
                # Written before business updates had a topic of their own; kept on the
                # inbound topic, which keeps its history. Nothing here acts on it.
                return
            case _:
                raise TypeError(f"inbound does not handle {envelope.event_type}")

    def _decide(
        self, work: Work, cause: Envelope, thread: UUID, workspace_id: UUID, actor: Actor
    ) -> None:
        decide_on(
            work,
            THREADS,
            thread,
            lambda state: decide(cause.payload, state, now=cause.occurred_at),
            lambda payloads: conversation_envelopes(cause, payloads, thread, workspace_id, actor),
        )


class DirectoryViewHandler:
    """Directory events -> the ``number_routes`` view the inbound handler routes by."""

    def __init__(self, routes: NumberRoutes) -> None:
        self.routes = routes

    def __call__(self, work: Work, record: Record) -> None:
        payload = record.envelope.payload
        if isinstance(payload, BusinessNumberConnected):
            self.routes.connect(work, payload.phone_number_id, payload.workspace_id)


def unrouted(work: Work, record: Record, phone_number_id: str) -> None:
    """Keep a record for a number no workspace owns, whole, on ``whatsapp.unrouted``."""
    envelope = record.envelope
    value = record.delivery.value
    assert value is not None  # it was decoded: tombstones are parked before
    # The kept record's id derives from the record's: kept once, however often it comes.
    event_id = uuid5(UNROUTED_NAMESPACE, str(envelope.event_id))
    if work.version(event_id) > 0:
        return
    kept = Envelope.wrap(
        InboundRecordUnrouted(
            phone_number_id=phone_number_id,
            reason=f"no workspace owns business number {phone_number_id}",
            record=value.decode("utf-8"),
        ),
        event_id=event_id,
        stream_id=phone_number_id,
        workspace_id=None,
        occurred_at=envelope.occurred_at,
        correlation_id=envelope.correlation_id,
        causation_id=envelope.event_id,
        actor=INBOUND,
    )
    work.append([NewEvent(event_id, 1, kept)])


def conversation_envelopes(
    cause: Envelope, payloads: list[Payload], thread: UUID, workspace_id: UUID, actor: Actor
) -> list[Envelope]:
    """The envelopes of what a record caused in a thread.

    Their ids derive from the workspace as well as the record: the gateway cannot know the
    workspace, and the same record routed to another workspace (a number moved, a replay
    into a second workspace) must give events of its own, not copies the read models skip.
    """
    return cause.caused(
        payloads,
        stream_of=lambda payload: _stream_of(payload, thread),
        workspace_id=workspace_id,
        occurred_at=_event_time(payloads, cause),
        actor=actor,
        scope=str(workspace_id),
    )


def _stream_of(payload: Payload, thread: UUID) -> str:
    conversation = getattr(payload, "conversation_id", None)
    return str(conversation) if conversation is not None else str(thread)


def _event_time(payloads: list[Payload], cause: Envelope) -> datetime:
    """An event happens when the customer's message or Meta's status says it did."""
    for payload in payloads:
        for attribute in ("sent_at", "status_at", "edited_at", "revoked_at", "closed_at"):
            moment = getattr(payload, attribute, None)
            if isinstance(moment, datetime):
                return moment
    return cause.occurred_at
