"""Which characters text typed by people may hold (pure): the API's inputs, the directory's
names and a flow's texts follow this one rule.

Control characters (Unicode category Cc: C0, DEL and C1) and lone surrogates (Cs) have no
place in a name, an id or a number, and only a line break or a tab has one in free text
(a reply, a flow's message). NUL in particular cannot be stored in a PostgreSQL text or jsonb
column, and a lone surrogate cannot be encoded as UTF-8 at all: letting either in leaves a
record that no read model can show (a ghost member, a reply missing from its history).

Text that comes from WhatsApp follows another rule: it is kept whole (Meta already sent it);
only the read models replace what PostgreSQL cannot hold.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

# What free text may still hold of the control characters.
FREE_TEXT_CONTROLS = frozenset("\n\t")

# The same rules as JSON Schema patterns (ECMA-262), for the OpenAPI document: clients and
# schema-driven tools see the rule the validators apply.
NAME_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"
FREE_TEXT_PATTERN = r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f]*$"


@dataclass(frozen=True)
class ControlCharacter:
    """The first character the rule refuses, and where (0-based, in characters)."""

    position: int
    character: str

    def describe(self) -> str:
        code = f"U+{ord(self.character):04X}"
        kind = "a lone surrogate" if _is_surrogate(self.character) else "a control character"
        return f"{kind} ({code}) at position {self.position}"


def first_control_character(text: str, *, free_text: bool = False) -> ControlCharacter | None:
    """The first character of ``text`` a name (or, with ``free_text``, a message) may not
    hold; None when the text is acceptable."""
    allowed = FREE_TEXT_CONTROLS if free_text else frozenset()
    for position, character in enumerate(text):
        if character in allowed:
            continue
        if unicodedata.category(character) in ("Cc", "Cs"):
            return ControlCharacter(position, character)
    return None


def control_character_problem(text: str, *, free_text: bool = False) -> str | None:
    """Why ``text`` is refused, in words for the caller; None when it is acceptable."""
    found = first_control_character(text, free_text=free_text)
    if found is None:
        return None
    allowed = " (only line breaks and tabs are allowed)" if free_text else ""
    return f"contains {found.describe()}{allowed}"


def _is_surrogate(character: str) -> bool:
    return unicodedata.category(character) == "Cs"
