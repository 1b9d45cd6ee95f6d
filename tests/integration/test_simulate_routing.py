"""``switchboard simulate``: a scripted period through the running services, replayed.

Three agents of capacity 1 in a group change status, five customers are handed off to the
``available`` rotation and their conversations are closed, all through HTTP on the real
broker and database. Simulated with ``available`` (the rotation they really had), the
command must give each conversation the member it really got after the same wait; with
``all`` it must give what that rotation's rules say for this script, worked out by hand below.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from services.settings import Settings
from tests.harness import consumers, eventually, gateway_client, query
from tests.integration.test_agents import Team, build_team
from tests.operations import switchboard

pytestmark = pytest.mark.integration


async def released(settings: Settings, conversation: str) -> bool:
    """Whether the assignment service has let the conversation go (its close applied)."""
    rows = await query(
        settings,
        "assignment",
        "SELECT 1 AS x FROM {s}.events WHERE position(%s in state) > 0"
        " AND topic = 'assignment.conversation_released'",
        conversation.encode(),
    )
    return bool(rows)


async def close(team: Team, conversation: str, who: str) -> None:
    closed = await team.client.post(
        f"/api/conversations/{conversation}/close", headers=team.agents[who]
    )
    assert closed.status_code == 202, closed.text
    await eventually(lambda: released(team.settings, conversation), bool, within=20)


async def script_a_period(settings: Settings, client: httpx.AsyncClient) -> tuple[Team, list[str]]:
    """The period: each step lands before the next (the real decider then saw what the
    event times say it saw)."""
    team = await build_team(settings, client, capacity=1)
    # Meta's timestamps ahead of the gateway's clock: each message is dated when it arrives.
    team.clock = int(time.time()) + 86_400
    await team.set_status("A", "available")
    await team.set_status("B", "available")
    first = await team.hand_off("available")
    second = await team.hand_off("available")
    await team.set_status("C", "available")
    third = await team.hand_off("available")
    fourth = await team.hand_off("available")
    assert [await team.assignee(c) for c in (first, second, third, fourth)] == ["A", "B", "C", None]
    await close(team, first, "A")
    await eventually(lambda: team.assignee(fourth), lambda name: name == "A")
    await team.set_status("B", "unavailable")
    await close(team, second, "B")
    fifth = await team.hand_off("available")
    assert await team.assignee(fifth) is None  # A and C busy, B unavailable
    claimed = await client.post(f"/api/conversations/{fifth}/claim", headers=team.agents["B"])
    assert claimed.status_code == 200, claimed.text
    moved = await client.post(
        f"/api/conversations/{fourth}/transfer",
        json={"member_id": team.ids["C"], "note": "C knows this one"},
        headers=team.agents["A"],
    )
    assert moved.status_code == 200, moved.text
    assert [await team.assignee(c) for c in (third, fourth, fifth)] == ["C", "C", "B"]
    await close(team, third, "C")
    await close(team, fourth, "C")
    await close(team, fifth, "B")
    return team, [first, second, third, fourth, fifth]


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def test_simulate_reproduces_the_real_rotation_and_works_out_another(
    settings: Settings,
) -> None:
    start = datetime.now(UTC)
    async with consumers(settings), gateway_client(settings) as client:
        team, conversations = await script_a_period(settings, client)
    end = datetime.now(UTC) + timedelta(seconds=1)
    # A stored event that cannot be decoded is named on stderr and left out.
    await query(
        settings,
        "directory",
        "INSERT INTO {s}.events (originator_id, originator_version, topic, state)"
        " VALUES (gen_random_uuid(), 1, 'garbage', %s)",
        f"not an envelope {team.group}".encode(),
    )
    period = ("--from", start.isoformat(), "--to", end.isoformat(), "--group", team.group)

    code, out, err = await switchboard(
        settings, "simulate", *period, "--rotation", "available", "--json"
    )
    assert code == 0, err
    assert err.startswith("switchboard: skipped an undecodable event: directory #"), err
    same = orjson.loads(out)
    real = by_conversation(same["real"])
    simulated = by_conversation(same["simulated"])
    assert list(real) == conversations
    names = {member: name for name, member in team.ids.items()}
    # What really happened, as the read models showed it during the script.
    assert [names[real[c]["member_id"]] for c in conversations] == ["A", "B", "C", "A", "B"]
    assert same["real_rotations"] == ["available"]
    assert same["departures_from_reality"] == []
    # The real rotation, simulated: the same member for each, after the same wait.
    for conversation in conversations:
        assert simulated[conversation]["member_id"] == real[conversation]["member_id"]
        assert simulated[conversation]["waited_seconds"] == real[conversation]["waited_seconds"]
        assert simulated[conversation]["assigned_at"] == real[conversation]["assigned_at"]
    assert same["simulated"]["waiting_seconds"] == same["real"]["waiting_seconds"]
    assert same["simulated"]["agents"] == same["real"]["agents"]
    # The fourth waited for the first's close, the fifth for B's claim; C got the fourth
    # by A's transfer and held two at once.
    first, _, _, fourth, fifth = (real[c] for c in conversations)
    assert fourth["assigned_at"] == first["closed_at"]
    assert fourth["waited_seconds"] == seconds(fourth["handed_off_at"], first["closed_at"])
    assert fifth["waited_seconds"] == seconds(fifth["handed_off_at"], fifth["assigned_at"])
    assert fifth["waited_seconds"] > 0
    assert loads_of(same["real"], names) == {"A": (2, 1), "B": (2, 1), "C": (2, 2)}

    code, out, err = await switchboard(settings, "simulate", *period, "--rotation", "all", "--json")
    assert code == 0, err
    other = orjson.loads(out)
    assert other["real"] == same["real"]
    assert other["departures_from_reality"] is None  # another rotation: nothing to check
    strict = by_conversation(other["simulated"])
    # By hand: A, B, C in turn; the fourth waits for A's close (the rotation's next after
    # C); the fifth is next after A: B, at once, though unavailable (``all`` ignores status)
    # and free since the second closed, so B's claim is refused; A's transfer of the
    # fourth to C goes through (A holds it here too).
    assert [names[strict[c]["member_id"]] for c in conversations] == ["A", "B", "C", "A", "B"]
    expected_waits = [0.0, 0.0, 0.0, fourth["waited_seconds"], 0.0]
    assert [strict[c]["waited_seconds"] for c in conversations] == expected_waits
    assert strict[conversations[4]]["assigned_at"] == fifth["handed_off_at"]
    assert loads_of(other["simulated"], names) == {"A": (2, 1), "B": (2, 1), "C": (2, 2)}
    waits = sorted(expected_waits)
    assert other["simulated"]["waiting_seconds"] == {
        "count": 5,
        "p50": waits[2],
        "p90": waits[4],
        "max": waits[4],
    }

    code, out, err = await switchboard(
        settings, "simulate", *period, "--rotation", "no_owner", "--json"
    )
    assert code == 0, err
    claims_only = orjson.loads(out)
    waiting = by_conversation(claims_only["simulated"])
    # By hand: nobody is given anything but by a claim: B's claim of the fifth stands, the
    # others wait until they close, and A's transfer of a conversation A never held is
    # refused.
    assert [waiting[c]["member_id"] for c in conversations] == [None] * 4 + [team.ids["B"]]
    assert [waiting[c]["waited_seconds"] for c in conversations] == [
        *(seconds(real[c]["handed_off_at"], real[c]["closed_at"]) for c in conversations[:4]),
        fifth["waited_seconds"],
    ]
    assert [waiting[c]["waited_until"] for c in conversations] == ["closed"] * 4 + ["assigned"]
    assert loads_of(claims_only["simulated"], names) == {"A": (0, 0), "B": (1, 1), "C": (0, 0)}

    # The same comparison for a person to read.
    code, text, err = await switchboard(settings, "simulate", *period, "--rotation", "all")
    assert code == 0, err
    assert "real rotation: available; simulated: all" in text
    assert any(line.startswith("p90") for line in text.splitlines())
    assert sum(conversation in text for conversation in conversations) == 5


def by_conversation(side: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["conversation_id"]: c for c in side["conversations"]}


def loads_of(side: dict[str, Any], names: dict[str, str]) -> dict[str, tuple[int, int]]:
    return {names[a["member_id"]]: (a["assigned"], a["peak_concurrent"]) for a in side["agents"]}


def seconds(since: str, until: str) -> float:
    return (instant(until) - instant(since)).total_seconds()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--group", "5b0c0d0e-0000-4000-8000-000000000000", "--rotation", "all"), "no group"),
        (
            ("--group", "5b0c0d0e-0000-4000-8000-000000000000", "--rotation", "fast"),
            "unknown rotation",
        ),
        (("--group", "support", "--rotation", "all"), "not a group id"),
    ],
)
async def test_bad_input_is_one_line_and_exit_status_2(
    settings: Settings, args: tuple[str, ...], says: str
) -> None:
    period = ("--from", "2026-11-29T09:00:00Z", "--to", "2026-11-29T10:00:00Z")
    code, out, err = await switchboard(settings, "simulate", *period, *args)
    assert (code, out) == (2, "")
    assert says in err
    assert len(err.strip().splitlines()) == 1, err
    backwards = ("--from", "2026-11-29T10:00:00Z", "--to", "2026-11-29T09:00:00Z")
    code, out, err = await switchboard(
        settings, "simulate", *backwards, *args[:2], "--rotation", "all"
    )
    assert (code, out) == (2, "")
    assert "must be after" in err
    assert len(err.strip().splitlines()) == 1, err


async def test_a_database_that_cannot_be_read_is_one_line_and_exit_status_1(
    settings: Settings,
) -> None:
    away = replace(settings, database_url="postgresql://switchboard@127.0.0.1:9/switchboard")
    period = ("--from", "2026-11-29T09:00:00Z", "--to", "2026-11-29T10:00:00Z")
    group = ("--group", "5b0c0d0e-0000-4000-8000-000000000000", "--rotation", "all")
    code, out, err = await switchboard(away, "simulate", *period, *group)
    assert (code, out) == (1, "")
    assert err.startswith("switchboard: the database cannot be read:"), err
    assert len(err.strip().splitlines()) == 1, err
