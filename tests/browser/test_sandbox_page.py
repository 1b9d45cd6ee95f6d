"""The sandbox phone page in a real browser (Debian's chromium driven by Playwright) against
the whole system in sandbox mode: write as a customer, see the bot's buttons, tap one.

It runs against its own system (``tests/integration/test_sandbox.py``'s, with the sandbox's
own demo flow) in the session's chromium from ``tests/browser/conftest.py``; the agent's side
of the same page is ``test_agent_day.py``. Screenshots of each step go to
``.local/screenshots/``.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from tests.harness import ROOT, eventually
from tests.integration.test_sandbox import NUMBER, sandbox_system

pytestmark = pytest.mark.browser
SCREENSHOTS = ROOT / ".local" / "screenshots"


async def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"sandbox-{name}.png"))


async def test_a_customer_writes_sees_the_buttons_and_taps_one(
    isolated_env: dict[str, str], browser: Browser
) -> None:
    async with sandbox_system(isolated_env) as system:
        page = await browser.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(str(error)))
        await page.goto(f"{system.url}/sandbox")
        await expect(page.get_by_label("Business number")).to_have_value(NUMBER)
        contact = "5731" + str(uuid.uuid4().int)[:8]
        await page.get_by_label("Your name").fill("Valentina")
        await page.get_by_label("Your WhatsApp number").fill(contact)
        await page.get_by_label("Your WhatsApp number").press("Enter")
        await shot(page, "1-who")

        started = time.monotonic()
        await page.get_by_label("Message", exact=True).fill("hola")
        await page.get_by_role("button", name="Send").click()
        button = page.get_by_role("button", name="Hablar con alguien")
        await expect(button).to_be_visible(timeout=20_000)
        print(f"\nsandbox: the bot's buttons showed {time.monotonic() - started:.2f}s after send")
        await expect(page.get_by_text("Hola Valentina")).to_be_visible()
        await shot(page, "2-buttons")

        await button.click()
        mine = page.locator(".bubble.from_customer").filter(has_text="Hablar con alguien")
        await expect(mine).to_be_visible()
        await expect(mine.locator(".ticks")).to_have_attribute("aria-label", "delivered")
        await expect(page.get_by_text("Te comunico con un asesor")).to_be_visible(timeout=20_000)
        await shot(page, "3-tapped")

        # Behind the page, the real pipeline: the tap arrived as Meta's button_reply, the
        # conversation went to the group, and what the phone showed is read.
        conversation = await system.conversation_of(contact)
        lines = await eventually(
            lambda: system.history(conversation),
            lambda lines: (
                any(line["reply_id"] == "talk_to_agent" for line in lines)
                and read_bot_lines(lines) >= 2
            ),
        )
        [tap] = [line for line in lines if line["reply_id"] == "talk_to_agent"]
        assert (tap["message_type"], tap["text"]) == ("interactive", "Hablar con alguien")
        await eventually(
            lambda: system.client.get(f"/api/conversations/{conversation}", headers=system.admin),
            lambda r: r.json()["assignment_state"] == "assigned",
        )
        assert problems == []
        await page.close()


def read_bot_lines(lines: list[dict[str, Any]]) -> int:
    return sum(1 for line in lines if line["author_kind"] == "bot" and line["status"] == "read")
