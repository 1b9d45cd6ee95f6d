"""Members and groups as an admin manages them, and what agents may and may not do."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from services.settings import Settings
from services.workspaces import create_workspace
from tests.harness import consumers, eventually, gateway_client

pytestmark = pytest.mark.integration


@pytest.fixture
async def admin(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    async with consumers(settings), gateway_client(settings) as client:
        workspace = await create_workspace(settings, name="Acme", phone_number_id="480100000001")
        yield client, {"Authorization": f"Bearer {workspace['admin_token']}"}


async def add(client: httpx.AsyncClient, auth: dict[str, str], **body: Any) -> dict[str, Any]:
    created = await client.post("/api/members", json=body, headers=auth)
    assert created.status_code == 201, created.text
    found: dict[str, Any] = created.json()
    return found


async def test_members_are_created_changed_and_deactivated(
    admin: tuple[httpx.AsyncClient, dict[str, str]],
) -> None:
    client, auth = admin
    ana = await add(client, auth, name="Ana", role="agent", capacity=3)
    ana_auth = {"Authorization": f"Bearer {ana['token']}"}

    me = await client.get("/api/me", headers=ana_auth)
    assert me.status_code == 200, me.text
    assert (me.json()["name"], me.json()["role"], me.json()["capacity"]) == ("Ana", "agent", 3)
    assert me.json()["status"] == "offline"  # no session yet
    assert "token" not in me.text
    assert "token_hash" not in me.text

    # An agent acts as an agent only.
    assert (
        await client.post("/api/members", json={"name": "X"}, headers=ana_auth)
    ).status_code == 403
    assert (
        await client.post("/api/groups", json={"name": "X"}, headers=ana_auth)
    ).status_code == 403

    changed = await client.patch(
        f"/api/members/{ana['member_id']}", json={"capacity": 7, "name": "Ana M."}, headers=auth
    )
    assert changed.status_code == 200, changed.text
    me = await client.get("/api/me", headers=ana_auth)
    assert (me.json()["name"], me.json()["capacity"]) == ("Ana M.", 7)

    status = await client.put("/api/me/status", json={"status": "available"}, headers=ana_auth)
    assert status.status_code == 200, status.text
    notify = await client.put(
        "/api/me/notifications", json={"desktop": False, "sound": True}, headers=ana_auth
    )
    assert notify.status_code == 200, notify.text
    me = await client.get("/api/me", headers=ana_auth)
    assert (me.json()["status"], me.json()["desktop_notifications"]) == ("available", False)
    assert me.json()["sound_notifications"] is True

    bad = await client.put("/api/me/status", json={"status": "busy"}, headers=ana_auth)
    assert bad.status_code == 422
    assert (
        await client.post("/api/members", json={"name": "Y", "capacity": 0}, headers=auth)
    ).status_code == 422
    assert (
        await client.post("/api/members", json={"name": "Y", "role": "owner"}, headers=auth)
    ).status_code == 422

    gone = await client.delete(f"/api/members/{ana['member_id']}", headers=auth)
    assert gone.status_code == 200, gone.text
    assert (await client.get("/api/me", headers=ana_auth)).status_code == 401
    listed = await client.get("/api/members", headers=auth)
    [row] = [m for m in listed.json()["members"] if m["member_id"] == ana["member_id"]]
    assert row["active"] is False


async def test_the_last_admin_stays(admin: tuple[httpx.AsyncClient, dict[str, str]]) -> None:
    client, auth = admin
    me = (await client.get("/api/me", headers=auth)).json()
    refused = await client.delete(f"/api/members/{me['member_id']}", headers=auth)
    assert refused.status_code == 422
    assert "admin" in refused.json()["detail"]
    demoted = await client.patch(
        f"/api/members/{me['member_id']}", json={"role": "agent"}, headers=auth
    )
    assert demoted.status_code == 422
    second = await add(client, auth, name="Bea", role="admin", capacity=2)
    assert (
        await client.patch(f"/api/members/{me['member_id']}", json={"role": "agent"}, headers=auth)
    ).status_code == 200
    assert second["role"] == "admin"


async def test_groups_are_renamed_staffed_and_deleted(
    admin: tuple[httpx.AsyncClient, dict[str, str]],
) -> None:
    client, auth = admin
    ana = await add(client, auth, name="Ana", role="agent", capacity=3)
    created = await client.post("/api/groups", json={"name": "Ventas"}, headers=auth)
    assert created.status_code == 201, created.text
    group = created.json()["group_id"]
    other = await client.post("/api/groups", json={"name": "Soporte"}, headers=auth)

    renamed = await client.patch(f"/api/groups/{group}", json={"name": "Sales"}, headers=auth)
    assert renamed.status_code == 200, renamed.text
    clash = await client.patch(f"/api/groups/{group}", json={"name": "soporte"}, headers=auth)
    assert clash.status_code == 422
    assert "exists" in clash.json()["detail"]

    joined = await client.put(f"/api/groups/{group}/members/{ana['member_id']}", headers=auth)
    assert joined.status_code == 200, joined.text
    again = await client.put(f"/api/groups/{group}/members/{ana['member_id']}", headers=auth)
    assert again.status_code == 200  # PUT is idempotent
    roster = await client.get(f"/api/groups/{group}/roster", headers=auth)
    assert [m["name"] for m in roster.json()["members"]] == ["Ana"]
    assert roster.json()["group"]["name"] == "Sales"

    ana_auth = {"Authorization": f"Bearer {ana['token']}"}
    assert (await client.get(f"/api/groups/{group}/roster", headers=ana_auth)).status_code == 200
    assert (
        await client.get(f"/api/groups/{other.json()['group_id']}/roster", headers=ana_auth)
    ).status_code == 403

    left = await client.delete(f"/api/groups/{group}/members/{ana['member_id']}", headers=auth)
    assert left.status_code == 200, left.text
    assert (
        await client.delete(f"/api/groups/{group}/members/{ana['member_id']}", headers=auth)
    ).status_code == 404

    deleted = await client.delete(f"/api/groups/{group}", headers=auth)
    assert deleted.status_code == 200, deleted.text
    names = await eventually(lambda: _group_names(client, auth), lambda found: "Sales" not in found)
    assert names == ["Soporte"]
    assert (await client.get(f"/api/groups/{group}", headers=auth)).status_code == 404
    # The name is free again.
    reused = await client.post("/api/groups", json={"name": "Sales"}, headers=auth)
    assert reused.status_code == 201, reused.text


async def _group_names(client: httpx.AsyncClient, auth: dict[str, str]) -> list[str]:
    found = await client.get("/api/groups", headers=auth)
    return [group["name"] for group in found.json()["groups"]]
