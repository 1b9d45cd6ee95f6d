"""Flow documents the tests publish (the acceptance flow of the flows issue, and friends)."""

from __future__ import annotations

from typing import Any
from uuid import UUID


def support_flow(group: UUID | str, *, time_zone: str | None = "America/Bogota") -> dict[str, Any]:
    """greet -> ask (billing / other) -> condition on answer and office hours ->
    connect_to_agent(group, available), or message + end.

    The condition compares the chosen button's id (``billing``), as the grammar says; until
    grammar v2 the captured value was the title and this sample compared "Facturación".
    """
    flow: dict[str, Any] = {
        "name": "Support",
        "start": "greet",
        "holidays": ["2026-12-25"],
        "blocks": [
            {"id": "greet", "type": "message", "text": "Hola {{contact.name}}", "next": "ask"},
            {
                "id": "ask",
                "type": "question",
                "text": "¿En qué te ayudamos?",
                "variable": "topic",
                "buttons": [
                    {"id": "billing", "title": "Facturación"},
                    {"id": "other", "title": "Otro"},
                ],
                "max_attempts": 2,
                "retry_text": "Elige una de las opciones, por favor",
                "next": "route",
                "fallback": "closed",
            },
            {
                "id": "route",
                "type": "condition",
                "rules": [
                    {
                        "if": [
                            {"variable": "topic", "equals": "billing"},
                            {"days": ["mon", "tue", "wed", "thu", "fri"]},
                            {"time": {"from": "08:00", "to": "18:00"}},
                            {"holiday": False},
                        ],
                        "next": "agent",
                    }
                ],
                "default": "closed",
            },
            {
                "id": "agent",
                "type": "connect_to_agent",
                "group": str(group),
                "rotation": "available",
                "text": "Te comunico con un asesor",
            },
            {
                "id": "closed",
                "type": "message",
                "text": "Escríbenos en horario de oficina",
                "next": "bye",
            },
            {"id": "bye", "type": "end", "text": "¡Gracias, {{contact.name}}!"},
        ],
    }
    if time_zone is not None:
        flow["time_zone"] = time_zone
    return flow


def two_questions() -> dict[str, Any]:
    """Asks X or Y, then Z or W: the flow of issue 10's re-sent button answer."""
    return {
        "name": "Two questions",
        "start": "first",
        "blocks": [
            {
                "id": "first",
                "type": "question",
                "text": "¿X o Y?",
                "variable": "first",
                "buttons": [{"id": "x", "title": "X"}, {"id": "y", "title": "Y"}],
                "max_attempts": 3,
                "retry_text": "Elige X o Y",
                "next": "second",
                "fallback": "bye",
            },
            {
                "id": "second",
                "type": "question",
                "text": "¿Z o W?",
                "variable": "second",
                "buttons": [{"id": "z", "title": "Z"}, {"id": "w", "title": "W"}],
                "max_attempts": 3,
                "retry_text": "Elige Z o W",
                "next": "bye",
                "fallback": "bye",
            },
            {"id": "bye", "type": "message", "text": "Gracias", "next": "end"},
            {"id": "end", "type": "end"},
        ],
    }
