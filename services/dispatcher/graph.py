"""The WhatsApp Cloud API call: Meta's message bodies, and what an answer (or none) means.

``POST {WHATSAPP_API_BASE_URL}/{phone_number_id}/messages`` with the bearer token. The
client is synchronous because it runs inside the consumer's record handler, in a worker
thread, between two store transactions (see ``handlers.py``). It never retries by itself:
every attempt must be recorded before it is made, so the retry loop belongs to the
dispatcher, not to the transport.

What counts as *not sent* (so another attempt is safe) is deliberately narrow: the
connection could not be opened, or no pooled connection was free. Anything that failed
after the request may have left (a read or write timeout, a dropped connection) is
ambiguous, because Meta may have accepted it.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from events.base import JsonObject
from events.outbound import OutboundMessageQueued
from services.dispatcher.decide import Accepted, Ambiguous, Rejected, SendResult, Transient
from services.settings import Settings

# Raised before any byte of the request can have reached Meta.
NOT_SENT_ERRORS: tuple[type[httpx.TransportError], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
    httpx.LocalProtocolError,
    httpx.ProxyError,
)


def recipient(contact_id: str) -> JsonObject:
    """Where Meta's Messages API takes the customer: ``to`` for a phone number (wa_id),
    ``recipient`` for a business-scoped user id (BSUID, ``US.13491208655302741918``), all a
    conversation knows of a customer who adopted a username. (Meta's "Business-scoped user
    IDs" page: ``to`` wins when both are sent, so only one is.)"""
    digits = contact_id.removeprefix("+")
    return (
        {"to": contact_id} if digits.isascii() and digits.isdigit() else {"recipient": contact_id}
    )


def message_body(request: OutboundMessageQueued) -> JsonObject:
    """Meta's JSON body for one message, per the Cloud API's message types.

    ``biz_opaque_callback_data`` carries the conversation id: Meta returns it in every
    status of the message, so a status is attached to the conversation that sent the
    message even when the customer has started another one since.
    """
    body: JsonObject = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        **recipient(request.to),
        "biz_opaque_callback_data": str(request.conversation_id),
    }
    match request.kind:
        case "text":
            return {**body, "type": "text", "text": {"body": request.text}}
        case "buttons":
            buttons = [
                {"type": "reply", "reply": {"id": option.id, "title": option.title}}
                for option in request.options
            ]
            return {
                **body,
                "type": "interactive",
                "interactive": {
                    "type": "button",
                    "body": {"text": request.text},
                    "action": {"buttons": buttons},
                },
            }
        case "list":
            rows = [
                {"id": option.id, "title": option.title}
                | ({"description": option.description} if option.description else {})
                for option in request.options
            ]
            return {
                **body,
                "type": "interactive",
                "interactive": {
                    "type": "list",
                    "body": {"text": request.text},
                    "action": {
                        # Meta requires the menu button's label; the contract names
                        # "Choose" as what an unlabelled list shows.
                        "button": request.list_button or "Choose",
                        "sections": [{"rows": rows}],
                    },
                },
            }
        case "template":
            # ``text`` names the template; the template object (language, components)
            # comes whole from the request and wins where both say something.
            return {
                **body,
                "type": "template",
                "template": {"name": request.text, **(request.template or {})},
            }


def interpret(status: int, content: bytes) -> SendResult:
    """What Meta's HTTP answer means for the message."""
    parsed = _json(content)
    error = parsed.get("error") if isinstance(parsed.get("error"), dict) else None
    if 200 <= status < 300:
        messages = parsed.get("messages")
        if isinstance(messages, list) and messages and isinstance(messages[0], dict):
            wamid = messages[0].get("id")
            if isinstance(wamid, str) and wamid:
                return Accepted(wamid)
        # Meta said yes without naming the message: it may well be on its way.
        return Ambiguous(f"HTTP {status} without messages[0].id: {_excerpt(content)}")
    detail = f"HTTP {status}: {_describe(error, content)}"
    if status == 429 or status >= 500:
        return Transient(status, error, detail)
    return Rejected(status, error or {"body": _excerpt(content)}, detail)


class GraphApi:
    """Sends one message per call and says what became of it; never raises for HTTP."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    @classmethod
    def client_for(cls, settings: Settings) -> httpx.Client:
        return httpx.Client(
            base_url=settings.whatsapp_api_base_url.rstrip("/") + "/",
            headers={"Authorization": f"Bearer {settings.whatsapp_access_token}"},
            timeout=httpx.Timeout(settings.dispatch_timeout_seconds),
            # retries=0: the transport must never resend on its own (see module docstring).
            transport=httpx.HTTPTransport(retries=0),
        )

    def send(self, request: OutboundMessageQueued) -> SendResult:
        try:
            response = self.client.post(
                f"{request.phone_number_id}/messages", json=message_body(request)
            )
        except NOT_SENT_ERRORS as error:
            return Transient(None, None, f"the Graph API was not reached: {_error(error)}")
        except httpx.TransportError as error:
            return Ambiguous(f"no answer from the Graph API after sending: {_error(error)}")
        return interpret(response.status_code, response.content)


def _json(content: bytes) -> dict[str, Any]:
    try:
        parsed = orjson.loads(content)
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _describe(error: JsonObject | None, content: bytes) -> str:
    if error is None:
        return _excerpt(content) or "(empty body)"
    parts = [str(error.get("message", "(no message)"))]
    if "code" in error:
        parts.append(f"code {error['code']}")
    details = error.get("error_data", {})
    if isinstance(details, dict) and details.get("details"):
        parts.append(str(details["details"]))
    return "; ".join(parts)


def _excerpt(content: bytes) -> str:
    return content[:500].decode("utf-8", "replace")


def _error(error: Exception) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
