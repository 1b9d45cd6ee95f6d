"""What a *new* flow version must satisfy before it is published (pure).

``parse_flow`` is what every stored version satisfies, and runs each time a version is run;
this adds what is checked once, when an admin publishes, so that the bot never meets at run
time what it can be told now:

* **Meta's limits** on the messages the bot sends. A message Meta refuses is a customer left
  in silence, discovered only when a conversation reaches the block.
* **Variables used before they are captured.** ``{{name}}`` in a text must be captured by a
  question on *every* path that reaches the block (the question's ``next`` captures; its
  ``fallback`` is taken precisely when nothing was captured), else the run fails there.
* **Control characters** in names, ids and texts (``events.flow_language.text_check``): they
  cannot be stored or shown everywhere (NUL cannot be stored by PostgreSQL at all).
* **Conditions that can never hold**: a clause on a variable no question captures, or one
  comparing a button's or row's variable with something that is not one of its option ids
  (the variable holds the id; ``{{variable.title}}`` holds the title).

Versions published before a check existed are not re-checked when they run: a conversation
must not fail because the rules for *new* versions grew stricter.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from uuid import UUID

from events.flow_language.grammar import (
    PLACEHOLDER,
    TITLE_SUFFIX,
    Block,
    ConditionBlock,
    ConnectToAgentBlock,
    EndBlock,
    FlowDefinition,
    FlowInvalid,
    MessageBlock,
    Option,
    QuestionBlock,
    VariableClause,
    parse_flow,
)
from events.flow_language.text_check import first_text_problem

# Meta's limits (WhatsApp Cloud API), in characters unless said otherwise:
# - a text message's body: 4096
#   https://developers.facebook.com/documentation/business-messaging/whatsapp/messages/text-messages
# - reply buttons: 1 to 3 buttons; body 1024; a button's title 20 (unique in the message),
#   its id 256
#   https://developers.facebook.com/documentation/business-messaging/whatsapp/messages/interactive-reply-buttons-messages
#   (the button object as Meta's own SDK documents it: https://whatsapp.github.io/WhatsApp-Nodejs-SDK/api-reference/types/ButtonObject)
# - lists: body 4096; the menu button's text 20; 1 to 10 sections with up to 10 rows in all;
#   a row's id 200 (unique), title 24, description 72; a section's title 24, required when
#   there are several; header and footer 60
#   https://developers.facebook.com/documentation/business-messaging/whatsapp/messages/interactive-list-messages
# The grammar has no header, footer or sections: a list goes out as one untitled section
# (``services/dispatcher/graph.py``), so the section, header and footer limits cannot be
# exceeded, and are not checked.
TEXT_BODY = 4096
BUTTONS_BODY = 1024
LIST_BODY = 4096
BUTTON_TITLE = 20
BUTTON_ID = 256
LIST_BUTTON_TEXT = 20
ROW_ID = 200
ROW_TITLE = 24
ROW_DESCRIPTION = 72

CONTACT_VARIABLES = frozenset({"contact.wa_id", "contact.name"})


def check_publishable(
    document: Mapping[str, Any],
    *,
    members: Iterable[UUID] | None,
    groups: Iterable[UUID] | None,
) -> FlowDefinition:
    """Parse a flow an admin publishes, or raise :class:`FlowInvalid` naming the block."""
    # First: a name or text with a control character is named as such, whatever else is off.
    text_problem = first_text_problem(document)
    if text_problem is not None:
        raise FlowInvalid(*text_problem)
    flow = parse_flow(document, members=members, groups=groups)
    for block in flow.blocks:
        _check_limits(block)
    _check_conditions(flow)
    _check_variables(flow)
    return flow


def body_limit(block: QuestionBlock | None) -> int:
    """Meta's limit for the body of a message a block sends (None: a plain text)."""
    if block is None:
        return TEXT_BODY
    if block.buttons:
        return BUTTONS_BODY
    return LIST_BODY if block.rows else TEXT_BODY


# -- Meta's limits ------------------------------------------------------------------------


def _check_limits(block: Block) -> None:
    match block:
        case QuestionBlock():
            _longest(block, "text", block.text, body_limit(block))
            if block.retry_text is not None:  # sent as a text message of its own
                _longest(block, "retry_text", block.retry_text, TEXT_BODY)
            if block.buttons:
                _check_options(block, "buttons", block.buttons, BUTTON_ID, BUTTON_TITLE)
            if block.rows:
                _check_options(block, "list", block.rows, ROW_ID, ROW_TITLE)
                _longest(block, "list_button", block.list_button, LIST_BUTTON_TEXT)
                if not block.list_button.strip():
                    raise FlowInvalid("list_button: Meta needs the menu button's text", block.id)
        case MessageBlock(text=text):
            _longest(block, "text", text, TEXT_BODY)
        case ConnectToAgentBlock(text=text) | EndBlock(text=text) if text is not None:
            _longest(block, "text", text, TEXT_BODY)
        case _:
            pass


def _check_options(
    block: QuestionBlock, field: str, options: list[Option], id_limit: int, title_limit: int
) -> None:
    ids: set[str] = set()
    titles: set[str] = set()
    for index, option in enumerate(options):
        where = f"{field}.{index}"
        _longest(block, f"{where}.id", option.id, id_limit)
        _longest(block, f"{where}.title", option.title, title_limit)
        if option.description is not None:
            if field == "buttons":
                raise FlowInvalid(f"{where}.description: buttons have no description", block.id)
            _longest(block, f"{where}.description", option.description, ROW_DESCRIPTION)
        if option.id in ids:
            raise FlowInvalid(f"{where}.id: {option.id!r} is used twice", block.id)
        if field == "buttons" and option.title in titles:
            raise FlowInvalid(f"{where}.title: {option.title!r} is used twice", block.id)
        ids.add(option.id)
        titles.add(option.title)


def _longest(block: Block, field: str, text: str, limit: int) -> None:
    if len(text) > limit:
        raise FlowInvalid(f"{field}: {len(text)} characters; Meta allows at most {limit}", block.id)


# -- conditions ---------------------------------------------------------------------------


def _option_ids(flow: FlowDefinition) -> tuple[dict[str, set[str]], set[str]]:
    """Per variable, the option ids its questions offer; and the variables typed as text."""
    offered: dict[str, set[str]] = {}
    typed: set[str] = set()
    for block in flow.blocks:
        if isinstance(block, QuestionBlock):
            options = block.buttons or block.rows
            if options:
                offered.setdefault(block.variable, set()).update(o.id for o in options)
            else:
                typed.add(block.variable)
    return offered, typed


def _check_conditions(flow: FlowDefinition) -> None:
    offered, typed = _option_ids(flow)
    captured = set(offered) | typed
    for block in flow.blocks:
        if not isinstance(block, ConditionBlock):
            continue
        for rule in block.rules:
            for clause in rule.conditions:
                if not isinstance(clause, VariableClause):
                    continue
                name = clause.variable.removesuffix(TITLE_SUFFIX)
                if name not in captured:
                    raise FlowInvalid(
                        f"condition on {clause.variable!r}: no question captures {name!r}",
                        block.id,
                    )
                if clause.variable != name or name in typed:
                    continue  # titles and typed text: any value may be compared
                ids = offered[name]
                compared = [clause.equals] if clause.equals is not None else clause.one_of or []
                for value in compared:
                    if value not in ids:
                        known = ", ".join(repr(i) for i in sorted(ids))
                        raise FlowInvalid(
                            f"condition on {name!r}: {value!r} is not one of its option ids"
                            f" ({known}); the variable holds the chosen option's id"
                            f" (compare {name}{TITLE_SUFFIX} for its title)",
                            block.id,
                        )


# -- variables captured before use ----------------------------------------------------------


def _check_variables(flow: FlowDefinition) -> None:
    """Every ``{{name}}`` in a block's texts is captured on every path that reaches it."""
    known = captured_before(flow)
    for block in flow.blocks:
        for field, text in _texts(block):
            for match in PLACEHOLDER.finditer(text):
                name = match.group(1)
                if name in CONTACT_VARIABLES or name in known[block.id]:
                    continue
                raise FlowInvalid(
                    f"{field} uses {{{{{name}}}}}, which no earlier question captures on"
                    " every path that reaches this block",
                    block.id,
                )


def captured_before(flow: FlowDefinition) -> dict[str, frozenset[str]]:
    """Per block, the variables captured on every path from the start (or the error path)
    to it: a must-analysis over the block graph, iterated to its fixed point."""
    entries = {flow.start} | ({flow.on_error} if flow.on_error else set())
    everything = frozenset(_all_captures(flow))
    # The error path can be entered from any block, before anything was captured.
    known: dict[str, frozenset[str]] = {
        block.id: frozenset() if block.id in entries else everything for block in flow.blocks
    }
    changed = True
    while changed:
        changed = False
        arriving: dict[str, list[frozenset[str]]] = {}
        for block in flow.blocks:
            for target, gained in _edges(block):
                arriving.setdefault(target, []).append(known[block.id] | gained)
        for block in flow.blocks:
            if block.id in entries:
                continue
            incoming = arriving.get(block.id, [])
            new = frozenset.intersection(*incoming) if incoming else frozenset()
            if new != known[block.id]:
                known[block.id] = new
                changed = True
    return known


def _all_captures(flow: FlowDefinition) -> Iterator[str]:
    for block in flow.blocks:
        if isinstance(block, QuestionBlock):
            yield from _captures(block)


def _captures(question: QuestionBlock) -> frozenset[str]:
    return frozenset({question.variable, f"{question.variable}{TITLE_SUFFIX}"})


def _edges(block: Block) -> Iterator[tuple[str, frozenset[str]]]:
    """The block's transitions, each with what taking it captures."""
    match block:
        case QuestionBlock():
            yield block.next, _captures(block)
            if block.fallback is not None:  # taken when no answer fitted: nothing captured
                yield block.fallback, frozenset()
        case ConditionBlock(rules=rules, default=default):
            for rule in rules:
                yield rule.next, frozenset()
            yield default, frozenset()
        case _:
            next_block = getattr(block, "next", None)
            if isinstance(next_block, str):
                yield next_block, frozenset()


def _texts(block: Block) -> Iterator[tuple[str, str]]:
    """The texts a block sends, by field: where a placeholder can appear."""
    for field in ("text", "retry_text"):
        text = getattr(block, field, None)
        if isinstance(text, str):
            yield field, text
