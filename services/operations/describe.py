"""A timeline entry in words, for a person (one line) or a program (one JSON object).

Pure: every rule of how an event reads is here, unit-tested. An event type without a
sentence of its own still gets a line (its type and its payload's short fields), so a new
event never disappears from a replay.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from events.assignment import (
    AssignmentCommandRejected,
    ClaimConversation,
    ConversationAssigned,
    ConversationQueued,
    ConversationReleased,
    ConversationTransferred,
    Decision,
    GroupNudged,
    HandOffDeclined,
    TransferConversation,
)
from events.base import Payload
from events.conversation import (
    BusinessMessageEchoed,
    CloseConversation,
    ConversationClosed,
    ConversationStarted,
    CustomerMessageReceived,
    MessageEdited,
    MessageRevoked,
    MessageStatusUpdated,
)
from events.expiry import ConversationExpired, DeadlineCancelled, DeadlineSet, FlowExpirationHeld
from events.flows import (
    AnswerCaptured,
    AnswerRejected,
    ConditionEvaluated,
    ExpirationRequested,
    FlowEnded,
    FlowFailed,
    FlowRunStarted,
    HandOffRequested,
    HandOffWithheld,
    QuestionAsked,
)
from events.operations import DeadlineDeadLettered, RecordDeadLettered, StoredEventDeadLettered
from events.outbound import (
    OutboundMessageFailed,
    OutboundMessageQueued,
    OutboundMessageRefused,
    OutboundMessageSent,
    OutboundOutcomeUnknown,
    OutboundSendAttempted,
    RetryOutboundMessage,
)
from events.reads import ConversationRead
from services.operations.timeline import StoredEntry

# Text shown in a line is cut here; --json carries it whole.
TEXT_LIMIT = 80


@dataclass(frozen=True)
class Said:
    """What happened, and why (empty when the event carries no reason)."""

    what: str
    why: str = ""


def short(text: str | None, limit: int = TEXT_LIMIT) -> str:
    """Text on one line, cut with an ellipsis; control characters shown as their escapes."""
    if text is None:
        return ""
    flat = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text.replace("\n", " "))
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def explain(decision: Decision) -> str:
    """An assignment decision's explanation: the rule, the outcome, each skipped candidate."""
    skipped = [
        f"{candidate.name} ({candidate.status}, {candidate.load}/{candidate.capacity}):"
        f" {candidate.skipped}"
        for candidate in decision.candidates
        if candidate.skipped
    ]
    parts = [decision.rule, decision.outcome]
    if skipped:
        parts.append("skipped " + "; ".join(skipped))
    return " — ".join(part for part in parts if part)


def _group(group_id: object | None) -> str:
    return f"group {group_id}" if group_id is not None else "the workspace queue"


def say(payload: Payload) -> Said:
    """What an event says about its conversation."""
    match payload:
        case ConversationStarted():
            who = payload.contact_name or payload.contact_wa_id
            return Said(f"conversation started by {who} on number {payload.phone_number_id}")
        case CustomerMessageReceived():
            body = payload.text if payload.text is not None else f"[{payload.kind}]"
            return Said(f"customer wrote #{payload.sequence}: {short(body)!s}")
        case BusinessMessageEchoed():
            return Said(f"business app sent: {short(payload.text or f'[{payload.kind}]')}")
        case MessageEdited():
            return Said(f"{payload.author} edited {payload.wamid}: {short(payload.text)}")
        case MessageRevoked():
            return Said(f"{payload.author} deleted {payload.wamid}")
        case MessageStatusUpdated():
            errors = "; ".join(str(error.get("title", error)) for error in payload.errors)
            return Said(f"message {payload.wamid} {payload.status}", errors)
        case ConversationClosed():
            return Said("conversation closed", f"reason {payload.reason}")
        case CloseConversation():
            return Said("close requested", f"reason {payload.reason}")
        case FlowRunStarted():
            if payload.flow_id is None:
                return Said("no flow ran", "the number has no active flow")
            return Said(f"flow {payload.flow_id} v{payload.version} started")
        case QuestionAsked():
            return Said(f"flow asked at block {payload.block_id}")
        case AnswerCaptured():
            return Said(
                f"flow captured {payload.variable} = {short(payload.value)!s}"
                f" at block {payload.block_id}"
            )
        case AnswerRejected():
            return Said(
                f"flow rejected answer {short(payload.answer)!r} at block {payload.block_id}"
                f" (attempt {payload.attempt})",
                payload.reason,
            )
        case ConditionEvaluated():
            branch = "the default branch" if payload.rule is None else "a rule's branch"
            return Said(
                f"flow branched at {payload.block_id} to {payload.next_block} ({branch})",
                payload.reason,
            )
        case HandOffWithheld():
            return Said(
                f"hand-off withheld at {payload.block_id}, fallback {payload.fallback}",
                payload.reason,
            )
        case HandOffRequested():
            member = f" member {payload.member_id}" if payload.member_id else ""
            return Said(
                f"hand-off requested to {_group(payload.group_id)}, rotation"
                f" {payload.rotation}{member}",
                payload.reason,
            )
        case ExpirationRequested():
            return Said(f"flow asked to expire at {payload.expires_at.isoformat()}")
        case FlowEnded():
            return Said(f"flow ended at block {payload.block_id}")
        case FlowFailed():
            return Said(
                f"flow failed at block {payload.block_id}, {payload.recovery}", payload.reason
            )
        case ConversationQueued():
            return Said(
                f"queued in {_group(payload.group_id)} (rotation {payload.rotation})",
                explain(payload.decision),
            )
        case ConversationAssigned():
            return Said(
                f"assigned to {payload.member_name} ({payload.member_id}) via {payload.via}"
                f" in {_group(payload.group_id)}",
                explain(payload.decision),
            )
        case ConversationReleased():
            held = f"member {payload.member_id}" if payload.member_id else "nobody"
            return Said(
                f"released from {held} in {_group(payload.group_id)}", f"reason {payload.reason}"
            )
        case ConversationTransferred():
            target = (
                f"member {payload.to_member_id}"
                if payload.to_member_id
                else _group(payload.to_group_id)
            )
            return Said(
                f"transferred to {target} by {payload.requested_by}",
                f"note: {short(payload.note)}" if payload.note else "",
            )
        case HandOffDeclined():
            return Said(f"hand-off to {_group(payload.group_id)} declined", payload.reason)
        case AssignmentCommandRejected():
            return Said(f"{payload.command_type} refused", payload.reason)
        case ClaimConversation():
            return Said(f"member {payload.member_id} asked to claim it")
        case TransferConversation():
            target = (
                f"member {payload.to_member_id}"
                if payload.to_member_id
                else _group(payload.to_group_id)
            )
            return Said(
                f"member {payload.requested_by} asked to transfer it to {target}",
                f"note: {short(payload.note)}" if payload.note else "",
            )
        case ConversationRead():
            return Said(f"member {payload.member_id} read up to customer message #{payload.up_to}")
        case GroupNudged():
            return Said(f"{_group(payload.group_id)} nudged ({payload.cause})", payload.detail)
        case OutboundMessageQueued():
            by = payload.author if payload.author_id is None else f"member {payload.author_id}"
            return Said(f"{by} queued {payload.kind} {payload.message_id}: {short(payload.text)}")
        case RetryOutboundMessage():
            return Said(f"retry of {payload.message_id} requested by {payload.requested_by}")
        case OutboundSendAttempted():
            return Said(f"send attempt {payload.attempt} of {payload.message_id}")
        case OutboundMessageSent():
            return Said(
                f"message {payload.message_id} sent as {payload.wamid}"
                f" after {payload.attempts} attempt(s)"
            )
        case OutboundMessageFailed():
            return Said(f"message {payload.message_id} failed", payload.reason)
        case OutboundOutcomeUnknown():
            return Said(f"message {payload.message_id} outcome unknown", payload.reason)
        case OutboundMessageRefused():
            return Said(f"message {payload.message_id} refused", payload.reason)
        case DeadlineSet():
            return Said(
                f"deadline set for {payload.deadline.isoformat()}", f"cause {payload.cause}"
            )
        case FlowExpirationHeld():
            return Said(
                f"flow expiration {payload.expires_at.isoformat()} held",
                "no later than the deadline already set",
            )
        case DeadlineCancelled():
            return Said(f"deadline {payload.deadline.isoformat()} cancelled")
        case ConversationExpired():
            return Said(
                f"deadline {payload.deadline.isoformat()} fired at {payload.fired_at.isoformat()}"
            )
        case RecordDeadLettered():
            return Said(
                f"{payload.consumer} parked {payload.source_topic}"
                f"#{payload.source_partition}@{payload.source_offset}",
                payload.reason,
            )
        case StoredEventDeadLettered():
            return Said(
                f"relay parked {payload.stored_type} ({payload.store} #{payload.notification_id})",
                payload.reason,
            )
        case DeadlineDeadLettered():
            return Said(f"timer gave up deadline {payload.due_at.isoformat()}", payload.reason)
        case _:
            return Said(f"{payload.event_type} {_fields(payload)}".rstrip())


def _fields(payload: Payload) -> str:
    """Short scalar fields of a payload this module has no sentence for."""
    shown = [
        f"{name}={short(str(value), 40)}"
        for name, value in payload.model_dump(mode="json").items()
        if isinstance(value, str | int | float | bool) and name != "conversation_id"
    ]
    return " ".join(shown)


def line(entry: StoredEntry) -> str:
    """One line a person reads: time, service (store), what happened, why."""
    envelope = entry.envelope
    said = say(envelope.payload)
    time = envelope.occurred_at.isoformat(timespec="milliseconds")
    why = f"  — why: {said.why}" if said.why else ""
    return f"{time}  {entry.store:<11} {said.what}{why}"


def json_line(entry: StoredEntry) -> bytes:
    """One JSON object: the envelope as on Kafka, plus where it is stored and the words."""
    said = say(entry.envelope.payload)
    document: dict[str, Any] = {
        **entry.envelope.model_dump(mode="json"),
        "store": entry.store,
        "notification_id": entry.notification_id,
        "summary": said.what,
        "why": said.why or None,
    }
    return orjson.dumps(document)
