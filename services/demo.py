"""``switchboard demo``: post signed sample webhooks to a running gateway, print the history.

Uses the WhatsApp samples of ``shared/fixtures/whatsapp`` when present (else built-in
ones), rewritten to the demo workspace's business number and stamped with the current
time, so each run shows a fresh conversation within a second.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson

from services.gateway.webhook import sign
from services.settings import Settings

DEFAULT_FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "whatsapp"


def sample_bodies(phone_number_id: str, contact: str, fixtures: Path | None) -> list[bytes]:
    """A text message, then an interactive reply, from ``contact`` to the business number."""
    now = int(time.time())
    templates: list[dict[str, Any]] = []
    folder = fixtures or DEFAULT_FIXTURES
    for name in ("text_message.json", "button_reply.json"):
        path = folder / name
        if path.exists():
            templates.append(orjson.loads(path.read_bytes()))
    if not templates:
        templates = [_builtin_text()]
    bodies = []
    for index, template in enumerate(templates):
        for entry in template["entry"]:
            for change in entry["changes"]:
                value = change["value"]
                value["metadata"]["phone_number_id"] = phone_number_id
                for contact_entry in value.get("contacts", []):
                    contact_entry["wa_id"] = contact
                for message in value.get("messages", []):
                    message["from"] = contact
                    message["id"] = f"wamid.demo.{uuid.uuid4().hex}"
                    message["timestamp"] = str(now + index)
        bodies.append(orjson.dumps(template))
    return bodies


def run_demo(
    settings: Settings, *, url: str, token: str, phone_number_id: str, fixtures: Path | None
) -> int:
    contact = "5730" + str(uuid.uuid4().int)[:8]
    with httpx.Client(base_url=url, timeout=10) as client:
        for body in sample_bodies(phone_number_id, contact, fixtures):
            response = client.post(
                "/webhooks/whatsapp",
                content=body,
                headers={
                    "Content-Type": "application/json",
                    "X-Hub-Signature-256": sign(settings.whatsapp_app_secret, body),
                },
            )
            print(f"POST /webhooks/whatsapp -> {response.status_code} {response.text}")
            if response.status_code != 200:
                return 1
        headers = {"Authorization": f"Bearer {token}"}
        deadline = time.monotonic() + 20
        seen: list[dict[str, Any]] = []
        settled_since = time.monotonic()
        while time.monotonic() < deadline:
            found = client.get("/api/conversations", params={"contact": contact}, headers=headers)
            conversations = found.json().get("conversations", []) if found.is_success else []
            if conversations:
                conversation_id = conversations[0]["conversation_id"]
                lines = client.get(
                    f"/api/conversations/{conversation_id}/history", headers=headers
                ).json()["history"]
                if len(lines) != len(seen):
                    seen, settled_since = lines, time.monotonic()
                # The flow answers within moments; once nothing changes for a while, show it.
                if len(seen) >= 2 and time.monotonic() - settled_since > 1.5:
                    print(f"\nGET /api/conversations/{conversation_id}/history")
                    for line in seen:
                        print(describe(line))
                    return 0
            time.sleep(0.2)
    print("the history did not show up within 20 s; see the process logs", flush=True)
    return 1


def describe(line: dict[str, Any]) -> str:
    """One history line as a person reads it."""
    who = line["author_name"] or line["author_kind"]
    status = f"  [{line['status']}]" if line.get("status") else ""
    text = f"(conversation closed: {line['text']})" if line["kind"] == "closed" else line["text"]
    return f"  {line['position']:>2}. {line['occurred_at'][11:19]} {who:<16} {text}{status}"


def _builtin_text() -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "0",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"display_phone_number": "0", "phone_number_id": "0"},
                            "contacts": [{"profile": {"name": "Demo Customer"}, "wa_id": "0"}],
                            "messages": [
                                {
                                    "from": "0",
                                    "id": "wamid.demo",
                                    "timestamp": "0",
                                    "type": "text",
                                    "text": {"body": "Hello, I need help with my order"},
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }
