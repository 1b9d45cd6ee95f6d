"""Time travel: ``as_of`` on the inbox, a group's roster and its queue answers what the routes
answered at that moment.

A scripted period runs through the whole system (hand-offs, an assignment by rotation, a
conversation left waiting, a read marker, status changes, a transfer, a close, a claim); at
several moments the live answers are recorded (once they are the same just before and just
after the moment). Asked afterwards with ``as_of`` at each moment, every route answers
exactly the recorded snapshot — but for what is counted from *now*, which ``as_of`` counts
from the moment asked for (checked against that moment). A moment to come, one before the
workspace existed and another workspace's member are answered sensibly; the operator's
commands answer the same JSON.
"""

from __future__ import annotations

import asyncio
import copy
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from events.catalogue import ASSIGNMENT_EVENTS_TOPIC, CONVERSATION_EVENTS_TOPIC, Topic
from services.dispatcher.decide import window_open
from services.settings import Settings
from services.workspaces import create_workspace
from tests.fake_graph import FakeGraphApi
from tests.harness import eventually, query
from tests.integration.test_agents import Team, build_team
from tests.operations import switchboard, whole_system

pytestmark = pytest.mark.integration
# What an inbox item counts from the moment of the answer.
RELATIVE = ("closes_in_seconds", "service_window_open")
INBOXES = ("admin", "A", "B")


@dataclass(frozen=True)
class Snapshot:
    moment: datetime
    answers: dict[str, Any]


async def answers(
    client: httpx.AsyncClient, team: Team, moment: datetime | None = None
) -> dict[str, Any]:
    """Every answer under test: three members' inboxes, the group's roster and queue."""
    params = {"as_of": moment.isoformat()} if moment else {}
    found: dict[str, Any] = {}
    for who in INBOXES:
        inbox = await client.get("/api/me/inbox", params=params, headers=team.auth(who))
        assert inbox.status_code == 200, inbox.text
        found[f"inbox of {who}"] = inbox.json()
    for view in ("roster", "queue"):
        path = f"/api/groups/{team.group}/{view}"
        got = await client.get(path, params=params, headers=team.admin)
        assert got.status_code == 200, got.text
        found[view] = got.json()
    return found


def absolute(found: dict[str, Any]) -> dict[str, Any]:
    """The answers without what is counted from the moment of the answer."""
    kept = copy.deepcopy(found)
    for name in INBOXES:
        for items in kept[f"inbox of {name}"].values():
            for item in items or ():
                for field in RELATIVE:
                    item.pop(field, None)
    return kept


async def snapshot(client: httpx.AsyncClient, team: Team) -> Snapshot:
    """The live answers at a moment: once what was answered just before it is what is
    answered just after it (the period's last step has settled)."""

    async def bracketed() -> Snapshot | None:
        before = await answers(client, team)
        await asyncio.sleep(0.3)
        moment = datetime.now(UTC)
        await asyncio.sleep(0.01)
        after = await answers(client, team)
        return Snapshot(moment, after) if absolute(before) == absolute(after) else None

    found = await eventually(bracketed, lambda taken: taken is not None, within=30)
    assert found is not None
    await asyncio.sleep(0.2)  # the next step's records are later than the moment
    return found


def assert_relative_to(moment: datetime, found: dict[str, Any]) -> int:
    """Times left and the service window, counted from ``moment``; how many items."""
    checked = 0
    for name in INBOXES:
        for items in found[f"inbox of {name}"].values():
            for item in items or ():
                if "closes_in_seconds" not in item:
                    continue  # the workspace queue's items carry no inbox facts
                closes_at = item["closes_at"]
                expected_left = (
                    max(0, int((datetime.fromisoformat(closes_at) - moment).total_seconds()))
                    if closes_at
                    else None
                )
                assert item["closes_in_seconds"] == expected_left, item
                last = item["last_customer_message_at"]
                opened = window_open(datetime.fromisoformat(last) if last else None, moment)
                assert item["service_window_open"] is opened, item
                checked += 1
    return checked


async def test_as_of_answers_the_snapshots_recorded_at_those_moments(settings: Settings) -> None:
    with FakeGraphApi() as graph:
        live = replace(
            settings,
            whatsapp_api_base_url=graph.base_url,
            whatsapp_access_token="test-token",
            dispatch_backoff_seconds=0.01,
        )
        async with whole_system(live) as client:
            before_workspace = datetime.now(UTC)
            await asyncio.sleep(0.05)
            team = await build_team(live, client, capacity=5)
            team.clock = int(time.time()) - 60  # the customers write inside the window
            snapshots: list[Snapshot] = []

            await team.set_status("A", "available")
            snapshots.append(await snapshot(client, team))  # 0: nobody waits yet

            first = await team.hand_off("available")
            assert await team.assignee(first) == "A"
            snapshots.append(await snapshot(client, team))  # 1: A has it, by rotation

            second = await team.hand_off("no_owner")
            await team.set_status("B", "available")
            read = await client.post(
                f"/api/conversations/{first}/read", json={"up_to": 1}, headers=team.agents["A"]
            )
            assert read.status_code in (200, 202), read.text
            await eventually(
                lambda: answers(client, team),
                lambda found: found["inbox of A"]["assigned"][0]["read_up_to"] == 1,
            )
            snapshots.append(await snapshot(client, team))  # 2: one waits, A read, B available

            moved = await client.post(
                f"/api/conversations/{first}/transfer",
                json={"member_id": team.ids["B"], "note": "B knows billing"},
                headers=team.agents["A"],
            )
            assert moved.status_code == 200, moved.text
            snapshots.append(await snapshot(client, team))  # 3: transferred to B

            closed = await client.post(
                f"/api/conversations/{first}/close", headers=team.agents["B"]
            )
            assert closed.status_code == 202, closed.text
            await team.set_status("A", "unavailable")
            claimed = await client.post(
                f"/api/conversations/{second}/claim", headers=team.agents["B"]
            )
            assert claimed.status_code == 200, claimed.text
            await eventually(
                lambda: team.conversation(first), lambda row: row["status"] == "closed"
            )
            snapshots.append(await snapshot(client, team))  # 4: closed, claimed, A away

            # The period did what it says, so the snapshots differ where it matters.
            shown = [snap.answers for snap in snapshots]
            assert [len(s["inbox of A"]["assigned"]) for s in shown] == [0, 1, 1, 0, 0]
            assert [len(s["inbox of B"]["assigned"]) for s in shown] == [0, 0, 0, 1, 1]
            assert [len(s["queue"]["queue"]) for s in shown] == [0, 0, 1, 1, 0]
            assert [len(s["inbox of admin"]["all"]) for s in shown] == [0, 1, 2, 2, 1]
            statuses = [{m["name"]: m["status"] for m in s["roster"]["members"]} for s in shown]
            assert [s["A"] for s in statuses] == ["available"] * 4 + ["unavailable"]
            assert [s["B"] for s in statuses] == ["offline", "offline"] + ["available"] * 3

            relative_items = 0
            for snap in snapshots:
                asked = await answers(client, team, snap.moment)
                assert absolute(asked) == absolute(snap.answers), snap.moment
                relative_items += assert_relative_to(snap.moment, asked)
            assert relative_items >= 8

            # Asked at once, several times (more than fold at a time): the same answers.
            together = await asyncio.gather(
                *(answers(client, team, snapshots[3].moment) for _ in range(4))
            )
            assert all(absolute(found) == absolute(snapshots[3].answers) for found in together)

            # The relay re-sends what it published before (a crash before it recorded its
            # position): copies at new offsets change nothing, live or folded again.
            await resend(live, (CONVERSATION_EVENTS_TOPIC, ASSIGNMENT_EVENTS_TOPIC))
            resent = await snapshot(client, team)
            assert absolute(resent.answers) == absolute(snapshots[-1].answers)
            assert absolute(await answers(client, team, resent.moment)) == absolute(resent.answers)

            # The operator's commands answer the same JSON as the API.
            moment = snapshots[2].moment
            asked = await answers(client, team, moment)
            for command, expected in (
                (("inbox", "--member", team.ids["A"]), asked["inbox of A"]),
                (("inbox", "--member", team.ids["B"]), asked["inbox of B"]),
                (("roster", "--group", team.group), asked["roster"]),
                (("queue", "--group", team.group), asked["queue"]),
            ):
                code, out, err = await switchboard(live, *command, "--as-of", moment.isoformat())
                assert code == 0, err
                assert orjson.loads(out) == expected, command

            # A member of the group may ask too, by the route's own rule.
            as_member = await client.get(
                f"/api/groups/{team.group}/roster",
                params={"as_of": snapshots[1].moment.isoformat()},
                headers=team.agents["C"],
            )
            assert as_member.status_code == 200, as_member.text
            assert as_member.json() == snapshots[1].answers["roster"]

            # The operator's refusals say why, without a traceback.
            refusals: list[tuple[tuple[str, ...], int, str]] = [
                (("roster", "--group", team.ids["A"]), 1, "no group"),
                (("inbox", "--member", team.group), 1, "no member"),
                (("queue", "--group", "not-an-id"), 2, "is not an id"),
                (("inbox", "--member", team.ids["A"], "--as-of", "1.5"), 2, "RFC 3339"),
            ]
            for refused, expected_code, words in refusals:
                code, out, err = await switchboard(live, *refused)
                assert (code, out) == (expected_code, ""), err
                assert words in err
                assert "Traceback" not in err

            # Before the workspace existed: nothing; the group did not exist yet.
            empty = await client.get(
                "/api/me/inbox", params={"as_of": before_workspace.isoformat()}, headers=team.admin
            )
            assert empty.status_code == 200, empty.text
            assert empty.json() == {"assigned": [], "queued": [], "all": [], "workspace_queue": []}
            for view in ("roster", "queue"):
                gone = await client.get(
                    f"/api/groups/{team.group}/{view}",
                    params={"as_of": before_workspace.isoformat()},
                    headers=team.admin,
                )
                assert gone.status_code == 404, gone.text
                assert "did not exist yet" in gone.json()["detail"]

            # A moment to come is refused, naming the parameter; so is a time without offset.
            future = await client.get(
                "/api/me/inbox",
                params={"as_of": (datetime.now(UTC) + timedelta(hours=1)).isoformat()},
                headers=team.admin,
            )
            assert future.status_code == 422, future.text
            assert future.json()["errors"][0]["field"] == "query.as_of"
            assert "future" in future.json()["detail"]
            naive = await client.get(
                "/api/me/inbox", params={"as_of": "2026-11-29T14:02:00"}, headers=team.admin
            )
            assert naive.status_code == 422, naive.text
            code, _, err = await switchboard(
                live, "inbox", "--member", team.ids["A"], "--as-of", "2999-01-01T00:00:00Z"
            )
            assert code == 2, err
            assert "future" in err
            assert "Traceback" not in err

            # Another workspace's admin sees nothing of this one, then or now.
            other = await create_workspace(
                live, name="Other", phone_number_id="480112093300999", time_zone="UTC"
            )
            stranger = {"Authorization": f"Bearer {other['admin_token']}"}
            theirs = await client.get(
                "/api/me/inbox", params={"as_of": snapshots[2].moment.isoformat()}, headers=stranger
            )
            assert theirs.status_code == 200, theirs.text
            assert theirs.json() == {"assigned": [], "queued": [], "all": [], "workspace_queue": []}
            for view in ("roster", "queue"):
                hidden = await client.get(
                    f"/api/groups/{team.group}/{view}",
                    params={"as_of": snapshots[2].moment.isoformat()},
                    headers=stranger,
                )
                assert hidden.status_code == 404, hidden.text

            # A group deleted since can still be asked about; after its deletion, 404.
            deleted = await client.delete(f"/api/groups/{team.group}", headers=team.admin)
            assert deleted.status_code == 200, deleted.text
            await asyncio.sleep(0.2)
            after_deletion = datetime.now(UTC)
            for snap in (snapshots[2], snapshots[4]):
                for view in ("roster", "queue"):
                    kept = await client.get(
                        f"/api/groups/{team.group}/{view}",
                        params={"as_of": snap.moment.isoformat()},
                        headers=team.admin,
                    )
                    assert kept.status_code == 200, kept.text
                    assert kept.json() == snap.answers[view]
            gone_now = await client.get(
                f"/api/groups/{team.group}/roster",
                params={"as_of": after_deletion.isoformat()},
                headers=team.admin,
            )
            assert gone_now.status_code == 404, gone_now.text
            assert "had been deleted" in gone_now.json()["detail"]

    # Every scratch schema was dropped.
    left = await query(
        settings,
        "asof_",
        "SELECT schema_name FROM information_schema.schemata WHERE starts_with(schema_name, %s)",
        settings.schema("asof_"),
    )
    assert left == []


async def resend(settings: Settings, topics: tuple[Topic, ...]) -> None:
    """Publish every record of ``topics`` again, as it was (key, value, headers)."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        for topic in topics:
            name = topic.qualified(settings.topic_prefix)
            for partition, _, value, key, headers in await raw_records(settings, topic):
                await producer.send_and_wait(
                    name, value=value, key=key, headers=headers, partition=partition
                )
    finally:
        await producer.stop()


async def raw_records(
    settings: Settings, topic: Topic
) -> list[tuple[int, int, bytes, bytes | None, list[tuple[str, bytes]]]]:
    name = topic.qualified(settings.topic_prefix)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None)
    await consumer.start()
    try:
        partitions = [TopicPartition(name, number) for number in range(topic.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        found: list[tuple[int, int, bytes, bytes | None, list[tuple[str, bytes]]]] = []
        remaining = {tp for tp in partitions if ends[tp] > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=500)
            for tp, items in batch.items():
                found.extend(
                    (tp.partition, item.offset, item.value, item.key, list(item.headers))
                    for item in items
                    if item.offset < ends[tp]
                )
                if items and items[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
        return found
    finally:
        await consumer.stop()
