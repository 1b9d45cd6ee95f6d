"""Control characters in what people type: refused by the API's input types, by the
directory's decisions and by flow validation, with the place named."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from pydantic import BaseModel, ValidationError

from events.directory import (
    AddMember,
    CommandRejected,
    CreateGroup,
    CreateWorkspace,
    GroupCreated,
    MemberAdded,
    RenameGroup,
    UpdateMember,
    WorkspaceCreated,
)
from events.flow_language.grammar import FlowInvalid
from events.flow_language.publishing import check_publishable
from events.text_rules import control_character_problem, first_control_character
from services.directory.decide import (
    NumberState,
    WorkspaceState,
    decide_add_member,
    decide_create_group,
    decide_create_workspace,
    decide_rename_group,
    decide_update_member,
    evolve_workspace,
)
from services.gateway.inputs import Identifier, Name, Note, ReplyText
from tests.flow_samples import support_flow

pytestmark = pytest.mark.unit
WORKSPACE, ADMIN, AGENT, GROUP = UUID(int=1), UUID(int=2), UUID(int=3), UUID(int=7)
COMMAND_ID = UUID(int=99)
# Every control character (C0, DEL, C1) and a lone surrogate.
CONTROLS = [chr(c) for c in (*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0))] + ["\ud800"]


@pytest.mark.parametrize("character", CONTROLS)
def test_names_hold_no_control_character_at_all(character: str) -> None:
    found = first_control_character(f"An{character}a")
    assert found is not None
    assert (found.position, found.character) == (2, character)


@pytest.mark.parametrize("character", [c for c in CONTROLS if c not in "\n\t"])
def test_free_text_keeps_only_line_breaks_and_tabs(character: str) -> None:
    assert first_control_character("uno\ndos\ttres", free_text=True) is None
    assert first_control_character(f"uno{character}", free_text=True) is not None


def test_the_refusal_says_which_character_and_where() -> None:
    assert control_character_problem("Ven\x00tas") == (
        "contains a control character (U+0000) at position 3"
    )
    assert control_character_problem("ok\ud800") == (
        "contains a lone surrogate (U+D800) at position 2"
    )
    assert control_character_problem("Señor 名前 🙂") is None


class Inputs(BaseModel):
    name: Name | None = None
    text: ReplyText | None = None
    note: Note | None = None
    contact: Identifier | None = None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "Ana\x00"),
        ("name", "Ana\n"),  # refused before trimming, not quietly trimmed
        ("name", "\tAna"),
        ("text", "hola\x00"),
        ("text", "hola\r\n"),
        ("text", "\x1b[31m"),
        ("note", "\x07"),
        ("contact", "57\x00x"),
        ("contact", "57\u0085"),
    ],
)
def test_the_api_input_types_refuse_and_name_the_field(field: str, value: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Inputs.model_validate({field: value})
    [error] = refused.value.errors()
    assert error["loc"] == (field,)
    assert error["type"] == "control_character"


def test_the_api_input_types_keep_what_people_write() -> None:
    kept = Inputs.model_validate(
        {"name": "  José Ñúñez ", "text": "Hola,\n\tgracias 🙏", "note": "", "contact": "573001"}
    )
    assert (kept.name, kept.text, kept.note) == ("José Ñúñez", "Hola,\n\tgracias 🙏", "")
    with pytest.raises(ValidationError, match="blank"):
        Inputs.model_validate({"text": " \n "})


def acme() -> WorkspaceState:
    state = WorkspaceState(WORKSPACE)
    for event in (
        WorkspaceCreated(workspace_id=WORKSPACE, name="Acme", time_zone="UTC"),
        MemberAdded(
            workspace_id=WORKSPACE,
            member_id=ADMIN,
            name="Ana",
            role="admin",
            capacity=10,
        ),
        GroupCreated(workspace_id=WORKSPACE, group_id=GROUP, name="Ventas"),
    ):
        state = evolve_workspace(state, event)
    return state


def reason_of(events: list[Any]) -> str:
    [rejected] = events
    assert isinstance(rejected, CommandRejected)
    return rejected.reason


def test_the_directory_refuses_a_member_or_group_named_with_a_control_character() -> None:
    """Whatever sent the command (the API refuses first), the directory decides no ghost."""
    add = AddMember(
        workspace_id=WORKSPACE,
        member_id=AGENT,
        name="Be\x00to",
        role="agent",
        capacity=3,
        token_hash="b" * 64,
    )
    assert "control character (U+0000)" in reason_of(decide_add_member(add, COMMAND_ID, acme()))
    rename = UpdateMember(
        workspace_id=WORKSPACE, member_id=ADMIN, name="Ana\x1b", role=None, capacity=None
    )
    assert "U+001B" in reason_of(decide_update_member(rename, COMMAND_ID, acme()))
    group = CreateGroup(
        workspace_id=WORKSPACE, group_id=UUID(int=8), name="So\x7fporte", created_by=ADMIN
    )
    assert "U+007F" in reason_of(decide_create_group(group, COMMAND_ID, acme()))
    renamed = RenameGroup(workspace_id=WORKSPACE, group_id=GROUP, name="Ven\ntas")
    assert "U+000A" in reason_of(decide_rename_group(renamed, COMMAND_ID, acme()))


@pytest.mark.parametrize(("field", "value"), [("name", "Ac\x00me"), ("admin_name", "Ana\x00")])
def test_the_directory_refuses_a_workspace_named_with_a_control_character(
    field: str, value: str
) -> None:
    command = CreateWorkspace(
        **{  # type: ignore[arg-type]
            "workspace_id": UUID(int=10),
            "name": "Acme",
            "time_zone": "UTC",
            "phone_number_id": "4801",
            "admin_member_id": UUID(int=11),
            "admin_name": "Ana",
            "admin_token_hash": "a" * 64,
            "agent_conversations": False,
            field: value,
        }
    )
    events = decide_create_workspace(
        command, COMMAND_ID, WorkspaceState(UUID(int=10)), NumberState("4801")
    )
    assert "U+0000" in reason_of(events)


def _with(flow: dict[str, Any], block: str, **fields: Any) -> dict[str, Any]:
    flow["blocks"] = [{**b, **fields} if b["id"] == block else b for b in flow["blocks"]]
    return flow


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (_with(support_flow(GROUP), "greet", text="Hola\x00"), "block 'greet': text: contains a"),
        (_with(support_flow(GROUP), "ask", retry_text="\x1b"), "block 'ask': retry_text:"),
        ({**support_flow(GROUP), "name": "Sup\x00port"}, "name: contains a control character"),
        (
            _with(support_flow(GROUP), "ask", buttons=[{"id": "b\x00", "title": "B"}]),
            "block 'ask': buttons[0].id: contains a control character (U+0000)",
        ),
        (
            _with(support_flow(GROUP), "ask", buttons=[{"id": "b", "title": "Sí\n"}]),
            "block 'ask': buttons[0].title: contains a control character (U+000A)",
        ),
    ],
)
def test_a_flow_with_a_control_character_is_refused_naming_the_block(
    document: dict[str, Any], message: str
) -> None:
    with pytest.raises(FlowInvalid) as refused:
        check_publishable(document, members=None, groups=None)
    assert message in str(refused.value)


def test_a_flow_keeps_line_breaks_in_its_texts() -> None:
    document = _with(support_flow(GROUP), "greet", text="Hola\n\t{{contact.name}}")
    flow = check_publishable(document, members=None, groups=None)
    assert flow.block("greet").text == "Hola\n\t{{contact.name}}"  # type: ignore[union-attr]
