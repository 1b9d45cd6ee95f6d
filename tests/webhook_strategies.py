"""Hypothesis strategies for webhook bodies: any JSON, and Meta's shape with broken parts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

# Any JSON value (what a sender could put anywhere in a body).
json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=25,
)

# Ids as Meta makes them: printable, no control characters.
ids = st.text(
    alphabet=st.characters(codec="utf-8", categories=("L", "N", "P", "S")),
    min_size=1,
    max_size=40,
)


@st.composite
def valid_messages(draw: st.DrawFn) -> dict[str, Any]:
    """A customer message Meta could send: any text, NUL and emoji included."""
    return {
        "from": draw(st.from_regex(r"\A[1-9][0-9]{6,14}\Z")),
        "id": "wamid." + draw(ids),
        "timestamp": str(draw(st.integers(min_value=0, max_value=253_402_300_799))),
        "type": "text",
        "text": {"body": draw(st.text(max_size=60))},
    }


@dataclass(frozen=True)
class MixedDelivery:
    """A delivery whose ``messages`` mix valid messages and anything else."""

    body: dict[str, Any]
    valid: list[dict[str, Any]]
    others: list[Any]


@st.composite
def mixed_deliveries(draw: st.DrawFn) -> MixedDelivery:
    valid = draw(st.lists(valid_messages(), min_size=1, max_size=4, unique_by=lambda m: m["id"]))
    others = draw(st.lists(json_values, max_size=4))
    items: list[Any] = [*valid, *others]
    order = draw(st.permutations(range(len(items))))
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "573001112233", "phone_number_id": "480112"},
        "messages": [items[index] for index in order],
    }
    # Neighbours broken in other ways: contacts, statuses, errors of any shape.
    for name in ("contacts", "statuses", "errors"):
        if draw(st.booleans()):
            value[name] = draw(json_values)
    entries: list[Any] = [{"id": "318400", "changes": [{"field": "messages", "value": value}]}]
    entries.extend(draw(st.lists(json_values, max_size=2)))
    return MixedDelivery(
        body={"object": "whatsapp_business_account", "entry": entries},
        valid=valid,
        others=others,
    )
