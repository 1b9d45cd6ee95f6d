"""A flow document's text, checked before its grammar (pure): no control characters.

Names, ids, variables and options hold none at all; the texts the customer reads (``text``,
``retry_text``, an option's ``description``) may hold line breaks and tabs. The first string
that breaks the rule is named with its place and its block, as every other flow error is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from events.text_rules import control_character_problem

FREE_TEXT_KEYS = frozenset({"text", "retry_text", "description"})


def first_text_problem(document: Mapping[str, Any]) -> tuple[str, str | None] | None:
    """``(message, block id)`` for the first refused string (keys included), or None."""
    for key, value in document.items():
        if key == "blocks" and isinstance(value, list):
            for index, block in enumerate(value):
                block_id = block.get("id") if isinstance(block, Mapping) else None
                found = _walk(block, f"blocks[{index}]" if block_id is None else "", False)
                if found is not None:
                    return found, str(block_id) if block_id is not None else None
            continue
        found = _walk({key: value}, "", False)
        if found is not None:
            return found, None
    return None


def _walk(value: object, where: str, free_text: bool) -> str | None:
    if isinstance(value, str):
        problem = control_character_problem(value, free_text=free_text)
        return f"{where or '(value)'}: {problem}" if problem else None
    if isinstance(value, Mapping):
        for key, item in value.items():
            here = f"{where}.{key}" if where else str(key)
            if isinstance(key, str):
                problem = control_character_problem(key)
                if problem:
                    return f"{here}: the key {problem}"
            found = _walk(item, here, key in FREE_TEXT_KEYS)
            if found is not None:
                return found
        return None
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _walk(item, f"{where}[{index}]", free_text)
            if found is not None:
                return found
    return None
