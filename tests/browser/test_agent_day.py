"""An agent's day in the suite, with the customer on the sandbox's phone next to it: the
customer writes, the flow answers with buttons, the customer taps one; the conversation
arrives in the agent's inbox live (with the stream's notification hint), the agent reads the
bot's turns and the branch the flow took, replies (the phone shows it, the ticks go to read),
transfers it to a colleague who sees it arrive, and the colleague closes it."""

from __future__ import annotations

import asyncio
import time

import pytest
from playwright.async_api import expect

from tests.browser.conftest import (
    NewContext,
    Shots,
    Suite,
    notifications,
    phone,
    sign_in,
    support_flow,
    tones,
)

pytestmark = pytest.mark.browser


async def test_a_customer_in_the_sandbox_and_an_agent_from_hand_off_to_close(
    suite: Suite, new_context: NewContext, shots: Shots
) -> None:
    ws = await suite.workspace("Agent day")
    await ws.add_member("Ana Gómez")
    await ws.add_member("Bruno Díaz")
    group = await ws.add_group("Soporte", "Ana Gómez", "Bruno Díaz")
    await ws.run_flow(support_flow(group))

    ana = await sign_in(await new_context(), ws.tokens["Ana Gómez"])
    availability = ana.get_by_role("switch", name="Available for new conversations")
    await expect(availability).to_have_attribute("aria-checked", "false")
    await availability.click()
    await expect(ana.locator("#availability .label")).to_have_text("Available")
    await shots(ana, "ana signed in and available")
    bruno = await sign_in(await new_context(), ws.tokens["Bruno Díaz"])

    customer = await phone(await new_context(), ws, "Valentina Ruiz")
    await customer.says("Hola, necesito ayuda con mi pedido")
    await expect(customer.bubble("Hola Valentina Ruiz")).to_be_visible()
    agent_button = customer.page.get_by_role("button", name="Hablar con un asesor")
    await expect(agent_button).to_be_visible()
    await expect(customer.page.get_by_role("button", name="Mi pedido")).to_be_visible()
    await shots(customer.page.locator("main.phone"), "the customer sees the bot's buttons")

    tapped = time.monotonic()
    await customer.taps("Hablar con un asesor")
    item = ana.locator("#inbox .item", has_text="Valentina Ruiz")
    await expect(item).to_be_visible()
    arrived = time.monotonic() - tapped
    print(f"\nsandbox tap -> conversation in the agent's inbox: {arrived * 1000:.0f} ms")
    await expect(ana.locator('nav.tabs a[data-tab="mine"] .count')).to_have_text("1")
    await expect(item.locator(".badge")).to_have_text("2")  # her two messages, unread
    await expect(ana).to_have_title("(2) Inbox · switchboard")
    # The stream's hint (the server decides it from Ana's settings and the kind of event):
    # a desktop notification naming the customer, and the chime.
    await ana.wait_for_function("window.__notifications.length > 0")
    [assigned, *_] = await notifications(ana)
    assert assigned["title"] == "A conversation was assigned to you"
    assert "Valentina Ruiz" in assigned["body"]
    assert await tones(ana) > 0
    await shots(ana, "the conversation arrives in the inbox")

    await item.locator(".item-link").click()
    panel = ana.locator("#conversation-panel")
    await expect(panel.locator("#conversation-title")).to_have_text("Valentina Ruiz")
    history = panel.locator("#history")
    await expect(history.locator(".msg.bot").first).to_contain_text("Hola Valentina Ruiz")
    await expect(history.locator(".msg.bot .tag.bot").first).to_have_text("Bot")
    await expect(history.locator(".msg.bot .options li")).to_have_text(
        ["Hablar con un asesor", "Mi pedido"]
    )
    await expect(history.locator(".msg.customer .chosen")).to_contain_text("Hablar con un asesor")
    await expect(history.locator('.line.flow[data-step="answer_captured"]')).to_contain_text(
        "Answer to 'ask' captured"
    )
    branch = history.locator('.line.flow[data-step="condition_evaluated"]')
    await expect(branch).to_contain_text("Branch at 'route': to 'to_agents'")
    await expect(branch).to_contain_text("rule 1 held")
    decision = history.locator(".line.assignment", has_text="Ana Gómez").last
    await decision.locator("summary").click()
    await expect(decision.locator("table.candidates tr.chosen")).to_contain_text("Ana Gómez")
    # Opening it read her messages: the badge and the title's count go.
    await expect(item.locator(".badge")).to_have_count(0)
    await expect(ana).to_have_title("Valentina Ruiz · Inbox · switchboard")
    await shots(ana, "bot turns, the branch and the assignment explained")

    await panel.get_by_label("Reply to Valentina Ruiz").fill("Hola Valentina, soy Ana. ¿Qué pasó?")
    await panel.get_by_role("button", name="Send").click()
    reply = history.locator(".msg.member", has_text="soy Ana")
    await expect(reply).to_be_visible()
    # The phone shows it; the sandbox reports it delivered, then read (the page is visible).
    await expect(customer.bubble("soy Ana")).to_be_visible()
    await expect(reply.locator(".tick")).to_have_attribute("aria-label", "read")
    await shots(customer.page.locator("main.phone"), "the reply on the customer's phone")
    await shots(ana, "the reply read by the customer")

    # The customer writes again: it shows in the open conversation, already read.
    written = time.monotonic()
    await customer.says("Mi pedido 4411 no llegó")
    await expect(history.locator(".msg.customer", has_text="4411")).to_be_visible()
    shown_after = (time.monotonic() - written) * 1000
    print(f"sandbox send -> message visible in the open conversation: {shown_after:.0f} ms")
    await expect(item.locator(".badge")).to_have_count(0)

    await panel.locator("details.transfer summary").click()
    await panel.get_by_label("Transfer to").select_option(f"member:{ws.ids['Bruno Díaz']}")
    await panel.get_by_label("Note (optional)").fill("Pedido 4411: logística")
    await shots(ana, "a transfer to a colleague")
    await panel.get_by_role("button", name="Transfer").click()
    await expect(ana.locator("#toast")).to_contain_text("Transferred to Bruno Díaz")
    await expect(ana.locator("#inbox .item", has_text="Valentina Ruiz")).to_have_count(0)
    await expect(
        history.locator(
            ".line.assignment", has_text="Transferred to member Bruno Díaz by Ana Gómez"
        )
    ).to_be_visible()

    bruno_item = bruno.locator("#inbox .item", has_text="Valentina Ruiz")
    await expect(bruno_item).to_be_visible()
    await bruno.wait_for_function("window.__notifications.length > 0")
    assert (await notifications(bruno))[0]["title"] == "A conversation was assigned to you"
    await shots(bruno, "the colleague sees it arrive")
    await bruno_item.locator(".item-link").click()
    bruno_panel = bruno.locator("#conversation-panel")
    await expect(bruno_panel.locator("#history .msg.member", has_text="soy Ana")).to_be_visible()
    bruno.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await bruno_panel.get_by_role("button", name="Close").click()
    await expect(bruno_panel.locator(".line.closed")).to_contain_text("Closed: by the agent")
    await expect(bruno.locator("#inbox .item", has_text="Valentina Ruiz")).to_have_count(0)
    await expect(bruno_panel.locator("#reply-blocked")).to_have_text("This conversation is closed.")
    await shots(bruno, "closed and gone from the inbox")
