"""SIGKILL of the assignment process in the middle of a burst of hand-offs: nothing lost,
nothing decided twice, every group's rotation still exact.

``switchboard run assignment`` and ``switchboard run relay`` run as a user runs them. The
test plays the directory and the flows: it publishes members, groups and statuses on
``directory.events`` and then 1,000 hand-offs on ``assignment.requests`` (keyed by group).
The assignment process is killed once it has decided some of them, and started again.
"""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest

from events.assignment import ConversationAssigned
from events.catalogue import ASSIGNMENT_EVENTS_TOPIC
from services.settings import Settings
from tests.harness import Processes, eventually, query, topic_records
from tests.integration.test_assignment import upstream_of
from tests.integration.test_assignment_burst import (
    HAND_OFFS,
    MEMBERS,
    build_groups,
    burst,
    check_each_decided_once_in_rotation,
    members_available,
)

pytestmark = pytest.mark.e2e


async def decided(settings: Settings) -> int:
    try:
        rows = await query(
            settings,
            "assignment",
            "SELECT count(*) AS n FROM {s}.events WHERE topic = %s",
            ConversationAssigned.event_type,
        )
    except psycopg.errors.UndefinedTable:
        return 0  # the assignment process has not created its tables yet
    return int(rows[0]["n"])


async def test_sigkill_of_assignment_mid_burst_loses_and_duplicates_nothing(
    processes: Processes, e2e_env: dict[str, str]
) -> None:
    settings = Settings.from_env(e2e_env)
    processes.start("assignment")
    processes.start("relay")
    async with upstream_of(settings) as up:
        groups, rosters = await build_groups(up)
        await members_available(settings, MEMBERS)
        started = time.monotonic()
        await burst(up, groups, HAND_OFFS)

    await eventually(lambda: decided(settings), lambda n: n >= 100, within=60, interval=0.01)
    processes.kill("assignment")  # mid-burst: some decided, most still waiting
    at_kill = await decided(settings)
    assert at_kill < HAND_OFFS, "the kill came after the burst: it proved nothing"
    processes.start("assignment")

    await eventually(
        lambda: topic_records(settings, ASSIGNMENT_EVENTS_TOPIC),
        lambda found: len(found) >= HAND_OFFS,
        within=90,
        interval=0.5,
    )
    elapsed = time.monotonic() - started
    await asyncio.sleep(1.0)  # anything duplicated would have followed by now
    print(f"\nkilled after {at_kill} decisions; all {HAND_OFFS} decided in {elapsed:.1f}s")
    assert await decided(settings) == HAND_OFFS
    await check_each_decided_once_in_rotation(settings, rosters, HAND_OFFS)
