"""Every error the HTTP API answers has one body: ``{"detail": "...", "errors": [...]}``.

``detail`` is always a sentence saying what is wrong (FastAPI's own 422 put a list there,
which the OpenAPI document then described as the only shape); ``errors`` lists each refused
field of a request that did not validate, with where it is (``loc``, ``field``), why (``msg``)
and a stable ``type`` (``control_character``, ``missing``, ``string_too_long``, ...).
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException


class FieldProblem(BaseModel):
    """One refused part of a request."""

    loc: list[str | int] = Field(description="where: body, query, path or header, then the field")
    field: str = Field(description="``loc`` joined with dots, e.g. ``body.name``")
    msg: str = Field(description="why it was refused")
    type: str = Field(description="a stable kind of problem, e.g. ``control_character``")


class Problem(BaseModel):
    """The body of every 4xx and 5xx answer."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "detail": "body.name: contains a control character (U+0000) at position 3",
                    "errors": [
                        {
                            "loc": ["body", "name"],
                            "field": "body.name",
                            "msg": "contains a control character (U+0000) at position 3",
                            "type": "control_character",
                        }
                    ],
                },
                {"detail": "no conversation 3f6c0d8e-5b0a-4c55-9a53-4f1c7f0b2a10 here"},
            ]
        }
    )

    detail: str = Field(description="what is wrong, in words")
    errors: list[FieldProblem] | None = Field(
        default=None, description="each refused field (422 for a request that did not validate)"
    )


async def invalid_request(request: Request, error: Exception) -> JSONResponse:
    """422 naming every refused field; the input itself is not echoed back (it may be large,
    and it is what the caller sent)."""
    assert isinstance(error, RequestValidationError)
    problems = [_field_problem(item) for item in error.errors()]
    detail = "; ".join(f"{problem.field}: {problem.msg}" for problem in problems)
    body = Problem(detail=detail or "the request is not valid", errors=problems)
    return JSONResponse(body.model_dump(mode="json"), status_code=422)


async def http_problem(request: Request, error: Exception) -> Response:
    """FastAPI's own answers, except one: a JSON body that is not even UTF-8 gets FastAPI's
    vague 400 "There was an error parsing the body"; it is malformed JSON like any other, so
    it answers 422 ``json_invalid`` saying so, as a body with a JSON syntax error does."""
    assert isinstance(error, HTTPException)
    if error.status_code == 400 and isinstance(error.__cause__, UnicodeDecodeError):
        problem = FieldProblem(
            loc=["body"],
            field="body",
            msg=f"not valid JSON (not UTF-8): {error.__cause__}",
            type="json_invalid",
        )
        body = Problem(detail=f"body: {problem.msg}", errors=[problem])
        return JSONResponse(body.model_dump(mode="json"), status_code=422)
    return await http_exception_handler(request, error)


def _field_problem(item: Any) -> FieldProblem:
    loc = [part if isinstance(part, int) else str(part) for part in item.get("loc", ())]
    kind = str(item.get("type", "value_error"))
    message = str(item.get("msg", ""))
    if kind == "json_invalid":
        # FastAPI says "JSON decode error" at ("body", position); say what and where.
        reason = (item.get("ctx") or {}).get("error", "")
        where = f" at character {loc[1]}" if len(loc) > 1 else ""
        loc, message = ["body"], f"not valid JSON: {reason}{where}".replace(": at", " at")
    return FieldProblem(loc=loc, field=".".join(str(part) for part in loc), msg=message, type=kind)


WHAT = {
    400: "The request is not what this route takes; `detail` says exactly where.",
    401: "No valid member token: send `Authorization: Bearer <token>`.",
    403: "The token's member may not do this (an agent on an admin's route, ...).",
    404: "No such thing in the caller's workspace (another workspace's ids answer this too).",
    409: "The state changed first: a claim someone else won, a closed conversation, ...",
    413: "The body is larger than this route accepts.",
    422: "Refused: a field that did not validate (`errors` names each one), or the deciding"
    " service's refusal with its reason.",
    503: "A dependency is unavailable (Kafka did not acknowledge, or the database is down):"
    " nothing was accepted; retry later.",
}


PROBLEM_CONTENT = {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses, each with the ``Problem`` body.

    The content is spelled out (not FastAPI's ``model``): FastAPI would file a model under
    the route's own media type, and errors are JSON even where success is plain text."""
    found: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        response: dict[str, Any] = {"content": PROBLEM_CONTENT, "description": WHAT[code]}
        if code == 401:
            response["headers"] = {
                "WWW-Authenticate": {
                    "description": "`Bearer`: the scheme this API takes",
                    "schema": {"type": "string"},
                }
            }
        found[code] = response
    return found
