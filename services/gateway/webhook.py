"""Meta's WhatsApp Cloud API webhook: signature check and splitting into records (pure).

A delivery batches entries, each with changes. A ``messages`` change carries messages,
statuses and errors of one business number; ``smb_message_echoes`` the messages the
business sent from its WhatsApp Business app; every other field (marketing preferences,
template and account updates, calls...) concerns the business account.

Each item becomes one record:

* a customer's message, status or echo -> ``whatsapp.inbound``, keyed by business number
  and contact (``{phone_number_id}:{contact id}``), so one customer's records stay in order
  on one partition;
* any other change -> a typed event on ``whatsapp.business``, keyed by ``waba_id``;
* a part that is not what Meta documents -> ``whatsapp.rejected``, kept whole with the
  reason, while the valid items of the delivery go on. Meta retries a refused delivery for
  days and would deliver nothing in the meantime, so one bad item must not cost the others.

Only a body that is not a webhook at all (not JSON, not an object, not
``whatsapp_business_account``, no entries) raises :class:`WebhookError`.

Record ids derive from everything that makes the item unique (business number, contact,
wamid; for statuses also the status and its time), never the wamid alone: Meta's retries
of an item carry the same id, and the same wamid on two numbers does not.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid5

import orjson

from events.base import Payload
from events.business import (
    ACCOUNT_FIELDS,
    TEMPLATE_FIELDS,
    AccountUpdated,
    BusinessUpdateReceived,
    MarketingPreferenceChanged,
    TemplateQualityChanged,
    TemplateStatusChanged,
    TemplateUpdated,
    WebhookErrorsReported,
)
from events.envelope import Actor, Envelope
from events.whatsapp import (
    WebhookItemRejected,
    WhatsAppMessageEchoed,
    WhatsAppMessageReceived,
    WhatsAppStatusReceived,
)

RECORD_NAMESPACE = UUID("2b6f9d1e-4c3a-4e8b-b7f0-1d2c3b4a5e6f")
# Meta's payloads nest about ten levels; Kafka records are encoded with orjson, which stops
# at 254. Deeper is not a webhook.
MAX_DEPTH = 128
# Unix seconds up to 9999-12-31T23:59:59Z, the last instant Python's datetime can hold.
LATEST_TIMESTAMP = 253_402_300_799


class WebhookError(ValueError):
    """A body that is not a WhatsApp webhook; the message says exactly where and why."""


class InvalidItem(ValueError):
    """An item of a webhook that is not what Meta documents; the message says why."""


def signature_valid(secret: str, body: bytes, header: str | None) -> bool:
    """Check ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`` (constant time).

    Headers arrive as Latin-1 text, so any character may be in one: a header that is not
    ASCII cannot be Meta's hex digest and is refused before the comparison (which would
    raise on it).
    """
    if not secret or not header or not header.isascii() or not header.startswith("sha256="):
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header.removeprefix("sha256=").strip().lower())


def token_matches(expected: str, given: str | None) -> bool:
    """The verification token, compared in constant time (as bytes: any text may be given)."""
    if not expected or given is None:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def sign(secret: str, body: bytes) -> str:
    """The header value Meta would send for ``body`` (for tests, the demo and tools)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class OutgoingRecord:
    key: str
    envelope: Envelope


@dataclass
class SplitWebhook:
    """A delivery's records by topic, each list in the order Meta listed the items."""

    inbound: list[OutgoingRecord] = field(default_factory=list)
    business: list[OutgoingRecord] = field(default_factory=list)
    rejected: list[OutgoingRecord] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return len(self.inbound) + len(self.business)


def split_webhook(body: bytes, *, received_at: datetime) -> SplitWebhook:
    """Every item of a delivery as a record; raise :class:`WebhookError` for a non-webhook."""
    try:
        document: Any = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise WebhookError(f"body is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise WebhookError("body must be a JSON object")
    if document.get("object") != "whatsapp_business_account":
        raise WebhookError(
            f"'object' must be 'whatsapp_business_account', got {_excerpt(document.get('object'))}"
        )
    entries = document.get("entry")
    if not isinstance(entries, list) or not entries:
        raise WebhookError("body.entry must be a non-empty list")
    depth = _depth(document)
    if depth > MAX_DEPTH:
        raise WebhookError(f"body nests {depth} levels deep; a webhook nests about ten")
    split = _Splitter(received_at)
    for e, entry in enumerate(entries):
        split.entry(entry, f"entry[{e}]")
    return split.result


class _Splitter:
    """Walks one delivery, keeping each valid item and parking each invalid one."""

    def __init__(self, received_at: datetime) -> None:
        self.received_at = received_at
        self.result = SplitWebhook()

    def entry(self, entry: Any, where: str) -> None:
        waba_id: str | None = None
        try:
            if not isinstance(entry, dict):
                raise InvalidItem("an entry must be an object")
            waba_id = _identifier(entry, "id")
            changes = entry.get("changes")
            if not isinstance(changes, list) or not changes:
                raise InvalidItem("'changes' must be a non-empty list")
        except InvalidItem as error:
            self.reject(entry, where, str(error), waba_id=waba_id)
            return
        for c, change in enumerate(changes):
            self.change(waba_id, change, f"{where}.changes[{c}]")

    def change(self, waba_id: str, change: Any, where: str) -> None:
        try:
            if not isinstance(change, dict):
                raise InvalidItem("a change must be an object")
            name = _identifier(change, "field")
            value = change.get("value")
            if not isinstance(value, dict):
                raise InvalidItem("'value' must be an object")
        except InvalidItem as error:
            self.reject(change, where, str(error), waba_id=waba_id)
            return
        here = f"{where}.value"
        match name:
            case "messages" | "smb_message_echoes":
                self.messages_change(waba_id, name, value, here)
            case "user_preferences":
                self.preferences_change(waba_id, value, here)
            case _:
                self.business(waba_id, _business_update(waba_id, name, value, self.received_at))

    # -- messages, statuses, echoes: one customer each ------------------------------------

    def messages_change(self, waba_id: str, name: str, value: dict[str, Any], where: str) -> None:
        try:
            number, display = _number(value)
        except InvalidItem as error:
            # Without the number no item of this change can be routed: park the change.
            self.reject(value, where, str(error), waba_id=waba_id)
            return
        context = _Number(waba_id, number, display, self.contacts(value, where, waba_id, number))
        kept = 0
        if name == "messages":
            kept += self.each(value, "messages", where, context, self.message)
            kept += self.each(value, "statuses", where, context, self.status)
        else:
            kept += self.each(value, "message_echoes", where, context, self.echo)
        errors = value.get("errors")
        if errors is not None:
            if isinstance(errors, list) and errors and all(isinstance(e, dict) for e in errors):
                self.business(
                    waba_id,
                    WebhookErrorsReported(
                        waba_id=waba_id,
                        phone_number_id=number,
                        errors=errors,
                        received_at=self.received_at,
                    ),
                )
                kept += 1
            else:
                self.reject(
                    errors,
                    f"{where}.errors",
                    "'errors' must be a non-empty list of objects",
                    waba_id=waba_id,
                    phone_number_id=number,
                )
                kept += 1
        if not kept:
            items = "messages, statuses" if name == "messages" else "message_echoes"
            self.reject(
                value,
                where,
                f"a '{name}' change with no {items} or errors",
                waba_id=waba_id,
                phone_number_id=number,
            )

    def contacts(
        self, value: dict[str, Any], where: str, waba_id: str, number: str
    ) -> list[dict[str, Any]]:
        found = value.get("contacts")
        if found is None:
            return []
        if not isinstance(found, list):
            self.reject(
                found,
                f"{where}.contacts",
                "'contacts' must be a list",
                waba_id=waba_id,
                phone_number_id=number,
            )
            return []
        kept: list[dict[str, Any]] = []
        for n, contact in enumerate(found):
            problem = _contact_problem(contact)
            if problem is None:
                kept.append(contact)
            else:
                self.reject(
                    contact,
                    f"{where}.contacts[{n}]",
                    problem,
                    waba_id=waba_id,
                    phone_number_id=number,
                )
        return kept

    def each(
        self,
        value: dict[str, Any],
        name: str,
        where: str,
        context: _Number,
        keep: Callable[[_Number, dict[str, Any]], OutgoingRecord],
    ) -> int:
        """Keep every valid item of ``value[name]``, park the others; how many there were."""
        items = value.get(name)
        if items is None:
            return 0
        if not isinstance(items, list):
            self.reject(
                items,
                f"{where}.{name}",
                f"'{name}' must be a list",
                waba_id=context.waba_id,
                phone_number_id=context.number,
            )
            return 1
        for i, item in enumerate(items):
            try:
                if not isinstance(item, dict):
                    raise InvalidItem("an item must be an object")
                self.result.inbound.append(keep(context, item))
            except InvalidItem as error:
                self.reject(
                    item,
                    f"{where}.{name}[{i}]",
                    str(error),
                    waba_id=context.waba_id,
                    phone_number_id=context.number,
                )
        return len(items)

    def message(self, context: _Number, message: dict[str, Any]) -> OutgoingRecord:
        wamid = _identifier(message, "id")
        _identifier(message, "type")
        _timestamp(message, "timestamp")
        sender = context.customer(
            _optional_identifier(message, "from"), _optional_identifier(message, "from_user_id")
        )
        payload = WhatsAppMessageReceived(
            waba_id=context.waba_id,
            phone_number_id=context.number,
            display_phone_number=context.display,
            contact_id=sender.id,
            contact_wa_id=sender.wa_id,
            contact_user_id=sender.user_id,
            contact_name=sender.name,
            contact=sender.contact,
            message=message,
            received_at=self.received_at,
        )
        return self.record(
            f"{context.number}:{sender.id}",
            payload,
            identity=f"message:{context.number}:{sender.id}:{wamid}",
            actor_id=sender.id,
        )

    def echo(self, context: _Number, echo: dict[str, Any]) -> OutgoingRecord:
        wamid = _identifier(echo, "id")
        _identifier(echo, "type")
        _timestamp(echo, "timestamp")
        customer = context.customer(
            _optional_identifier(echo, "to"), _optional_identifier(echo, "to_user_id")
        )
        payload = WhatsAppMessageEchoed(
            waba_id=context.waba_id,
            phone_number_id=context.number,
            display_phone_number=context.display,
            contact_id=customer.id,
            contact_wa_id=customer.wa_id,
            contact_user_id=customer.user_id,
            contact_name=customer.name,
            contact=customer.contact,
            message=echo,
            received_at=self.received_at,
        )
        return self.record(
            f"{context.number}:{customer.id}",
            payload,
            identity=f"echo:{context.number}:{customer.id}:{wamid}",
            actor_id=context.number,
        )

    def status(self, context: _Number, status: dict[str, Any]) -> OutgoingRecord:
        wamid = _identifier(status, "id")
        state = _identifier(status, "status")
        timestamp = _timestamp(status, "timestamp")
        recipient = _optional_identifier(status, "recipient_id") or _optional_identifier(
            status, "recipient_user_id"
        )
        if recipient is None:
            raise InvalidItem("a status names no recipient (recipient_id, recipient_user_id)")
        payload = WhatsAppStatusReceived(
            waba_id=context.waba_id,
            phone_number_id=context.number,
            display_phone_number=context.display,
            status=status,
            received_at=self.received_at,
        )
        return self.record(
            f"{context.number}:{recipient}",
            payload,
            identity=f"status:{context.number}:{recipient}:{wamid}:{state}:{timestamp}",
            actor_id=recipient,
        )

    # -- business updates ----------------------------------------------------------------

    def preferences_change(self, waba_id: str, value: dict[str, Any], where: str) -> None:
        try:
            number, _ = _number(value)
        except InvalidItem as error:
            self.reject(value, where, str(error), waba_id=waba_id)
            return
        preferences = value.get("user_preferences")
        if not isinstance(preferences, list) or not preferences:
            self.reject(
                value,
                where,
                "'user_preferences' must be a non-empty list",
                waba_id=waba_id,
                phone_number_id=number,
            )
            return
        for p, preference in enumerate(preferences):
            try:
                if not isinstance(preference, dict):
                    raise InvalidItem("a preference must be an object")
                self.business(waba_id, _preference(waba_id, number, preference, self.received_at))
            except InvalidItem as error:
                self.reject(
                    preference,
                    f"{where}.user_preferences[{p}]",
                    str(error),
                    waba_id=waba_id,
                    phone_number_id=number,
                )

    def business(self, waba_id: str, payload: Payload) -> None:
        self.result.business.append(
            self.record(
                waba_id,
                payload,
                identity="business:"
                + orjson.dumps(
                    payload.model_dump(mode="json", exclude={"received_at"}),
                    option=orjson.OPT_SORT_KEYS,
                ).decode(),
                actor_id=waba_id,
            )
        )

    # -- records ---------------------------------------------------------------------------

    def reject(
        self,
        item: Any,
        path: str,
        reason: str,
        *,
        waba_id: str | None = None,
        phone_number_id: str | None = None,
    ) -> None:
        text = orjson.dumps(item, option=orjson.OPT_SORT_KEYS).decode()
        payload = WebhookItemRejected(
            waba_id=waba_id,
            phone_number_id=phone_number_id,
            path=path,
            reason=reason,
            item=text,
            received_at=self.received_at,
        )
        self.result.rejected.append(
            self.record(
                phone_number_id or waba_id or "",
                payload,
                identity=f"rejected:{waba_id}:{phone_number_id}:{path}:{text}",
                actor_id=phone_number_id or waba_id,
            )
        )

    def record(
        self, key: str, payload: Payload, *, identity: str, actor_id: str | None
    ) -> OutgoingRecord:
        # Meta's retries of one item carry the same identity, hence the same event id.
        event_id = uuid5(RECORD_NAMESPACE, identity)
        envelope = Envelope.wrap(
            payload,
            event_id=event_id,
            stream_id=key,
            workspace_id=None,
            occurred_at=self.received_at,
            correlation_id=event_id,
            causation_id=None,
            actor=Actor(kind="meta", id=actor_id),
        )
        return OutgoingRecord(key=key, envelope=envelope)


@dataclass(frozen=True)
class _Customer:
    id: str
    wa_id: str | None
    user_id: str | None
    name: str | None
    contact: dict[str, Any] | None


@dataclass(frozen=True)
class _Number:
    """A business number and the contacts Meta listed with its items."""

    waba_id: str
    number: str
    display: str
    contacts: list[dict[str, Any]]

    def customer(self, wa_id: str | None, user_id: str | None) -> _Customer:
        """The customer an item names: its wa_id, else its BSUID (``user_id``).

        With neither on the item, the change's only contact is the customer (Meta lists the
        senders of a change's messages in ``contacts``).
        """
        contact = self._contact(wa_id, user_id)
        if contact is not None:  # validated with the change's contacts
            wa_id = wa_id or _optional_identifier(contact, "wa_id")
            user_id = user_id or _optional_identifier(contact, "user_id")
        contact_id = wa_id or user_id
        if contact_id is None:
            raise InvalidItem("names no customer (a wa_id or a business-scoped user_id)")
        profile = contact.get("profile") if contact is not None else None
        name = profile.get("name") if isinstance(profile, dict) else None
        return _Customer(
            id=contact_id,
            wa_id=wa_id,
            user_id=user_id,
            name=name if isinstance(name, str) else None,
            contact=contact,
        )

    def _contact(self, wa_id: str | None, user_id: str | None) -> dict[str, Any] | None:
        for contact in self.contacts:
            if wa_id is not None and contact.get("wa_id") == wa_id:
                return contact
            if user_id is not None and contact.get("user_id") == user_id:
                return contact
        if wa_id is None and user_id is None and len(self.contacts) == 1:
            return self.contacts[0]
        return None


def _number(value: dict[str, Any]) -> tuple[str, str]:
    metadata = value.get("metadata")
    if not isinstance(metadata, dict):
        raise InvalidItem("'metadata' must be an object naming the business number")
    number = _identifier(metadata, "phone_number_id", where="metadata.phone_number_id")
    display = metadata.get("display_phone_number")
    return number, display if isinstance(display, str) else ""


def _contact_problem(contact: Any) -> str | None:
    if not isinstance(contact, dict):
        return "a contact must be an object"
    profile = contact.get("profile")
    if profile is not None and not isinstance(profile, dict):
        return "a contact's 'profile' must be an object"
    try:
        wa_id = _optional_identifier(contact, "wa_id")
        user_id = _optional_identifier(contact, "user_id")
    except InvalidItem as error:
        return str(error)
    if wa_id is None and user_id is None:
        return "a contact names no customer (wa_id, user_id)"
    return None


def _preference(
    waba_id: str, number: str, preference: dict[str, Any], received_at: datetime
) -> MarketingPreferenceChanged:
    wa_id = _optional_identifier(preference, "wa_id")
    user_id = _optional_identifier(preference, "user_id")
    contact_id = wa_id or user_id
    if contact_id is None:
        raise InvalidItem("a preference names no customer (wa_id, user_id)")
    detail = preference.get("detail")
    return MarketingPreferenceChanged(
        waba_id=waba_id,
        phone_number_id=number,
        contact_id=contact_id,
        contact_wa_id=wa_id,
        contact_user_id=user_id,
        category=_identifier(preference, "category"),
        value=_identifier(preference, "value"),
        detail=detail if isinstance(detail, str) else None,
        changed_at=datetime.fromtimestamp(_timestamp(preference, "timestamp"), tz=UTC),
        update=preference,
        received_at=received_at,
    )


def _business_update(
    waba_id: str, name: str, value: dict[str, Any], received_at: datetime
) -> Payload:
    """The typed event of a change that concerns the business account, not one customer."""
    if name == "message_template_status_update":
        return TemplateStatusChanged(
            waba_id=waba_id,
            template_id=_scalar(value.get("message_template_id")),
            template_name=_scalar(value.get("message_template_name")),
            language=_scalar(value.get("message_template_language")),
            status=_scalar(value.get("event")) or "UNKNOWN",
            reason=_scalar(value.get("reason")),
            update=value,
            received_at=received_at,
        )
    if name == "message_template_quality_update":
        return TemplateQualityChanged(
            waba_id=waba_id,
            template_id=_scalar(value.get("message_template_id")),
            template_name=_scalar(value.get("message_template_name")),
            language=_scalar(value.get("message_template_language")),
            previous_score=_scalar(value.get("previous_quality_score")),
            new_score=_scalar(value.get("new_quality_score")),
            update=value,
            received_at=received_at,
        )
    if name in TEMPLATE_FIELDS:
        return TemplateUpdated(
            waba_id=waba_id,
            field=name,
            template_id=_scalar(value.get("message_template_id")),
            template_name=_scalar(value.get("message_template_name")),
            update=value,
            received_at=received_at,
        )
    if name in ACCOUNT_FIELDS:
        return AccountUpdated(
            waba_id=waba_id,
            field=name,
            event=_scalar(value.get("event")),
            phone_number=_scalar(value.get("phone_number") or value.get("display_phone_number")),
            update=value,
            received_at=received_at,
        )
    return BusinessUpdateReceived(
        waba_id=waba_id, field=name, update=value, received_at=received_at
    )


def _scalar(value: object) -> str | None:
    """A string or number Meta sends (template ids come as numbers), as text."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str | int | float):
        return str(value)
    return None


def _identifier(container: dict[str, Any], name: str, *, where: str | None = None) -> str:
    value = _optional_identifier(container, name, where=where)
    if value is None:
        raise InvalidItem(f"'{where or name}' must be a non-empty string")
    return value


def _optional_identifier(
    container: dict[str, Any], name: str, *, where: str | None = None
) -> str | None:
    """An id Meta generates (wamid, wa_id, BSUID, number id...): absent or empty is None;
    anything but printable text is not what Meta sends."""
    value = container.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidItem(f"'{where or name}' must be a string, got {_excerpt(value)}")
    if any(unicodedata.category(character) == "Cc" for character in value):
        raise InvalidItem(f"'{where or name}' holds a control character: {_excerpt(value)}")
    return value


def _timestamp(container: dict[str, Any], name: str) -> int:
    """Meta's Unix seconds, sent as a string of ASCII digits (sometimes as a number)."""
    value = container.get(name)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 12:
        seconds = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    else:
        raise InvalidItem(f"'{name}' must be Unix seconds, got {_excerpt(value)}")
    if not 0 <= seconds <= LATEST_TIMESTAMP:
        raise InvalidItem(f"'{name}' is out of range: {seconds}")
    return seconds


def _depth(document: Any) -> int:
    """How deep JSON nests, without recursion."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(document, 1)]
    while pending:
        node, level = pending.pop()
        deepest = max(deepest, level)
        if isinstance(node, dict):
            pending.extend((child, level + 1) for child in node.values())
        elif isinstance(node, list):
            pending.extend((child, level + 1) for child in node)
    return deepest


def _excerpt(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
