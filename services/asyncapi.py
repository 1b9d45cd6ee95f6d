"""The AsyncAPI document of the consumer apps: the contract for analytics subscribers."""

from __future__ import annotations

from typing import Any

from faststream._internal.broker import BrokerUsecase
from faststream.specification import AsyncAPI

from services.settings import Settings


def asyncapi_document(settings: Settings) -> dict[str, Any]:
    """Build every consumer app (nothing connects) and describe their brokers together."""
    from projections.app import create_app as create_projector
    from services.assignment.app import create_app as create_assignment
    from services.directory.app import create_app as create_directory
    from services.dispatcher.app import create_app as create_dispatcher
    from services.expiry.app import create_app as create_expiry
    from services.flows.app import create_app as create_flows
    from services.inbound.app import create_app as create_inbound

    brokers: list[BrokerUsecase[Any, Any, Any]] = []
    for create in (
        create_inbound,
        create_directory,
        create_flows,
        create_dispatcher,
        create_expiry,
        create_assignment,
        create_projector,
    ):
        broker = create(settings).broker
        assert broker is not None
        brokers.append(broker)
    specification = AsyncAPI(
        *brokers,
        title="switchboard",
        version="0.1.0",
        description="Event topics of switchboard. Payloads are enveloped JSON (see events/).",
    ).to_specification()
    document: dict[str, Any] = specification.to_jsonable()
    return document
