"""What must not happen: another workspace's member seeing anything, a signed-out browser
getting a page, another site acting with a signed-in member's session."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.async_api import expect

from tests.browser.conftest import NewContext, Shots, Suite, queue_flow, sign_in
from tests.harness import eventually

pytestmark = pytest.mark.browser


@contextmanager
def attacker_site(page: str) -> Iterator[str]:
    """Another origin (same host, another port: the *same site* for cookies) serving ``page``."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = page.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


async def test_workspaces_see_nothing_of_each_other_and_pages_need_a_session(
    suite: Suite, new_context: NewContext, shots: Shots
) -> None:
    ours = await suite.workspace("Ours")
    await ours.add_member("Hugo Vela")
    group = await ours.add_group("Soporte privado", "Hugo Vela")
    flow = await ours.run_flow(queue_flow(group))
    await ours.customer("Irene Soto").says("Dato privado 8812")

    async def queued() -> list[dict[str, object]]:
        found: list[dict[str, object]] = (await ours.inbox())["all"]
        return found

    [conversation] = await eventually(queued, lambda rows: len(rows) == 1)
    theirs = await suite.workspace("Theirs")

    # A signed-out browser is sent to sign in, and back where it was going afterwards.
    stranger = await (await new_context()).new_page()
    for path in ("/", "/admin/members", f"/conversations/{conversation['conversation_id']}"):
        await stranger.goto(path)
        await expect(stranger.get_by_label("Member token")).to_be_visible()
        assert "/sign-in?next=" in stranger.url
    await shots(stranger, "signed out: the sign-in page")
    await stranger.get_by_label("Member token").fill(theirs.admin_token)
    await stranger.get_by_role("button", name="Sign in").click()
    await expect(stranger).to_have_url(
        f"{suite.url}/conversations/{conversation['conversation_id']}"
    )
    await expect(stranger.locator("#conversation")).to_contain_text("not one you can see")

    # The other workspace's admin: nothing of ours anywhere.
    for tab in ("mine", "queue", "all", "workspace"):
        await stranger.goto(f"/?tab={tab}")
        await expect(stranger.locator("#inbox .item")).to_have_count(0)
        await expect(stranger.locator("body")).not_to_contain_text("Irene Soto")
    await stranger.goto("/admin/members")
    await expect(stranger.locator("body")).not_to_contain_text("Hugo Vela")
    await stranger.goto(f"/admin/groups/{group}")
    await expect(stranger.get_by_role("heading", name="No such group")).to_be_visible()
    await stranger.goto(f"/admin/flows/{flow}")
    await expect(stranger.get_by_role("heading", name="No such flow")).to_be_visible()
    fragment = await stranger.request.get(f"/ui/conversations/{conversation['conversation_id']}")
    assert fragment.status == 404
    await shots(stranger, "another workspace sees none of it")


async def test_another_site_cannot_act_with_a_members_session(
    suite: Suite, new_context: NewContext, shots: Shots
) -> None:
    ws = await suite.workspace("Forgery")
    group = await ws.add_group("G")
    await ws.run_flow(queue_flow(group))
    await ws.customer("Julia Rey").says("hola")

    async def queued() -> list[dict[str, object]]:
        found: list[dict[str, object]] = (await ws.inbox())["all"]
        return found

    [conversation] = await eventually(queued, lambda rows: len(rows) == 1)
    cid = conversation["conversation_id"]
    admin = await sign_in(await new_context(), ws.admin_token)

    forged_form = f"""<!doctype html><title>Win a prize</title>
    <form id="f" method="post" action="{suite.url}/api/conversations/{cid}/close"></form>
    <script>document.getElementById("f").submit()</script>"""
    with attacker_site(forged_form) as evil:
        async with admin.expect_response(f"{suite.url}/api/conversations/{cid}/close") as sent:
            await admin.goto(evil)
        response = await sent.value
        assert response.status == 403
        assert f"a request from {evil}" in await response.text()
        await shots(admin, "a forged cross-site form is refused")

    # A script on the other site, sending what a browser lets it send without asking (a
    # "simple" POST, the member's cookie included), is refused too, and cannot read a word.
    reply = f"{suite.url}/api/conversations/{cid}/messages"
    forged_fetch = f"""<!doctype html><title>x</title><script>
    fetch("{reply}", {{
      method: "POST", credentials: "include", mode: "no-cors",
      headers: {{"Content-Type": "text/plain"}}, body: '{{"text": "Click here"}}'
    }});
    </script>"""
    with attacker_site(forged_fetch) as evil:
        async with admin.expect_response(reply) as sent:
            await admin.goto(evil)
        assert (await sent.value).status == 403

    # Signing out is a write too.
    forged_sign_out = f"""<!doctype html><title>x</title>
    <form id="f" method="post" action="{suite.url}/sign-out"></form>
    <script>document.getElementById("f").submit()</script>"""
    with attacker_site(forged_sign_out) as evil:
        async with admin.expect_response(f"{suite.url}/sign-out") as sent:
            await admin.goto(evil)
        assert (await sent.value).status == 403

    await asyncio.sleep(1)  # anything accepted would have been decided by now
    async with ws.http() as client:
        still = (await client.get(f"/api/conversations/{cid}")).json()
        history = (await client.get(f"/api/conversations/{cid}/history")).json()["history"]
    assert still["status"] == "open"
    assert not [line for line in history if line["author_kind"] == "member"]
    await admin.goto("/")
    await expect(admin.get_by_role("link", name="Inbox", exact=True)).to_be_visible()  # signed in
