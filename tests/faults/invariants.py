"""What must hold after any fault: read from the event stores and the read models.

Each invariant is a pure function of what the stores hold (so it is tested on hand-made
histories in ``tests/unit/test_fault_invariants.py``); ``read_system`` collects that from
PostgreSQL, and ``fresh_rebuild_difference`` compares the read models with a projector built
from offset zero into fresh schemas.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from events.assignment import (
    ConversationAssigned,
    ConversationQueued,
    ConversationReleased,
    ConversationTransferred,
    HandOffDeclined,
)
from events.codec import decode
from events.conversation import ConversationClosed, ConversationStarted, CustomerMessageReceived
from events.envelope import Envelope
from events.expiry import ConversationExpired, DeadlineCancelled, DeadlineSet
from events.flows import HandOffRequested
from events.outbound import OutboundSendAttempted
from services.settings import Settings
from tests.harness import REGISTRY, projector_behind, query

# A read model whose rows carry when (or in which order) the projector wrote them, rather
# than what the events say: not compared with a fresh rebuild.
VOLATILE_TABLES = frozenset({"changes"})


@dataclass(frozen=True)
class Stores:
    """Every service's stored events, in store order."""

    inbound: Sequence[Envelope]
    flows: Sequence[Envelope]
    assignment: Sequence[Envelope]
    dispatcher: Sequence[Envelope]
    expiry: Sequence[Envelope]


@dataclass
class Report:
    """Each invariant's violations (empty: it holds)."""

    violations: dict[str, list[str]] = field(default_factory=dict)

    @property
    def holds(self) -> bool:
        return not any(self.violations.values())

    def summary(self) -> dict[str, int]:
        return {name: len(found) for name, found in self.violations.items()}


def wamids_once(stores: Stores, accepted: Iterable[str]) -> list[str]:
    """Every distinct inbound wamid is recorded exactly once, and none accepted is missing."""
    counts = Counter(
        e.payload.wamid for e in stores.inbound if isinstance(e.payload, CustomerMessageReceived)
    )
    repeated = [f"{wamid} recorded {n} times" for wamid, n in counts.items() if n > 1]
    missing = [f"{wamid} accepted, never recorded" for wamid in set(accepted) - set(counts)]
    return sorted(repeated) + sorted(missing)


def hand_offs_decided_once(stores: Stores) -> list[str]:
    """Every hand-off is assigned, queued or declined exactly once (by the decision it caused)."""
    decisions: Counter[UUID] = Counter()
    for e in stores.assignment:
        decided = (ConversationAssigned, ConversationQueued, HandOffDeclined)
        if isinstance(e.payload, decided) and e.causation_id is not None:
            decisions[e.causation_id] += 1
    found = []
    for e in stores.flows:
        if isinstance(e.payload, HandOffRequested):
            n = decisions[e.event_id]
            if n != 1:
                found.append(f"hand-off {e.event_id} of {e.payload.conversation_id}: {n} decisions")
    return found


def one_holder_at_a_time(stores: Stores) -> list[str]:
    """No conversation is held by two members at once."""
    holder: dict[UUID, UUID | None] = {}
    found = []
    for e in stores.assignment:
        match e.payload:
            case ConversationAssigned(conversation_id=c, member_id=m):
                if holder.get(c) not in (None, m):
                    found.append(f"{c} assigned to {m} while {holder[c]} held it")
                holder[c] = m
            case ConversationReleased(conversation_id=c):
                holder[c] = None
            case ConversationTransferred(conversation_id=c, to_member_id=m):
                holder[c] = m
    return found


def sent_at_most_once(stores: Stores) -> list[str]:
    """Every outbound message reaches the Graph API at most once (an attempt precedes each call;
    no scenario asks for a retry)."""
    attempts = Counter(
        e.payload.message_id
        for e in stores.dispatcher
        if isinstance(e.payload, OutboundSendAttempted)
    )
    return [f"message {m} attempted {n} times" for m, n in attempts.items() if n > 1]


def one_live_deadline(stores: Stores) -> list[str]:
    """Every open conversation has exactly one live deadline; a closed one has none."""
    open_: set[UUID] = set()
    for e in stores.inbound:
        if isinstance(e.payload, ConversationStarted):
            open_.add(e.payload.conversation_id)
        elif isinstance(e.payload, ConversationClosed):
            open_.discard(e.payload.conversation_id)
    live: dict[UUID, int] = defaultdict(int)
    for e in stores.expiry:
        match e.payload:
            case DeadlineSet(conversation_id=c):
                live[c] = 1  # a later deadline replaces the earlier one
            case DeadlineCancelled(conversation_id=c) | ConversationExpired(conversation_id=c):
                live[c] = 0
    found = [f"open conversation {c} has no live deadline" for c in open_ if live[c] != 1]
    found += [
        f"closed conversation {c} still has a live deadline"
        for c, n in live.items()
        if n and c not in open_
    ]
    return sorted(found)


def check(stores: Stores, accepted: Iterable[str]) -> Report:
    return Report(
        {
            "inbound wamid recorded once": wamids_once(stores, accepted),
            "hand-off decided once": hand_offs_decided_once(stores),
            "one holder at a time": one_holder_at_a_time(stores),
            "outbound sent at most once": sent_at_most_once(stores),
            "one live deadline per open conversation": one_live_deadline(stores),
        }
    )


async def stored(settings: Settings, store: str) -> list[Envelope]:
    rows = await query(settings, store, "SELECT state FROM {s}.events ORDER BY notification_id")
    return [decode(bytes(row["state"]), REGISTRY) for row in rows]


async def read_system(settings: Settings) -> Stores:
    return Stores(
        inbound=await stored(settings, "inbound"),
        flows=await stored(settings, "flows"),
        assignment=await stored(settings, "assignment"),
        dispatcher=await stored(settings, "dispatcher"),
        expiry=await stored(settings, "expiry"),
    )


async def settled(settings: Settings, accepted: Iterable[str], *, within: float) -> Report:
    """The invariants once the system has caught up (or the last check after ``within``)."""
    wamids = set(accepted)

    deadline = time.monotonic() + within
    while True:
        report = check(await read_system(settings), wamids)
        if report.holds or time.monotonic() > deadline:
            return report
        await asyncio.sleep(1)


async def read_models(settings: Settings) -> dict[str, list[str]]:
    from projections.recorder import TABLES

    models: dict[str, list[str]] = {}
    for table in TABLES:
        if table in VOLATILE_TABLES:
            continue
        rows = await query(settings, "projections", f"SELECT * FROM {{s}}.{table}")
        models[table] = sorted(repr(sorted(row.items())) for row in rows)
    return models


async def fresh_rebuild_difference(settings: Settings, *, within: float) -> dict[str, Any]:
    """Build the read models again from offset zero into fresh schemas (a projector of its own
    consumer group) and compare them, table by table, with the running system's."""
    from projections.app import create_app as create_projector

    fresh = dataclasses.replace(
        settings,
        schema_prefix=f"{settings.schema_prefix}fresh_",
        group_prefix=f"{settings.topic_prefix}fresh.",
    )
    app = create_projector(fresh)
    async with app.lifespan_context():
        await app.start()
        try:
            for name, which in (("fresh", fresh), ("live", settings)):
                deadline = time.monotonic() + within
                while behind := await projector_behind(which):
                    assert time.monotonic() < deadline, f"the {name} projector is behind: {behind}"
                    await asyncio.sleep(1)

            async def difference() -> dict[str, Any]:
                live, rebuilt = await read_models(settings), await read_models(fresh)
                return {
                    table: {
                        "only live": len(set(live[table]) - set(rebuilt[table])),
                        "only rebuilt": len(set(rebuilt[table]) - set(live[table])),
                        "example": sorted(set(live[table]) ^ set(rebuilt[table]))[:1],
                    }
                    for table in live
                    if live[table] != rebuilt[table]
                }

            deadline = time.monotonic() + 30
            while True:
                found = await difference()
                if not found or time.monotonic() > deadline:
                    return found
                await asyncio.sleep(1)
        finally:
            await app.stop()
