"""The grammar of a flow document and its validation (pure).

A flow is JSON (or YAML) like::

    {"name": "Support", "start": "greet", "on_error": "sorry", "holidays": ["2026-12-25"],
     "blocks": [
       {"id": "greet", "type": "message", "text": "Hola {{contact.name}}", "next": "ask"},
       {"id": "ask", "type": "question", "text": "¿Sobre qué?", "variable": "topic",
        "buttons": [{"id": "billing", "title": "Facturación"}, {"id": "other", "title": "Otro"}],
        "max_attempts": 2, "retry_text": "Elige una opción", "next": "route", "fallback": "bye"},
       {"id": "route", "type": "condition", "default": "closed", "rules": [
          {"if": [{"variable": "topic", "equals": "billing"},
                  {"days": ["mon", "tue", "wed", "thu", "fri"]},
                  {"time": {"from": "08:00", "to": "18:00"}}], "next": "agent"}]},
       {"id": "agent", "type": "connect_to_agent", "group": "<group id>",
        "rotation": "available", "text": "Te paso con un asesor de {{topic.title}}",
        "fallback": "bye"},
       {"id": "limit", "type": "set_expiration", "after": "30m", "next": "..."},
       {"id": "bye", "type": "end", "text": "¡Gracias!"}]}

An answer to a question is kept in its ``variable``: for buttons or a list, the chosen
option's **id** (stable, untranslated: conditions compare ids); for free text, the text.
``{{topic.title}}`` is the answer as the customer saw it (the option's title, or the text
typed). This is grammar v2; flows published under v1 (when the variable held the title)
are read through ``events.flows.upcast_flow_definition_v1``.

``parse_flow`` rejects, with a message naming the block: unknown block types, duplicate ids,
transitions to missing blocks, unreachable blocks, blocks with no way out, unknown members,
time ranges and durations that do not parse, and time zones that do not exist. A
connect-to-agent block's optional ``fallback`` is where the run goes on while agent
conversations are off on the number; it must not lead back to the block without a question.
A *new* version must also pass ``events.flow_language.publishing.check_publishable`` (Meta's
limits, every variable captured before it is used).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date, time, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
)

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DURATION = re.compile(r"^(\d+)\s*(s|m|h)$")
PLACEHOLDER = re.compile(r"\{\{\s*([\w.]+)\s*\}\}")
# ``{{variable.title}}``: the answer as the customer saw it (see the module's docstring).
TITLE_SUFFIX = ".title"
MAX_BUTTONS = 3
MAX_LIST_ROWS = 10


class FlowInvalid(ValueError):
    """A flow that cannot be published; ``block`` names the offending block when there is one."""

    def __init__(self, message: str, block: str | None = None) -> None:
        super().__init__(f"block {block!r}: {message}" if block else message)
        self.block = block


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Option(_Strict):
    # Meta's limits on ids, titles and descriptions are checked when a version is published
    # (events/flow_language/publishing.py), with every other limit of Meta's.
    id: str = Field(min_length=1)
    title: str = Field(min_length=1)
    description: str | None = None


class TimeRange(_Strict):
    """Local wall-clock times; ``to`` is exclusive; ``from`` after ``to`` spans midnight."""

    start: time = Field(alias="from")
    end: time = Field(alias="to")

    @field_validator("start", "end", mode="before")
    @classmethod
    def _hh_mm(cls, value: object) -> object:
        if not isinstance(value, str) or not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
            raise ValueError(f"time must be HH:MM (00:00 to 23:59), got {value!r}")
        return value


class VariableClause(_Strict):
    variable: str
    equals: str | None = None
    one_of: list[str] | None = Field(default=None, alias="in")
    matches: str | None = None
    exists: bool | None = None

    @field_validator("matches")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(f"'matches' is not a valid regular expression: {error}") from None
        return value


class DaysClause(_Strict):
    days: list[Weekday] = Field(min_length=1)


class TimeClause(_Strict):
    time: TimeRange


class HolidayClause(_Strict):
    holiday: bool


def _clause_kind(value: object) -> str | None:
    """Which clause a condition is, from the key it carries (so errors name the right one)."""
    if isinstance(value, dict):
        for key in ("variable", "days", "time", "holiday"):
            if key in value:
                return key
        return None
    return type(value).__name__


Clause = Annotated[
    Annotated[VariableClause, Tag("variable")]
    | Annotated[DaysClause, Tag("days")]
    | Annotated[TimeClause, Tag("time")]
    | Annotated[HolidayClause, Tag("holiday")],
    Discriminator(
        _clause_kind,
        custom_error_type="unknown_condition",
        custom_error_message="a condition has one of: variable, days, time, holiday",
    ),
]


class Rule(_Strict):
    conditions: list[Clause] = Field(alias="if", min_length=1)
    next: str


class MessageBlock(_Strict):
    id: str
    type: Literal["message"]
    text: str = Field(min_length=1)
    next: str


class QuestionBlock(_Strict):
    id: str
    type: Literal["question"]
    text: str = Field(min_length=1)
    variable: str = Field(min_length=1)
    buttons: list[Option] | None = None
    rows: list[Option] | None = Field(default=None, alias="list")
    list_button: str = "Ver opciones"
    pattern: str | None = None
    max_attempts: int = Field(default=3, ge=1, le=10)
    retry_text: str | None = None
    next: str
    fallback: str | None = None


class ConditionBlock(_Strict):
    id: str
    type: Literal["condition"]
    rules: list[Rule]
    default: str


class ConnectToAgentBlock(_Strict):
    id: str
    type: Literal["connect_to_agent"]
    group: UUID | None = None  # None: the workspace's default group
    rotation: Literal["available", "all", "specific", "no_owner"]
    member: UUID | None = None
    text: str | None = None
    # Where the run goes on while agent conversations are off on the number (None: the
    # flow's error path).
    fallback: str | None = None


class SetExpirationBlock(_Strict):
    id: str
    type: Literal["set_expiration"]
    after: str
    next: str

    @field_validator("after")
    @classmethod
    def _duration(cls, value: str) -> str:
        if not DURATION.match(value.strip()):
            raise ValueError(f"'after' must look like 90s, 30m or 2h, got {value!r}")
        return value

    def duration(self) -> timedelta:
        match = DURATION.match(self.after.strip())
        assert match is not None
        amount, unit = int(match.group(1)), match.group(2)
        return timedelta(**{{"s": "seconds", "m": "minutes", "h": "hours"}[unit]: amount})


class EndBlock(_Strict):
    id: str
    type: Literal["end"]
    text: str | None = None


Block = Annotated[
    MessageBlock
    | QuestionBlock
    | ConditionBlock
    | ConnectToAgentBlock
    | SetExpirationBlock
    | EndBlock,
    Field(discriminator="type"),
]
BLOCK_TYPES = ("message", "question", "condition", "connect_to_agent", "set_expiration", "end")


class FlowDefinition(_Strict):
    name: str = Field(min_length=1, max_length=200)
    start: str
    time_zone: str | None = None  # None: the workspace's
    holidays: list[date] = []
    on_error: str | None = None
    blocks: list[Block] = Field(min_length=1)

    def block(self, block_id: str) -> Block:
        for block in self.blocks:
            if block.id == block_id:
                return block
        raise KeyError(block_id)


def transitions(block: Block) -> list[str]:
    match block:
        case MessageBlock(next=next_block) | SetExpirationBlock(next=next_block):
            return [next_block]
        case QuestionBlock(next=next_block, fallback=fallback):
            return [next_block] + ([fallback] if fallback else [])
        case ConditionBlock(rules=rules, default=default):
            return [rule.next for rule in rules] + [default]
        case ConnectToAgentBlock(fallback=fallback):
            return [fallback] if fallback else []
        case _:
            return []


def parse_flow(
    document: Mapping[str, Any],
    *,
    members: Iterable[UUID] | None = None,
    groups: Iterable[UUID] | None = None,
) -> FlowDefinition:
    """Parse and validate a flow document, or raise :class:`FlowInvalid` naming the block.

    ``members`` and ``groups`` are the workspace's, checked when given: publishing checks
    them; running an already published version does not (a group deleted since must not
    break conversations that started before).
    """
    raw_blocks = document.get("blocks")
    if isinstance(raw_blocks, list):
        for raw in raw_blocks:
            if isinstance(raw, dict) and raw.get("type") not in BLOCK_TYPES:
                raise FlowInvalid(
                    f"unknown block type {raw.get('type')!r} (known: {', '.join(BLOCK_TYPES)})",
                    str(raw.get("id")),
                )
    try:
        flow = FlowDefinition.model_validate(document)
    except ValidationError as error:
        raise _invalid(error, document) from None
    _check_graph(flow)
    _check_blocks(flow, members, groups)
    return flow


def _invalid(error: ValidationError, document: Mapping[str, Any]) -> FlowInvalid:
    first = error.errors(include_url=False)[0]
    location = first["loc"]
    block: str | None = None
    if len(location) >= 2 and location[0] == "blocks" and isinstance(location[1], int):
        blocks = document.get("blocks") or []
        raw = blocks[location[1]] if location[1] < len(blocks) else {}
        block = str(raw.get("id")) if isinstance(raw, dict) else None
        location = (
            location[3:] if len(location) > 2 and isinstance(location[2], str) else location[2:]
        )
    field = ".".join(str(part) for part in location) or "(flow)"
    return FlowInvalid(f"{field}: {first['msg']}", block)


def _check_graph(flow: FlowDefinition) -> None:
    ids: set[str] = set()
    for block in flow.blocks:
        if block.id in ids:
            raise FlowInvalid("two blocks have this id", block.id)
        ids.add(block.id)
    if flow.start not in ids:
        raise FlowInvalid(f"'start' names a block that does not exist: {flow.start!r}")
    if flow.on_error is not None and flow.on_error not in ids:
        raise FlowInvalid(f"'on_error' names a block that does not exist: {flow.on_error!r}")
    for block in flow.blocks:
        for target in transitions(block):
            if target not in ids:
                raise FlowInvalid(
                    f"transition to a block that does not exist: {target!r}", block.id
                )
    reachable: set[str] = set()
    pending = [flow.start] + ([flow.on_error] if flow.on_error else [])
    while pending:
        current = pending.pop()
        if current not in reachable:
            reachable.add(current)
            pending.extend(transitions(flow.block(current)))
    for block in flow.blocks:
        if block.id not in reachable:
            raise FlowInvalid("unreachable: no transition leads here", block.id)
    # A way out: from every block some path must reach an end or a hand-off.
    terminal = {b.id for b in flow.blocks if isinstance(b, EndBlock | ConnectToAgentBlock)}
    escapes = set(terminal)
    changed = True
    while changed:
        changed = False
        for block in flow.blocks:
            if block.id not in escapes and any(t in escapes for t in transitions(block)):
                escapes.add(block.id)
                changed = True
    for block in flow.blocks:
        if block.id not in escapes:
            raise FlowInvalid(
                "no way out: no path from here reaches an end or a hand-off", block.id
            )


def _check_blocks(
    flow: FlowDefinition, members: Iterable[UUID] | None, groups: Iterable[UUID] | None
) -> None:
    known_members = None if members is None else set(members)
    known_groups = None if groups is None else set(groups)
    if flow.time_zone is not None:
        try:
            ZoneInfo(flow.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise FlowInvalid(f"time zone {flow.time_zone!r} does not exist") from None
    for block in flow.blocks:
        match block:
            case QuestionBlock():
                if block.buttons is not None and block.rows is not None:
                    raise FlowInvalid("a question has buttons or a list, not both", block.id)
                if block.buttons is not None and not 1 <= len(block.buttons) <= MAX_BUTTONS:
                    raise FlowInvalid(f"buttons: 1 to {MAX_BUTTONS} allowed", block.id)
                if block.rows is not None and not 1 <= len(block.rows) <= MAX_LIST_ROWS:
                    raise FlowInvalid(f"list: 1 to {MAX_LIST_ROWS} rows allowed", block.id)
                if block.pattern is not None:
                    try:
                        re.compile(block.pattern)
                    except re.error as error:
                        raise FlowInvalid(f"pattern: {error}", block.id) from None
                constrained = block.buttons or block.rows or block.pattern
                if constrained and block.fallback is None:
                    raise FlowInvalid(
                        "a question whose answers are constrained needs a 'fallback' block",
                        block.id,
                    )
            case ConnectToAgentBlock(rotation=rotation, member=member):
                if rotation == "specific" and member is None:
                    raise FlowInvalid("rotation 'specific' needs a 'member'", block.id)
                if member is not None and known_members is not None and member not in known_members:
                    raise FlowInvalid(f"member {member} does not exist in this workspace", block.id)
                group = block.group
                if group is not None and known_groups is not None and group not in known_groups:
                    raise FlowInvalid(f"group {group} does not exist in this workspace", block.id)
                if rotation != "no_owner" and block.group is None and rotation != "specific":
                    raise FlowInvalid(f"rotation {rotation!r} needs a 'group'", block.id)
                if block.fallback is not None and _returns_without_waiting(
                    flow, block.fallback, block.id
                ):
                    raise FlowInvalid(
                        f"fallback {block.fallback!r} leads back here without a question:"
                        " while agent conversations are off it would loop",
                        block.id,
                    )
            case _:
                pass


def _returns_without_waiting(flow: FlowDefinition, start: str, target: str) -> bool:
    """Whether some path from ``start`` reaches ``target`` without a question (which waits
    for the customer, so a loop through it is a conversation, not a spin)."""
    seen: set[str] = set()
    pending = [start]
    while pending:
        current = pending.pop()
        if current == target:
            return True
        if current in seen:
            continue
        seen.add(current)
        block = flow.block(current)
        if not isinstance(block, QuestionBlock):
            pending.extend(transitions(block))
    return False
