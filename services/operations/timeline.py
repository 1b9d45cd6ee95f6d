"""One conversation's timeline: which stored events belong to it and in what order.

Pure: the reader (``services/operations/stores.py``) hands in what it found in every
service's event store; this module decides membership and order, without I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from uuid import UUID

from events.envelope import Envelope


@dataclass(frozen=True)
class StoredEntry:
    """An event as one service's store holds it: the store (its service) and its place there."""

    store: str
    notification_id: int
    envelope: Envelope


def belongs_to(envelope: Envelope, conversation_id: UUID) -> bool:
    """Whether an event is about the conversation.

    Events about a conversation are keyed by it (``stream_id``: conversation, flow,
    assignment decisions, outbound and expiry events, and the dead letter of a record keyed
    by it) or name it in their payload (``conversation_id``: a hand-off request keyed by its
    group, a group nudged because the conversation closed).
    """
    if envelope.stream_id == str(conversation_id):
        return True
    named = getattr(envelope.payload, "conversation_id", None)
    return named is not None and str(named) == str(conversation_id)


def timeline(entries: Iterable[StoredEntry], conversation_id: UUID) -> list[StoredEntry]:
    """The conversation's events, each once, in time order with a stable tiebreak.

    Services stamp what an event caused with the cause's time, so many events share an
    instant: among those, a cause comes before what it caused (its depth along the
    ``causation_id`` chain, counted within the timeline), then the store's name and its
    order (notification id) keep the result the same on every run. An event stored twice
    (the same id) is shown once, from the first store that holds it.
    """
    unique: dict[UUID, StoredEntry] = {}
    for entry in sorted(entries, key=lambda e: (e.store, e.notification_id)):
        if belongs_to(entry.envelope, conversation_id):
            unique.setdefault(entry.envelope.event_id, entry)
    depth = causal_depths([entry.envelope for entry in unique.values()])
    return sorted(
        unique.values(),
        key=lambda e: (
            e.envelope.occurred_at,
            depth[e.envelope.event_id],
            e.store,
            e.notification_id,
        ),
    )


def unstored(stored: Iterable[StoredEntry], published: Iterable[StoredEntry]) -> list[StoredEntry]:
    """The published records no store holds (a relayed event is shown from its store)."""
    known = {entry.envelope.event_id for entry in stored}
    return [entry for entry in published if entry.envelope.event_id not in known]


def causal_depths(envelopes: Sequence[Envelope]) -> dict[UUID, int]:
    """How many known causes precede each event (0: its cause is not among ``envelopes``)."""
    cause_of = {envelope.event_id: envelope.causation_id for envelope in envelopes}
    depths: dict[UUID, int] = {}
    for event_id in cause_of:
        chain: list[UUID] = []
        current: UUID | None = event_id
        # Walk up to a known depth, an unknown cause, or a cycle (which ids derived from
        # causes cannot make, but a hand-written record could).
        while current is not None and current in cause_of and current not in depths:
            if current in chain:
                break
            chain.append(current)
            current = cause_of[current]
        base = depths.get(current, -1) if current is not None else -1
        for offset, known in enumerate(reversed(chain), start=1):
            depths[known] = base + offset
    return depths
