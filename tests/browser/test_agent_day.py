"""An agent's day in the suite: a conversation handed off by a flow arrives live, the agent
reads the bot's turns and the branch the flow took, replies (ticks advance with Meta's
statuses), transfers it to a colleague who sees it arrive, and the colleague closes it."""

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
    sign_in,
    support_flow,
    tones,
)
from tests.fake_graph import Received
from tests.harness import eventually

pytestmark = pytest.mark.browser


async def test_a_handed_off_conversation_from_arrival_to_close(
    suite: Suite, new_context: NewContext, shots: Shots
) -> None:
    ws = await suite.workspace("Agent day")
    await ws.add_member("Ana Gómez")
    await ws.add_member("Bruno Díaz")
    group = await ws.add_group("Soporte", "Ana Gómez", "Bruno Díaz")
    await ws.run_flow(support_flow(group))

    ana = await sign_in(await new_context(), ws.tokens["Ana Gómez"])
    await expect(
        ana.get_by_role("switch", name="Available for new conversations")
    ).to_have_attribute("aria-checked", "false")
    await ana.get_by_role("switch", name="Available for new conversations").click()
    await expect(ana.locator("#availability .label")).to_have_text("Available")
    await shots(ana, "ana signed in and available")
    bruno = await sign_in(await new_context(), ws.tokens["Bruno Díaz"])
    await ws.set_status("Bruno Díaz", "available")

    customer = ws.customer("Valentina Ruiz")
    await customer.says("Hola, necesito ayuda con mi pedido")

    def question(requests: list[Received]) -> bool:
        return any("interactive" in r.body for r in requests)

    asked = await eventually(
        lambda: _received(suite, customer.wa_id), question, within=20, interval=0.1
    )
    buttons = next(r for r in asked if "interactive" in r.body)
    assert [b["reply"]["title"] for b in buttons.body["interactive"]["action"]["buttons"]] == [
        "Hablar con un asesor",
        "Mi pedido",
    ]

    # A person reads the question before tapping: the tap is stamped (Meta stamps whole
    # seconds) after the greeting's second, as it would be.
    await asyncio.sleep(1 - time.time() % 1)
    tapped = time.monotonic()
    await customer.taps("agent", "Hablar con un asesor", replying_to=buttons.wamid)
    item = ana.locator("#inbox .item", has_text="Valentina Ruiz")
    await expect(item).to_be_visible(timeout=20_000)
    arrived = time.monotonic() - tapped
    print(f"\nbutton tap -> conversation in the agent's inbox: {arrived * 1000:.0f} ms")
    await expect(ana.locator('nav.tabs a[data-tab="mine"] .count')).to_have_text("1")
    await expect(item.locator(".badge")).to_have_text("2")  # her two messages, unread
    await expect(ana).to_have_title("(2) Inbox · switchboard")
    await shots(ana, "conversation arrives in the inbox")

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
    await shots(ana, "bot turns, branch and the assignment explained")

    await panel.get_by_label("Reply to Valentina Ruiz").fill("Hola Valentina, soy Ana. ¿Qué pasó?")
    await panel.get_by_role("button", name="Send").click()
    reply = history.locator(".msg.member", has_text="soy Ana")
    await expect(reply).to_be_visible()
    await expect(reply.locator(".tick")).to_have_attribute("aria-label", "sent", timeout=20_000)
    sent = next(
        r for r in suite.graph.received_to(customer.wa_id) if r.text and "soy Ana" in r.text
    )
    assert sent.wamid is not None
    await customer.status(sent.wamid, "delivered")
    await expect(reply.locator(".tick")).to_have_attribute("aria-label", "delivered")
    await customer.status(sent.wamid, "read")
    await expect(reply.locator(".tick")).to_have_attribute("aria-label", "read")
    await shots(ana, "reply read by the customer")

    # The customer writes again: it shows in the open conversation, already read.
    written = time.monotonic()
    await customer.says("Mi pedido 4411 no llegó")
    await expect(history.locator(".msg.customer", has_text="4411")).to_be_visible()
    shown_after = (time.monotonic() - written) * 1000
    print(f"webhook -> message visible in the open conversation: {shown_after:.0f} ms")

    await panel.locator("details.transfer summary").click()
    await panel.get_by_label("Transfer to").select_option(label="Bruno Díaz (available)")
    await panel.get_by_label("Note (optional)").fill("Pedido 4411: logística")
    await shots(ana, "transfer to a colleague")
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

    # The stream's hints (the server decides them from each member's settings and the kind
    # of event) made the browsers notify and chime: Ana when it was assigned to her, Bruno
    # when it was transferred to him.
    [assigned, *_] = await notifications(ana)
    assert assigned["title"] == "A conversation was assigned to you"
    assert "Valentina Ruiz" in assigned["body"]
    assert await tones(ana) > 0
    assert any(
        n["title"] == "A conversation was assigned to you" for n in await notifications(bruno)
    )


async def _received(suite: Suite, to: str) -> list[Received]:
    return suite.graph.received_to(to)
