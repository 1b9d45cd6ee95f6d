"""A member's availability and notification switches follow it (a reload, another browser),
and a ``no_owner`` queue shared by two agents: one claims, the other sees it go, and a late
click gets a clear answer."""

from __future__ import annotations

import pytest
from playwright.async_api import Route, expect

from tests.browser.conftest import NewContext, Shots, Suite, queue_flow, sign_in

pytestmark = pytest.mark.browser


async def test_availability_and_notification_switches_persist_across_reloads_and_browsers(
    suite: Suite, new_context: NewContext, shots: Shots
) -> None:
    ws = await suite.workspace("Settings")
    await ws.add_member("Carla Mejía")
    first = await sign_in(await new_context(), ws.tokens["Carla Mejía"])
    availability = first.get_by_role("switch", name="Available for new conversations")
    await expect(availability).to_have_attribute("aria-checked", "false")
    await availability.focus()
    await first.keyboard.press("Space")
    await expect(availability).to_have_attribute("aria-checked", "true")
    await expect(first.locator("#availability .label")).to_have_text("Available")

    # The three-dot menu, from the keyboard: Enter opens it on its first item.
    menu_button = first.get_by_role("button", name="Notification settings and sign-out")
    await menu_button.focus()
    await first.keyboard.press("Enter")
    menu = first.get_by_role("menu")
    desktop = menu.get_by_role("menuitemcheckbox", name="Desktop notifications")
    sound = menu.get_by_role("menuitemcheckbox", name="Play sound")
    await expect(desktop).to_be_focused()
    await expect(desktop).to_have_attribute("aria-checked", "true")
    await expect(sound).to_have_attribute("aria-checked", "true")
    await first.keyboard.press("Enter")
    await expect(desktop).to_have_attribute("aria-checked", "false")
    await expect(first.locator("#toast")).to_have_text("Desktop notifications off.")
    await first.keyboard.press("ArrowDown")
    await expect(sound).to_be_focused()
    await first.keyboard.press("Space")
    await expect(sound).to_have_attribute("aria-checked", "false")
    await expect(first.locator("#toast")).to_have_text("Sound off.")
    await shots(first, "menu with both switches off")
    await first.keyboard.press("Escape")
    await expect(menu).to_be_hidden()
    await expect(menu_button).to_be_focused()

    async with ws.http(ws.tokens["Carla Mejía"]) as client:
        me = (await client.get("/api/me")).json()
    assert (me["status"], me["desktop_notifications"], me["sound_notifications"]) == (
        "available",
        False,
        False,
    )

    # A reload is not a sign-out: the status is kept (presence grace), the switches too.
    await first.reload()
    await first.wait_for_function("document.body.dataset.stream === 'open'")
    await expect(availability).to_have_attribute("aria-checked", "true")
    # (The menu is closed: its items are looked up by their setting, not their role.)
    await expect(first.locator('[data-setting="desktop"]')).to_have_attribute(
        "aria-checked", "false"
    )
    await expect(first.locator('[data-setting="sound"]')).to_have_attribute("aria-checked", "false")

    second = await sign_in(await new_context(), ws.tokens["Carla Mejía"])
    await expect(
        second.get_by_role("switch", name="Available for new conversations")
    ).to_have_attribute("aria-checked", "true")
    await second.get_by_role("button", name="Notification settings and sign-out").click()
    await expect(
        second.get_by_role("menuitemcheckbox", name="Desktop notifications")
    ).to_have_attribute("aria-checked", "false")
    await shots(second, "another browser shows the same settings")

    # A change made in one browser shows in the other, by the stream.
    await second.get_by_role("menuitemcheckbox", name="Play sound").click()
    await expect(first.locator('[data-setting="sound"]')).to_have_attribute("aria-checked", "true")
    await second.get_by_role("switch", name="Available for new conversations").click()
    await expect(availability).to_have_attribute("aria-checked", "false")
    await expect(first.locator("#availability .label")).to_have_text("Unavailable")


async def test_two_agents_share_a_queue_one_claims_the_other_is_told(
    suite: Suite, new_context: NewContext, shots: Shots
) -> None:
    ws = await suite.workspace("Queue")
    await ws.add_member("Dana Ortiz")
    await ws.add_member("Eli Paz")
    group = await ws.add_group("Mesa de ayuda", "Dana Ortiz", "Eli Paz")
    await ws.run_flow(queue_flow(group))
    dana = await sign_in(await new_context(), ws.tokens["Dana Ortiz"])
    eli = await sign_in(await new_context(), ws.tokens["Eli Paz"])
    for page in (dana, eli):
        await page.get_by_role("link", name="Queue").click()
        await expect(page.locator('nav.tabs a[aria-current="page"]')).to_contain_text("Queue")

    first, second = ws.customer("Fernanda Gil"), ws.customer("Gonzalo Ibáñez")
    await first.says("¿Me ayudan con una devolución?")
    await expect(eli.locator("#inbox .item", has_text="Fernanda Gil")).to_be_visible()
    await second.says("Quiero cambiar mi plan")
    for page in (dana, eli):
        items = page.locator("#inbox .item")
        await expect(items).to_have_count(2)
        # Served in arrival order: the first to write is first in line.
        await expect(items.first).to_contain_text("#1")
        await expect(items.first).to_contain_text("Fernanda Gil")
    await shots(eli, "both agents see the queue in serving order")

    # Dana claims; Eli watches it leave the queue.
    await dana.get_by_role("button", name="Claim the conversation with Fernanda Gil").click()
    await expect(dana.locator("#toast")).to_contain_text("Claimed")
    await expect(dana.locator("#conversation-title")).to_have_text("Fernanda Gil")
    await expect(dana.locator('nav.tabs a[aria-current="page"]')).to_contain_text("Mine")
    await expect(eli.locator("#inbox .item", has_text="Fernanda Gil")).to_have_count(0)
    await shots(eli, "the claimed conversation left the other agent's queue")

    # Eli's screen is behind (its refreshes are held back) when Dana takes the second one:
    # Eli's click comes too late and says so.
    async def held(route: Route) -> None:
        await route.abort()

    await eli.route("**/ui/inbox*", held)
    await dana.get_by_role("link", name="Queue").click()
    await dana.get_by_role("button", name="Claim the conversation with Gonzalo Ibáñez").click()
    await expect(dana.locator("#conversation-title")).to_have_text("Gonzalo Ibáñez")
    stale = eli.get_by_role("button", name="Claim the conversation with Gonzalo Ibáñez")
    await expect(stale).to_be_visible()
    await eli.unroute("**/ui/inbox*", held)
    await stale.click()
    await expect(eli.locator("#toast")).to_contain_text("Too late")
    await expect(eli.locator("#toast")).to_have_class("toast problem")
    await shots(eli, "a late claim is told it was too late")
    await expect(eli.locator("#inbox .item")).to_have_count(0)
    held_by_dana = (await ws.inbox("Dana Ortiz"))["assigned"]
    assert sorted(c["contact_name"] for c in held_by_dana) == ["Fernanda Gil", "Gonzalo Ibáñez"]
