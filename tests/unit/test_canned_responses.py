"""Canned responses: the directory's decisions (given the workspace's events, when a command,
then events or one rejection saying why) and how variables are filled."""

from __future__ import annotations

from uuid import UUID

import pytest

from events.base import Payload
from events.canned_responses import (
    CannedResponseCreated,
    CannedResponseDeleted,
    CannedResponseUpdated,
    CreateCannedResponse,
    DeleteCannedResponse,
    UpdateCannedResponse,
    filled,
    unknown_variables,
    variables_in,
)
from events.directory import CommandRejected, MemberAdded, WorkspaceCreated
from services.directory.decide import (
    WorkspaceState,
    decide_create_canned_response,
    decide_delete_canned_response,
    decide_update_canned_response,
    evolve_workspace,
)

pytestmark = pytest.mark.unit
WORKSPACE, ADMIN = UUID(int=1), UUID(int=2)
HOLA, BYE = UUID(int=10), UUID(int=11)
COMMAND_ID = UUID(int=99)


def acme(*events: Payload) -> WorkspaceState:
    state = WorkspaceState(WORKSPACE)
    for event in (
        WorkspaceCreated(workspace_id=WORKSPACE, name="Acme", time_zone="UTC"),
        MemberAdded(workspace_id=WORKSPACE, member_id=ADMIN, name="Ana", role="admin", capacity=5),
        *events,
    ):
        state = evolve_workspace(state, event)
    return state


def create(
    canned_id: UUID = HOLA, shortcut: str = "hola", text: str = "Hola"
) -> CreateCannedResponse:
    return CreateCannedResponse(
        workspace_id=WORKSPACE,
        canned_response_id=canned_id,
        shortcut=shortcut,
        text=text,
        created_by=ADMIN,
    )


def created(
    canned_id: UUID = HOLA, shortcut: str = "hola", text: str = "Hola"
) -> CannedResponseCreated:
    return CannedResponseCreated(
        workspace_id=WORKSPACE,
        canned_response_id=canned_id,
        shortcut=shortcut,
        text=text,
        created_by=ADMIN,
    )


def update(
    canned_id: UUID = HOLA, shortcut: str = "hola", text: str = "Hi"
) -> UpdateCannedResponse:
    return UpdateCannedResponse(
        workspace_id=WORKSPACE,
        canned_response_id=canned_id,
        shortcut=shortcut,
        text=text,
        updated_by=ADMIN,
    )


def delete(canned_id: UUID = HOLA) -> DeleteCannedResponse:
    return DeleteCannedResponse(
        workspace_id=WORKSPACE, canned_response_id=canned_id, deleted_by=ADMIN
    )


def reason_of(events: list[Payload]) -> str:
    [rejected] = events
    assert isinstance(rejected, CommandRejected)
    assert rejected.command_id == COMMAND_ID
    return rejected.reason


def test_a_response_is_created_with_its_shortcut_and_text_trimmed() -> None:
    events = decide_create_canned_response(
        create(shortcut=" hola ", text="  Hola {{contact.name}}, soy {{ agent.name }}\n"),
        COMMAND_ID,
        acme(),
    )
    assert events == [created(text="Hola {{contact.name}}, soy {{ agent.name }}")]


def test_the_same_create_delivered_again_changes_nothing() -> None:
    assert decide_create_canned_response(create(), COMMAND_ID, acme(created())) == []


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        (create(shortcut="con espacio"), "a shortcut is 1 to 32 letters"),
        (create(shortcut="-hola"), "starting with a letter or a digit"),
        (create(shortcut="x" * 33), "a shortcut is 1 to 32"),
        (create(text="   "), "a canned response needs some text"),
        (create(text="a\x00b"), "the text contains a control character (U+0000)"),
        (create(text="x" * 4097), "at most 4096 characters"),
        (create(text="Hola {{cliente.nombre}}"), "unknown variable {{cliente.nombre}}"),
    ],
)
def test_create_checks_shortcut_text_and_variables(
    command: CreateCannedResponse, reason: str
) -> None:
    assert reason in reason_of(decide_create_canned_response(command, COMMAND_ID, acme()))


def test_a_shortcut_is_unique_in_the_workspace_whatever_the_case() -> None:
    state = acme(created())
    reason = reason_of(decide_create_canned_response(create(BYE, "HOLA"), COMMAND_ID, state))
    assert reason == "the shortcut /HOLA is taken by another canned response"


def test_a_deleted_response_frees_its_shortcut() -> None:
    deleted = CannedResponseDeleted(
        workspace_id=WORKSPACE, canned_response_id=HOLA, deleted_by=ADMIN
    )
    state = acme(created(), deleted)
    assert decide_create_canned_response(create(BYE), COMMAND_ID, state) == [created(BYE)]


def test_update_keeps_its_own_shortcut_and_refuses_another_ones() -> None:
    state = acme(created(), created(BYE, "chao"))
    assert decide_update_canned_response(update(text="Hi"), COMMAND_ID, state) == [
        CannedResponseUpdated(
            workspace_id=WORKSPACE,
            canned_response_id=HOLA,
            shortcut="hola",
            text="Hi",
            updated_by=ADMIN,
        )
    ]
    assert "taken" in reason_of(
        decide_update_canned_response(update(shortcut="Chao"), COMMAND_ID, state)
    )


def test_update_and_delete_need_a_live_response_of_this_workspace() -> None:
    assert reason_of(decide_update_canned_response(update(), COMMAND_ID, acme())) == (
        f"no canned response {HOLA} here"
    )
    state = acme(created())
    [deleted] = decide_delete_canned_response(delete(), COMMAND_ID, state)
    assert deleted == CannedResponseDeleted(
        workspace_id=WORKSPACE, canned_response_id=HOLA, deleted_by=ADMIN
    )
    after = evolve_workspace(state, deleted)
    assert reason_of(decide_delete_canned_response(delete(), COMMAND_ID, after)) == (
        f"canned response {HOLA} is deleted"
    )
    assert "is deleted" in reason_of(decide_update_canned_response(update(), COMMAND_ID, after))


def test_create_needs_the_workspace() -> None:
    reason = reason_of(
        decide_create_canned_response(create(), COMMAND_ID, WorkspaceState(WORKSPACE))
    )
    assert reason == f"workspace {WORKSPACE} does not exist"


def test_variables_are_found_and_filled_and_the_unknown_left_as_written() -> None:
    text = "Hola {{contact.name}} ({{ contact.phone }}), soy {{agent.name}} {{otro}}"
    assert variables_in(text) == ["contact.name", "contact.phone", "agent.name", "otro"]
    assert unknown_variables(text) == ["otro"]
    values = {"contact.name": "Carla", "contact.phone": "573001112233", "agent.name": "Beto"}
    assert filled(text, values) == "Hola Carla (573001112233), soy Beto {{otro}}"
    # A value is inserted as it is: braces in a customer's name are not read as variables.
    assert filled("{{contact.name}}!", {"contact.name": "{{agent.name}}"}) == "{{agent.name}}!"
