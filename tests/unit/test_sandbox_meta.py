"""The WhatsApp sandbox, pure parts: its settings, and what it answers and sends as Meta."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from events.outbound import OutboundMessageQueued, ReplyOption
from events.whatsapp import WhatsAppMessageReceived, WhatsAppStatusReceived
from services.dispatcher.decide import Accepted, Rejected
from services.dispatcher.graph import interpret, message_body
from services.gateway.sandbox import meta
from services.gateway.webhook import split_webhook
from services.inbound.decide import readable_parts
from services.settings import Settings, SettingsError, sandbox_access_token

pytestmark = pytest.mark.unit
AT = datetime(2027, 3, 1, 15, 0, tzinfo=UTC)
ENV = {"WHATSAPP_APP_SECRET": "s3cret", "SWITCHBOARD_HTTP_PORT": "8123"}


# -- settings ----------------------------------------------------------------------------------


def test_sandbox_mode_points_the_dispatcher_at_the_gateway_with_the_sandbox_token() -> None:
    settings = Settings.from_env({**ENV, "SWITCHBOARD_SANDBOX": "1"})
    assert settings.sandbox is True
    assert settings.whatsapp_api_base_url == "http://127.0.0.1:8123/sandbox/graph/v21.0"
    assert settings.whatsapp_access_token == sandbox_access_token("s3cret")


def test_sandbox_mode_reaches_a_wildcard_bound_gateway_locally() -> None:
    env = {**ENV, "SWITCHBOARD_SANDBOX": "true", "SWITCHBOARD_HTTP_HOST": "0.0.0.0"}
    assert Settings.from_env(env).whatsapp_api_base_url.startswith("http://127.0.0.1:8123/")


def test_sandbox_mode_refuses_a_real_access_token() -> None:
    env = {**ENV, "SWITCHBOARD_SANDBOX": "1", "WHATSAPP_ACCESS_TOKEN": "EAAG..."}
    with pytest.raises(SettingsError, match="refuses to start with WHATSAPP_ACCESS_TOKEN"):
        Settings.from_env(env)


def test_sandbox_mode_refuses_metas_address() -> None:
    env = {
        **ENV,
        "SWITCHBOARD_SANDBOX": "1",
        "WHATSAPP_API_BASE_URL": "https://graph.facebook.com/v21.0",
    }
    with pytest.raises(SettingsError, match="that is Meta"):
        Settings.from_env(env)


def test_sandbox_mode_needs_the_app_secret_to_sign_its_webhooks() -> None:
    with pytest.raises(SettingsError, match="needs WHATSAPP_APP_SECRET"):
        Settings.from_env({"SWITCHBOARD_SANDBOX": "1"})


def test_sandbox_mode_is_off_unless_asked_for() -> None:
    settings = Settings.from_env(ENV)
    assert settings.sandbox is False
    assert settings.whatsapp_api_base_url == "https://graph.facebook.com/v21.0"


def test_a_sandbox_switch_that_is_not_a_yes_or_no_is_refused_by_name() -> None:
    with pytest.raises(SettingsError, match="SWITCHBOARD_SANDBOX must be 1 or 0"):
        Settings.from_env({**ENV, "SWITCHBOARD_SANDBOX": "maybe"})


def test_the_presence_grace_is_read_and_checked() -> None:
    assert Settings.from_env(ENV).presence_grace_seconds == 60.0
    env = {**ENV, "SWITCHBOARD_PRESENCE_GRACE_SECONDS": "2.5"}
    assert Settings.from_env(env).presence_grace_seconds == 2.5
    with pytest.raises(SettingsError, match="SWITCHBOARD_PRESENCE_GRACE_SECONDS"):
        Settings.from_env({**ENV, "SWITCHBOARD_PRESENCE_GRACE_SECONDS": "-1"})


# -- the Graph API stand-in: what the dispatcher sends is what Meta accepts -------------------


def queued(kind: str, **fields: Any) -> OutboundMessageQueued:
    values: dict[str, Any] = {
        "message_id": "00000000-0000-0000-0000-000000000001",
        "conversation_id": "00000000-0000-0000-0000-000000000002",
        "sequence": 1,
        "phone_number_id": "4801",
        "to": "573154440021",
        "kind": kind,
        "text": "¿En qué te ayudamos?",
        "options": [],
        "list_button": None,
        "template": None,
        "author": "bot",
        "author_id": None,
        "queued_at": AT,
        **fields,
    }
    return OutboundMessageQueued.model_validate(values)


BUTTONS = [ReplyOption(id="billing", title="Facturación"), ReplyOption(id="other", title="Otro")]
ROWS = [ReplyOption(id="a", title="Pedido", description="Dónde está mi pedido")]


@pytest.mark.parametrize(
    "request_",
    [
        queued("text"),
        queued("buttons", options=BUTTONS),
        queued("list", options=ROWS, list_button="Ver opciones"),
        queued("template", text="hello_world", template={"language": {"code": "es"}}),
    ],
    ids=["text", "buttons", "list", "template"],
)
def test_every_message_the_dispatcher_sends_is_accepted(request_: OutboundMessageQueued) -> None:
    sent = meta.parse_send(message_body(request_))
    assert isinstance(sent, meta.Outgoing)
    assert sent.wa_id == "573154440021"
    # ... and Meta's answer means "sent" to the dispatcher, with the wamid.
    answer = meta.sent_answer(sent, "wamid.SBX1")
    assert interpret(200, orjson.dumps(answer)) == Accepted("wamid.SBX1")


@pytest.mark.parametrize(
    ("body", "code", "detail"),
    [
        ({"to": "5731"}, 100, "messaging_product"),
        ({"messaging_product": "whatsapp", "type": "text", "text": {"body": "x"}}, 131008, "to"),
        ({"messaging_product": "whatsapp", "to": "abc", "text": {"body": "x"}}, 131009, "to"),
        ({"messaging_product": "whatsapp", "to": "573154440021", "type": "fax"}, 100, "type"),
        ({"messaging_product": "whatsapp", "to": "573154440021", "type": "text"}, 131008, "text"),
        (
            {"messaging_product": "whatsapp", "to": "573154440021", "text": {"body": "x" * 4097}},
            131009,
            "4096",
        ),
    ],
)
def test_a_request_meta_would_refuse_is_refused_with_metas_error(
    body: dict[str, Any], code: int, detail: str
) -> None:
    with pytest.raises(meta.GraphError) as raised:
        meta.parse_send(body)
    error = raised.value
    assert (error.status, error.code) == (400, code)
    assert detail in error.details
    document = error.body()["error"]
    assert document["message"].startswith(f"(#{code}) ")
    assert document["error_data"]["messaging_product"] == "whatsapp"
    # The dispatcher reads it as Meta's refusal, with the error object.
    result = interpret(400, orjson.dumps(error.body()))
    assert isinstance(result, Rejected)
    assert result.error is not None
    assert result.error["code"] == code


def test_a_button_title_longer_than_metas_20_characters_is_refused() -> None:
    long = [ReplyOption(id="x", title="Hablar con un asesor ya")]  # 23 characters
    with pytest.raises(meta.GraphError) as raised:
        meta.parse_send(message_body(queued("buttons", options=long)))
    assert "at most 20 characters" in raised.value.details


def test_four_buttons_are_refused() -> None:
    options = [ReplyOption(id=str(n), title=f"Opción {n}") for n in range(4)]
    with pytest.raises(meta.GraphError) as raised:
        meta.parse_send(message_body(queued("buttons", options=options)))
    assert "1 to 3 buttons" in raised.value.details


def test_a_template_without_a_language_is_refused() -> None:
    with pytest.raises(meta.GraphError) as raised:
        meta.parse_send(message_body(queued("template", text="hello_world")))
    assert raised.value.code == 131008


def test_a_wrong_token_gets_metas_401() -> None:
    problem = meta.token_problem("Bearer nope", "sandbox-right")
    assert problem is not None
    assert (problem.status, problem.code) == (401, 190)
    assert meta.token_problem(None, "sandbox-right") is not None
    assert meta.token_problem("Bearer sandbox-right", "sandbox-right") is None


def test_mark_as_read_is_understood() -> None:
    request = {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.X"}
    assert meta.parse_send(request) == meta.MarkRead("wamid.X")


# -- webhooks: what the phone sends reads as Meta's --------------------------------------------


def test_a_button_tap_is_metas_button_reply_answering_the_message() -> None:
    sent = message_body(queued("buttons", options=BUTTONS))
    tap = meta.reply_message(
        "wamid.SBXtap",
        "573154440021",
        AT,
        answered=sent,
        answered_wamid="wamid.SBXq",
        business_number="15550004801",
        option_id="billing",
    )
    assert tap == {
        "context": {"from": "15550004801", "id": "wamid.SBXq"},
        "from": "573154440021",
        "id": "wamid.SBXtap",
        "timestamp": str(int(AT.timestamp())),
        "type": "interactive",
        "interactive": {
            "type": "button_reply",
            "button_reply": {"id": "billing", "title": "Facturación"},
        },
    }
    # The gateway splits it like any webhook, and inbound reads the chosen option.
    document = meta.messages_webhook("4801", "573154440021", "Valentina", tap)
    [record] = split_webhook(orjson.dumps(document), received_at=AT).inbound
    payload = record.envelope.payload
    assert isinstance(payload, WhatsAppMessageReceived)
    assert (payload.phone_number_id, payload.contact_name) == ("4801", "Valentina")
    assert payload.display_phone_number == meta.display_number("4801")
    assert readable_parts("interactive", payload.message) == ("Facturación", "billing")


def test_a_list_tap_is_metas_list_reply_with_the_rows_description() -> None:
    sent = message_body(queued("list", options=ROWS, list_button="Ver"))
    tap = meta.reply_message(
        "wamid.SBXtap",
        "5731",
        AT,
        answered=sent,
        answered_wamid="wamid.SBXq",
        business_number="1555",
        option_id="a",
    )
    assert tap["interactive"] == {
        "type": "list_reply",
        "list_reply": {"id": "a", "title": "Pedido", "description": "Dónde está mi pedido"},
    }


def test_a_tap_on_an_option_the_message_does_not_offer_is_refused() -> None:
    sent = message_body(queued("buttons", options=BUTTONS))
    with pytest.raises(meta.ReplyInvalid, match="offers no option 'x'"):
        meta.reply_message(
            "w", "5731", AT, answered=sent, answered_wamid="q", business_number="1", option_id="x"
        )
    with pytest.raises(meta.ReplyInvalid, match="has no buttons or list"):
        meta.reply_message(
            "w",
            "5731",
            AT,
            answered=message_body(queued("text")),
            answered_wamid="q",
            business_number="1",
            option_id="billing",
        )


@pytest.mark.parametrize("status", ["sent", "delivered", "read"])
def test_statuses_are_metas_statuses_webhooks(status: str) -> None:
    sent = {"messaging_product": "whatsapp", "biz_opaque_callback_data": "conversation-1"}
    document = meta.status_webhook("4801", "wamid.SBX1", status, "5731", AT, sent=sent)
    [record] = split_webhook(orjson.dumps(document), received_at=AT).inbound
    payload = record.envelope.payload
    assert isinstance(payload, WhatsAppStatusReceived)
    assert payload.status["status"] == status
    assert payload.status["id"] == "wamid.SBX1"
    assert payload.status["biz_opaque_callback_data"] == "conversation-1"  # as Meta echoes it
    assert record.key == "4801:5731"


def test_outside_the_window_a_free_form_message_fails_with_131047() -> None:
    assert meta.window_closed(AT - timedelta(hours=25), AT)
    assert meta.window_closed(AT - timedelta(hours=24), AT)
    assert not meta.window_closed(AT - timedelta(hours=23), AT)
    # A customer who reached switchboard without the sandbox: its window is not the
    # sandbox's to know.
    assert not meta.window_closed(None, AT)
    document = meta.status_webhook(
        "4801", "wamid.SBX1", "failed", "5731", AT, errors=[meta.re_engagement_error()]
    )
    status = document["entry"][0]["changes"][0]["value"]["statuses"][0]
    assert status["errors"][0]["code"] == 131047
    assert meta.needs_window(meta.parse_send(message_body(queued("text"))))  # type: ignore[arg-type]


def test_the_display_number_is_made_up_the_same_way_every_time() -> None:
    assert meta.display_number("480112093385611") == "15553385611"
    assert meta.display_number("4801") == "15550004801"
