"""Canned responses: a workspace's ready-made replies, each under a shortcut the agent types
after ``/`` in the reply box.

Admins create, edit and delete them (commands on ``directory.commands``, decided on the
workspace's stream by the directory; events on ``directory.events``, keyed by workspace).
A text may hold variables, ``{{contact.name}}`` for one, which are filled when an agent
inserts the response into a reply to a given conversation. The variables and how they are
filled are part of the contract (every reader fills them alike), so they live here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from events.base import Id, Payload

SHORTCUT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$"
MAX_TEXT_LENGTH = 4096  # Meta's limit on a text message: a response becomes one

# The variables a text may name, and what each is filled with.
VARIABLES: Mapping[str, str] = {
    "contact.name": "the customer's WhatsApp profile name (else the contact id)",
    "contact.phone": "the customer's contact id (a phone number, or a username's user id)",
    "agent.name": "the name of the member who inserts the response",
}
# ``{{ name }}``, spaces inside the braces allowed.
_VARIABLE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")


def variables_in(text: str) -> list[str]:
    """Every variable ``text`` names, in order (unknown ones included)."""
    return [match.group(1) for match in _VARIABLE.finditer(text)]


def unknown_variables(text: str) -> list[str]:
    return sorted({name for name in variables_in(text) if name not in VARIABLES})


def filled(text: str, values: Mapping[str, str]) -> str:
    """``text`` with each known variable replaced by its value (an unknown one, or one with
    no value, is left as written, so the agent sees what was not filled)."""

    def value(match: re.Match[str]) -> str:
        return values.get(match.group(1), match.group(0))

    return _VARIABLE.sub(value, text)


class CreateCannedResponse(Payload):
    """Command: a new canned response under ``shortcut``."""

    event_type = "directory.create_canned_response"

    workspace_id: Id
    canned_response_id: Id
    shortcut: str
    text: str
    created_by: Id


class UpdateCannedResponse(Payload):
    """Command: a canned response's new shortcut and text."""

    event_type = "directory.update_canned_response"

    workspace_id: Id
    canned_response_id: Id
    shortcut: str
    text: str
    updated_by: Id


class DeleteCannedResponse(Payload):
    event_type = "directory.delete_canned_response"

    workspace_id: Id
    canned_response_id: Id
    deleted_by: Id


class CannedResponseCreated(Payload):
    event_type = "directory.canned_response_created"

    workspace_id: Id
    canned_response_id: Id
    shortcut: str
    text: str
    created_by: Id


class CannedResponseUpdated(Payload):
    event_type = "directory.canned_response_updated"

    workspace_id: Id
    canned_response_id: Id
    shortcut: str
    text: str
    updated_by: Id


class CannedResponseDeleted(Payload):
    """The response is no longer offered; its shortcut is free again."""

    event_type = "directory.canned_response_deleted"

    workspace_id: Id
    canned_response_id: Id
    deleted_by: Id


CANNED_RESPONSE_COMMANDS: tuple[type[Payload], ...] = (
    CreateCannedResponse,
    UpdateCannedResponse,
    DeleteCannedResponse,
)
CANNED_RESPONSE_EVENTS: tuple[type[Payload], ...] = (
    CannedResponseCreated,
    CannedResponseUpdated,
    CannedResponseDeleted,
)
