"""Canned responses, private notes and replies that survive a lost answer, in the suite with
the customer on the sandbox's phone: an admin writes canned responses on their page, the
agent types "/" in the reply box, filters them as she types, picks one with the keyboard and
sends it filled; the answer to her send is lost on the way back, she sends again, and the
customer gets it once; she adds a private note, which shows in the history, marked, and never
reaches the phone."""

from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import Route, expect

from tests.browser.conftest import NewContext, Shots, Suite, phone, sign_in, support_flow

pytestmark = pytest.mark.browser


async def test_canned_responses_a_retried_reply_and_a_private_note(
    suite: Suite, new_context: NewContext, shots: Shots
) -> None:
    ws = await suite.workspace("Canned and notes")
    await ws.add_member("Ana Gómez")
    group = await ws.add_group("Soporte", "Ana Gómez")
    await ws.run_flow(support_flow(group))

    # The admin's page: two responses, one with variables.
    admin = await sign_in(await new_context(), ws.admin_token, "/admin/canned-responses")
    await expect(admin.get_by_role("heading", name="Canned responses", exact=True)).to_be_visible()
    form = admin.locator("#create-canned")
    for shortcut, text in (
        ("hola", "Hola {{contact.name}}, soy {{agent.name}}. ¿En qué te ayudo?"),
        ("horario", "Atendemos de 8:00 a 18:00."),
    ):
        await form.get_by_label("Shortcut").fill(shortcut)
        await form.get_by_label("Text").fill(text)
        await form.get_by_role("button", name="Add").click()
        await expect(admin.locator(f'tr[data-canned="{shortcut}"]')).to_be_visible()
    await form.get_by_label("Shortcut").fill("mal")
    await form.get_by_label("Text").fill("Hola {{cliente}}")
    await form.get_by_role("button", name="Add").click()
    await expect(admin.locator("#toast")).to_contain_text("unknown variable {{cliente}}")
    horario = admin.locator('tr[data-canned="horario"]')
    await horario.locator("summary", has_text="Edit").click()
    await horario.get_by_label("Text").fill("Atendemos de 8:00 a 20:00, de lunes a sábado.")
    await horario.get_by_role("button", name="Save").click()
    await expect(admin.locator('tr[data-canned="horario"] .canned-text')).to_have_text(
        "Atendemos de 8:00 a 20:00, de lunes a sábado."
    )
    await shots(admin, "the admin's canned responses")

    ana = await sign_in(await new_context(), ws.tokens["Ana Gómez"])
    await ana.get_by_role("switch", name="Available for new conversations").click()
    await expect(ana.locator("#availability .label")).to_have_text("Available")
    customer = await phone(await new_context(), ws, "Valentina Ruiz")
    await customer.says("Hola, necesito ayuda")
    await customer.taps("Hablar con un asesor")
    item = ana.locator("#inbox .item", has_text="Valentina Ruiz")
    await expect(item).to_be_visible()
    await item.locator(".item-link").click()
    panel = ana.locator("#conversation-panel")
    history = panel.locator("#history")

    # "/" offers both, filtered as she types; the keyboard picks one.
    box = panel.get_by_label("Reply to Valentina Ruiz")
    await box.press_sequentially("/ho")
    offered = panel.get_by_role("listbox", name="Canned responses")
    await expect(offered.get_by_role("option")).to_have_count(2)
    await expect(box).to_have_attribute("aria-expanded", "true")
    await shots(ana, "slash offers the canned responses")
    await box.press_sequentially("r")
    await expect(offered.get_by_role("option")).to_have_count(1)
    await expect(offered.get_by_role("option")).to_contain_text("/horario")
    await box.press("Backspace")
    await expect(offered.get_by_role("option")).to_have_count(2)
    await box.press("ArrowDown")
    await box.press("ArrowUp")
    await expect(offered.get_by_role("option").first).to_have_attribute("aria-selected", "true")
    await box.press("Enter")
    await expect(offered).to_be_hidden()
    filled = "Hola Valentina Ruiz, soy Ana Gómez. ¿En qué te ayudo?"
    await expect(box).to_have_value(filled)

    # The send reaches the server but its answer is lost: the suite says so, keeps the
    # draft and its key; sending again answers as the first did, and the phone shows it once.
    lost: list[str] = []

    async def answer_lost(route: Route) -> None:
        if route.request.method == "POST" and not lost:
            lost.append(route.request.headers.get("idempotency-key", ""))
            await route.fetch()  # the gateway queued it ...
            await route.abort("timedout")  # ... but the browser never hears back
            return
        await route.continue_()

    await ana.route("**/api/conversations/*/messages", answer_lost)
    await panel.get_by_role("button", name="Send").click()
    await expect(ana.locator("#toast")).to_contain_text("Not sent")
    await expect(box).to_have_value(filled)
    await expect(customer.bubble("soy Ana Gómez")).to_be_visible()  # it did go out
    async with ana.expect_request("**/api/conversations/*/messages") as sent_again:
        await panel.get_by_role("button", name="Send").click()
    assert (await sent_again.value).headers.get("idempotency-key") == lost[0] != ""
    await expect(box).to_have_value("")
    await expect(history.locator(".msg.member", has_text="soy Ana Gómez")).to_have_count(1)
    await expect(customer.bubble("soy Ana Gómez")).to_have_count(1)
    await ana.unroute("**/api/conversations/*/messages", answer_lost)
    await shots(ana, "the filled reply, sent once")

    # A private note: marked in the history, never on the phone.
    await panel.locator("#note-box summary").click()
    await panel.get_by_label("Private note (members only, never sent to the customer)").fill(
        "Cliente frecuente: ofrecer envío gratis"
    )
    await panel.get_by_role("button", name="Add note").click()
    note = history.locator(".line.private-note")
    await expect(note).to_contain_text("Cliente frecuente: ofrecer envío gratis")
    await expect(note.locator(".note-tag")).to_have_text("Private note")
    await expect(note).to_contain_text("Ana Gómez")
    await shots(ana, "a private note in the history")
    # After the note, the customer writes and the agent answers: the phone shows all of it
    # in order, and never the note.
    await customer.says("Gracias")
    await expect(history.locator(".msg.customer", has_text="Gracias")).to_be_visible()
    await box.fill("Con gusto")
    await panel.get_by_role("button", name="Send").click()
    await expect(customer.bubble("Con gusto")).to_be_visible()
    await expect(customer.page.get_by_text("Cliente frecuente")).to_have_count(0)
    lines = await ws.history(str(await panel.get_attribute("data-conversation-id")))
    assert [line["text"] for line in lines if line["kind"] == "note"] == [
        "Cliente frecuente: ofrecer envío gratis"
    ]
    await shots(customer.page.locator("main.phone"), "the phone: replies, never the note")

    # The admin deletes one: it is no longer offered.
    admin.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await admin.locator('tr[data-canned="horario"]').get_by_role("button", name="Delete").click()
    await expect(admin.locator('tr[data-canned="horario"]')).to_have_count(0)
    await expect(admin.locator('tr[data-canned="hola"]')).to_be_visible()
    async with ws.http(ws.tokens["Ana Gómez"]) as client:
        listed = (await client.get("/api/canned-responses")).json()["canned_responses"]
    assert [r["shortcut"] for r in listed] == ["hola"]
