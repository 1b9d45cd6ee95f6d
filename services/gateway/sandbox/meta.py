"""What the sandbox says as Meta would (pure): Graph API answers, errors and webhook bodies.

The shapes follow Meta's WhatsApp Cloud API documentation: the send endpoint's request and
response (``POST /{version}/{phone_number_id}/messages``: ``messaging_product``, ``contacts``
with ``input`` and ``wa_id``, ``messages[0].id``; a "mark as read" request answers
``{"success": true}``), its error object (``message`` "(#code) title", ``type``, ``code``,
``error_data.details``, ``fbtrace_id``; codes 190 for a bad token, 100 for an unsupported
parameter, 131008 for a missing one, 131009 for an invalid value — Meta's "Error codes" page,
developers.facebook.com/documentation/business-messaging/whatsapp/support/error-codes), the
limits of interactive messages (developers.facebook.com/docs/whatsapp/guides/interactive-messages:
1 to 3 reply buttons with titles of at most 20 characters and ids of 256; lists with a
button label of 20, up to 10 sections and 10 rows in all, row titles of 24, descriptions of
72, ids of 200; bodies of 1024, headers and footers of 60; text bodies of 4096), and the
webhook bodies of messages (``interactive`` ``button_reply``/``list_reply`` with the
``context`` of the message answered) and statuses (``sent``, ``delivered``, ``read``,
``failed`` with ``errors``; 131047 "Re-engagement message" when the customer has not written
for 24 hours, which Meta reports by webhook, not in the send's answer).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

# Meta's webhooks name the WhatsApp Business Account; the sandbox has one.
SANDBOX_WABA_ID = "100000000000001"
SERVICE_WINDOW = timedelta(hours=24)
MESSAGE_TYPES = (
    "text",
    "interactive",
    "template",
    "image",
    "audio",
    "video",
    "document",
    "sticker",
    "location",
    "contacts",
    "reaction",
)
PHONE = re.compile(r"^\+?[0-9][0-9 ()-]{5,30}$")


@dataclass
class GraphError(Exception):
    """An answer of Meta's with its error object (not frozen: Python sets an exception's
    traceback on it)."""

    status: int
    code: int
    title: str
    details: str
    type: str = "OAuthException"

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": f"(#{self.code}) {self.title}",
                "type": self.type,
                "code": self.code,
                "error_data": {"messaging_product": "whatsapp", "details": self.details},
                "fbtrace_id": "Sbx" + secrets.token_urlsafe(12),
            }
        }


def missing(details: str) -> GraphError:
    return GraphError(400, 131008, "Required parameter is missing", details)


def invalid(details: str) -> GraphError:
    return GraphError(400, 131009, "Parameter value is not valid", details)


def unsupported(details: str) -> GraphError:
    return GraphError(400, 100, "Invalid parameter", details)


def token_problem(authorization: str | None, expected: str) -> GraphError | None:
    """Meta's 401 (code 190) for a missing or wrong bearer token; None when it is right."""
    if authorization == f"Bearer {expected}":
        return None
    return GraphError(
        401, 190, "Invalid OAuth access token - Cannot parse access token", "invalid token"
    )


@dataclass(frozen=True)
class Outgoing:
    """A message the business sent: ``input`` as given, ``wa_id`` the customer it reaches."""

    input: str
    wa_id: str
    kind: str
    body: dict[str, Any]


@dataclass(frozen=True)
class MarkRead:
    """The business marked a customer's message as read (blue ticks on the phone)."""

    message_id: str


def parse_send(body: object) -> Outgoing | MarkRead:
    """A send request as Meta checks it; raises :class:`GraphError` saying what is wrong."""
    if not isinstance(body, dict):
        raise unsupported("the request body must be a JSON object")
    if body.get("messaging_product") != "whatsapp":
        raise unsupported("messaging_product is required and must be 'whatsapp'")
    if body.get("status") == "read":
        message_id = body.get("message_id")
        if not isinstance(message_id, str) or not message_id:
            raise missing("message_id is required to mark a message as read")
        return MarkRead(message_id)
    to = body.get("to")
    if not isinstance(to, str) or not to:
        raise missing("to is required")
    if not PHONE.match(to):
        raise invalid(f"to: {to!r} is not a phone number")
    recipient_type = body.get("recipient_type", "individual")
    if recipient_type != "individual":
        raise invalid(f"recipient_type must be 'individual', got {recipient_type!r}")
    kind = body.get("type", "text")
    if kind not in MESSAGE_TYPES:
        raise unsupported(f"type must be one of {', '.join(MESSAGE_TYPES)}, got {kind!r}")
    content = body.get(kind)
    if not isinstance(content, dict):
        raise missing(f"{kind} is required for a message of type {kind!r}")
    match kind:
        case "text":
            _text(content, "body", "text.body", 4096)
        case "interactive":
            _interactive(content)
        case "template":
            _text(content, "name", "template.name", 512)
            language = content.get("language")
            if not isinstance(language, dict) or not isinstance(language.get("code"), str):
                raise missing("template.language.code is required")
        case _:
            pass  # media and the rest are shown as what they are
    return Outgoing(input=to, wa_id=re.sub(r"\D", "", to), kind=kind, body=body)


def _interactive(content: dict[str, Any]) -> None:
    kind = content.get("type")
    action = content.get("action")
    body = content.get("body")
    if not isinstance(action, dict):
        raise missing("interactive.action is required")
    if kind in ("button", "list"):
        if not isinstance(body, dict):
            raise missing("interactive.body is required")
        _text(body, "text", "interactive.body.text", 1024)
    for part in ("header", "footer"):
        value = content.get(part)
        if isinstance(value, dict) and isinstance(value.get("text"), str):
            _text(value, "text", f"interactive.{part}.text", 60)
    if kind == "button":
        buttons = action.get("buttons")
        if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
            raise invalid("interactive.action.buttons: 1 to 3 buttons")
        ids, titles = set(), set()
        for index, button in enumerate(buttons):
            where = f"interactive.action.buttons[{index}]"
            reply = button.get("reply") if isinstance(button, dict) else None
            if not isinstance(button, dict) or button.get("type") != "reply":
                raise invalid(f"{where}.type must be 'reply'")
            if not isinstance(reply, dict):
                raise missing(f"{where}.reply is required")
            ids.add(_text(reply, "id", f"{where}.reply.id", 256))
            titles.add(_text(reply, "title", f"{where}.reply.title", 20))
        if len(ids) != len(buttons) or len(titles) != len(buttons):
            raise invalid("interactive.action.buttons: ids and titles must be unique")
    elif kind == "list":
        _text(action, "button", "interactive.action.button", 20)
        sections = action.get("sections")
        if not isinstance(sections, list) or not 1 <= len(sections) <= 10:
            raise invalid("interactive.action.sections: 1 to 10 sections")
        rows: set[str] = set()
        count = 0
        for s, section in enumerate(sections):
            where = f"interactive.action.sections[{s}]"
            if not isinstance(section, dict) or not isinstance(section.get("rows"), list):
                raise missing(f"{where}.rows is required")
            if len(sections) > 1 or "title" in section:
                _text(section, "title", f"{where}.title", 24)
            for r, row in enumerate(section["rows"]):
                here = f"{where}.rows[{r}]"
                if not isinstance(row, dict):
                    raise invalid(f"{here} must be an object")
                rows.add(_text(row, "id", f"{here}.id", 200))
                _text(row, "title", f"{here}.title", 24)
                if "description" in row:
                    _text(row, "description", f"{here}.description", 72)
                count += 1
        if not 1 <= count <= 10:
            raise invalid(f"interactive.action.sections: 1 to 10 rows in all, got {count}")
        if len(rows) != count:
            raise invalid("interactive.action.sections: row ids must be unique")


def _text(container: dict[str, Any], name: str, where: str, limit: int) -> str:
    value = container.get(name)
    if not isinstance(value, str) or not value.strip():
        raise missing(f"{where} is required")
    if len(value) > limit:
        raise invalid(f"{where} must be at most {limit} characters, got {len(value)}")
    return value


def sent_answer(outgoing: Outgoing, wamid: str) -> dict[str, Any]:
    """Meta's 200 answer to a send."""
    return {
        "messaging_product": "whatsapp",
        "contacts": [{"input": outgoing.input, "wa_id": outgoing.wa_id}],
        "messages": [{"id": wamid}],
    }


def new_wamid() -> str:
    """A message id shaped like Meta's (an opaque ``wamid.`` string)."""
    return "wamid.SBX" + secrets.token_urlsafe(24)


def display_number(phone_number_id: str) -> str:
    """The number as customers see it. Meta's test numbers are 1 555 ...; the sandbox makes
    one up from the id, the same every time."""
    digits = re.sub(r"\D", "", phone_number_id)[-7:]
    return "1555" + digits.rjust(7, "0")


def window_closed(last_customer_message: datetime | None, now: datetime) -> bool:
    """Whether a free-form message fails with 131047: the customer last wrote to the sandbox
    more than 24 hours ago. A customer the sandbox never saw write is one whose messages
    reached switchboard another way (signed webhooks posted directly, ``make demo``): the
    sandbox cannot know its window and delivers (switchboard's dispatcher keeps its own)."""
    return last_customer_message is not None and now - last_customer_message >= SERVICE_WINDOW


def needs_window(outgoing: Outgoing) -> bool:
    return outgoing.kind != "template"


class ReplyInvalid(ValueError):
    """A reply to an interactive message that does not offer that option."""


def text_message(wamid: str, sender: str, at: datetime, text: str) -> dict[str, Any]:
    """A customer's text message as Meta's webhook carries it."""
    return {
        "from": sender,
        "id": wamid,
        "timestamp": str(int(at.timestamp())),
        "type": "text",
        "text": {"body": text},
    }


def reply_message(
    wamid: str,
    sender: str,
    at: datetime,
    *,
    answered: dict[str, Any],
    answered_wamid: str,
    business_number: str,
    option_id: str,
) -> dict[str, Any]:
    """The customer's tap on a reply button or list row of ``answered`` (the business's
    interactive message as sent), as Meta's webhook carries it."""
    interactive = answered.get("interactive")
    if answered.get("type") != "interactive" or not isinstance(interactive, dict):
        raise ReplyInvalid(f"message {answered_wamid} has no buttons or list")
    action = interactive.get("action") or {}
    if interactive.get("type") == "button":
        for button in action.get("buttons", []):
            reply = button.get("reply", {})
            if reply.get("id") == option_id:
                chosen = {"id": option_id, "title": reply.get("title")}
                return _interactive_reply(
                    wamid, sender, at, answered_wamid, business_number, "button_reply", chosen
                )
    elif interactive.get("type") == "list":
        for section in action.get("sections", []):
            for row in section.get("rows", []):
                if row.get("id") == option_id:
                    chosen = {"id": option_id, "title": row.get("title")}
                    if row.get("description"):
                        chosen["description"] = row["description"]
                    return _interactive_reply(
                        wamid, sender, at, answered_wamid, business_number, "list_reply", chosen
                    )
    raise ReplyInvalid(f"message {answered_wamid} offers no option {option_id!r}")


def _interactive_reply(
    wamid: str,
    sender: str,
    at: datetime,
    answered_wamid: str,
    business_number: str,
    kind: str,
    chosen: dict[str, Any],
) -> dict[str, Any]:
    return {
        "context": {"from": business_number, "id": answered_wamid},
        "from": sender,
        "id": wamid,
        "timestamp": str(int(at.timestamp())),
        "type": "interactive",
        "interactive": {"type": kind, kind: chosen},
    }


def messages_webhook(
    phone_number_id: str, contact_wa_id: str, contact_name: str, message: dict[str, Any]
) -> dict[str, Any]:
    """A webhook delivery carrying one customer message to the business number."""
    return _webhook(
        phone_number_id,
        {
            "contacts": [{"profile": {"name": contact_name}, "wa_id": contact_wa_id}],
            "messages": [message],
        },
    )


def status_webhook(
    phone_number_id: str,
    wamid: str,
    status: str,
    recipient: str,
    at: datetime,
    *,
    errors: list[dict[str, Any]] | None = None,
    sent: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A webhook delivery carrying one status of a message the business sent.

    ``sent`` is the send request: Meta returns its ``biz_opaque_callback_data`` in every
    status of the message, which is how switchboard finds the conversation that sent it.
    """
    entry: dict[str, Any] = {
        "id": wamid,
        "status": status,
        "timestamp": str(int(at.timestamp())),
        "recipient_id": recipient,
    }
    callback = (sent or {}).get("biz_opaque_callback_data")
    if isinstance(callback, str):
        entry["biz_opaque_callback_data"] = callback
    if status in ("sent", "delivered"):
        entry["pricing"] = {"billable": True, "pricing_model": "PMP", "category": "service"}
    if errors:
        entry["errors"] = errors
    return _webhook(phone_number_id, {"statuses": [entry]})


def re_engagement_error() -> dict[str, Any]:
    """The error of a free-form message to a customer silent for 24 hours (webhook form)."""
    return {
        "code": 131047,
        "title": "Re-engagement message",
        "message": "Re-engagement message",
        "error_data": {
            "details": "Message failed to send because more than 24 hours have passed since"
            " the customer last replied to this number."
        },
    }


def _webhook(phone_number_id: str, value: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": SANDBOX_WABA_ID,
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": display_number(phone_number_id),
                                "phone_number_id": phone_number_id,
                            },
                            **value,
                        },
                    }
                ],
            }
        ],
    }
