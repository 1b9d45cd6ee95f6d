"""A read-only diagram of a flow: its blocks in layers from ``start``, and the transitions.

Pure layout (no drawing library): each block sits in the column of its shortest distance
from ``start`` (blocks reached only from ``on_error`` after the rest), in the order they were
reached; the template draws the boxes and the arrows as inline SVG.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

BOX_WIDTH, BOX_HEIGHT = 170, 54
COLUMN_GAP, ROW_GAP, MARGIN = 70, 22, 12


@dataclass(frozen=True)
class Box:
    block_id: str
    kind: str
    x: int
    y: int


@dataclass(frozen=True)
class Arrow:
    source: str
    target: str
    label: str


@dataclass(frozen=True)
class Diagram:
    boxes: list[Box]
    arrows: list[Arrow]
    width: int
    height: int

    def box(self, block_id: str) -> Box | None:
        return next((box for box in self.boxes if box.block_id == block_id), None)


def exits(block: dict[str, Any]) -> list[tuple[str, str]]:
    """A block's transitions as (target, label), in the order the grammar lists them."""
    found: list[tuple[str, str]] = []
    if isinstance(block.get("next"), str):
        found.append((block["next"], ""))
    for index, rule in enumerate(block.get("rules") or []):
        if isinstance(rule, dict) and isinstance(rule.get("next"), str):
            found.append((rule["next"], f"rule {index + 1}"))
    for key in ("default", "fallback"):
        if isinstance(block.get(key), str):
            found.append((block[key], key))
    return found


def layout(definition: dict[str, Any]) -> Diagram:
    blocks = {
        str(block["id"]): block
        for block in definition.get("blocks") or []
        if isinstance(block, dict) and "id" in block
    }
    column: dict[str, int] = {}
    order: list[str] = []
    roots = [definition.get("start"), definition.get("on_error")]
    offset = 0
    for root in roots:
        if not isinstance(root, str) or root not in blocks or root in column:
            continue
        queue: deque[str] = deque([root])
        column[root] = offset
        while queue:
            current = queue.popleft()
            order.append(current)
            for target, _ in exits(blocks[current]):
                if target in blocks and target not in column:
                    column[target] = column[current] + 1
                    queue.append(target)
        offset = max(column.values()) + 1
    for block_id in blocks:  # unreachable blocks (a draft) still show, in a last column
        if block_id not in column:
            column[block_id] = offset
            order.append(block_id)
    rows: dict[int, int] = {}
    boxes: list[Box] = []
    for block_id in order:
        col = column[block_id]
        row = rows.get(col, 0)
        rows[col] = row + 1
        boxes.append(
            Box(
                block_id,
                str(blocks[block_id].get("type", "?")),
                MARGIN + col * (BOX_WIDTH + COLUMN_GAP),
                MARGIN + row * (BOX_HEIGHT + ROW_GAP),
            )
        )
    arrows = [
        Arrow(block_id, target, label)
        for block_id in order
        for target, label in exits(blocks[block_id])
        if target in blocks
    ]
    columns = max(column.values(), default=0) + 1
    tallest = max(rows.values(), default=1)
    return Diagram(
        boxes,
        arrows,
        width=2 * MARGIN + columns * BOX_WIDTH + (columns - 1) * COLUMN_GAP,
        height=2 * MARGIN + tallest * BOX_HEIGHT + (tallest - 1) * ROW_GAP,
    )
