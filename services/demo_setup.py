"""``switchboard demo-setup``: the demo workspace ``make run`` prints sign-ins for.

On the first run it creates, through the running gateway's API as an admin would: a
workspace with the demo business number, a group "Demo support" with two agents, the demo
flow (``deploy/demo-flow.yaml``, handing off to that group) active on the number, agent
conversations on, and both agents available. Everything is remembered in a JSON file
(tokens are shown only once) and checked again on later runs: what still works is kept,
what is missing (a reset database, an older file) is made again.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import yaml

from services.settings import Settings
from services.workspaces import create_workspace

GROUP_NAME = "Demo support"
AGENT_NAMES = ("Ana (demo agent)", "Bruno (demo agent)")
GROUP_PLACEHOLDER = "DEMO_GROUP_ID"


class DemoSetupFailed(RuntimeError):
    """The gateway refused a step; the message says which and why."""


@dataclass
class DemoSetup:
    settings: Settings
    client: httpx.AsyncClient  # the running gateway
    state_file: Path
    phone_number_id: str
    flow_file: Path

    async def ensure(self) -> dict[str, Any]:
        """The demo workspace, its team and flow, created or checked; the remembered state."""
        state = self._load()
        if not await self._works(state.get("admin_token")):
            created = await create_workspace(
                self.settings,
                name="Demo workspace",
                phone_number_id=self.phone_number_id,
                time_zone="America/Bogota",
                agent_conversations=True,
            )
            state = dict(created)
            self._save(state)
        admin = _auth(state["admin_token"])
        state["group_id"] = await self._group(admin, state.get("group_id"))
        agents = {agent["name"]: agent for agent in state.get("agents", [])}
        state["agents"] = [
            await self._agent(admin, state["group_id"], name, agents.get(name))
            for name in AGENT_NAMES
        ]
        self._save(state)
        await self._flow(admin, state)
        switched = await self.client.put(
            f"/api/numbers/{self.phone_number_id}/agent-conversations",
            json={"enabled": True},
            headers=admin,
        )
        _check(switched, "turning agent conversations on")
        for agent in state["agents"]:
            await self._available(_auth(agent["token"]))
        self._save(state)
        return state

    def _load(self) -> dict[str, Any]:
        try:
            loaded = orjson.loads(self.state_file.read_bytes())
        except (FileNotFoundError, orjson.JSONDecodeError):
            return {}
        return loaded if isinstance(loaded, dict) else {}

    def _save(self, state: dict[str, Any]) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.state_file.with_suffix(".tmp")
        temporary.write_bytes(orjson.dumps(state, option=orjson.OPT_INDENT_2))
        os.replace(temporary, self.state_file)

    async def _works(self, token: object) -> bool:
        if not isinstance(token, str) or not token:
            return False
        me = await self.client.get("/api/me", headers=_auth(token))
        return me.status_code == 200 and bool(me.json().get("active"))

    async def _group(self, admin: dict[str, str], remembered: object) -> str:
        groups = await self.client.get("/api/groups", headers=admin)
        _check(groups, "listing the groups")
        for group in groups.json()["groups"]:
            if group["group_id"] == remembered or group["name"] == GROUP_NAME:
                return str(group["group_id"])
        created = await self.client.post("/api/groups", json={"name": GROUP_NAME}, headers=admin)
        _check(created, f"creating the group {GROUP_NAME!r}")
        return str(created.json()["group_id"])

    async def _agent(
        self, admin: dict[str, str], group_id: str, name: str, remembered: dict[str, Any] | None
    ) -> dict[str, Any]:
        if remembered is not None and await self._works(remembered.get("token")):
            agent = remembered
        else:
            created = await self.client.post(
                "/api/members", json={"name": name, "role": "agent", "capacity": 5}, headers=admin
            )
            _check(created, f"adding the agent {name!r}")
            body = created.json()
            agent = {"name": name, "member_id": body["member_id"], "token": body["token"]}
        joined = await self.client.put(
            f"/api/groups/{group_id}/members/{agent['member_id']}", headers=admin
        )
        _check(joined, f"adding {name!r} to {GROUP_NAME!r}")
        return agent

    async def _flow(self, admin: dict[str, str], state: dict[str, Any]) -> None:
        """Publish the demo flow (its next version when the file changed) and make it the
        number's active flow, unless that is already so."""
        text = self.flow_file.read_text().replace(GROUP_PLACEHOLDER, state["group_id"])
        digest = hashlib.sha256(text.encode()).hexdigest()
        numbers = await self.client.get("/api/numbers", headers=admin)
        _check(numbers, "listing the numbers")
        active = {n["phone_number_id"]: n["active_flow_id"] for n in numbers.json()["numbers"]}
        current = state.get("flow_id")
        in_use = current is not None and active.get(self.phone_number_id) == current
        if in_use and state.get("flow_digest") == digest:
            return
        document = yaml.safe_load(text)
        if current:
            document["id"] = current
        published = await self.client.post("/api/flows", json=document, headers=admin)
        if published.status_code == 422 and current:  # not ours any more: a flow of its own
            document.pop("id")
            published = await self.client.post("/api/flows", json=document, headers=admin)
        _check(published, f"publishing {self.flow_file}")
        state["flow_id"] = published.json()["flow_id"]
        chosen = await self.client.put(
            f"/api/numbers/{self.phone_number_id}/flow",
            json={"flow_id": state["flow_id"]},
            headers=admin,
        )
        _check(chosen, "choosing the demo flow")
        state["flow_digest"] = digest

    async def _available(self, auth: dict[str, str]) -> None:
        me = await self.client.get("/api/me", headers=auth)
        _check(me, "reading an agent")
        if me.json()["status"] != "available":
            changed = await self.client.put(
                "/api/me/status", json={"status": "available"}, headers=auth
            )
            _check(changed, "making an agent available")


def sign_in_sheet(state: dict[str, Any], url: str, *, sandbox: bool) -> str:
    """What ``make run`` prints: where to go, and the tokens to sign in with."""
    lines = [
        f"  agent suite       {url}/   (sign in with a token below)",
    ]
    if sandbox:
        lines.append(
            f"  WhatsApp sandbox  {url}/sandbox   (write as a customer of the demo number"
            f" {state['phone_number_id']}; the bot answers, the demo agents take over)"
        )
    lines += [
        "  sign-in tokens",
        f"    admin  {'Admin':<20} {state['admin_token']}",
    ]
    lines += [f"    agent  {agent['name']:<20} {agent['token']}" for agent in state["agents"]]
    lines.append(
        f"  demo group        {GROUP_NAME!r}: {', '.join(a['name'] for a in state['agents'])};"
        " agent conversations are on for the demo number"
    )
    return "\n".join(lines)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _check(response: httpx.Response, step: str) -> None:
    if response.status_code not in (200, 201):
        raise DemoSetupFailed(f"{step}: HTTP {response.status_code} {response.text[:300]}")
