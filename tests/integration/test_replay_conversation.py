"""``switchboard replay conversation``: a scripted conversation through every service, replayed.

A customer writes, the flow asks and branches, hands off; the assignment service gives it
to an available agent, who replies (the dispatcher sends it to a stand-in for Meta, whose
status comes back), then closes it. The replay, run as a user runs it, must print every
event the stores hold about that conversation, in time order, causes before effects.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import datetime
from typing import Any

import httpx
import orjson
import pytest

from events.catalogue import (
    CONVERSATION_COMMANDS_TOPIC,
    CONVERSATION_READS_TOPIC,
    HAND_OFF_REQUESTS_TOPIC,
    OUTBOUND_MESSAGES_TOPIC,
)
from services.registry import relayed_stores
from services.settings import Settings
from tests.conftest import TEST_APP_SECRET
from tests.fake_graph import FakeGraphApi
from tests.harness import eventually, query, topic_values
from tests.integration.test_agents import NUMBER, build_team
from tests.operations import switchboard, whole_system
from tests.webhooks import messages_value, signed_headers, webhook

pytestmark = pytest.mark.integration


async def stored_about(settings: Settings, conversation: str) -> dict[str, dict[str, Any]]:
    """Every stored event about the conversation, read here straight from each store."""
    found: dict[str, dict[str, Any]] = {}
    for store in relayed_stores():
        rows = await query(settings, store, "SELECT state FROM {s}.events")
        for row in rows:
            event = orjson.loads(bytes(row["state"]))
            payload = event["payload"]
            if event["stream_id"] == conversation or payload.get("conversation_id") == conversation:
                found[event["event_id"]] = event
    return found


async def test_replay_prints_every_stored_event_of_a_conversation_in_order(
    settings: Settings,
) -> None:
    with FakeGraphApi() as graph:
        live = replace(
            settings,
            whatsapp_api_base_url=graph.base_url,
            whatsapp_access_token="test-token",
            dispatch_backoff_seconds=0.01,
        )
        async with whole_system(live) as client:
            conversation = await script_a_conversation(live, client, graph)
            # Everything the close causes has landed once nothing new appears.
            before = await eventually(
                lambda: settled(live, conversation), lambda found: found is not None, within=30
            )
            assert before is not None
            code, out, err = await switchboard(live, "replay", "conversation", conversation)
            json_code, json_out, _ = await switchboard(
                live, "replay", "conversation", conversation, "--json"
            )
            published = await published_about(live, conversation, set(before))
            with_code, with_out, with_err = await switchboard(
                live, "replay", "conversation", conversation, "--json", "--commands"
            )

    assert (code, json_code) == (0, 0), err
    replayed = [orjson.loads(text) for text in json_out.splitlines()]
    assert sorted(event["event_id"] for event in replayed) == sorted(before)
    assert len(out.splitlines()) == len(replayed)
    # Each object is the stored envelope, as stored, plus where and the words.
    for event in replayed:
        stored = before[event["event_id"]]
        assert {key: event[key] for key in stored} == orjson.loads(orjson.dumps(stored))
        assert event["store"] in relayed_stores()
        assert event["summary"]
    # Time order, and a cause before what it caused.
    times = [datetime.fromisoformat(event["occurred_at"]) for event in replayed]
    assert times == sorted(times)
    place = {event["event_id"]: index for index, event in enumerate(replayed)}
    for event in replayed:
        if event["causation_id"] in place:
            assert place[event["causation_id"]] < place[event["event_id"]], event["event_type"]
    types = [event["event_type"] for event in replayed]
    for expected in (
        "conversation.started",
        "conversation.customer_message_received",
        "flow.run_started",
        "flow.answer_captured",
        "flow.condition_evaluated",
        "flow.hand_off_requested",
        "assignment.conversation_assigned",
        "outbound.send_attempted",
        "outbound.message_sent",
        "conversation.message_status_updated",
        "expiry.deadline_set",
        "expiry.deadline_cancelled",
        "assignment.conversation_transferred",
        "conversation.closed",
    ):
        assert expected in types, f"{expected} not in {' '.join(types)}"
    assert types.index("flow.hand_off_requested") < types.index("assignment.conversation_assigned")
    assert types.index("conversation.closed") < types.index("expiry.deadline_cancelled")
    # The lines a person reads say why: the branch taken and the assignment's explanation.
    text = out.splitlines()
    assert any("flow branched at route to to_available" in row and "why:" in row for row in text)
    assert any("assigned to A" in row and "why:" in row for row in text)

    # --commands adds what only the gateway published, found here on the topics themselves.
    assert with_code == 0, with_err
    everything = [orjson.loads(text) for text in with_out.splitlines()]
    assert sorted(event["event_id"] for event in everything) == sorted({**before, **published})
    added = [event for event in everything if event["event_id"] in published]
    assert {event["event_type"] for event in added} >= {
        "outbound.message_queued",
        "assignment.transfer_conversation",
        "conversation.close",
    }
    assert all(event["store"].split("#")[0] in COMMAND_TOPIC_NAMES for event in added)
    [reply] = [event for event in added if event["event_type"] == "outbound.message_queued"]
    assert reply["payload"]["text"] == "Hola, soy A"
    order = [event["event_type"] for event in everything]
    assert order.index("conversation.close") < order.index("conversation.closed")
    times = [datetime.fromisoformat(event["occurred_at"]) for event in everything]
    assert times == sorted(times)


COMMAND_TOPIC_NAMES = {
    OUTBOUND_MESSAGES_TOPIC.name,
    HAND_OFF_REQUESTS_TOPIC.name,
    CONVERSATION_COMMANDS_TOPIC.name,
    CONVERSATION_READS_TOPIC.name,
}


async def published_about(
    settings: Settings, conversation: str, stored: set[str]
) -> dict[str, dict[str, Any]]:
    """The gateway's records about the conversation that no store holds, read here."""
    found: dict[str, dict[str, Any]] = {}
    for topic in (
        OUTBOUND_MESSAGES_TOPIC,
        HAND_OFF_REQUESTS_TOPIC,
        CONVERSATION_COMMANDS_TOPIC,
        CONVERSATION_READS_TOPIC,
    ):
        for value in await topic_values(settings, topic):
            event = orjson.loads(value)
            payload = event["payload"]
            about = conversation in (event["stream_id"], payload.get("conversation_id"))
            if about and event["event_id"] not in stored:
                found[event["event_id"]] = event
    return found


async def settled(settings: Settings, conversation: str) -> dict[str, dict[str, Any]] | None:
    """The stored events once the close's consequences are there and two reads agree."""
    first = await stored_about(settings, conversation)
    types = {event["event_type"] for event in first.values()}
    if not {"expiry.deadline_cancelled", "assignment.conversation_released"} <= types:
        return None
    await asyncio.sleep(0.5)
    second = await stored_about(settings, conversation)
    return second if second.keys() == first.keys() else None


async def script_a_conversation(
    settings: Settings, client: httpx.AsyncClient, graph: FakeGraphApi
) -> str:
    team = await build_team(settings, client, capacity=5)
    team.clock = int(time.time()) - 60  # inside WhatsApp's service window: replies go out
    await team.set_status("A", "available")
    conversation = await team.hand_off("available")
    assert await team.assignee(conversation) == "A"
    replied = await client.post(
        f"/api/conversations/{conversation}/messages",
        json={"text": "Hola, soy A"},
        headers=team.agents["A"],
    )
    assert replied.status_code == 202, replied.text
    [sent] = await eventually(
        lambda: _sent(graph, "Hola, soy A"), lambda found: len(found) == 1 and found[0].wamid
    )
    status = {
        "id": sent.wamid,
        "status": "delivered",
        "timestamp": str(int(time.time())),
        "recipient_id": sent.to,
        "biz_opaque_callback_data": conversation,
    }
    body = webhook(("messages", messages_value(NUMBER, statuses=[status])))
    delivered = await client.post(
        "/webhooks/whatsapp", content=body, headers=signed_headers(TEST_APP_SECRET, body)
    )
    assert delivered.status_code == 200, delivered.text
    await eventually(
        lambda: team.history(conversation, "A"),
        lambda lines: any(line.get("status") == "delivered" for line in lines),
    )
    moved = await client.post(
        f"/api/conversations/{conversation}/transfer",
        json={"member_id": team.ids["B"], "note": "B knows billing"},
        headers=team.agents["A"],
    )
    assert moved.status_code == 200, moved.text
    closed = await client.post(f"/api/conversations/{conversation}/close", headers=team.agents["B"])
    assert closed.status_code == 202, closed.text
    return conversation


async def _sent(graph: FakeGraphApi, text: str) -> list[Any]:
    return [request for request in graph.received if request.text == text]


async def test_an_unknown_or_malformed_id_is_a_clear_error(settings: Settings) -> None:
    code, out, err = await switchboard(
        settings, "replay", "conversation", "00000000-0000-4000-8000-000000000000"
    )
    assert (code, out) == (1, "")
    assert "no event about conversation 00000000-0000-4000-8000-000000000000" in err
    assert "Traceback" not in err
    code, out, err = await switchboard(settings, "replay", "conversation", "not-an-id")
    assert (code, out) == (2, "")
    assert "'not-an-id' is not a conversation id" in err
    assert "Traceback" not in err
