"""Pure decisions of a flow run: given the run's events and a conversation event, what next.

Time comes from the events: a condition on the day and time reads the customer's message
timestamp in the flow's (or workspace's) time zone, so a replay a month later takes the
same branches. Ids of the messages a run queues derive from the run and a counter, so a
replay queues the same messages.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal
from uuid import UUID, uuid5
from zoneinfo import ZoneInfo

from events.base import Payload
from events.conversation import CloseConversation, ConversationStarted, CustomerMessageReceived
from events.flow_language.grammar import (
    PLACEHOLDER,
    TITLE_SUFFIX,
    WEEKDAYS,
    Block,
    ConditionBlock,
    ConnectToAgentBlock,
    DaysClause,
    EndBlock,
    FlowDefinition,
    HolidayClause,
    MessageBlock,
    QuestionBlock,
    SetExpirationBlock,
    TimeClause,
    VariableClause,
)
from events.flow_language.publishing import TEXT_BODY, body_limit
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
from events.outbound import OutboundMessageQueued, ReplyOption

RUN_NAMESPACE = UUID("4d7f1c2e-9b3a-4e6f-8a1d-2c5b7e9f0a13")
META_WINDOW = timedelta(hours=24)
MAX_STEPS = 100
Status = Literal["none", "new", "waiting", "agent", "ended"]


def run_id(conversation_id: UUID) -> UUID:
    return uuid5(RUN_NAMESPACE, str(conversation_id))


@dataclass(frozen=True)
class ActiveFlow:
    flow_id: UUID
    version: int


@dataclass(frozen=True)
class RunState:
    conversation_id: UUID
    status: Status = "none"
    started: FlowRunStarted | None = None
    waiting_on: str | None = None
    attempts: int = 0
    variables: Mapping[str, str] = field(default_factory=dict)
    messages: int = 0


@dataclass(frozen=True)
class SwitchChange:
    """One change of a number's agent-conversations switch, as the flows service's view
    holds it: ``connected`` (its value when the number joined a workspace) or ``set``."""

    at: datetime
    kind: Literal["connected", "set"]
    enabled: bool


def agent_conversations_as_of(changes: Sequence[SwitchChange], at: datetime) -> bool:
    """Whether the number's connect-to-agent blocks may hand off at ``at``.

    ``changes`` come oldest first. The last change at or before ``at`` holds. Before any:
    the value the number was connected with, or on when the first change known is an
    admin's (a number connected before the switch existed handed off). No change known at
    all (the caller has waited for its view to catch up): connected before this view
    existed, when every number handed off: on.
    """
    earlier = [change for change in changes if change.at <= at]
    if earlier:
        return earlier[-1].enabled
    if changes and changes[0].kind == "connected":
        return changes[0].enabled
    return True


class FlowRuntimeError(Exception):
    """The flow cannot go on from a block (a missing variable, a bad substitution...)."""


def evolve(state: RunState, event: Payload) -> RunState:
    match event:
        case FlowRunStarted():
            return replace(state, status="new", started=event)
        case QuestionAsked(block_id=block_id):
            # Asking the same question again (after a rejected answer) keeps the count.
            attempts = state.attempts if block_id == state.waiting_on else 0
            return replace(state, status="waiting", waiting_on=block_id, attempts=attempts)
        case AnswerCaptured():
            return replace(
                state, waiting_on=None, attempts=0, variables={**state.variables, **captured(event)}
            )
        case AnswerRejected(attempt=attempt):
            return replace(state, attempts=attempt)
        case OutboundMessageQueued():
            return replace(state, messages=state.messages + 1)
        case HandOffRequested():
            return replace(state, status="agent", waiting_on=None)
        case FlowEnded():
            return replace(state, status="ended", waiting_on=None)
        case _:
            return state


def arrival(started: ConversationStarted) -> datetime:
    """When the conversation's first message reached switchboard: what decides which flow
    version it runs (the version active then), and the number's agent-conversations switch.
    Meta's timestamp is whole seconds and may be long past (a delivery retried for hours), so
    comparing it with the precise instant a flow was chosen left customers who wrote in that
    second, or whose message came late, without a flow. A version 1 record did not say; its
    message time stands in."""
    return started.received_at or started.started_at


def start(
    started: ConversationStarted,
    active: ActiveFlow | None,
    time_zone: str,
    *,
    agent_conversations: bool,
) -> list[Payload]:
    """A new conversation: fix the flow version it will run (None when the number has none)
    and whether its connect-to-agent blocks may hand off (the number's switch at its
    arrival)."""
    return [
        FlowRunStarted(
            conversation_id=started.conversation_id,
            flow_id=active.flow_id if active else None,
            version=active.version if active else None,
            phone_number_id=started.phone_number_id,
            contact_wa_id=started.contact_wa_id,
            contact_name=started.contact_name,
            time_zone=time_zone,
            conversation_started_at=started.started_at,
            agent_conversations=agent_conversations,
        )
    ]


def decide_start(
    state: RunState,
    started: ConversationStarted,
    active: ActiveFlow | None,
    time_zone: str,
    *,
    agent_conversations: bool,
) -> list[Payload]:
    """A conversation start as the run sees it: the run begins once; a start it has read
    before (the relay published it again, or a replay) decides nothing."""
    if state.started is not None:
        return []
    return start(started, active, time_zone, agent_conversations=agent_conversations)


def decide(
    flow: FlowDefinition | None,
    state: RunState,
    message: CustomerMessageReceived,
    *,
    workspace_id: UUID,
) -> list[Payload]:
    """What the bot does about one customer message."""
    if state.started is None or state.status in ("agent", "ended"):
        return []  # no run, or the agents have it, or the flow is over
    run = _Run(flow, state, workspace_id, message.sent_at)
    if flow is None:
        run.hand_off_to_default("no active flow on this business number")
        return run.events
    if state.status == "new":
        run.go(flow.start)
    elif state.waiting_on is not None:
        run.answer(flow.block(state.waiting_on), message)
    return run.events


class _Run:
    """One step of a run: accumulates events while walking blocks from a trigger."""

    def __init__(
        self, flow: FlowDefinition | None, state: RunState, workspace_id: UUID, at: datetime
    ) -> None:
        assert state.started is not None
        self.flow = flow
        self.state = state
        self.started = state.started
        self.workspace_id = workspace_id
        self.at = at
        self.events: list[Payload] = []
        self.failed_once = False

    # -- walking blocks ------------------------------------------------------------------

    def go(self, block_id: str) -> None:
        assert self.flow is not None
        current: str | None = block_id
        steps = 0
        while current is not None:
            steps += 1
            block = self.flow.block(current)
            if steps > MAX_STEPS:
                self.fail(block, f"more than {MAX_STEPS} blocks without waiting: a loop?")
                return
            try:
                current = self.execute(block)
            except FlowRuntimeError as error:
                recovery = self.fail(block, str(error))
                current = recovery

    def execute(self, block: Block) -> str | None:
        """Run one block; the next block's id, or None when the run waits or stops."""
        match block:
            case MessageBlock(text=text, next=next_block):
                self.say(self.substitute(text))
                return next_block
            case QuestionBlock():
                self.ask(block)
                return None
            case ConditionBlock():
                return self.evaluate(block)
            case ConnectToAgentBlock() if not self.started.agent_conversations:
                return self.withhold(block)
            case ConnectToAgentBlock():
                if block.text:
                    self.say(self.substitute(block.text))
                self.emit(
                    HandOffRequested(
                        conversation_id=self.started.conversation_id,
                        workspace_id=self.workspace_id,
                        phone_number_id=self.started.phone_number_id,
                        contact_wa_id=self.started.contact_wa_id,
                        group_id=block.group,
                        rotation=block.rotation,
                        member_id=block.member,
                        reason=f"flow block {block.id!r}",
                        requested_at=self.at,
                    )
                )
                return None
            case SetExpirationBlock(next=next_block):
                limit = self.started.conversation_started_at + META_WINDOW
                self.emit(
                    ExpirationRequested(
                        conversation_id=self.started.conversation_id,
                        expires_at=min(self.at + block.duration(), limit),
                        requested_at=self.at,
                    )
                )
                return next_block
            case EndBlock(text=text):
                if text:
                    self.say(self.substitute(text))
                self.emit(
                    FlowEnded(
                        conversation_id=self.started.conversation_id,
                        block_id=block.id,
                        ended_at=self.at,
                    )
                )
                self.emit(
                    CloseConversation(
                        conversation_id=self.started.conversation_id,
                        workspace_id=self.workspace_id,
                        phone_number_id=self.started.phone_number_id,
                        contact_wa_id=self.started.contact_wa_id,
                        reason="flow_ended",
                    )
                )
                return None
        raise AssertionError(f"unhandled block {block!r}")

    def withhold(self, block: ConnectToAgentBlock) -> str | None:
        """No hand-off while the number's agent conversations are off: the block's fallback,
        or a failure there (the flow's error path, else the workspace's queue)."""
        reason = (
            f"agent conversations are off on business number {self.started.phone_number_id}"
            " (an admin turns them on)"
        )
        self.emit(
            HandOffWithheld(
                conversation_id=self.started.conversation_id,
                block_id=block.id,
                reason=reason,
                fallback=block.fallback,
                withheld_at=self.at,
            )
        )
        if block.fallback is not None:
            return block.fallback
        return self.fail(block, f"{reason}, and the block has no fallback")

    # -- questions -----------------------------------------------------------------------

    def ask(self, block: QuestionBlock, *, retry_text: str | None = None) -> None:
        if retry_text:
            self.say(self.substitute(retry_text))
        options = block.buttons or block.rows or []
        self.say(
            self.substitute(block.text),
            limit=body_limit(block),
            kind="buttons" if block.buttons else "list" if block.rows else "text",
            options=[
                ReplyOption(id=o.id, title=o.title, description=o.description) for o in options
            ],
            list_button=block.list_button if block.rows else None,
        )
        self.emit(
            QuestionAsked(
                conversation_id=self.started.conversation_id, block_id=block.id, asked_at=self.at
            )
        )

    def answer(self, block: Block, message: CustomerMessageReceived) -> None:
        assert isinstance(block, QuestionBlock)
        value, title, problem = fit_answer(block, message)
        if problem is None and value is not None and title is not None:
            self.emit(
                AnswerCaptured(
                    conversation_id=self.started.conversation_id,
                    block_id=block.id,
                    variable=block.variable,
                    value=value,
                    title=title,
                    captured_at=self.at,
                )
            )
            self.go(block.next)
            return
        attempt = self.state.attempts + 1
        self.emit(
            AnswerRejected(
                conversation_id=self.started.conversation_id,
                block_id=block.id,
                answer=message.text,
                attempt=attempt,
                reason=problem or "no answer",
                rejected_at=self.at,
            )
        )
        if attempt < block.max_attempts or block.fallback is None:
            self.ask_again(block)
        else:
            self.go(block.fallback)

    def ask_again(self, block: QuestionBlock) -> None:
        """Re-ask outside :meth:`go`, so a failure here takes the error path too."""
        try:
            self.ask(block, retry_text=block.retry_text)
        except FlowRuntimeError as error:
            recovery = self.fail(block, str(error))
            if recovery is not None:
                self.go(recovery)

    # -- conditions ----------------------------------------------------------------------

    def evaluate(self, block: ConditionBlock) -> str:
        assert self.flow is not None
        zone = ZoneInfo(self.flow.time_zone or self.started.time_zone)
        local = self.at.astimezone(zone)
        failures: list[str] = []
        for index, rule in enumerate(block.rules):
            reasons: list[str] = []
            held = True
            for clause in rule.conditions:
                ok, why = clause_holds(clause, self.variables, local, self.flow)
                reasons.append(why)
                if not ok:
                    held = False
                    failures.append(f"rule {index + 1}: {why}")
                    break
            if held:
                self.emit(
                    ConditionEvaluated(
                        conversation_id=self.started.conversation_id,
                        block_id=block.id,
                        rule=index,
                        next_block=rule.next,
                        reason=f"rule {index + 1} held: " + "; ".join(reasons),
                        evaluated_at=self.at,
                    )
                )
                return rule.next
        self.emit(
            ConditionEvaluated(
                conversation_id=self.started.conversation_id,
                block_id=block.id,
                rule=None,
                next_block=block.default,
                reason="no rule held (" + "; ".join(failures) + "): default branch",
                evaluated_at=self.at,
            )
        )
        return block.default

    # -- effects -------------------------------------------------------------------------

    def say(
        self,
        text: str,
        *,
        kind: Literal["text", "buttons", "list"] = "text",
        options: list[ReplyOption] | None = None,
        list_button: str | None = None,
        limit: int = TEXT_BODY,
    ) -> None:
        if len(text) > limit:
            # Publishing checked the text as written; a substituted value made it too long,
            # and Meta would refuse the message: the error path speaks instead.
            raise FlowRuntimeError(
                f"the text is {len(text)} characters once filled in; Meta allows {limit}"
            )
        number = self.state.messages + sum(
            isinstance(e, OutboundMessageQueued) for e in self.events
        )
        self.emit(
            OutboundMessageQueued(
                message_id=uuid5(run_id(self.started.conversation_id), f"message/{number + 1}"),
                conversation_id=self.started.conversation_id,
                sequence=number + 1,
                phone_number_id=self.started.phone_number_id,
                to=self.started.contact_wa_id,
                kind=kind,
                text=text,
                options=options or [],
                list_button=list_button,
                template=None,
                author="bot",
                author_id=None,
                queued_at=self.at,
            )
        )

    def emit(self, event: Payload) -> None:
        self.events.append(event)

    @property
    def variables(self) -> dict[str, str]:
        """The run's variables, with the answers captured in this very step."""
        values = dict(self.state.variables)
        for event in self.events:
            if isinstance(event, AnswerCaptured):
                values.update(captured(event))
        return values

    def substitute(self, text: str) -> str:
        values = {**self.variables, "contact.wa_id": self.started.contact_wa_id}
        if self.started.contact_name:
            values["contact.name"] = self.started.contact_name

        def replace_one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in values:
                raise FlowRuntimeError(f"variable {name!r} has no value")
            return values[name]

        return PLACEHOLDER.sub(replace_one, text)

    def fail(self, block: Block, reason: str) -> str | None:
        """Record the failure; the block to go on from (the error path), or None."""
        assert self.flow is not None
        # The error path is taken once per step: failing again there goes to the people.
        on_error = None if self.failed_once else self.flow.on_error
        self.failed_once = True
        self.emit(
            FlowFailed(
                conversation_id=self.started.conversation_id,
                block_id=block.id,
                reason=reason,
                recovery="error_path" if on_error is not None else "default_group",
                failed_at=self.at,
            )
        )
        if on_error is None:
            self.hand_off_to_default(f"flow failed at block {block.id!r}: {reason}")
        return on_error

    def hand_off_to_default(self, reason: str) -> None:
        self.emit(
            HandOffRequested(
                conversation_id=self.started.conversation_id,
                workspace_id=self.workspace_id,
                phone_number_id=self.started.phone_number_id,
                contact_wa_id=self.started.contact_wa_id,
                group_id=None,
                rotation="no_owner",
                member_id=None,
                reason=reason,
                requested_at=self.at,
            )
        )


def captured(event: AnswerCaptured) -> dict[str, str]:
    """The variables an answer sets: ``{{variable}}`` (an option's id, or the text typed) and
    ``{{variable.title}}`` (what the customer picked or typed, as they saw it)."""
    return {event.variable: event.value, f"{event.variable}{TITLE_SUFFIX}": event.title}


def fit_answer(
    block: QuestionBlock, message: CustomerMessageReceived
) -> tuple[str | None, str | None, str | None]:
    """(value, title, problem): the answer as the question wants it, or why it does not fit.

    A chosen option's value is its id (stable, the same in every language the titles are
    written in); its title is kept beside it for texts.
    """
    options = block.buttons or block.rows
    text = (message.text or "").strip()
    if options:
        for option in options:
            if message.reply_id == option.id:
                return option.id, option.title, None
        for option in options:
            if text and text.casefold() in (option.title.casefold(), option.id.casefold()):
                return option.id, option.title, None
        titles = ", ".join(repr(o.title) for o in options)
        return None, None, f"expected one of {titles}, got {text or message.kind!r}"
    if not text:
        return None, None, f"expected a text answer, got a {message.kind} message"
    if block.pattern is not None and re.fullmatch(block.pattern, text) is None:
        return None, None, f"{text!r} does not match {block.pattern!r}"
    return text, text, None


def clause_holds(
    clause: VariableClause | DaysClause | TimeClause | HolidayClause,
    variables: Mapping[str, str],
    local: datetime,
    flow: FlowDefinition,
) -> tuple[bool, str]:
    """Whether one condition holds, and the reason in words (kept in ConditionEvaluated)."""
    match clause:
        case VariableClause(variable=name):
            value = variables.get(name)
            if clause.exists is not None:
                return (value is not None) == clause.exists, (
                    f"{name} {'is set' if value is not None else 'is not set'}"
                )
            if clause.equals is not None:
                return value == clause.equals, f"{name}={value!r} vs {clause.equals!r}"
            if clause.one_of is not None:
                return value in clause.one_of, f"{name}={value!r} in {clause.one_of!r}"
            if clause.matches is not None:
                ok = value is not None and re.search(clause.matches, value) is not None
                return ok, f"{name}={value!r} matches {clause.matches!r}"
            return value is not None, f"{name} {'is set' if value is not None else 'is not set'}"
        case DaysClause(days=days):
            day = WEEKDAYS[local.weekday()]
            return day in days, f"{day} in {days}"
        case TimeClause(time=span):
            now = local.time().replace(tzinfo=None)
            if span.start < span.end:
                ok = span.start <= now < span.end
            elif span.start > span.end:  # across midnight, e.g. 22:00-06:00
                ok = now >= span.start or now < span.end
            else:
                ok = True
            label = f"{span.start:%H:%M}-{span.end:%H:%M}"
            return ok, f"{local:%H:%M} {local.tzname()} {'in' if ok else 'not in'} {label}"
        case HolidayClause(holiday=wanted):
            is_holiday = local.date() in flow.holidays
            return (
                is_holiday == wanted,
                f"{local.date()} {'is' if is_holiday else 'is not'} a holiday",
            )
