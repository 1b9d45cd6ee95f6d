"""Accessibility basics: every control of every page has a name, and an agent's work can be
done from the keyboard alone (sign in, open a conversation, reply)."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import NewContext, Shots, Suite, sign_in, support_flow
from tests.harness import eventually

pytestmark = pytest.mark.browser

# A control's accessible name, the simple way (aria-label, aria-labelledby, its <label>, its
# text, its title); every focusable or operable element must have one, hidden ones included
# (menus and dialogs open later).
UNNAMED_CONTROLS = """() => {
  const selector = 'a[href], button, input:not([type=hidden]), select, textarea, summary,'
    + ' [role=switch], [role^=menuitem], [tabindex]:not([tabindex="-1"])';
  const nameOf = (el) => {
    let name = el.getAttribute('aria-label') || '';
    const by = el.getAttribute('aria-labelledby');
    if (!name && by) {
      name = by.split(/\\s+/).map((id) => document.getElementById(id)?.textContent ?? '').join(' ');
    }
    if (!name && el.labels?.length) name = [...el.labels].map((l) => l.textContent).join(' ');
    if (!name && !['INPUT', 'SELECT', 'TEXTAREA'].includes(el.tagName)) name = el.textContent;
    return (name || el.getAttribute('title') || '').trim();
  };
  return [...document.querySelectorAll(selector)]
    .filter((el) => !nameOf(el))
    .map((el) => el.outerHTML.slice(0, 160));
}"""


async def unnamed(page: Page) -> list[str]:
    found: list[str] = await page.evaluate(UNNAMED_CONTROLS)
    return found


async def tab_to(page: Page, test: str, limit: int = 60) -> None:
    """Press Tab until the focused element passes ``test`` (a JS expression on ``el``)."""
    for _ in range(limit):
        await page.keyboard.press("Tab")
        if await page.evaluate(
            f"(() => {{ const el = document.activeElement; return {test}; }})()"
        ):
            return
    raise AssertionError(f"Tab never reached an element where {test}")


async def test_every_control_is_named_and_an_agent_works_from_the_keyboard(
    suite: Suite, new_context: NewContext, shots: Shots
) -> None:
    ws = await suite.workspace("Keyboard")
    await ws.add_member("Nora Vidal")
    group = await ws.add_group("Soporte", "Nora Vidal")
    flow = await ws.run_flow(support_flow(group))
    await ws.set_status("Nora Vidal", "available")
    customer = ws.customer("Oscar Pérez")
    await customer.says("Hola")
    await customer.taps("agent", "Hablar con un asesor")

    async def assigned() -> list[dict[str, object]]:
        found: list[dict[str, object]] = (await ws.inbox("Nora Vidal"))["assigned"]
        return found

    [conversation] = await eventually(assigned, lambda rows: len(rows) == 1)

    # Sign in and reply without a mouse.
    page = await (await new_context()).new_page()
    await page.goto("/")
    await expect(page.get_by_label("Member token")).to_be_focused()
    assert await unnamed(page) == []
    await page.keyboard.type(ws.tokens["Nora Vidal"])
    await page.keyboard.press("Enter")
    await page.wait_for_function("document.body.dataset.stream === 'open'")
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    await tab_to(page, "el.classList.contains('item-link')")
    await page.keyboard.press("Enter")
    await expect(page.locator("#conversation-title")).to_have_text("Oscar Pérez")
    await tab_to(page, "el.id === 'reply-text'")
    await page.keyboard.type("Hola Oscar, ¿en qué te ayudo?")
    await page.keyboard.press("Control+Enter")
    await expect(page.locator("#history .msg.member", has_text="Hola Oscar")).to_be_visible()
    await expect(page.get_by_label("Reply to Oscar Pérez")).to_have_value("")
    await shots(page, "replied from the keyboard")
    await page.locator("details.transfer summary").click()
    assert await unnamed(page) == []

    admin = await sign_in(await new_context(), ws.admin_token)
    for path in (
        "/?tab=all",
        f"/conversations/{conversation['conversation_id']}?tab=all",
        "/admin/members",
        "/admin/groups",
        f"/admin/groups/{group}",
        "/admin/flows",
        "/admin/flows/new",
        f"/admin/flows/{flow}",
        "/admin/numbers",
        "/admin/metrics",
    ):
        await admin.goto(path)
        await admin.wait_for_function("document.body.dataset.stream === 'open'")
        if path == "/admin/numbers":
            await expect(admin.locator("#numbers")).to_have_attribute("aria-busy", "false")
        assert await unnamed(admin) == [], path
