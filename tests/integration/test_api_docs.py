"""The API's documents: /docs and /redoc load nothing from the internet (every script,
style and icon is served by the gateway, from the fastapi-offline package), and the OpenAPI
document declares the bearer scheme, one error body and an example for every answer.

The gateway app is called in-process without its lifespan: these pages need neither Kafka
nor the database.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from services.gateway.app import create_app
from services.settings import Settings

pytestmark = pytest.mark.integration
ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(whatsapp_app_secret="docs"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as found:
        yield found


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_the_docs_pages_use_only_assets_the_gateway_serves(
    client: httpx.AsyncClient, page: str
) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    html = response.text
    assert "http://" not in html, "the page refers to another host"
    assert "https://" not in html, "the page refers to another host"
    assets = ASSET.findall(html)
    assert len(assets) >= 2, assets  # a script and a style or icon at least
    for asset in assets:
        assert asset.startswith("/"), asset
        assert not asset.startswith("//"), asset
        served = await client.get(asset)
        assert served.status_code == 200, asset
        assert len(served.content) > 1000, asset
    scripts = [a for a in assets if a.endswith(".js")]
    assert scripts, assets
    # The script is the real thing (Swagger UI 5 / ReDoc), not a stub.
    body = (await client.get(scripts[0])).text
    assert ("SwaggerUIBundle" in body) or ("Redoc" in body)


async def test_swagger_ui_does_not_call_the_online_validator(client: httpx.AsyncClient) -> None:
    assert '"validatorUrl": null' in (await client.get("/docs")).text


async def test_the_openapi_document_declares_auth_errors_and_examples(
    client: httpx.AsyncClient,
) -> None:
    document: dict[str, Any] = (await client.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    assert document["components"]["securitySchemes"]["memberToken"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "opaque",
        "description": document["components"]["securitySchemes"]["memberToken"]["description"],
    }
    assert document["components"]["securitySchemes"]["suiteSession"]["in"] == "cookie"
    assert "HTTPValidationError" not in schemas  # FastAPI's list-shaped 422 is gone
    problem = {"$ref": "#/components/schemas/Problem"}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            responses = operation["responses"]
            if path.startswith("/api"):
                # Either a member's token or the agent suite's session cookie.
                assert operation.get("security") == [{"memberToken": []}, {"suiteSession": []}], (
                    where
                )
                for code in ("401", "422", "503"):
                    assert responses[code]["content"]["application/json"]["schema"] == problem
            for code, response in responses.items():
                if code.startswith(("4", "5")):
                    assert response["content"] == {"application/json": {"schema": problem}}, (
                        where,
                        code,
                    )
            successes = [r for code, r in responses.items() if code.startswith("2")]
            assert successes, where
            for response in successes:
                for media in response["content"].values():
                    assert _has_example(media, schemas), (where, media)


def _has_example(media: dict[str, Any], schemas: dict[str, Any]) -> bool:
    if "example" in media or "examples" in media:
        return True
    reference = media.get("schema", {}).get("$ref", "")
    return bool(schemas.get(reference.rsplit("/", 1)[-1], {}).get("examples"))
