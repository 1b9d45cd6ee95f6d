"""The OpenAPI document: FastAPI's, plus the schemas no route's signature names.

The webhook route reads raw bytes (its signature covers them) and the stream writes Server-Sent
Events, so neither body comes from a typed parameter or return value; their schemas are added
to the components here and referenced from the routes' descriptions, as is ``Problem``, the
error body every route references by name.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from services.gateway.problems import Problem
from services.gateway.responses import StreamChange
from services.gateway.webhook_body import WhatsAppWebhook

EXTRA_SCHEMAS: tuple[type[BaseModel], ...] = (Problem, WhatsAppWebhook, StreamChange)


def described_openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is not None:
        return app.openapi_schema
    document = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        description=app.description,
        routes=app.routes,
    )
    _, definitions = models_json_schema(
        [(model, "validation") for model in EXTRA_SCHEMAS],
        ref_template="#/components/schemas/{model}",
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in definitions.get("$defs", {}).items():
        schemas.setdefault(name, schema)
    app.openapi_schema = document
    return document
