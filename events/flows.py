"""Flow definitions (directory) and flow runs (flows service).

A flow is data an admin publishes: a document of blocks with ids and transitions (see
``services/flows/definition.py`` for its grammar). Every published version is an event,
so a replay knows which version ran when. A run belongs to one conversation and is keyed
by its conversation id; hand-off requests are keyed by group id, so one owner decides a
group's rotation.
"""

from __future__ import annotations

from typing import Literal

from events.base import Id, Instant, JsonObject, Payload

Rotation = Literal["available", "all", "specific", "no_owner"]


class PublishFlow(Payload):
    """Command: a new flow, or a new version of ``flow_id``; ``definition`` is validated JSON."""

    event_type = "directory.publish_flow"

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
    event_type = "directory.flow_published"

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
    """The customer's answer to a question block, stored in ``variable``."""

    event_type = "flow.answer_captured"

    conversation_id: Id
    block_id: str
    variable: str
    value: str
    option_id: str | None
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
