"""Composition root of the HTTP gateway (ASGI): webhook in, API over the read models."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated

import psycopg
import structlog
from fastapi import FastAPI, Header, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from psycopg_pool import AsyncConnectionPool
from starlette.exceptions import HTTPException as StarletteHTTPException

from events.catalogue import (
    WHATSAPP_BUSINESS,
    WHATSAPP_INBOUND,
    WHATSAPP_REJECTED,
    build_registry,
)
from projections.metrics.queries import MetricsReads
from projections.queries import ReadModels
from runtime.kafka import ensure_topics
from runtime.observe import Found, readiness
from runtime.producer import HealingProducer, PublishFailed
from services.gateway import (
    canned_responses_api,
    conversations_api,
    directory_api,
    flows_api,
    members_api,
    metrics_api,
    notes_api,
    numbers_api,
    reads_api,
    stream_api,
)
from services.gateway.body import read_bounded
from services.gateway.change_signal import ChangeSignal
from services.gateway.dependencies import (
    RETRY_AFTER_SECONDS,
    Publisher,
    publish_refused,
)
from services.gateway.idempotency import ReplyKeys
from services.gateway.observability import RequestObserver
from services.gateway.openapi import described_openapi
from services.gateway.presence import Presence
from services.gateway.problems import (
    PROBLEM_CONTENT,
    http_problem,
    invalid_request,
    problem_responses,
)
from services.gateway.responses import Health, Readiness, WebhookAccepted
from services.gateway.web import pages
from services.gateway.web.session import SessionCodec
from services.gateway.webhook import (
    WebhookError,
    signature_valid,
    split_webhook,
    token_matches,
)
from services.settings import Settings

log = structlog.get_logger(__name__)

# How long /healthz waits for each of the database and Kafka before calling it down.
HEALTH_TIMEOUT_SECONDS = 2.0


def static_version() -> str:
    """A digest of the suite's static files: their URLs change when they do (no stale
    scripts after an upgrade), so browsers may cache them."""
    digest = hashlib.sha256()
    for path in sorted(pages.STATIC.rglob("*")):
        if path.is_file():
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def create_app(settings: Settings) -> FastAPI:
    if not settings.whatsapp_app_secret:
        raise ValueError("WHATSAPP_APP_SECRET is required: webhook signatures cannot be checked")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The gateway does not start without SWITCHBOARD_SESSION_SECRET (32+ characters):
        # the suite's cookies are signed with it. (Checked here, not in create_app, so the
        # app can be built for its OpenAPI document alone.)
        session_codec = SessionCodec(settings.session_secret, settings.session_hours * 3600)
        await ensure_topics(settings)
        producer = HealingProducer.for_settings(settings, client_id="switchboard-gateway")
        await producer.start()
        pool = AsyncConnectionPool(
            settings.database().conninfo(),
            min_size=1,
            max_size=10,
            open=False,
            timeout=10,
            # A connection the database dropped (a restart) is replaced before it is lent,
            # rather than failing the request that gets it.
            check=AsyncConnectionPool.check_connection,
        )
        await pool.open(wait=True, timeout=30)
        app.state.producer = producer
        app.state.publisher = Publisher(producer, settings.publish_timeout_seconds)
        app.state.settings = settings
        app.state.session_codec = session_codec
        app.state.read_models = ReadModels(pool, settings.schema("projections"))
        # The metrics projection keeps its own schema (it is rebuilt on its own).
        app.state.metrics = MetricsReads(pool, settings.schema("metrics"))
        app.state.presence = Presence(pool, app.state.read_models, app.state.publisher, settings)
        await app.state.presence.start()
        app.state.reply_keys = ReplyKeys(pool, settings, build_registry())
        await app.state.reply_keys.create()
        app.state.change_signal = ChangeSignal(
            settings.database().conninfo(), settings.schema("projections")
        )
        app.state.change_signal.start()
        if settings.sandbox:
            from services.gateway.sandbox.phones import Phones
            from services.gateway.sandbox.routes import Sandbox

            app.state.sandbox = Sandbox(Phones(pool, settings), settings)
            await app.state.sandbox.phones.create()
        try:
            yield
        finally:
            await app.state.change_signal.stop()
            await app.state.presence.stop()
            await producer.stop()
            await pool.close()

    # /docs and /redoc with their scripts and styles served from the fastapi-offline
    # package (no CDN: the pages work offline); Swagger UI's online validator badge off.
    app: FastAPI = FastAPIOffline(
        title="switchboard",
        version="0.1.0",
        description=API_DESCRIPTION,
        lifespan=lifespan,
        static_url=DOCS_ASSETS,
        swagger_ui_parameters={"validatorUrl": None},
    )
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(StarletteHTTPException, http_problem)
    app.add_middleware(RequestObserver, routes=lambda: app.routes)

    @app.exception_handler(psycopg.OperationalError)
    @app.exception_handler(psycopg.InterfaceError)
    async def database_unavailable(request: Request, error: Exception) -> JSONResponse:
        """A read or a wait on the read models while the database is away (restarting, no
        free connection in time): the request may be retried, it is not the server's bug."""
        log.warning("database unavailable", path=request.url.path, error=repr(error))
        return JSONResponse(
            {"detail": "the database is unavailable; retry later"},
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    @app.get(
        "/webhooks/whatsapp",
        response_class=PlainTextResponse,
        tags=["webhook"],
        responses={
            200: {
                "description": "The challenge, echoed",
                "content": {"text/plain": {"schema": {"type": "string"}, "example": "1158201444"}},
            },
            **problem_responses(400, 422),
            403: {
                "content": PROBLEM_CONTENT,
                "description": "`hub.verify_token` does not match `WHATSAPP_VERIFY_TOKEN`.",
            },
        },
    )
    async def verify_webhook(
        mode: Annotated[str | None, Query(alias="hub.mode")] = None,
        token: Annotated[str | None, Query(alias="hub.verify_token")] = None,
        challenge: Annotated[str | None, Query(alias="hub.challenge")] = None,
    ) -> str:
        """Meta's verification handshake: echo the challenge if the token matches."""
        if mode != "subscribe" or challenge is None:
            raise HTTPException(400, "expected hub.mode=subscribe and a hub.challenge")
        if not token_matches(settings.whatsapp_verify_token, token):
            raise HTTPException(403, "hub.verify_token does not match WHATSAPP_VERIFY_TOKEN")
        return challenge

    @app.post(
        "/webhooks/whatsapp",
        tags=["webhook"],
        response_model=WebhookAccepted,
        responses={
            **problem_responses(400, 422),
            401: WEBHOOK_UNSIGNED,
            413: WEBHOOK_TOO_LARGE,
            503: WEBHOOK_UNAVAILABLE,
        },
        openapi_extra={"requestBody": WEBHOOK_BODY},
    )
    async def receive_webhook(
        request: Request,
        x_hub_signature_256: Annotated[str | None, Header()] = None,
    ) -> JSONResponse:
        """Meta's webhook: 200 once Kafka holds every record (invalid items parked on
        ``whatsapp.rejected`` with the reason); 400 for a body that is not a webhook; 503 if
        Kafka cannot take it yet (Meta retries); 413 for a body over the size bound or a record
        too large for Kafka; 400 for one that cannot be encoded."""
        body = await read_bounded(request, settings.webhook_max_body_bytes)
        if not signature_valid(settings.whatsapp_app_secret, body, x_hub_signature_256):
            raise HTTPException(401, "missing or wrong X-Hub-Signature-256")
        try:
            split = split_webhook(body, received_at=datetime.now(UTC))
        except WebhookError as error:
            raise HTTPException(400, str(error)) from None
        publisher: Publisher = request.app.state.publisher
        batches = (
            (WHATSAPP_INBOUND, split.inbound),
            (WHATSAPP_BUSINESS, split.business),
            (WHATSAPP_REJECTED, split.rejected),
        )
        try:
            for topic, records in batches:
                if records:
                    await publisher.publish(topic.qualified(settings.topic_prefix), records)
        except PublishFailed as error:  # 503 when it may pass (Meta retries), else 413/400
            log.warning("webhook not accepted", error=repr(error), permanent=error.permanent)
            raise publish_refused(error) from None
        return JSONResponse({"accepted": split.accepted, "rejected": len(split.rejected)})

    app.include_router(conversations_api.router)
    app.include_router(notes_api.router)
    app.include_router(canned_responses_api.router)
    app.include_router(members_api.router)
    app.include_router(directory_api.router)
    app.include_router(flows_api.router)
    app.include_router(reads_api.router)
    app.include_router(stream_api.router)
    app.include_router(numbers_api.router)
    app.include_router(metrics_api.router)
    if settings.sandbox:
        # Development only: absent (404) unless SWITCHBOARD_SANDBOX=1.
        from services.gateway.sandbox.routes import STATIC, graph, phone

        app.include_router(graph)
        app.include_router(phone)
        app.mount("/sandbox/static", StaticFiles(directory=STATIC), name="sandbox-static")

    # The agent suite (pages, fragments and static files) at /.
    pages.install(app, static_version())

    @app.get(
        "/healthz",
        tags=["operations"],
        response_model=Health,
        responses={
            503: {
                "content": PROBLEM_CONTENT,
                "description": "The database or Kafka does not answer within 2 s: `detail` says"
                " which, and the body also carries `status`, `database` and `kafka` as a 200"
                " does.",
                "headers": {
                    "Retry-After": {"description": "seconds to wait", "schema": {"type": "string"}}
                },
            }
        },
    )
    async def health(request: Request) -> JSONResponse:
        """200 when the database and Kafka both answer; 503 naming what does not."""
        models: ReadModels = request.app.state.read_models
        producer: HealingProducer = request.app.state.producer
        database, kafka = await asyncio.gather(
            _database_problem(models), producer.broker_problem(HEALTH_TIMEOUT_SECONDS)
        )
        down = [name for name, problem in (("the database", database), ("Kafka", kafka)) if problem]
        found = Health(
            status="unavailable" if down else "ok",
            database="up" if database is None else f"down: {database}",
            kafka="up" if kafka is None else f"down: {kafka}",
        ).model_dump(mode="json")
        if not down:
            return JSONResponse(found)
        # An error body like every other (a Problem: ``detail``), with what was found.
        return JSONResponse(
            {"detail": f"{' and '.join(down)} not answering", **found},
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    @app.get(
        "/readyz",
        tags=["operations"],
        response_model=Readiness,
        responses={
            503: {
                "content": PROBLEM_CONTENT,
                "description": "Kafka or PostgreSQL does not answer within 2 s: `detail` names"
                " each part that is not ready, and the body also carries `status`, `kafka`,"
                " `database` and `caught_up` as a 200 does.",
                "headers": {
                    "Retry-After": {"description": "seconds to wait", "schema": {"type": "string"}}
                },
            }
        },
    )
    async def ready(request: Request) -> JSONResponse:
        """Readiness (beside ``/healthz``, liveness): 200 when Kafka and PostgreSQL answer
        and this process is caught up; 503 naming what is not ready."""
        models: ReadModels = request.app.state.read_models
        producer: HealingProducer = request.app.state.producer
        database, kafka = await asyncio.gather(
            _database_problem(models), producer.broker_problem(HEALTH_TIMEOUT_SECONDS)
        )
        # The gateway consumes no topic: nothing of its own can be behind.
        status, body = readiness(Found(kafka=kafka, database=database, behind=()))
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if status == 503 else None
        return JSONResponse(body, status_code=status, headers=headers)

    @app.get(
        "/metrics",
        tags=["operations"],
        response_class=PlainTextResponse,
        responses={
            200: {
                "description": "Prometheus' text format: HTTP requests by route template and"
                " status, their latency, live stream clients, and the process's own.",
                "content": {
                    "text/plain": {"schema": {"type": "string"}, "example": METRICS_EXAMPLE}
                },
            }
        },
    )
    async def prometheus_metrics() -> Response:
        """The gateway's metrics for Prometheus to scrape."""
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    app.openapi = lambda: described_openapi(app)  # type: ignore[method-assign]
    return app


async def _database_problem(models: ReadModels) -> str | None:
    try:
        await asyncio.wait_for(models.ping(), HEALTH_TIMEOUT_SECONDS)
    except Exception as error:
        return f"{type(error).__name__}: {error}".strip()
    return None


METRICS_EXAMPLE = (
    "# HELP switchboard_http_requests_total HTTP requests answered, by method, route template"
    " (unmatched for no route) and status.\n"
    "# TYPE switchboard_http_requests_total counter\n"
    'switchboard_http_requests_total{method="POST",route="/webhooks/whatsapp",status="200"}'
    " 42.0\n"
)
DOCS_ASSETS = "/docs-assets"
API_DESCRIPTION = """WhatsApp conversations through chatbot flows to human agents.

Every `/api` route needs a member's token (`Authorization: Bearer <token>`) and sees only its
workspace. Every error answers `{"detail": "...", "errors": [...]}` (`errors` for a request
that did not validate, naming each field). Text that people type (names, ids, replies, notes)
may hold no control character; free text keeps line breaks and tabs."""

WEBHOOK_BODY = {
    "description": "Meta's delivery, signed with `X-Hub-Signature-256` over the exact bytes.",
    "required": True,
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/WhatsAppWebhook"}}},
}
WEBHOOK_UNSIGNED = {
    "content": PROBLEM_CONTENT,
    "description": "`X-Hub-Signature-256` is missing or does not match the body.",
}
WEBHOOK_TOO_LARGE = {
    "content": PROBLEM_CONTENT,
    "description": "The body is over `SWITCHBOARD_WEBHOOK_MAX_BODY_BYTES` (refused before it"
    " is read), or a record is over Kafka's message size: no retry changes that.",
}
WEBHOOK_UNAVAILABLE = {
    "content": PROBLEM_CONTENT,
    "description": "Kafka is unreachable or did not acknowledge every record in time: nothing"
    " is lost, Meta retries. (A record Kafka can never take answers 413 or 400 instead.)",
    "headers": {"Retry-After": {"description": "seconds to wait", "schema": {"type": "string"}}},
}
