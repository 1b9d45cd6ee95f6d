"""Base class and field types shared by every event and command payload."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

# Payloads are validated strictly (no "1" for 1, no unknown fields), but identifiers and
# instants arrive from JSON as strings, so those two types accept their string forms.
Id = Annotated[UUID, Field(strict=False)]
Instant = Annotated[AwareDatetime, Field(strict=False)]
JsonObject = dict[str, Any]


class Payload(BaseModel):
    """A versioned, immutable record payload: an event (past tense) or a command (imperative).

    Subclasses set ``event_type`` (the stable wire name, never derived from the class name)
    and ``schema_version`` (bumped with an upcaster on every incompatible change).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    event_type: ClassVar[str]
    schema_version: ClassVar[int] = 1


def utc(moment: datetime) -> datetime:
    """Reject naive datetimes early: every instant in switchboard is timezone-aware UTC."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: switchboard instants are timezone-aware UTC")
    return moment
