"""Flow definitions (directory) and flow runs (flows service).

A flow is data an admin publishes: a document of blocks with ids and transitions (see
``events/flow_language/grammar.py`` for its grammar). Every published version is an event,
so a replay knows which version ran when. A run belongs to one conversation and is keyed
by its conversation id; hand-off requests are keyed by group id, so one owner decides a
group's rotation.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from events.base import Id, Instant, JsonObject, Payload

Rotation = Literal["available", "all", "specific", "no_owner"]


class PublishFlow(Payload):
    """Command: a new flow, or a new version of ``flow_id``; ``definition`` is validated JSON.

    Version 2: the definition is in grammar v2 (a chosen option's variable holds the option's
    id); a version 1 command's definition is translated by :func:`upcast_flow_definition_v1`.
    """

    event_type = "directory.publish_flow"
    schema_version = 2

    workspace_id: Id
    flow_id: Id
    definition: JsonObject
    published_by: Id


class ChooseActiveFlow(Payload):
    """Command: new conversations on this business number run this flow's latest version."""

    event_type = "directory.choose_active_flow"

    workspace_id: Id
    phone_number_id: str
    flow_id: Id
    chosen_by: Id


class FlowPublished(Payload):
    """A version of a flow. Version 2: ``definition`` is in grammar v2 (see ``PublishFlow``)."""

    event_type = "directory.flow_published"
    schema_version = 2

    workspace_id: Id
    flow_id: Id
    version: int
    name: str
    definition: JsonObject
    published_by: Id


class ActiveFlowChosen(Payload):
    event_type = "directory.active_flow_chosen"

    workspace_id: Id
    phone_number_id: str
    flow_id: Id
    chosen_by: Id


class FlowRunStarted(Payload):
    """A conversation started on a number; it will run this flow version (None: no flow).

    The version is fixed here: a conversation keeps the version it started with, and so the
    number's agent-conversations switch as it was then (``agent_conversations``; version 1
    predates the switch, when every hand-off went ahead: it reads as on).
    """

    event_type = "flow.run_started"
    schema_version = 2

    conversation_id: Id
    flow_id: Id | None
    version: int | None
    phone_number_id: str
    contact_wa_id: str
    contact_name: str | None
    time_zone: str
    conversation_started_at: Instant
    agent_conversations: bool


class QuestionAsked(Payload):
    """The bot asked a question block's prompt and now waits for the customer's answer."""

    event_type = "flow.question_asked"

    conversation_id: Id
    block_id: str
    asked_at: Instant


class AnswerCaptured(Payload):
    """The customer's answer to a question block, stored in ``variable``.

    Version 2: ``value`` is the chosen option's *id* (stable, untranslated) for a question
    with buttons or a list, the text typed otherwise; ``title`` is what the customer saw and
    picked (the option's title) or typed. Flows read them as ``{{variable}}`` and
    ``{{variable.title}}``. Version 1 had the title in ``value`` and the id in ``option_id``.
    """

    event_type = "flow.answer_captured"
    schema_version = 2

    conversation_id: Id
    block_id: str
    variable: str
    value: str
    title: str
    captured_at: Instant


class AnswerRejected(Payload):
    """An answer that does not fit the question; ``attempt`` of the block's allowed ones."""

    event_type = "flow.answer_rejected"

    conversation_id: Id
    block_id: str
    answer: str | None
    attempt: int
    reason: str
    rejected_at: Instant


class ConditionEvaluated(Payload):
    """Which branch a condition block took, and why (the rule that held, or none did)."""

    event_type = "flow.condition_evaluated"

    conversation_id: Id
    block_id: str
    rule: int | None  # index of the rule that held; None: the default branch
    next_block: str
    reason: str
    evaluated_at: Instant


class HandOffRequested(Payload):
    """Hand the conversation to human agents. ``group_id`` None: the workspace's default group."""

    event_type = "flow.hand_off_requested"

    conversation_id: Id
    workspace_id: Id
    phone_number_id: str
    contact_wa_id: str
    group_id: Id | None
    rotation: Rotation
    member_id: Id | None
    reason: str
    requested_at: Instant


class HandOffWithheld(Payload):
    """A connect-to-agent block did not hand off: agent conversations are off on the number.

    The run goes on at ``fallback`` (the block's own), or fails there (``fallback`` None) and
    takes the flow's error path.
    """

    event_type = "flow.hand_off_withheld"

    conversation_id: Id
    block_id: str
    reason: str
    fallback: str | None
    withheld_at: Instant


class ExpirationRequested(Payload):
    """The conversation must close at ``expires_at`` (never later than 24 h after its start)."""

    event_type = "flow.expiration_requested"

    conversation_id: Id
    expires_at: Instant
    requested_at: Instant


class FlowEnded(Payload):
    event_type = "flow.ended"

    conversation_id: Id
    block_id: str
    ended_at: Instant


class FlowFailed(Payload):
    """The flow could not go on; the customer is not left in silence (``recovery`` says how)."""

    event_type = "flow.failed"

    conversation_id: Id
    block_id: str | None
    reason: str
    recovery: Literal["error_path", "default_group"]
    failed_at: Instant


def upcast_answer_captured_v1(data: JsonObject) -> JsonObject:
    """v1 kept a chosen option's title in ``value`` and its id in ``option_id``."""
    option_id = data["option_id"]
    upcasted = {key: value for key, value in data.items() if key != "option_id"}
    upcasted["title"] = data["value"]
    if option_id is not None:
        upcasted["value"] = option_id
    return upcasted


def upcast_flow_published_v1(data: JsonObject) -> JsonObject:
    return {**data, "definition": upcast_flow_definition_v1(data["definition"])}


def upcast_publish_flow_v1(data: JsonObject) -> JsonObject:
    return {**data, "definition": upcast_flow_definition_v1(data["definition"])}


def upcast_flow_definition_v1(definition: JsonObject) -> JsonObject:
    """A grammar v1 flow document, meaning the same in grammar v2.

    In v1 the variable of a question with buttons or a list held the chosen option's
    *title*; in v2 it holds the option's *id*, and ``{{variable.title}}`` the title. So:

    * ``{{variable}}`` in a text becomes ``{{variable.title}}`` (the customer still reads the
      title);
    * an ``equals``/``in`` value that is the title of exactly one option id of the questions
      capturing the variable becomes that id (the same answers hold);
    * a value that is no option's title is kept: in v1 it could never hold; v2 compares ids,
      so a flow written as the grammar's documentation said (comparing ids) now works;
    * anything else on such a variable (``matches``, a title two options share, a variable
      also captured by a free-text question) compares ``variable.title``: exactly v1.
    """
    blocks = definition.get("blocks")
    if not isinstance(blocks, list):
        return definition
    titles: dict[str, dict[str, set[str]]] = {}  # variable -> title -> option ids
    typed: set[str] = set()  # variables some free-text question captures
    for block in blocks:
        if not isinstance(block, dict) or block.get("type") != "question":
            continue
        variable = block.get("variable")
        if not isinstance(variable, str):
            continue
        options = block.get("buttons") or block.get("list")
        if not isinstance(options, list) or not options:
            typed.add(variable)
            continue
        known = titles.setdefault(variable, {})
        for option in options:
            if isinstance(option, dict) and isinstance(option.get("title"), str):
                known.setdefault(option["title"], set()).add(str(option.get("id")))
    if not titles:
        return definition
    return {**definition, "blocks": [_upcast_block(b, titles, typed) for b in blocks]}


_PLACEHOLDER = re.compile(r"\{\{\s*([\w.]+)\s*\}\}")
_TEXT_FIELDS = ("text", "retry_text")


def _upcast_block(block: Any, titles: dict[str, dict[str, set[str]]], typed: set[str]) -> Any:
    if not isinstance(block, dict):
        return block
    upcasted = dict(block)
    for name in _TEXT_FIELDS:
        text = upcasted.get(name)
        if isinstance(text, str):
            upcasted[name] = _PLACEHOLDER.sub(
                lambda m: f"{{{{{m.group(1)}.title}}}}" if m.group(1) in titles else m.group(0),
                text,
            )
    rules = upcasted.get("rules")
    if upcasted.get("type") == "condition" and isinstance(rules, list):
        upcasted["rules"] = [
            {**rule, "if": [_upcast_clause(c, titles, typed) for c in rule["if"]]}
            if isinstance(rule, dict) and isinstance(rule.get("if"), list)
            else rule
            for rule in rules
        ]
    return upcasted


def _upcast_clause(clause: Any, titles: dict[str, dict[str, set[str]]], typed: set[str]) -> Any:
    if not isinstance(clause, dict) or clause.get("variable") not in titles:
        return clause
    variable = clause["variable"]
    by_title = titles[variable]
    as_titles = {**clause, "variable": f"{variable}.title"}
    if variable in typed or "matches" in clause:
        return as_titles

    def to_id(value: Any) -> Any | None:
        """The id a v1 value stands for, the value itself if no title, None if ambiguous."""
        ids = by_title.get(value) if isinstance(value, str) else None
        if ids is None:
            return value
        return next(iter(ids)) if len(ids) == 1 else None

    if clause.get("equals") is not None:
        mapped = to_id(clause["equals"])
        return as_titles if mapped is None else {**clause, "equals": mapped}
    if isinstance(clause.get("in"), list):
        values = [to_id(value) for value in clause["in"]]
        return as_titles if None in values else {**clause, "in": values}
    return clause


FLOW_DIRECTORY_COMMANDS: tuple[type[Payload], ...] = (PublishFlow, ChooseActiveFlow)
FLOW_DIRECTORY_EVENTS: tuple[type[Payload], ...] = (FlowPublished, ActiveFlowChosen)
FLOW_EVENTS: tuple[type[Payload], ...] = (
    FlowRunStarted,
    QuestionAsked,
    AnswerCaptured,
    AnswerRejected,
    ConditionEvaluated,
    HandOffWithheld,
    ExpirationRequested,
    FlowEnded,
    FlowFailed,
)


def upcast_run_started_v1(data: JsonObject) -> JsonObject:
    """v1 predates the agent-conversations switch, when every hand-off went ahead: on."""
    return {**data, "agent_conversations": True}


HAND_OFF_REQUESTS: tuple[type[Payload], ...] = (HandOffRequested,)
