"""What a new flow version must satisfy to be published: Meta's limits, variables captured
before they are used, conditions that can hold. Each refusal names the block."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any
from uuid import UUID

import pytest

from events.flow_language.grammar import FlowInvalid, parse_flow
from events.flow_language.publishing import captured_before, check_publishable
from events.flows import FlowFailed, HandOffRequested
from tests.flow_samples import support_flow
from tests.unit.test_flows import OFFICE_HOURS, Run, message, texts

pytestmark = pytest.mark.unit
GROUP = UUID(int=77)

Change = Callable[[dict[str, Any]], object]


def publish(document: dict[str, Any]) -> None:
    check_publishable(document, members=[], groups=[GROUP])


def refused(change: Change, document: dict[str, Any] | None = None) -> FlowInvalid:
    flow = copy.deepcopy(document if document is not None else support_flow(GROUP))
    change(flow)
    parse_flow(flow)  # a version already published like this would still run
    with pytest.raises(FlowInvalid) as raised:
        publish(flow)
    return raised.value


def blocks(flow: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {block["id"]: block for block in flow["blocks"]}


def list_flow(rows: int = 3) -> dict[str, Any]:
    flow = support_flow(GROUP)
    ask = blocks(flow)["ask"]
    del ask["buttons"]
    ask["list"] = [{"id": f"r{n}", "title": f"Opción {n}"} for n in range(rows)]
    ask["list_button"] = "Ver"
    blocks(flow)["route"]["rules"][0]["if"][0] = {"variable": "topic", "equals": "r0"}
    return flow


def test_the_samples_are_publishable() -> None:
    publish(support_flow(GROUP))
    publish(list_flow(10))


@pytest.mark.parametrize(
    ("change", "block", "fragment"),
    [
        # Reply buttons: a title of 21 characters, Meta's 20 (Meta refused it at send time).
        (
            lambda f: blocks(f)["ask"]["buttons"][0].update(title="Facturación y cobros1"),
            "ask",
            "buttons.0.title: 21 characters; Meta allows at most 20",
        ),
        (
            lambda f: blocks(f)["ask"]["buttons"][1].update(title="Facturación"),
            "ask",
            "buttons.1.title: 'Facturación' is used twice",
        ),
        (
            lambda f: blocks(f)["ask"]["buttons"][1].update(id="billing"),
            "ask",
            "buttons.1.id: 'billing' is used twice",
        ),
        (
            lambda f: blocks(f)["ask"]["buttons"][0].update(description="x"),
            "ask",
            "buttons have no description",
        ),
        (
            lambda f: blocks(f)["ask"].update(text="x" * 1025),
            "ask",
            "text: 1025 characters; Meta allows at most 1024",
        ),
        (
            lambda f: blocks(f)["ask"].update(retry_text="x" * 4097),
            "ask",
            "retry_text: 4097 characters",
        ),
        (lambda f: blocks(f)["greet"].update(text="x" * 4097), "greet", "text: 4097 characters"),
        (lambda f: blocks(f)["bye"].update(text="x" * 4097), "bye", "text: 4097 characters"),
        (lambda f: blocks(f)["agent"].update(text="x" * 4097), "agent", "text: 4097 characters"),
    ],
)
def test_metas_limits_of_buttons_and_texts(change: Change, block: str, fragment: str) -> None:
    error = refused(change)
    assert error.block == block
    assert fragment in str(error)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda f: blocks(f)["ask"]["list"][0].update(title="x" * 25), "list.0.title: 25"),
        (lambda f: blocks(f)["ask"]["list"][0].update(id="x" * 201), "list.0.id: 201"),
        (
            lambda f: blocks(f)["ask"]["list"][1].update(description="x" * 73),
            "list.1.description: 73",
        ),
        (lambda f: blocks(f)["ask"]["list"][2].update(id="r0"), "list.2.id: 'r0' is used twice"),
        (lambda f: blocks(f)["ask"].update(list_button="   "), "menu button's text"),
    ],
)
def test_metas_limits_of_lists(change: Change, fragment: str) -> None:
    error = refused(change, list_flow())
    assert error.block == "ask"
    assert fragment in str(error)


def test_a_list_body_may_be_longer_than_a_buttons_body_and_has_at_most_ten_rows() -> None:
    flow = list_flow(10)
    blocks(flow)["ask"]["text"] = "x" * 4096
    publish(flow)
    with pytest.raises(FlowInvalid, match="1 to 10 rows") as raised:
        publish(list_flow(11))
    assert raised.value.block == "ask"


@pytest.mark.parametrize(
    ("change", "block", "variable"),
    [
        # Never captured anywhere.
        (lambda f: blocks(f)["greet"].update(text="Hola {{name}}"), "greet", "name"),
        # Used by the question that captures it, before the answer.
        (lambda f: blocks(f)["ask"].update(text="¿{{topic}}?"), "ask", "topic"),
        # Captured on one path only: the fallback is taken when nothing was captured.
        (lambda f: blocks(f)["closed"].update(text="Sobre {{topic.title}}"), "closed", "topic"),
        (lambda f: blocks(f)["bye"].update(text="{{topic}}"), "bye", "topic"),
    ],
)
def test_a_text_using_a_variable_not_captured_on_every_path_is_refused(
    change: Change, block: str, variable: str
) -> None:
    error = refused(change)
    assert error.block == block
    assert f"{{{{{variable}" in str(error)
    assert "every path" in str(error)


def test_a_variable_captured_on_every_path_may_be_used() -> None:
    flow = support_flow(GROUP)
    blocks(flow)["agent"]["text"] = "Te paso con {{topic.title}} ({{topic}}), {{contact.name}}"
    publish(flow)
    assert captured_before(parse_flow(flow))["agent"] == {"topic", "topic.title"}
    assert captured_before(parse_flow(flow))["closed"] == frozenset()


def test_the_error_path_can_be_reached_before_anything_was_captured() -> None:
    flow = support_flow(GROUP)
    flow["on_error"] = "sorry"
    blocks(flow)["route"]["default"] = "sorry"
    flow["blocks"].append(
        {"id": "sorry", "type": "connect_to_agent", "rotation": "no_owner", "text": "{{topic}}"}
    )
    error = refused(lambda f: None, flow)
    assert error.block == "sorry"


@pytest.mark.parametrize(
    ("clause", "fragment"),
    [
        (
            {"variable": "topic", "equals": "Facturación"},
            "'Facturación' is not one of its option ids ('billing', 'other')",
        ),
        ({"variable": "topic", "in": ["billing", "Otro"]}, "'Otro' is not one of its option ids"),
        ({"variable": "tema", "equals": "billing"}, "no question captures 'tema'"),
        ({"variable": "tema.title", "exists": True}, "no question captures 'tema'"),
    ],
)
def test_a_condition_that_can_never_hold_is_refused(clause: dict[str, Any], fragment: str) -> None:
    error = refused(lambda f: blocks(f)["route"]["rules"][0]["if"].__setitem__(0, clause))
    assert error.block == "route"
    assert fragment in str(error)


def test_titles_and_typed_answers_may_be_compared_with_anything() -> None:
    flow = support_flow(GROUP)
    blocks(flow)["route"]["rules"][0]["if"][0] = {"variable": "topic.title", "equals": "Otro"}
    publish(flow)


def name_then_long_texts(greeting: str, retry_text: str) -> dict[str, Any]:
    """Ask a name (free text), then greet with it and ask with buttons."""
    flow = support_flow(GROUP)
    flow["start"] = "name"
    flow["blocks"].insert(
        0,
        {"id": "name", "type": "question", "text": "¿Nombre?", "variable": "n", "next": "greet"},
    )
    blocks(flow)["greet"]["text"] = greeting
    blocks(flow)["ask"]["retry_text"] = retry_text
    return flow


def test_a_text_filled_in_beyond_metas_limit_takes_the_error_path() -> None:
    """Publishing checks the text as written; a long answer can still overflow it at run time."""
    flow = name_then_long_texts("x" * 4088 + "{{n}}", "Elige")
    publish(flow)
    run = Run(flow, OFFICE_HOURS)
    run.send(message(OFFICE_HOURS, "hola"))
    events = run.send(message(OFFICE_HOURS, "a" * 20, n=1))
    assert texts(events) == []
    _captured, failed, hand_off = events
    assert isinstance(failed, FlowFailed)
    assert (failed.block_id, failed.recovery) == ("greet", "default_group")
    assert failed.reason == "the text is 4108 characters once filled in; Meta allows 4096"
    assert isinstance(hand_off, HandOffRequested)  # to the workspace queue, not silence
    assert hand_off.group_id is None


def test_a_re_ask_that_fails_takes_the_error_path_too() -> None:
    flow = name_then_long_texts("Hola {{n}}", "x" * 4088 + "{{n}}")
    publish(flow)
    run = Run(flow, OFFICE_HOURS)
    run.send(message(OFFICE_HOURS, "hola"))
    run.send(message(OFFICE_HOURS, "a" * 20, n=1))
    events = run.send(message(OFFICE_HOURS, "¿qué?", n=2))
    assert [type(e).__name__ for e in events] == [
        "AnswerRejected",
        "FlowFailed",
        "HandOffRequested",
    ]
