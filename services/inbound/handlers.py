"""Thin adapters of the inbound service: decode, load, decide, append with the position."""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime
from uuid import UUID, uuid5

from eventsourcing.persistence import IntegrityError

from events.base import Payload
from events.conversation import CloseConversation
from events.directory import BusinessNumberConnected
from events.envelope import Actor, Envelope
from events.operations import InboundRecordUnrouted
from events.whatsapp import (
    WhatsAppChangeReceived,
    WhatsAppMessageEchoed,
    WhatsAppMessageReceived,
    WhatsAppStatusReceived,
    status_recipient,
)
from services.consumer import Delivery, StoreBackedHandler
from services.inbound.decide import ThreadState, decide, evolve, thread_id
from services.inbound.routes import InboundRecorder
from services.store import AlreadyTracked, EventStore, NewEvent, StreamConflict

UNROUTED_NAMESPACE = UUID("c3a7e0d4-1b2f-4e6a-8d9c-0a1b2c3d4e5f")
CONFLICT_ATTEMPTS = 5


class UnknownBusinessNumber(Exception):
    """No workspace owns the number (the directory view is up to date)."""


class InboundHandler(StoreBackedHandler):
    """Webhook records and conversation commands -> Conversation events."""

    name = "inbound"

    def __init__(self, store: EventStore, recorder: InboundRecorder, cache_size: int = 10_000):
        self.store = store
        self.recorder = recorder
        self.cache_size = cache_size
        # Threads this process decided on lately, with their stream version. Safe because a
        # stale entry fails the append with a conflict, which reloads from the store.
        self._threads: OrderedDict[UUID, tuple[ThreadState, int]] = OrderedDict()

    def handle(self, delivery: Delivery, envelope: Envelope) -> None:
        record = envelope.payload
        match record:
            case WhatsAppMessageReceived() | WhatsAppMessageEchoed() | WhatsAppStatusReceived():
                contact = (
                    record.contact_id
                    if not isinstance(record, WhatsAppStatusReceived)
                    else status_recipient(record.status)
                )
                if contact is None:
                    raise ValueError("the status names no recipient (recipient_id, user id)")
                workspace_id = self.recorder.route(record.phone_number_id)
                if workspace_id is None:
                    self._unrouted(delivery, envelope, record.phone_number_id)
                    return
                thread = thread_id(workspace_id, record.phone_number_id, contact)
                self._decide(
                    thread,
                    workspace_id,
                    envelope,
                    delivery,
                    actor=Actor(
                        kind="customer" if isinstance(record, WhatsAppMessageReceived) else "meta",
                        id=contact,
                    ),
                )
            case CloseConversation():
                thread = thread_id(
                    record.workspace_id, record.phone_number_id, record.contact_wa_id
                )
                self._decide(thread, record.workspace_id, envelope, delivery, actor=envelope.actor)
            case WhatsAppChangeReceived():
                # Written before business updates had a topic of their own; kept on the
                # inbound topic, which keeps its history. Nothing here acts on it.
                self.store.append([], delivery.tracking)
            case _:
                raise TypeError(f"inbound does not handle {envelope.event_type}")

    def _decide(
        self,
        thread: UUID,
        workspace_id: UUID,
        cause: Envelope,
        delivery: Delivery,
        *,
        actor: Actor,
    ) -> None:
        for _ in range(CONFLICT_ATTEMPTS):
            state, version = self._thread(thread)
            payloads = decide(cause.payload, state, now=cause.occurred_at)
            envelopes = conversation_envelopes(cause, payloads, thread, workspace_id, actor)
            new_events = [
                NewEvent(thread, version + index + 1, envelope)
                for index, envelope in enumerate(envelopes)
            ]
            try:
                self.store.append(new_events, delivery.tracking)
            except StreamConflict:
                self._threads.pop(thread, None)
                continue
            for envelope in envelopes:
                state = evolve(state, envelope.payload)
            self._remember(thread, state, version + len(envelopes))
            return
        raise StreamConflict(f"thread {thread} kept changing under this consumer")

    def _thread(self, thread: UUID) -> tuple[ThreadState, int]:
        cached = self._threads.get(thread)
        if cached is not None:
            self._threads.move_to_end(thread)
            return cached
        stream = self.store.load(thread)
        state = ThreadState(thread_id=thread)
        for envelope in stream.envelopes:
            state = evolve(state, envelope.payload)
        self._remember(thread, state, stream.version)
        return state, stream.version

    def _remember(self, thread: UUID, state: ThreadState, version: int) -> None:
        self._threads[thread] = (state, version)
        self._threads.move_to_end(thread)
        while len(self._threads) > self.cache_size:
            self._threads.popitem(last=False)

    def _unrouted(self, delivery: Delivery, envelope: Envelope, phone_number_id: str) -> None:
        unrouted = InboundRecordUnrouted(
            phone_number_id=phone_number_id,
            reason=f"no workspace owns business number {phone_number_id}",
            record=delivery.value.decode("utf-8"),
        )
        # The record's id derives from the number, the contact and the item: Meta's retry of
        # the same body (at a new offset) is recognised as kept already.
        event_id = uuid5(UNROUTED_NAMESPACE, str(envelope.event_id))
        kept = Envelope.wrap(
            unrouted,
            event_id=event_id,
            stream_id=phone_number_id,
            workspace_id=None,
            occurred_at=envelope.occurred_at,
            correlation_id=envelope.correlation_id,
            causation_id=envelope.event_id,
            actor=Actor(kind="system", id=self.name),
        )
        try:
            self.store.append([NewEvent(event_id, 1, kept)], delivery.tracking)
        except StreamConflict:
            self.store.append([], delivery.tracking)


class DirectoryViewHandler(StoreBackedHandler):
    """Directory events -> the ``number_routes`` view the inbound handler routes by."""

    name = "inbound.directory-view"

    def __init__(self, store: EventStore, recorder: InboundRecorder) -> None:
        self.store = store
        self.recorder = recorder

    def handle(self, delivery: Delivery, envelope: Envelope) -> None:
        phone_number_id: str | None = None
        workspace_id: UUID | None = None
        if isinstance(envelope.payload, BusinessNumberConnected):
            phone_number_id = envelope.payload.phone_number_id
            workspace_id = envelope.payload.workspace_id
        try:
            self.recorder.record_route(phone_number_id, workspace_id, delivery.tracking)
        except IntegrityError:
            raise AlreadyTracked(delivery.tracking.application_name) from None


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
