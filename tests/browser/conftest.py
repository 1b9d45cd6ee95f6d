"""The browser tests: Debian's chromium, driven by Playwright, against switchboard running as
a user runs it (every process with ``switchboard run <name>``, the real Kafka broker and
PostgreSQL).

One system serves the whole session (starting nine processes per test would dominate the run);
each test makes its own workspace, so tests see nothing of each other (that isolation is
itself a feature under test). Customers are played by signed webhooks through the real webhook
route, and Meta's Graph API by ``tests/fake_graph.py`` (a real HTTP server the dispatcher sends
to). Screenshots of every step go to ``.local/screenshots/<test>/``.

Chromium is launched from ``/usr/bin/chromium`` (``deploy/infra.sh browser`` installs it):
Playwright's own browser download cannot work on a closed network, and without the
background-networking flags Chromium's own connections are refused there.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    Locator,
    Page,
    async_playwright,
    expect,
)

from services.gateway.webhook import sign
from services.settings import Settings
from services.supervisor import PROCESSES
from services.workspaces import create_workspace
from tests.harness import ROOT, Processes, free_port

CHROMIUM = os.environ.get("SWITCHBOARD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # The sound is played when the stream says so, not after a click on this very page.
    "--autoplay-policy=no-user-gesture-required",
]
SCREENSHOTS = ROOT / ".local" / "screenshots"
# What a person waits for is asserted without timing it (figures are printed, not asserted);
# the machine runs the whole system beside the browser, so give each expectation room.
expect.set_options(timeout=15_000)
APP_SECRET = "browser-app-secret"

# The browser's notifications and sounds cannot be seen from outside: record each one the
# page makes, then let the real API do its work.
SPY_SCRIPT = """
(() => {
  window.__notifications = [];
  window.__tones = 0;
  const Real = window.Notification;
  if (Real) {
    class Recorded extends Real {
      constructor(title, options) {
        super(title, options);
        window.__notifications.push({ title, body: options?.body ?? "", tag: options?.tag ?? "" });
      }
    }
    window.Notification = Recorded;
  }
  const Context = window.AudioContext;
  if (Context) {
    const create = Context.prototype.createOscillator;
    Context.prototype.createOscillator = function () {
      window.__tones += 1;
      return create.call(this);
    };
  }
})();
"""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.browser)


@dataclass
class Customer:
    """A WhatsApp user writing to a business number, as Meta's webhook reports it."""

    suite: Suite
    phone_number_id: str
    wa_id: str
    name: str
    sent: int = 0

    def _wamid(self) -> str:
        self.sent += 1
        return f"wamid.{self.wa_id}.{uuid.uuid4().hex[:12]}"

    async def says(self, text: str) -> str:
        wamid = self._wamid()
        await self.suite.webhook(
            self.phone_number_id,
            {
                "contacts": [{"profile": {"name": self.name}, "wa_id": self.wa_id}],
                "messages": [
                    {
                        "from": self.wa_id,
                        "id": wamid,
                        "timestamp": str(int(time.time())),
                        "type": "text",
                        "text": {"body": text},
                    }
                ],
            },
        )
        return wamid

    async def taps(self, button_id: str, title: str, replying_to: str | None = None) -> str:
        """A reply button, exactly as Meta reports a tap (``interactive.button_reply``)."""
        wamid = self._wamid()
        message: dict[str, Any] = {
            "from": self.wa_id,
            "id": wamid,
            "timestamp": str(int(time.time())),
            "type": "interactive",
            "interactive": {
                "type": "button_reply",
                "button_reply": {"id": button_id, "title": title},
            },
        }
        if replying_to:
            message["context"] = {"from": "573001112233", "id": replying_to}
        await self.suite.webhook(
            self.phone_number_id,
            {
                "contacts": [{"profile": {"name": self.name}, "wa_id": self.wa_id}],
                "messages": [message],
            },
        )
        return wamid

    async def status(self, wamid: str, status: str) -> None:
        """Meta's delivery status of a message the business sent this customer."""
        await self.suite.webhook(
            self.phone_number_id,
            {
                "statuses": [
                    {
                        "id": wamid,
                        "status": status,
                        "timestamp": str(int(time.time())),
                        "recipient_id": self.wa_id,
                    }
                ]
            },
        )


@dataclass
class Workspace:
    """A workspace of this test, set up through the bearer-token API as an integrator would."""

    suite: Suite
    workspace_id: str
    phone_number_id: str
    admin_token: str
    tokens: dict[str, str] = field(default_factory=dict)  # member name -> token
    ids: dict[str, str] = field(default_factory=dict)  # member or group name -> id

    def http(self, token: str | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.suite.url,
            headers={"Authorization": f"Bearer {token or self.admin_token}"},
            timeout=30,
        )

    async def add_member(self, name: str, role: str = "agent", capacity: int = 5) -> str:
        async with self.http() as client:
            response = await client.post(
                "/api/members", json={"name": name, "role": role, "capacity": capacity}
            )
        assert response.status_code == 201, response.text
        self.tokens[name] = response.json()["token"]
        self.ids[name] = response.json()["member_id"]
        return self.tokens[name]

    async def add_group(self, name: str, *members: str) -> str:
        async with self.http() as client:
            response = await client.post("/api/groups", json={"name": name})
            assert response.status_code == 201, response.text
            group_id = str(response.json()["group_id"])
            for member in members:
                added = await client.put(f"/api/groups/{group_id}/members/{self.ids[member]}")
                assert added.status_code == 200, added.text
        self.ids[name] = group_id
        return group_id

    async def set_status(self, member: str, status: str) -> None:
        async with self.http(self.tokens[member]) as client:
            response = await client.put("/api/me/status", json={"status": status})
        assert response.status_code == 200, response.text

    async def run_flow(self, document: dict[str, Any]) -> str:
        """Publish ``document`` and make it the business number's active flow."""
        async with self.http() as client:
            published = await client.post("/api/flows", json=document)
            assert published.status_code == 201, published.text
            flow_id = str(published.json()["flow_id"])
            chosen = await client.put(
                f"/api/numbers/{self.phone_number_id}/flow", json={"flow_id": flow_id}
            )
            assert chosen.status_code == 200, chosen.text
        return flow_id

    async def inbox(self, member: str | None = None) -> dict[str, Any]:
        async with self.http(self.tokens[member] if member else None) as client:
            response = await client.get("/api/me/inbox")
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()
        return found

    async def history(self, conversation_id: str) -> list[dict[str, Any]]:
        async with self.http() as client:
            response = await client.get(f"/api/conversations/{conversation_id}/history")
        assert response.status_code == 200, response.text
        lines: list[dict[str, Any]] = response.json()["history"]
        return lines

    def customer(self, name: str, wa_id: str | None = None) -> Customer:
        return Customer(
            self.suite, self.phone_number_id, wa_id or f"57300{uuid.uuid4().int % 10**7:07d}", name
        )


@dataclass
class Suite:
    """switchboard as it runs for these tests: its address, settings and Meta stand-in."""

    url: str
    env: dict[str, str]
    processes: Processes

    @property
    def settings(self) -> Settings:
        return Settings.from_env(self.env)

    async def workspace(
        self, name: str, *, time_zone: str = "America/Bogota", agent_conversations: bool = True
    ) -> Workspace:
        """A new workspace; its number hands conversations to agents unless told otherwise
        (a new number's switch is off until an admin turns it on)."""
        number = f"4801{uuid.uuid4().int % 10**11:011d}"
        created = await create_workspace(
            self.settings,
            name=name,
            phone_number_id=number,
            time_zone=time_zone,
            agent_conversations=agent_conversations,
        )
        return Workspace(self, str(created["workspace_id"]), number, created["admin_token"])

    async def webhook(self, phone_number_id: str, value: dict[str, Any]) -> None:
        body = orjson.dumps(
            {
                "object": "whatsapp_business_account",
                "entry": [
                    {
                        "id": "318400117223051",
                        "changes": [
                            {
                                "field": "messages",
                                "value": {
                                    "messaging_product": "whatsapp",
                                    "metadata": {
                                        "display_phone_number": "573001112233",
                                        "phone_number_id": phone_number_id,
                                    },
                                    **value,
                                },
                            }
                        ],
                    }
                ],
            }
        )
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as client:
            response = await client.post(
                "/webhooks/whatsapp",
                content=body,
                headers={
                    "Content-Type": "application/json",
                    "X-Hub-Signature-256": sign(APP_SECRET, body),
                },
            )
        assert response.status_code == 200, response.text


@pytest.fixture(scope="session")
def suite(infrastructure: dict[str, str], used_topic_prefixes: list[str]) -> Iterator[Suite]:
    tag = uuid.uuid4().hex[:10]
    used_topic_prefixes.append(f"b{tag}.")
    port = free_port()
    env = {
        **infrastructure,
        "SWITCHBOARD_TOPIC_PREFIX": f"b{tag}.",
        "SWITCHBOARD_SCHEMA_PREFIX": f"b{tag}_",
        "SWITCHBOARD_HTTP_PORT": str(port),
        "WHATSAPP_APP_SECRET": APP_SECRET,
        "WHATSAPP_VERIFY_TOKEN": "browser-verify-token",
        # As make run: the gateway's sandbox plays Meta (no access token, no Graph API URL).
        "SWITCHBOARD_SANDBOX": "1",
        "SWITCHBOARD_SESSION_SECRET": f"browser-session-{uuid.uuid4().hex}{uuid.uuid4().hex}",
    }
    log_dir = ROOT / ".local" / "browser-logs" / tag
    log_dir.mkdir(parents=True, exist_ok=True)
    processes = Processes(env, log_dir)
    for name in PROCESSES:
        processes.start(name)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"the gateway did not answer; see {log_dir}/gateway.log")
            time.sleep(0.3)
        yield Suite(url, env, processes)
    finally:
        processes.stop_all()


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


NewContext = Callable[..., Awaitable[BrowserContext]]


@pytest.fixture
async def new_context(browser: Browser, suite: Suite) -> AsyncIterator[NewContext]:
    """Open a fresh browser profile (its own cookies): one per person in a scenario."""
    opened: list[BrowserContext] = []

    async def open_one(**options: Any) -> BrowserContext:
        context = await browser.new_context(
            base_url=suite.url,
            viewport={"width": 1360, "height": 860},
            permissions=["notifications", "clipboard-read", "clipboard-write"],
            **options,
        )
        context.set_default_timeout(15_000)
        await context.add_init_script(SPY_SCRIPT)
        opened.append(context)
        return context

    yield open_one
    for context in opened:
        await context.close()


@dataclass
class Phone:
    """A customer on the sandbox's phone page: what Meta would deliver, typed by a person."""

    page: Page
    name: str
    wa_id: str

    async def says(self, text: str) -> None:
        await self.page.get_by_label("Message", exact=True).fill(text)
        await self.page.get_by_role("button", name="Send").click()
        await expect(self.bubble(text, mine=True)).to_be_visible()

    async def taps(self, title: str) -> None:
        await self.page.get_by_role("button", name=title).click()

    def bubble(self, text: str, *, mine: bool = False) -> Locator:
        side = "from_customer" if mine else "to_customer"
        return self.page.locator(f".bubble.{side}").filter(has_text=text)


async def phone(context: BrowserContext, ws: Workspace, name: str) -> Phone:
    """Open the sandbox as ``name`` writing to the workspace's business number."""
    page = await context.new_page()
    await page.goto("/sandbox")
    wa_id = f"57310{uuid.uuid4().int % 10**7:07d}"
    await page.get_by_label("Business number").fill(ws.phone_number_id)
    await page.get_by_label("Your name").fill(name)
    await page.get_by_label("Your WhatsApp number").fill(wa_id)
    await page.get_by_label("Your WhatsApp number").press("Enter")
    return Phone(page, name, wa_id)


async def sign_in(context: BrowserContext, token: str, path: str = "/") -> Page:
    """A member signs in as a person does: the sign-in page, the token, the button."""
    page = await context.new_page()
    await page.goto(path)
    await page.get_by_label("Member token").fill(token)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(re.compile(r"^(?!.*/sign-in)"))
    await page.wait_for_function("document.body.dataset.stream === 'open'")
    return page


class Shots:
    """Screenshots of a test's steps, numbered in order, in ``.local/screenshots/<test>/``."""

    def __init__(self, test: str) -> None:
        self.folder = SCREENSHOTS / re.sub(r"[^\w.-]+", "_", test)
        self.folder.mkdir(parents=True, exist_ok=True)
        for old in self.folder.glob("*.png"):
            old.unlink()
        self.count = 0

    async def __call__(self, page: Page | Locator, step: str) -> Path:
        """The page as the viewport shows it, or just one element of it."""
        self.count += 1
        name = re.sub(r"[^\w.-]+", "-", step)
        path = self.folder / f"{self.count:02d}-{name}.png"
        if isinstance(page, Page):
            await page.screenshot(path=str(path), full_page=False)
        else:
            await page.screenshot(path=str(path))
        return path


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Shots:
    return Shots(request.node.name)


async def notifications(page: Page) -> list[dict[str, str]]:
    found: list[dict[str, str]] = await page.evaluate("window.__notifications")
    return found


async def tones(page: Page) -> int:
    found: int = await page.evaluate("window.__tones")
    return found


def support_flow(group_id: str) -> dict[str, Any]:
    """Greets, asks with two buttons, hands a customer who wants a person to ``group_id``."""
    return {
        "name": "Browser support",
        "start": "greet",
        "blocks": [
            {"id": "greet", "type": "message", "text": "Hola {{contact.name}}", "next": "ask"},
            {
                "id": "ask",
                "type": "question",
                "text": "¿En qué te ayudamos?",
                "variable": "topic",
                "buttons": [
                    {"id": "agent", "title": "Hablar con un asesor"},
                    {"id": "order", "title": "Mi pedido"},
                ],
                "next": "route",
                "fallback": "to_agents",
            },
            {
                "id": "route",
                "type": "condition",
                "rules": [{"if": [{"variable": "topic", "equals": "agent"}], "next": "to_agents"}],
                "default": "bye",
            },
            {
                "id": "to_agents",
                "type": "connect_to_agent",
                "group": group_id,
                "rotation": "available",
                "text": "Te comunico con un asesor.",
            },
            {"id": "bye", "type": "end", "text": "¡Gracias!"},
        ],
    }


def queue_flow(group_id: str) -> dict[str, Any]:
    """Hands every conversation to ``group_id``'s queue at once (rotation ``no_owner``)."""
    return {
        "name": "Straight to the queue",
        "start": "to_queue",
        "blocks": [
            {
                "id": "to_queue",
                "type": "connect_to_agent",
                "group": group_id,
                "rotation": "no_owner",
                "text": "Un asesor te atenderá en breve.",
            }
        ],
    }


async def says_in_kind(customer: Customer, message: dict[str, Any]) -> str:
    """A customer message of any type, as Meta's webhook carries it (``message`` holds its
    ``type``, the type's object and, for a reply, ``context``)."""
    wamid = customer._wamid()
    await customer.suite.webhook(
        customer.phone_number_id,
        {
            "contacts": [{"profile": {"name": customer.name}, "wa_id": customer.wa_id}],
            "messages": [
                {
                    "from": customer.wa_id,
                    "id": wamid,
                    "timestamp": str(int(time.time())),
                    **message,
                }
            ],
        },
    )
    return wamid
