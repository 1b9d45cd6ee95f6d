"""What Meta tells the business about its account, templates and customers' preferences.

Webhook changes that are not a customer's message or a message status: a customer's
marketing opt-out or opt-in (``user_preferences``), template reviews and quality, account
and phone-number updates, errors Meta reports for a number, and every other field Meta
documents or adds later. Each becomes one typed event on ``whatsapp.business``, keyed by
the WhatsApp business account (``waba_id``); the value Meta sent is kept whole in
``update`` so nothing it adds later is lost. Written by the gateway, which cannot know the
workspace: ``workspace_id`` is None on these envelopes.
"""

from __future__ import annotations

from events.base import Instant, JsonObject, Payload


class MarketingPreferenceChanged(Payload):
    """A customer stopped (``value: "stop"``) or resumed marketing messages
    (field ``user_preferences``)."""

    event_type = "whatsapp.marketing_preference_changed"

    waba_id: str
    phone_number_id: str
    contact_id: str  # wa_id, else BSUID
    contact_wa_id: str | None
    contact_user_id: str | None
    category: str  # "marketing_messages"
    value: str  # "stop", "resume"
    detail: str | None
    changed_at: Instant
    update: JsonObject
    received_at: Instant


class TemplateStatusChanged(Payload):
    """Meta's review of a message template: APPROVED, REJECTED, PAUSED, DISABLED...
    (field ``message_template_status_update``)."""

    event_type = "whatsapp.template_status_changed"

    waba_id: str
    template_id: str | None
    template_name: str | None
    language: str | None
    status: str
    reason: str | None
    update: JsonObject
    received_at: Instant


class TemplateQualityChanged(Payload):
    """A template's quality score moved (field ``message_template_quality_update``)."""

    event_type = "whatsapp.template_quality_changed"

    waba_id: str
    template_id: str | None
    template_name: str | None
    language: str | None
    previous_score: str | None
    new_score: str | None
    update: JsonObject
    received_at: Instant


class TemplateUpdated(Payload):
    """A template's category or components changed (``template_category_update``,
    ``message_template_components_update``)."""

    event_type = "whatsapp.template_updated"

    waba_id: str
    field: str
    template_id: str | None
    template_name: str | None
    update: JsonObject
    received_at: Instant


class AccountUpdated(Payload):
    """The business account or one of its numbers changed: ``account_update``,
    ``account_alerts``, ``account_review_update``, ``business_capability_update``,
    ``phone_number_name_update``, ``phone_number_quality_update``, ``security``."""

    event_type = "whatsapp.account_updated"

    waba_id: str
    field: str
    event: str | None  # Meta's ``event`` (ACCOUNT_DELETED, FLAGGED...) when it names one
    phone_number: str | None
    update: JsonObject
    received_at: Instant


class WebhookErrorsReported(Payload):
    """Errors Meta reports for a business number beside (or instead of) messages: the
    ``errors`` array of a ``messages`` change's value."""

    event_type = "whatsapp.errors_reported"

    waba_id: str
    phone_number_id: str | None
    errors: list[JsonObject]
    received_at: Instant


class BusinessUpdateReceived(Payload):
    """Any other webhook field (calls, history, smb_app_state_sync, flows...), kept whole."""

    event_type = "whatsapp.business_update_received"

    waba_id: str
    field: str
    update: JsonObject
    received_at: Instant


ACCOUNT_FIELDS = frozenset(
    {
        "account_update",
        "account_alerts",
        "account_review_update",
        "business_capability_update",
        "phone_number_name_update",
        "phone_number_quality_update",
        "security",
    }
)
TEMPLATE_FIELDS = frozenset({"template_category_update", "message_template_components_update"})

BUSINESS_EVENTS: tuple[type[Payload], ...] = (
    MarketingPreferenceChanged,
    TemplateStatusChanged,
    TemplateQualityChanged,
    TemplateUpdated,
    AccountUpdated,
    WebhookErrorsReported,
    BusinessUpdateReceived,
)
