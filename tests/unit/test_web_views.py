"""What the suite shows, computed before any HTML: times, previews, inbox facts, the flow
diagram and the flow as YAML to edit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
import yaml

from events.flow_language.grammar import parse_flow
from services.conversations import permissions
from services.conversations.permissions import Asker
from services.gateway.dependencies import conversation_facts
from services.gateway.inbox import describe
from services.gateway.web.diagram import layout
from services.gateway.web.formatting import clock, preview, since, span, until
from services.gateway.web.pages import flow_source, reply_blocked
from tests.flow_samples import support_flow

pytestmark = pytest.mark.unit
NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)  # a Tuesday
BOGOTA = ZoneInfo("America/Bogota")


def test_times_read_in_the_workspaces_zone() -> None:
    assert clock(NOW, BOGOTA, NOW) == "10:00"
    assert clock(NOW - timedelta(days=1), BOGOTA, NOW) == "Mon 10:00"
    assert clock(NOW - timedelta(days=30), BOGOTA, NOW) == "25 Oct 10:00"
    assert clock("2026-11-24T15:00:00+00:00", BOGOTA, NOW) == "10:00"  # JSON content's text
    assert clock(None, BOGOTA, NOW) == ""


def test_durations_read_at_a_glance() -> None:
    assert span(45) == "45 s"
    assert span(12 * 60 + 5) == "12 min"
    assert span(3 * 3600 + 5 * 60) == "3 h 05 min"
    assert span(50 * 3600) == "2 d 2 h"
    assert span(-5) == "0 s"
    assert since(NOW - timedelta(minutes=7), NOW) == "7 min"
    assert until(NOW + timedelta(hours=23, minutes=59), NOW) == "23 h 59 min"
    assert until(NOW - timedelta(seconds=1), NOW) == "now"


def test_a_preview_is_one_short_line_or_the_messages_type() -> None:
    assert preview("hola\n  qué   tal", "text") == "hola qué tal"
    assert preview("x" * 200, "text").endswith("…")
    assert len(preview("x" * 200, "text")) == 90
    assert preview(None, "image") == "[image]"
    assert preview(None, "text") == ""


def row(**values: object) -> dict[str, object]:
    return {"conversation_id": UUID(int=1), "assignment_state": "assigned", **values}


def test_the_service_window_is_open_for_24_hours_after_the_customers_last_message() -> None:
    last = NOW - timedelta(hours=23)
    item = describe(row(), {"last_customer_message_at": last}, NOW)
    assert item["service_window_open"] is True
    assert item["service_window_until"] == last + timedelta(hours=24)
    closed = describe(row(), {"last_customer_message_at": NOW - timedelta(hours=25)}, NOW)
    assert closed["service_window_open"] is False
    never = describe(row(), {}, NOW)
    assert (never["service_window_open"], never["service_window_until"]) == (False, None)


def test_an_item_says_since_when_it_waits_and_when_it_closes() -> None:
    queued_at = NOW - timedelta(minutes=5)
    unanswered = NOW - timedelta(minutes=2)
    deadline = NOW + timedelta(hours=3)
    facts = {"unanswered_since": unanswered, "deadline": deadline, "deadline_cause": "flow"}
    in_queue = describe(row(assignment_state="queued", queued_at=queued_at), facts, NOW)
    assert in_queue["waiting_since"] == queued_at
    held = describe(row(queued_at=queued_at), facts, NOW)
    assert held["waiting_since"] == unanswered
    assert (held["closes_at"], held["closes_because"]) == (deadline, "flow")
    assert held["closes_in_seconds"] == 3 * 3600


def test_unread_and_last_message_come_from_the_summary() -> None:
    facts = {
        "unread": 3,
        "read_up_to": 1,
        "last_message_text": "hola",
        "last_message_type": "text",
        "last_message_author": "customer",
        "last_message_at": NOW,
    }
    item = describe(row(), facts, NOW)
    assert (item["unread"], item["read_up_to"]) == (3, 1)
    assert item["last_message"] == {
        "text": "hola",
        "type": "text",
        "author_kind": "customer",
        "at": NOW,
    }
    assert describe(row(), None, NOW)["last_message"] is None


def test_the_diagram_lays_blocks_out_from_the_start_with_every_transition() -> None:
    flow = support_flow(UUID(int=5))
    diagram = layout(flow)
    columns = {box.block_id: box.x for box in diagram.boxes}
    assert columns["greet"] < columns["ask"] < columns["route"] < columns["agent"]
    # "closed" is nearest by the question's fallback: the column after the question's.
    assert columns["closed"] == columns["route"]
    labels = {(a.source, a.target): a.label for a in diagram.arrows}
    assert labels[("route", "agent")] == "rule 1"
    assert labels[("route", "closed")] == "default"
    assert labels[("ask", "closed")] == "fallback"
    assert labels[("ask", "route")] == ""
    assert all(diagram.box(a.target) is not None for a in diagram.arrows)
    assert diagram.width > max(box.x for box in diagram.boxes)


def test_a_block_no_transition_reaches_still_shows() -> None:
    flow = {
        "start": "a",
        "blocks": [
            {"id": "a", "type": "end"},
            {"id": "stray", "type": "message", "text": "x", "next": "a"},
        ],
    }
    diagram = layout(flow)
    assert {box.block_id for box in diagram.boxes} == {"a", "stray"}
    stray = diagram.box("stray")
    start = diagram.box("a")
    assert stray is not None
    assert start is not None
    assert stray.x > start.x


def test_a_published_version_is_edited_as_yaml_that_publishes_the_next_version() -> None:
    flow_id = UUID(int=77)
    definition = support_flow(UUID(int=5))
    # The database keeps no key order: blocks come back with keys sorted.
    shuffled = {
        **{k: definition[k] for k in sorted(definition) if k != "blocks"},
        "blocks": [dict(sorted(block.items())) for block in definition["blocks"]],
    }
    source = flow_source(flow_id, shuffled)
    assert source.startswith(f"id: {flow_id}\nname: ")
    document = yaml.safe_load(source)
    assert document.pop("id") == str(flow_id)
    assert all(list(block)[:2] == ["id", "type"] for block in document["blocks"])
    parse_flow(document)  # what the editor shows is a valid flow
    assert document == definition


def test_the_reply_box_says_why_it_is_closed() -> None:
    """The API's reply rule decides; the page says why in the conversation's terms."""
    agent = Asker(UUID(int=7), "agent", frozenset({UUID(int=3)}))
    admin = Asker(UUID(int=8), "admin")
    members = {UUID(int=9): {"name": "Bruno"}}
    open_window = {"service_window_open": True, "service_window_until": NOW + timedelta(hours=2)}

    def why(who: Asker, **values: object) -> str | None:
        row: dict[str, object] = {
            "conversation_id": UUID(int=1),
            "status": "open",
            "group_id": UUID(int=3),
            "assignee_id": None,
            "assignment_state": None,
            **open_window,
            **values,
        }
        verdict = permissions.reply(who, conversation_facts(row), UUID(int=1))
        return reply_blocked(row, verdict, members, BOGOTA, NOW)

    assert why(agent, assignment_state="assigned", assignee_id=UUID(int=7)) is None
    assert why(admin, assignment_state="assigned", assignee_id=UUID(int=9)) is None
    assert why(agent, status="closed") == "This conversation is closed."
    assert "claim it" in (why(agent, assignment_state="queued") or "")
    assert why(agent, assignment_state="assigned", assignee_id=UUID(int=9)) == (
        "Only Bruno, who holds this conversation, or an admin can reply."
    )
    assert "bot" in (why(agent) or "")
    shut = why(
        agent,
        assignment_state="assigned",
        assignee_id=UUID(int=7),
        service_window_open=False,
        service_window_until=NOW - timedelta(hours=1),
    )
    assert shut == (
        "The 24-hour customer-service window closed at 09:00: WhatsApp only accepts templates"
        " until the customer writes again."
    )
