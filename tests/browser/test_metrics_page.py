"""An admin reads the service metrics of a real conversation in the suite: the figures, the
charts (inline SVG), the rows, a filter, the CSV export; an agent is kept out of the page."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import anyio
import pytest
from playwright.async_api import expect

from tests.browser.conftest import NewContext, Shots, Suite, queue_flow, sign_in
from tests.harness import eventually

pytestmark = pytest.mark.browser


async def test_an_admin_reads_service_metrics_with_charts_and_exports_them(
    suite: Suite, new_context: NewContext, shots: Shots
) -> None:
    ws = await suite.workspace("Metrics")
    await ws.add_member("Lucía Pardo")
    group = await ws.add_group("Soporte", "Lucía Pardo")
    await ws.run_flow(queue_flow(group))
    await ws.customer("Ramiro").says("Hola, necesito ayuda")

    # The agent claims it from the queue, answers, closes: the real pipeline throughout.
    queued = await eventually(lambda: ws.inbox("Lucía Pardo"), lambda i: bool(i["queued"]))
    conversation = queued["queued"][0]["conversation_id"]
    async with ws.http(ws.tokens["Lucía Pardo"]) as agent:
        claimed = await agent.post(f"/api/conversations/{conversation}/claim")
        assert claimed.status_code == 200, claimed.text
        replied = await agent.post(
            f"/api/conversations/{conversation}/messages", json={"text": "Con gusto"}
        )
        assert replied.status_code in (200, 202), replied.text
        closed = await agent.post(f"/api/conversations/{conversation}/close")
        assert closed.status_code in (200, 202), closed.text

    async def figures() -> dict[str, Any]:
        async with ws.http() as admin_api:
            answer = await admin_api.get("/api/metrics")
        assert answer.status_code == 200, answer.text
        totals: dict[str, Any] = answer.json()["totals"]
        return totals

    await eventually(
        figures,
        lambda t: (
            (t["handed_off"], t["queue_waits"], t["first_responses"], t["closed_by_agent"])
            == (1, 1, 1, 1)
        ),
        within=60,
    )

    admin = await sign_in(await new_context(), ws.admin_token)
    nav = admin.get_by_role("navigation", name="Sections")
    await nav.get_by_role("link", name="Metrics").click()
    await expect(admin.get_by_role("heading", name="Service metrics")).to_be_visible()
    await expect(admin.locator('[data-figure="handed_off"]')).to_have_text("1")
    await expect(admin.locator('[data-figure="closes"]')).to_have_text("1 / 0 / 0 / 0")
    await expect(admin.locator('[data-figure="messages"]')).to_have_text("1 in · 1 out")
    # Three charts, drawn inline (no script, no CDN), each named for assistive technology.
    charts = admin.get_by_role("img")
    await expect(charts).to_have_count(3)
    await expect(admin.get_by_role("img", name="Conversations per day")).to_be_visible()
    bars = admin.locator('svg[data-chart="1"] rect.bar')
    await expect(bars).to_have_count(2)  # today: one handed off, one resolved
    await expect(bars.first).to_have_attribute("data-value", "1")
    row = admin.locator("#metrics-rows tbody tr")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("Soporte")
    await expect(row).to_contain_text("Lucía Pardo")
    await expect(row).to_contain_text("1 / 0 / 0 / 0")
    await shots(admin, "metrics page with charts")

    # A filter: another member's rows only (none), then back to everyone.
    await admin.get_by_label("Member", exact=True).select_option(label="Lucía Pardo")
    await admin.get_by_role("button", name="Show").click()
    await expect(admin).to_have_url(re.compile(r"member="))
    await expect(row).to_contain_text("Lucía Pardo")

    # The CSV export of what the page shows.
    async with admin.expect_download() as download_info:
        await admin.get_by_role("link", name="Download CSV").click()
    download = await download_info.value
    text = await anyio.Path(await download.path()).read_text(encoding="utf-8")
    lines = list(csv.DictReader(io.StringIO(text)))
    assert [(line["group_name"], line["member_name"], line["handed_off"]) for line in lines] == [
        ("Soporte", "Lucía Pardo", "1")
    ]

    # A period that cannot be is said on the page, not answered with an error page.
    await admin.goto("/admin/metrics?from=2027-03-05&to=2027-03-01")
    await expect(admin.get_by_role("alert")).to_contain_text("after to")
    await shots(admin, "a reversed period explained")

    # Agents have no metrics page (their own figures are on the API).
    agent_page = await sign_in(await new_context(), ws.tokens["Lucía Pardo"])
    await agent_page.goto("/admin/metrics")
    await expect(agent_page.get_by_role("heading", name="Admins only")).to_be_visible()
