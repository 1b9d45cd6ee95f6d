"""Given a workspace and a number, when CreateWorkspace, then created or rejected."""

from __future__ import annotations

from uuid import UUID

import pytest

from events.directory import (
    BusinessNumberConnected,
    CommandRejected,
    CreateGroup,
    CreateWorkspace,
    GroupCreated,
    MemberAdded,
    WorkspaceCreated,
)
from services.directory.decide import (
    NumberState,
    WorkspaceState,
    decide_create_group,
    decide_create_workspace,
    evolve_number,
    evolve_workspace,
)

pytestmark = pytest.mark.unit
COMMAND_ID = UUID(int=99)


def command(**overrides: object) -> CreateWorkspace:
    fields: dict[str, object] = {
        "workspace_id": UUID(int=1),
        "name": "Acme",
        "time_zone": "America/Bogota",
        "phone_number_id": "4801",
        "admin_member_id": UUID(int=2),
        "admin_name": "Ana",
        "admin_token_hash": "ab" * 32,
    }
    fields.update(overrides)
    return CreateWorkspace(**fields)  # type: ignore[arg-type]


def test_creates_workspace_number_and_admin() -> None:
    events = decide_create_workspace(
        command(), COMMAND_ID, WorkspaceState(UUID(int=1)), NumberState("4801")
    )
    assert [type(e) for e in events] == [WorkspaceCreated, BusinessNumberConnected, MemberAdded]
    admin = events[2]
    assert isinstance(admin, MemberAdded)
    assert (admin.role, admin.token_hash) == ("admin", "ab" * 32)


def test_a_number_owned_elsewhere_is_rejected_with_the_owner() -> None:
    number = evolve_number(
        NumberState("4801"),
        BusinessNumberConnected(workspace_id=UUID(int=5), phone_number_id="4801"),
    )
    [rejected] = decide_create_workspace(command(), COMMAND_ID, WorkspaceState(UUID(int=1)), number)
    assert isinstance(rejected, CommandRejected)
    assert rejected.command_id == COMMAND_ID
    assert "4801" in rejected.reason
    assert str(UUID(int=5)) in rejected.reason


def test_an_unknown_time_zone_is_rejected() -> None:
    [rejected] = decide_create_workspace(
        command(time_zone="Mars/Olympus"),
        COMMAND_ID,
        WorkspaceState(UUID(int=1)),
        NumberState("4801"),
    )
    assert isinstance(rejected, CommandRejected)
    assert "Mars/Olympus" in rejected.reason


def test_the_same_command_again_changes_nothing() -> None:
    events = decide_create_workspace(
        command(), COMMAND_ID, WorkspaceState(UUID(int=1)), NumberState("4801")
    )
    workspace, number = WorkspaceState(UUID(int=1)), NumberState("4801")
    for event in events:
        workspace, number = evolve_workspace(workspace, event), evolve_number(number, event)
    assert decide_create_workspace(command(), COMMAND_ID, workspace, number) == []
    [rejected] = decide_create_workspace(command(name="Other"), COMMAND_ID, workspace, number)
    assert isinstance(rejected, CommandRejected)


def test_groups_have_unique_names_and_repeat_as_nothing() -> None:
    workspace = WorkspaceState(UUID(int=1), created=True)
    create = CreateGroup(
        workspace_id=UUID(int=1), group_id=UUID(int=7), name="Ventas", created_by=UUID(int=2)
    )
    [created] = decide_create_group(create, COMMAND_ID, workspace)
    assert isinstance(created, GroupCreated)
    workspace = evolve_workspace(workspace, created)
    assert decide_create_group(create, COMMAND_ID, workspace) == []
    [rejected] = decide_create_group(
        create.model_copy(update={"group_id": UUID(int=8), "name": " ventas "}),
        COMMAND_ID,
        workspace,
    )
    assert isinstance(rejected, CommandRejected)
    assert "already exists" in rejected.reason
