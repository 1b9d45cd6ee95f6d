"""The shape of Meta's webhook body, for the OpenAPI document only.

The route reads the raw bytes (the signature is over them) and ``services.gateway.webhook``
parses them; these models describe what Meta sends so a reader of ``/docs`` sees it. Every
object admits more fields than listed: Meta adds fields, and the gateway keeps each item
whole on Kafka.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

OPEN = ConfigDict(extra="allow")


class Metadata(BaseModel):
    model_config = OPEN

    display_phone_number: str
    phone_number_id: str = Field(description="the business number: says whose workspace")


class Profile(BaseModel):
    model_config = OPEN

    name: str | None = None


class Contact(BaseModel):
    model_config = OPEN

    wa_id: str | None = None
    profile: Profile | None = None


class Message(BaseModel):
    """One customer message; ``type`` names the object that holds its content (``text``,
    ``interactive``, ``image``, ...)."""

    model_config = OPEN

    id: str = Field(description="the wamid")
    timestamp: str = Field(description="Unix seconds, as a string")
    type: str
    from_: str | None = Field(default=None, alias="from", description="the customer's wa_id")


class Status(BaseModel):
    """What became of a message the business sent."""

    model_config = OPEN

    id: str = Field(description="the wamid of the message sent")
    status: str = Field(description="sent, delivered, read, failed, ...")
    timestamp: str
    recipient_id: str | None = None


class MessagesValue(BaseModel):
    model_config = OPEN

    messaging_product: Literal["whatsapp"] | None = None
    metadata: Metadata | None = None
    contacts: list[Contact] | None = None
    messages: list[Message] | None = None
    statuses: list[Status] | None = None
    errors: list[dict[str, Any]] | None = None


class Change(BaseModel):
    model_config = OPEN

    field: str = Field(description="`messages`, or another subscribed field (kept whole)")
    value: MessagesValue


class Entry(BaseModel):
    model_config = OPEN

    id: str = Field(description="the WhatsApp Business Account id")
    changes: list[Change]


EXAMPLE: dict[str, Any] = {
    "object": "whatsapp_business_account",
    "entry": [
        {
            "id": "318400117223051",
            "changes": [
                {
                    "field": "messages",
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {
                            "display_phone_number": "573001112233",
                            "phone_number_id": "480112093385611",
                        },
                        "contacts": [{"profile": {"name": "Valentina"}, "wa_id": "573154440021"}],
                        "messages": [
                            {
                                "from": "573154440021",
                                "id": "wamid.HBgMNTczMTU0NDQwMDIxFQIAEhgUM0VCMDRBN0Q5QjQ1RjI3",
                                "timestamp": "1764000000",
                                "type": "text",
                                "text": {"body": "Hola, necesito ayuda con mi pedido"},
                            }
                        ],
                    },
                }
            ],
        }
    ],
}


class WhatsAppWebhook(BaseModel):
    """A delivery from Meta's WhatsApp Cloud API: entries of changes; a ``messages``
    change carries messages and/or statuses of one business number."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [EXAMPLE]})

    object: Literal["whatsapp_business_account"]
    entry: list[Entry]
