"""Directory decisions: given the workspace's (and member's) events, when a command, then
events or one rejection saying why."""

from __future__ import annotations

from uuid import UUID

import pytest
from pydantic import ValidationError

from events.base import Payload
from events.directory import (
    AddGroupMember,
    AddMember,
    AgentStatus,
    AgentStatusChanged,
    BusinessNumberConnected,
    CommandRejected,
    CreateGroup,
    CreateWorkspace,
    DeactivateMember,
    DeleteGroup,
    GroupCreated,
    GroupDeleted,
    GroupMemberAdded,
    GroupMemberRemoved,
    GroupRenamed,
    MemberAdded,
    MemberCredentialIssued,
    MemberDeactivated,
    MemberUpdated,
    NotificationSettingsChanged,
    RemoveGroupMember,
    RenameGroup,
    SetAgentStatus,
    SetNotificationSettings,
    UpdateMember,
    WorkspaceCreated,
)
from services.directory.decide import (
    MemberStreamState,
    NumberState,
    WorkspaceState,
    decide_add_group_member,
    decide_add_member,
    decide_create_group,
    decide_create_workspace,
    decide_deactivate_member,
    decide_delete_group,
    decide_remove_group_member,
    decide_rename_group,
    decide_set_agent_status,
    decide_set_notification_settings,
    decide_update_member,
    evolve_member,
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
        "agent_conversations": False,
    }
    fields.update(overrides)
    return CreateWorkspace(**fields)  # type: ignore[arg-type]


def test_creates_workspace_number_and_admin() -> None:
    events = decide_create_workspace(
        command(), COMMAND_ID, WorkspaceState(UUID(int=1)), NumberState("4801")
    )
    assert [type(e) for e in events] == [
        WorkspaceCreated,
        BusinessNumberConnected,
        MemberAdded,
        MemberCredentialIssued,
    ]
    admin, credential = events[2:]
    assert isinstance(admin, MemberAdded)
    assert admin.role == "admin"
    assert credential == MemberCredentialIssued(
        workspace_id=UUID(int=1), member_id=UUID(int=2), token_hash="ab" * 32, reason="added"
    )


def test_a_number_owned_elsewhere_is_rejected_with_the_owner() -> None:
    number = evolve_number(
        NumberState("4801"),
        BusinessNumberConnected(
            workspace_id=UUID(int=5), phone_number_id="4801", agent_conversations=True
        ),
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


# Members, groups, statuses and notification settings.

WORKSPACE = UUID(int=1)
ADMIN, AGENT, OTHER_ADMIN = UUID(int=2), UUID(int=3), UUID(int=4)
GROUP, OTHER_GROUP = UUID(int=7), UUID(int=8)
STRANGER = UUID(int=66)  # a member or group of another workspace


def acme(*events: Payload) -> WorkspaceState:
    """Acme with its admin Ana, the agent Beto in group Ventas, and ``events`` after that."""
    state = WorkspaceState(WORKSPACE)
    history: list[Payload] = [
        WorkspaceCreated(workspace_id=WORKSPACE, name="Acme", time_zone="UTC"),
        MemberAdded(
            workspace_id=WORKSPACE,
            member_id=ADMIN,
            name="Ana",
            role="admin",
            capacity=10,
        ),
        MemberAdded(
            workspace_id=WORKSPACE,
            member_id=AGENT,
            name="Beto",
            role="agent",
            capacity=3,
        ),
        GroupCreated(workspace_id=WORKSPACE, group_id=GROUP, name="Ventas"),
        GroupMemberAdded(workspace_id=WORKSPACE, group_id=GROUP, member_id=AGENT),
        *events,
    ]
    for event in history:
        state = evolve_workspace(state, event)
    return state


def reason_of(events: list[Payload]) -> str:
    [rejected] = events
    assert isinstance(rejected, CommandRejected)
    assert rejected.command_id == COMMAND_ID
    return rejected.reason


def add_member(**overrides: object) -> AddMember:
    fields: dict[str, object] = {
        "workspace_id": WORKSPACE,
        "member_id": UUID(int=20),
        "name": " Carla ",
        "role": "agent",
        "capacity": 4,
        "token_hash": "c" * 64,
    }
    fields.update(overrides)
    return AddMember(**fields)  # type: ignore[arg-type]


def update(member_id: UUID = AGENT, **overrides: object) -> UpdateMember:
    fields: dict[str, object] = {"name": None, "role": None, "capacity": None}
    fields.update(overrides)
    return UpdateMember(workspace_id=WORKSPACE, member_id=member_id, **fields)  # type: ignore[arg-type]


def test_add_member_adds_it_once() -> None:
    [added, credential] = decide_add_member(add_member(), COMMAND_ID, acme())
    assert added == MemberAdded(
        workspace_id=WORKSPACE,
        member_id=UUID(int=20),
        name="Carla",
        role="agent",
        capacity=4,
    )
    # The token's hash goes apart from the member (to the restricted credentials topic).
    assert credential == MemberCredentialIssued(
        workspace_id=WORKSPACE, member_id=UUID(int=20), token_hash="c" * 64, reason="added"
    )
    state = evolve_workspace(evolve_workspace(acme(), added), credential)
    assert UUID(int=20) in state.members
    assert decide_add_member(add_member(), COMMAND_ID, state) == []
    assert "already exists" in reason_of(
        decide_add_member(add_member(name="Dora"), COMMAND_ID, state)
    )


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"name": "  "}, "non-empty name"),
        ({"capacity": 0}, "capacity must be between 1 and 100 (got 0)"),
        ({"capacity": 101}, "capacity must be between 1 and 100 (got 101)"),
    ],
)
def test_add_member_checks_its_fields(overrides: dict[str, object], reason: str) -> None:
    assert reason in reason_of(decide_add_member(add_member(**overrides), COMMAND_ID, acme()))


def test_add_member_needs_the_workspace() -> None:
    reason = reason_of(decide_add_member(add_member(), COMMAND_ID, WorkspaceState(WORKSPACE)))
    assert reason == f"workspace {WORKSPACE} does not exist"


def test_a_role_outside_admin_and_agent_cannot_even_be_sent() -> None:
    with pytest.raises(ValidationError):
        add_member(role="owner")


def test_update_member_carries_all_three_fields_as_they_now_are() -> None:
    [updated] = decide_update_member(update(capacity=5), COMMAND_ID, acme())
    assert updated == MemberUpdated(
        workspace_id=WORKSPACE, member_id=AGENT, name="Beto", role="agent", capacity=5
    )
    [promoted] = decide_update_member(update(name=" Bea ", role="admin"), COMMAND_ID, acme())
    assert isinstance(promoted, MemberUpdated)
    assert (promoted.name, promoted.role, promoted.capacity) == ("Bea", "admin", 3)
    assert evolve_workspace(acme(), promoted).active_admins() == {ADMIN, AGENT}


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        (update(name=""), "a member needs a non-empty name"),
        (update(capacity=0), "capacity must be between 1 and 100 (got 0)"),
        (update(capacity=1000), "capacity must be between 1 and 100 (got 1000)"),
        (update(ADMIN, role="agent"), "the workspace needs at least one active admin"),
        (update(STRANGER, capacity=2), f"no member {STRANGER} here"),
    ],
)
def test_update_member_refusals(command: UpdateMember, reason: str) -> None:
    assert reason_of(decide_update_member(command, COMMAND_ID, acme())) == reason


def test_an_admin_may_be_demoted_while_another_admin_is_active() -> None:
    second = MemberAdded(
        workspace_id=WORKSPACE,
        member_id=OTHER_ADMIN,
        name="Olga",
        role="admin",
        capacity=5,
    )
    [demoted] = decide_update_member(update(ADMIN, role="agent"), COMMAND_ID, acme(second))
    assert isinstance(demoted, MemberUpdated)
    # ... but not when the other one is deactivated: it counts only while active.
    gone = MemberDeactivated(workspace_id=WORKSPACE, member_id=OTHER_ADMIN)
    reason = reason_of(
        decide_update_member(update(ADMIN, role="agent"), COMMAND_ID, acme(second, gone))
    )
    assert reason == "the workspace needs at least one active admin"


def test_deactivate_member_once_and_never_the_last_admin() -> None:
    [deactivated] = decide_deactivate_member(
        DeactivateMember(workspace_id=WORKSPACE, member_id=AGENT), COMMAND_ID, acme()
    )
    assert deactivated == MemberDeactivated(workspace_id=WORKSPACE, member_id=AGENT)
    state = acme(deactivated)
    assert AGENT not in state.members
    again = DeactivateMember(workspace_id=WORKSPACE, member_id=AGENT)
    assert reason_of(decide_deactivate_member(again, COMMAND_ID, state)) == (
        f"member {AGENT} is already deactivated"
    )
    last = DeactivateMember(workspace_id=WORKSPACE, member_id=ADMIN)
    assert reason_of(decide_deactivate_member(last, COMMAND_ID, state)) == (
        "the workspace needs at least one active admin"
    )
    foreign = DeactivateMember(workspace_id=WORKSPACE, member_id=STRANGER)
    assert reason_of(decide_deactivate_member(foreign, COMMAND_ID, state)) == (
        f"no member {STRANGER} here"
    )


def test_a_deactivated_member_cannot_be_updated() -> None:
    state = acme(MemberDeactivated(workspace_id=WORKSPACE, member_id=AGENT))
    assert reason_of(decide_update_member(update(capacity=4), COMMAND_ID, state)) == (
        f"member {AGENT} is deactivated"
    )


def rename(name: str, group_id: UUID = GROUP) -> RenameGroup:
    return RenameGroup(workspace_id=WORKSPACE, group_id=group_id, name=name)


def test_rename_group_keeps_names_unique_among_live_groups() -> None:
    soporte = GroupCreated(workspace_id=WORKSPACE, group_id=OTHER_GROUP, name="Soporte")
    state = acme(soporte)
    [renamed] = decide_rename_group(rename(" Ventas Norte "), COMMAND_ID, state)
    assert renamed == GroupRenamed(workspace_id=WORKSPACE, group_id=GROUP, name="Ventas Norte")
    assert "ventas norte" in evolve_workspace(state, renamed).group_names
    # Its own name in another spelling is fine; another live group's name is not.
    assert isinstance(decide_rename_group(rename("VENTAS"), COMMAND_ID, state)[0], GroupRenamed)
    assert reason_of(decide_rename_group(rename("soporte"), COMMAND_ID, state)) == (
        "a group named 'soporte' already exists"
    )
    assert reason_of(decide_rename_group(rename(" "), COMMAND_ID, state)) == (
        "a group needs a non-empty name"
    )
    # A deleted group frees its name, and cannot be renamed itself.
    deleted = acme(soporte, GroupDeleted(workspace_id=WORKSPACE, group_id=OTHER_GROUP))
    assert isinstance(decide_rename_group(rename("Soporte"), COMMAND_ID, deleted)[0], GroupRenamed)
    assert reason_of(decide_rename_group(rename("X", OTHER_GROUP), COMMAND_ID, deleted)) == (
        f"group {OTHER_GROUP} is deleted"
    )
    assert reason_of(decide_rename_group(rename("X", STRANGER), COMMAND_ID, state)) == (
        f"no group {STRANGER} here"
    )


def test_delete_group_once_and_its_name_is_free_again() -> None:
    delete = DeleteGroup(workspace_id=WORKSPACE, group_id=GROUP)
    [deleted] = decide_delete_group(delete, COMMAND_ID, acme())
    assert deleted == GroupDeleted(workspace_id=WORKSPACE, group_id=GROUP)
    state = acme(deleted)
    assert GROUP not in state.groups
    assert reason_of(decide_delete_group(delete, COMMAND_ID, state)) == f"group {GROUP} is deleted"
    foreign = DeleteGroup(workspace_id=WORKSPACE, group_id=STRANGER)
    assert reason_of(decide_delete_group(foreign, COMMAND_ID, state)) == f"no group {STRANGER} here"
    create = CreateGroup(
        workspace_id=WORKSPACE, group_id=OTHER_GROUP, name="ventas", created_by=ADMIN
    )
    assert isinstance(decide_create_group(create, COMMAND_ID, state)[0], GroupCreated)
    # The deleted group's own CreateGroup delivered again still changes nothing.
    first = CreateGroup(workspace_id=WORKSPACE, group_id=GROUP, name="Ventas", created_by=ADMIN)
    assert decide_create_group(first, COMMAND_ID, state) == []


def test_add_group_member_rules() -> None:
    add = AddGroupMember(workspace_id=WORKSPACE, group_id=GROUP, member_id=ADMIN)
    [added] = decide_add_group_member(add, COMMAND_ID, acme())
    assert added == GroupMemberAdded(workspace_id=WORKSPACE, group_id=GROUP, member_id=ADMIN)
    assert reason_of(decide_add_group_member(add, COMMAND_ID, acme(added))) == (
        f"member {ADMIN} is already a member of group {GROUP}"
    )
    refusals = {
        (GROUP, STRANGER): f"no member {STRANGER} here",
        (STRANGER, ADMIN): f"no group {STRANGER} here",
    }
    for (group, member), reason in refusals.items():
        command = AddGroupMember(workspace_id=WORKSPACE, group_id=group, member_id=member)
        assert reason_of(decide_add_group_member(command, COMMAND_ID, acme())) == reason
    gone = acme(MemberDeactivated(workspace_id=WORKSPACE, member_id=ADMIN))
    assert reason_of(decide_add_group_member(add, COMMAND_ID, gone)) == (
        f"member {ADMIN} is deactivated"
    )
    deleted = acme(GroupDeleted(workspace_id=WORKSPACE, group_id=GROUP))
    assert reason_of(decide_add_group_member(add, COMMAND_ID, deleted)) == (
        f"group {GROUP} is deleted"
    )


def test_remove_group_member_only_of_a_member() -> None:
    remove = RemoveGroupMember(workspace_id=WORKSPACE, group_id=GROUP, member_id=AGENT)
    [removed] = decide_remove_group_member(remove, COMMAND_ID, acme())
    assert removed == GroupMemberRemoved(workspace_id=WORKSPACE, group_id=GROUP, member_id=AGENT)
    state = acme(removed)
    assert AGENT not in state.group_states[GROUP].members
    assert reason_of(decide_remove_group_member(remove, COMMAND_ID, state)) == (
        f"member {AGENT} is not in group {GROUP}"
    )
    foreign = RemoveGroupMember(workspace_id=WORKSPACE, group_id=STRANGER, member_id=AGENT)
    assert reason_of(decide_remove_group_member(foreign, COMMAND_ID, acme())) == (
        f"no group {STRANGER} here"
    )


def status(value: AgentStatus, member: UUID = AGENT) -> SetAgentStatus:
    return SetAgentStatus(
        workspace_id=WORKSPACE, member_id=member, status=value, reason="set by the agent"
    )


def test_agent_status_changes_say_what_it_was() -> None:
    member = MemberStreamState(AGENT)
    assert member.status == "offline"
    [changed] = decide_set_agent_status(status("available"), COMMAND_ID, acme(), member)
    assert changed == AgentStatusChanged(
        workspace_id=WORKSPACE,
        member_id=AGENT,
        status="available",
        previous="offline",
        reason="set by the agent",
    )
    member = evolve_member(member, changed)
    assert (
        reason_of(decide_set_agent_status(status("available"), COMMAND_ID, acme(), member))
        == "already available"
    )
    [away] = decide_set_agent_status(status("unavailable"), COMMAND_ID, acme(), member)
    assert isinstance(away, AgentStatusChanged)
    assert (away.previous, away.status) == ("available", "unavailable")


def test_agent_status_needs_an_active_member_of_this_workspace() -> None:
    gone = acme(MemberDeactivated(workspace_id=WORKSPACE, member_id=AGENT))
    member = MemberStreamState(AGENT)
    assert reason_of(decide_set_agent_status(status("available"), COMMAND_ID, gone, member)) == (
        f"member {AGENT} is deactivated"
    )
    stranger = MemberStreamState(STRANGER)
    assert (
        reason_of(
            decide_set_agent_status(status("available", STRANGER), COMMAND_ID, acme(), stranger)
        )
        == f"no member {STRANGER} here"
    )


def test_notification_settings() -> None:
    command = SetNotificationSettings(
        workspace_id=WORKSPACE, member_id=AGENT, desktop=False, sound=True
    )
    [changed] = decide_set_notification_settings(command, COMMAND_ID, acme())
    assert changed == NotificationSettingsChanged(
        workspace_id=WORKSPACE, member_id=AGENT, desktop=False, sound=True
    )
    member = evolve_member(MemberStreamState(AGENT), changed)
    assert (member.desktop, member.sound) == (False, True)
    foreign = command.model_copy(update={"member_id": STRANGER})
    assert reason_of(decide_set_notification_settings(foreign, COMMAND_ID, acme())) == (
        f"no member {STRANGER} here"
    )
    gone = acme(MemberDeactivated(workspace_id=WORKSPACE, member_id=AGENT))
    assert reason_of(decide_set_notification_settings(command, COMMAND_ID, gone)) == (
        f"member {AGENT} is deactivated"
    )


def test_flows_may_name_only_active_members_and_live_groups() -> None:
    state = acme(
        MemberDeactivated(workspace_id=WORKSPACE, member_id=AGENT),
        GroupDeleted(workspace_id=WORKSPACE, group_id=GROUP),
    )
    assert state.members == {ADMIN}
    assert state.groups == frozenset()
    assert set(state.member_states) == {ADMIN, AGENT}
