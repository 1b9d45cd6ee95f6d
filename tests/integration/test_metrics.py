"""Service metrics on the real broker and database: a scripted day, exact figures, through
the API and its CSV export.

The metrics process and the projector (which the gateway authenticates with) run here; the
test publishes the services' events itself, as their relays would, keyed the same way, so it
chooses a harsh order: each topic whole before the next (every close before its assignment,
every reply before its hand-off), the workspace's time zone last of all (the days first
counted in UTC must move to Bogotá's), and one record published again at a new offset.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from events.base import Payload
from events.catalogue import (
    ASSIGNMENT_EVENTS_TOPIC,
    CONVERSATION_EVENTS_TOPIC,
    DIRECTORY_CREDENTIALS_TOPIC,
    DIRECTORY_EVENTS_TOPIC,
    HAND_OFF_REQUESTS_TOPIC,
    OUTBOUND_MESSAGES_TOPIC,
    Topic,
)
from events.codec import encode
from events.directory import GroupCreated, MemberAdded, MemberCredentialIssued
from events.envelope import Actor, Envelope
from projections.app import create_app as create_projector
from projections.metrics.app import create_app as create_metrics
from projections.metrics.app import open_metrics_recorder
from projections.queries import token_hash
from services.settings import Settings
from tests.harness import eventually, gateway_client
from tests.metrics_day import DAY, NEXT_DAY, Day, Scripted

pytestmark = pytest.mark.integration

ORDER = (
    CONVERSATION_EVENTS_TOPIC,
    OUTBOUND_MESSAGES_TOPIC,
    ASSIGNMENT_EVENTS_TOPIC,
    HAND_OFF_REQUESTS_TOPIC,
    DIRECTORY_EVENTS_TOPIC,
)
PERIOD = {"from": str(DAY), "to": str(NEXT_DAY)}


class Published:
    def __init__(self, settings: Settings, producer: AIOKafkaProducer) -> None:
        self.settings = settings
        self.producer = producer
        self.metrics = AsyncExitStack()

    async def start_metrics(self) -> None:
        app = create_metrics(self.settings)
        await self.metrics.enter_async_context(app.lifespan_context())
        await app.start()
        self.metrics.push_async_callback(app.stop)

    async def stop_metrics(self) -> None:
        await self.metrics.aclose()
        self.metrics = AsyncExitStack()

    async def send(self, topic: Topic, key: str, envelope: Envelope) -> None:
        await self.producer.send_and_wait(
            topic.qualified(self.settings.topic_prefix), encode(envelope), key=key.encode()
        )

    async def directory(self, day: Day, topic: Topic, payload: Payload) -> None:
        envelope = Envelope.wrap(
            payload,
            event_id=uuid.uuid4(),
            stream_id=str(day.workspace),
            workspace_id=day.workspace,
            occurred_at=datetime(2027, 3, 1, tzinfo=UTC),
            correlation_id=uuid.uuid4(),
            causation_id=None,
            actor=Actor(kind="system"),
        )
        await self.send(topic, str(day.workspace), envelope)


@pytest.fixture
async def running(settings: Settings) -> AsyncIterator[Published]:
    async with AsyncExitStack() as stack:
        app = create_projector(settings)
        await stack.enter_async_context(app.lifespan_context())
        await app.start()
        stack.push_async_callback(app.stop)
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
        await producer.start()
        stack.push_async_callback(producer.stop)
        published = Published(settings, producer)
        await published.start_metrics()
        stack.push_async_callback(published.stop_metrics)
        yield published


async def members_of(published: Published, day: Day) -> dict[str, str]:
    """Ana (admin) and Beto (agent) with tokens, and the two groups, in the read models."""
    tokens = {"ana": f"token-ana-{uuid.uuid4().hex}", "beto": f"token-beto-{uuid.uuid4().hex}"}
    for member, name, role in ((day.ana, "Ana", "admin"), (day.beto, "Beto", "agent")):
        await published.directory(
            day,
            DIRECTORY_EVENTS_TOPIC,
            MemberAdded(
                workspace_id=day.workspace,
                member_id=member,
                name=name,
                role=role,  # type: ignore[arg-type]
                capacity=3,
            ),
        )
        await published.directory(
            day,
            DIRECTORY_CREDENTIALS_TOPIC,
            MemberCredentialIssued(
                workspace_id=day.workspace,
                member_id=member,
                token_hash=token_hash(tokens[name.lower()]),
                reason="added",
            ),
        )
    for group, name in ((day.ventas, "Ventas"), (day.soporte, "Soporte")):
        await published.directory(
            day,
            DIRECTORY_EVENTS_TOPIC,
            GroupCreated(workspace_id=day.workspace, group_id=group, name=name),
        )
    return tokens


def harsh_order(day: Day) -> list[Scripted]:
    return sorted(day.events, key=lambda event: ORDER.index(event.topic))


def figures_of(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """The API's rows in the shape ``Day.expected`` uses (zero figures and averages left out)."""
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    for row in rows:
        group = (
            row["group_id"] if row["queue"] == "group" else row["queue"]
        )  # "workspace" or "none"
        member = row["member_id"] or ""
        found[(row["day"], group, member)] = {
            name: value
            for name, value in row.items()
            if name not in {"day", "queue", "group_id", "group_name", "member_id", "member_name"}
            and not name.startswith("average_")
            and value != 0
        }
    return found


def expected_of(day: Day) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(str(d), group, member): f for (d, group, member), f in day.expected().items()}


async def test_a_scripted_day_gives_exact_metrics_through_the_api(
    settings: Settings, running: Published
) -> None:
    day = Day()
    tokens = await members_of(running, day)
    events = harsh_order(day)
    for event in events:
        await running.send(event.topic, event.key, event.envelope)
    # A relay that crashed after publishing publishes again: same event, a new offset.
    again = next(e for e in events if e.envelope.event_type == "conversation.closed")
    await running.send(again.topic, again.key, again.envelope)

    async with gateway_client(settings) as client:
        admin = {"Authorization": f"Bearer {tokens['ana']}"}
        agent = {"Authorization": f"Bearer {tokens['beto']}"}

        async def metrics() -> httpx.Response:
            return await client.get("/api/metrics", params=PERIOD, headers=admin)

        def complete(answer: httpx.Response) -> bool:
            # The names come from the projector's read models, which may lag the metrics.
            return (
                answer.status_code == 200
                and figures_of(answer.json()["rows"]) == expected_of(day)
                and all(
                    row["group_name"] is not None
                    for row in answer.json()["rows"]
                    if row["queue"] == "group"
                )
            )

        answer = await eventually(metrics, complete, within=60)
        body = answer.json()
        assert body["time_zone"] == "America/Bogota"
        assert (body["from"], body["to"]) == (str(DAY), str(NEXT_DAY))
        totals = body["totals"]
        assert totals["handed_off"] == 4
        assert totals["queue_waits"] == 3
        assert totals["average_queue_wait_seconds"] == pytest.approx((180 + 600 + 1800) / 3)
        assert totals["average_first_response_seconds"] == pytest.approx((120 + 60 + 60) / 3)
        assert totals["resolutions"] == 4
        assert totals["average_resolution_seconds"] == pytest.approx(
            (1140 + 45000 + 86400 + 2400) / 4
        )
        closes = ("closed_by_agent", "closed_by_admin", "closed_by_flow", "expired")
        assert [totals[name] for name in closes] == [1, 1, 1, 2]
        assert (totals["messages_in"], totals["messages_out"], totals["bot_messages_out"]) == (
            6,
            4,
            2,
        )
        names = {(row["group_name"], row["member_name"]) for row in body["rows"]}
        assert ("Ventas", "Ana") in names
        assert ("Soporte", None) in names

        # One day, one group, one member.
        only = await client.get(
            "/api/metrics",
            params={"from": str(NEXT_DAY), "to": str(NEXT_DAY), "group": str(day.soporte)},
            headers=admin,
        )
        assert only.status_code == 200
        assert figures_of(only.json()["rows"]) == {
            (str(NEXT_DAY), str(day.soporte), ""): {
                "resolutions": 1,
                "resolution_seconds": 86400.0,
                "expired": 1,
            }
        }

        # An agent sees its own rows, and is refused another member's.
        own = await client.get("/api/metrics", params=PERIOD, headers=agent)
        assert own.status_code == 200
        assert figures_of(own.json()["rows"]) == {
            key: value for key, value in expected_of(day).items() if key[2] == str(day.beto)
        }
        refused = await client.get(
            "/api/metrics", params={**PERIOD, "member": str(day.ana)}, headers=agent
        )
        assert refused.status_code == 403
        assert "own metrics" in refused.json()["detail"]

        # The CSV export: the same rows.
        for exported in (
            await client.get("/api/metrics.csv", params=PERIOD, headers=admin),
            await client.get("/api/metrics", params={**PERIOD, "format": "csv"}, headers=admin),
        ):
            assert exported.status_code == 200
            assert exported.headers["content-type"].startswith("text/csv")
            lines = list(csv.DictReader(io.StringIO(exported.text)))
            assert len(lines) == len(expected_of(day))
            ventas_ana = next(
                line
                for line in lines
                if line["group_id"] == str(day.ventas) and line["member_id"] == str(day.ana)
            )
            assert ventas_ana["group_name"] == "Ventas"
            assert ventas_ana["queue_wait_seconds"] == "180.0"
            assert ventas_ana["messages_out"] == "2"


async def test_bad_parameters_answer_422_saying_what_is_wrong(
    settings: Settings, running: Published
) -> None:
    day = Day()
    tokens = await members_of(running, day)
    async with gateway_client(settings) as client:
        admin = {"Authorization": f"Bearer {tokens['ana']}"}
        await eventually(
            lambda: client.get("/api/metrics", headers=admin), lambda r: r.status_code == 200
        )
        cases = {
            "from after to": {"from": "2027-03-05", "to": "2027-03-01"},
            "not a date": {"from": "yesterday"},
            "too long a period": {"from": "2020-01-01", "to": "2027-01-01"},
            "not a group id": {"group": "ventas"},
            "unknown format": {"format": "xlsx"},
            "unknown parameter": {"form": "2027-03-01"},
        }
        for case, params in cases.items():
            answer = await client.get("/api/metrics", params=params, headers=admin)
            assert answer.status_code == 422, case
            problem = answer.json()
            assert isinstance(problem["detail"], str), case
            assert problem["errors"], case
        after = await client.get(
            "/api/metrics", params={"from": "2027-03-05", "to": "2027-03-01"}, headers=admin
        )
        assert "after to" in after.json()["detail"]
        unauthenticated = await client.get("/api/metrics")
        assert unauthenticated.status_code == 401


async def test_the_metrics_are_rebuilt_alone_with_the_same_figures(
    settings: Settings, running: Published
) -> None:
    """``switchboard projections rebuild metrics`` empties its tables and positions only; the
    process, started again, replays from offset zero to the same rows (and the projector's
    read models answer throughout: the API authenticates with them)."""
    day = Day()
    tokens = await members_of(running, day)
    for event in harsh_order(day):
        await running.send(event.topic, event.key, event.envelope)
    async with gateway_client(settings) as client:
        admin = {"Authorization": f"Bearer {tokens['ana']}"}

        async def metrics() -> httpx.Response:
            return await client.get("/api/metrics", params=PERIOD, headers=admin)

        await eventually(
            metrics,
            lambda r: r.status_code == 200 and figures_of(r.json()["rows"]) == expected_of(day),
            within=60,
        )
        await running.stop_metrics()
        recorder = open_metrics_recorder(settings)
        try:
            recorder.rebuild()
        finally:
            recorder.datastore.close()
        emptied = await metrics()
        assert emptied.status_code == 200
        assert emptied.json()["rows"] == []
        # Started again with no position: it replays every topic from offset zero.
        await running.start_metrics()
        await eventually(
            metrics,
            lambda r: r.status_code == 200 and figures_of(r.json()["rows"]) == expected_of(day),
            within=60,
        )


async def test_two_replicas_give_the_same_exact_figures(
    settings: Settings, running: Published
) -> None:
    """A second metrics process joins the group: the partitions are shared between the two,
    so one conversation's events are folded by both at once (its hand-off by one, its close
    by the other); the row lock on the conversation's facts keeps every figure exact."""
    await running.start_metrics()
    day = Day()
    tokens = await members_of(running, day)
    for event in harsh_order(day):
        await running.send(event.topic, event.key, event.envelope)
    async with gateway_client(settings) as client:
        admin = {"Authorization": f"Bearer {tokens['ana']}"}

        async def metrics() -> httpx.Response:
            return await client.get("/api/metrics", params=PERIOD, headers=admin)

        await eventually(
            metrics,
            lambda r: r.status_code == 200 and figures_of(r.json()["rows"]) == expected_of(day),
            within=90,
        )
