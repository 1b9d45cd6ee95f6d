"""The types every ``/api`` route reads its input with: bodies, query and path parameters.

One mechanism for the whole API: a request model or a parameter declares its text as one of
these types, and a control character (or a lone surrogate) anywhere in it is refused with a
422 that names the field (``events.text_rules`` says which characters and why). The same
rule is published in the OpenAPI document as each field's ``pattern``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler, StringConstraints
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from events.text_rules import FREE_TEXT_PATTERN, NAME_PATTERN, control_character_problem

MAX_NAME = 200
# Meta's limit for a text message body.
MAX_TEXT = 4096
MAX_NOTE = 1000
MAX_IDENTIFIER = 128


@dataclass(frozen=True)
class NoControlCharacters:
    """Refuse a string holding a control character; in ``free_text``, line breaks and tabs
    are allowed. Checked on the text as sent, before any stripping: a name with a trailing
    newline is refused, not quietly trimmed."""

    free_text: bool = False

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        found = handler(schema)
        found["pattern"] = FREE_TEXT_PATTERN if self.free_text else NAME_PATTERN
        return found

    def _check(self, value: object) -> object:
        if isinstance(value, str):
            problem = control_character_problem(value, free_text=self.free_text)
            if problem is not None:
                raise PydanticCustomError("control_character", "{problem}", {"problem": problem})
        return value


@dataclass(frozen=True)
class NotBlank:
    """Refuse text that is only whitespace (after the length checks)."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    @staticmethod
    def _check(value: str) -> str:
        if not value.strip():
            raise PydanticCustomError("blank", "must not be blank")
        return value


# A member's or a group's name: trimmed, 1 to 200 characters, no control character at all.
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_NAME),
    NoControlCharacters(),
]
# What an agent writes to a customer: kept as typed (line breaks and tabs included).
ReplyText = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_TEXT), NotBlank(), NoControlCharacters(True)
]
# A short free-text remark (a transfer's note); may be empty.
Note = Annotated[str, StringConstraints(max_length=MAX_NOTE), NoControlCharacters(True)]
# An id chosen outside switchboard: a WhatsApp id, a business number's phone_number_id.
Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_IDENTIFIER), NoControlCharacters()
]


async def known_query_only(request: Request) -> None:
    """Refuse a query parameter the route does not take (a typo such as ``?contacts=`` would
    otherwise be ignored in silence), as request bodies refuse unknown fields."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if not isinstance(dependant, Dependant):
        return
    unknown = sorted(set(request.query_params) - _query_names(dependant))
    if unknown:
        raise RequestValidationError(
            [
                {
                    "type": "extra_forbidden",
                    "loc": ("query", name),
                    "msg": "this route takes no such query parameter",
                }
                for name in unknown
            ]
        )


def _query_names(dependant: Dependant) -> frozenset[str]:
    names = {field.alias for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return frozenset(names)
