"""Every kind of customer message reads as what it is in the conversation: media with their
type and caption, a location, shared contacts, a reaction, a reply quoting what it answers,
an edit keeping what it replaced, a deletion hiding the text."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from playwright.async_api import expect

from tests.browser.conftest import NewContext, Shots, Suite, queue_flow, says_in_kind, sign_in
from tests.harness import eventually

pytestmark = pytest.mark.browser


async def test_media_locations_contacts_reactions_and_replies_read_as_such(
    suite: Suite, new_context: NewContext, shots: Shots
) -> None:
    ws = await suite.workspace("Kinds")
    group = await ws.add_group("Soporte")
    await ws.run_flow(queue_flow(group))
    customer = ws.customer("Paula Ríos")
    first = await customer.says("Les envío los datos")

    async def queued() -> list[dict[str, object]]:
        found: list[dict[str, object]] = (await ws.inbox())["all"]
        return found

    [conversation] = await eventually(queued, lambda rows: len(rows) == 1)
    sha = "c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5"
    kinds: list[dict[str, Any]] = [
        {
            "type": "image",
            "image": {"caption": "La factura", "mime_type": "image/jpeg", "sha256": sha, "id": "1"},
        },
        {
            "type": "document",
            "document": {
                "caption": "El contrato",
                "filename": "contrato.pdf",
                "mime_type": "application/pdf",
                "sha256": sha,
                "id": "2",
            },
        },
        {
            "type": "audio",
            "audio": {
                "mime_type": "audio/ogg; codecs=opus",
                "sha256": sha,
                "id": "3",
                "voice": True,
            },
        },
        {
            "type": "location",
            "location": {
                "latitude": 4.6097,
                "longitude": -74.0817,
                "name": "Oficina centro",
                "address": "Cra 7 # 32-16, Bogotá",
            },
        },
        {
            "type": "contacts",
            "contacts": [
                {
                    "name": {"formatted_name": "Laura Gómez", "first_name": "Laura"},
                    "phones": [
                        {"phone": "+57 300 555 0101", "type": "CELL", "wa_id": "573005550101"}
                    ],
                }
            ],
        },
        {"type": "reaction", "reaction": {"message_id": first, "emoji": "👍"}},
        {"type": "text", "text": {"body": "¿Me confirman?"}, "context": {"id": first}},
    ]
    typo = {"type": "text", "text": {"body": "Mi pedio es el 4411"}}
    await asyncio.sleep(1 - time.time() % 1)  # she writes again in a later second
    for message in kinds:
        await says_in_kind(customer, message)
    typed = await says_in_kind(customer, typo)
    # Meta's edit and revoke messages name the message they change.
    await says_in_kind(
        customer,
        {
            "type": "edit",
            "edit": {
                "original_message_id": typed,
                "message": {"type": "text", "text": {"body": "Mi pedido es el 4411"}},
            },
        },
    )
    gone = await says_in_kind(customer, {"type": "text", "text": {"body": "número equivocado"}})
    await says_in_kind(customer, {"type": "revoke", "revoke": {"original_message_id": gone}})

    admin = await sign_in(await new_context(), ws.admin_token)
    await admin.goto(f"/conversations/{conversation['conversation_id']}?tab=all")
    history = admin.locator("#history")
    await expect(history.locator(".msg.customer")).to_have_count(1 + len(kinds) + 2)
    customer_lines = history.locator(".msg.customer .body")
    await expect(customer_lines.nth(1)).to_have_text("[image, image/jpeg] La factura")
    await expect(customer_lines.nth(2)).to_have_text(
        "[document, application/pdf: contrato.pdf] El contrato"
    )
    await expect(customer_lines.nth(3)).to_contain_text("[audio, audio/ogg; codecs=opus]")
    await expect(customer_lines.nth(4)).to_contain_text("Oficina centro, Cra 7 # 32-16, Bogotá")
    await expect(customer_lines.nth(4)).to_contain_text("(4.6097, -74.0817)")
    await expect(customer_lines.nth(5)).to_contain_text("Laura Gómez +57 300 555 0101")
    await expect(customer_lines.nth(6)).to_have_text("reacted 👍 to a message")
    await expect(customer_lines.nth(7)).to_have_text("¿Me confirman?")
    # A reply quotes what it answers.
    reply = history.locator(".msg.customer", has_text="¿Me confirman?")
    await expect(reply.locator(".quoted")).to_have_text("↩ Les envío los datos")
    edited = history.locator(".msg.customer", has_text="Mi pedido es el 4411")
    await expect(edited.locator(".edits summary")).to_contain_text("edited")
    await edited.locator(".edits summary").click()
    await expect(edited.locator(".edits li")).to_contain_text("Mi pedio es el 4411")
    await expect(history).not_to_contain_text("número equivocado")
    await expect(history.locator(".msg.customer").last).to_contain_text(
        "This message was deleted by its author"
    )
    await shots(admin, "every kind of message in the history")
