"""Two replicas of the assignment service under a burst of hand-offs: each decided once,
every group's rotation exact, no member over capacity.

Both apps join the same consumer groups, so they share the partitions of
``assignment.requests`` (hand-offs keyed by group) and of the directory and conversation
topics; the relay publishes their decisions. Members are shared between groups, so the two
replicas decide for groups of one member at the same time.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any
from uuid import UUID

import pytest

from events.assignment import (
    ConversationAssigned,
    ConversationQueued,
    HandOffDeclined,
    group_key,
)
from events.catalogue import ASSIGNMENT_EVENTS_TOPIC, HAND_OFF_REQUESTS_TOPIC
from events.flows import HandOffRequested
from runtime import consumer
from services.settings import Settings
from tests.harness import eventually, query, topic_records
from tests.integration.test_assignment import (
    Upstream,
    assignment_running,
    group_streams,
    upstream_of,
)

pytestmark = pytest.mark.integration
GROUPS = 10
MEMBERS = 15  # each in two groups of three
HAND_OFFS = 1000


class CountingLog:
    """The runtime's logger, counting the decisions that lost a race and were made again."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.conflicts = 0

    def info(self, event: str, **fields: Any) -> None:
        if event.startswith("conflict; deciding again"):
            self.conflicts += 1
        self.inner.info(event, **fields)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def members_available(settings: Settings, count: int) -> None:
    async def available() -> int:
        try:
            rows = await query(
                settings,
                "assignment",
                "SELECT count(*) AS n FROM {s}.members WHERE status = 'available'",
            )
        except Exception:
            return 0
        return int(rows[0]["n"])

    await eventually(available, lambda n: n >= count, within=30, interval=0.1)


async def build_groups(up: Upstream) -> tuple[list[UUID], dict[UUID, list[UUID]]]:
    members = [await up.member(f"M{k:02d}", capacity=100) for k in range(MEMBERS)]
    rosters: dict[UUID, list[UUID]] = {}
    for g in range(GROUPS):
        roster = [members[(3 * g + i) % MEMBERS] for i in range(3)]
        rosters[await up.group(f"G{g}", *roster)] = roster
    return list(rosters), rosters


async def burst(up: Upstream, groups: list[UUID], count: int) -> None:
    """``count`` hand-offs spread over the groups, sent without waiting for each ack."""
    sends = []
    for n in range(count):
        group_id = groups[n % len(groups)]
        request = up.hand_off_request(group_id)
        sends.append(
            await up.publish(
                HAND_OFF_REQUESTS_TOPIC, request, group_key(up.workspace, group_id), wait=False
            )
        )
    await asyncio.gather(*sends)


async def check_each_decided_once_in_rotation(
    settings: Settings, rosters: dict[UUID, list[UUID]], count: int
) -> None:
    """Every hand-off assigned exactly once, and each group's rotation exact: the i-th
    hand-off of a group (in its partition's order) goes to roster[i % 3]."""
    requests = [
        e.payload
        for e in await topic_records(settings, HAND_OFF_REQUESTS_TOPIC)
        if isinstance(e.payload, HandOffRequested)
    ]
    assert len(requests) == count
    records = await topic_records(settings, ASSIGNMENT_EVENTS_TOPIC)
    assert not [e for e in records if isinstance(e.payload, HandOffDeclined)]
    decided = Counter(
        e.payload.conversation_id
        for e in records
        if isinstance(e.payload, ConversationAssigned | ConversationQueued)
    )
    assert decided == Counter({r.conversation_id: 1 for r in requests})
    assert all(isinstance(e.payload, ConversationAssigned) for e in records)
    streams = await group_streams(settings)
    for group_id, roster in rosters.items():
        handed = [r.conversation_id for r in requests if r.group_id == group_id]
        stream = [e.payload for e in streams[str(group_id)]]
        assert [a.conversation_id for a in stream] == handed  # type: ignore[attr-defined]
        assert [a.member_id for a in stream] == [  # type: ignore[attr-defined]
            roster[i % len(roster)] for i in range(len(handed))
        ]


async def test_two_replicas_decide_a_burst_of_1000_hand_offs_once_each_in_exact_rotation(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    counting = CountingLog(consumer.log)
    monkeypatch.setattr(consumer, "log", counting)
    async with upstream_of(settings) as up, assignment_running(settings, replicas=2):
        groups, rosters = await build_groups(up)
        await members_available(settings, MEMBERS)
        started = time.monotonic()
        await burst(up, groups, HAND_OFFS)
        await eventually(
            lambda: topic_records(settings, ASSIGNMENT_EVENTS_TOPIC),
            lambda found: len(found) >= HAND_OFFS,
            within=90,
            interval=0.5,
        )
        elapsed = time.monotonic() - started
        await asyncio.sleep(1.0)  # anything duplicated would have followed by now
    print(
        f"\n{HAND_OFFS} hand-offs over {GROUPS} groups, 2 replicas: {elapsed:.1f}s,"
        f" {counting.conflicts} decisions made again after a conflict"
    )
    await check_each_decided_once_in_rotation(settings, rosters, HAND_OFFS)


async def test_two_replicas_never_take_a_member_over_capacity_across_groups(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One member with room for 3 is the only member of 12 groups decided at once."""
    counting = CountingLog(consumer.log)
    monkeypatch.setattr(consumer, "log", counting)
    async with upstream_of(settings) as up, assignment_running(settings, replicas=2):
        solo = await up.member("Solo", capacity=3)
        groups = [await up.group(f"G{g}", solo) for g in range(12)]
        await members_available(settings, 1)
        await burst(up, groups, 24)
        records = await eventually(
            lambda: topic_records(settings, ASSIGNMENT_EVENTS_TOPIC),
            lambda found: len(found) >= 24,
            within=60,
            interval=0.2,
        )
        await asyncio.sleep(1.0)
        records = await topic_records(settings, ASSIGNMENT_EVENTS_TOPIC)
    print(f"\ncapacity race: {counting.conflicts} decisions made again after a conflict")
    kinds = Counter(type(e.payload).__name__ for e in records)
    assert kinds == Counter({"ConversationAssigned": 3, "ConversationQueued": 21})
    reasons = [
        e.payload.decision.outcome for e in records if isinstance(e.payload, ConversationQueued)
    ]
    assert all("Solo: at capacity (3/3)" in reason for reason in reasons)
