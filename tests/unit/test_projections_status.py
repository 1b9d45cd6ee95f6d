"""The status table's arithmetic: positions against end offsets, per consumer and partition."""

from __future__ import annotations

import pytest

from services.operations.status import Reads, RelayStatus, partitions, render

pytestmark = pytest.mark.unit


def test_lag_is_the_end_minus_the_position_and_a_partition_never_read_lags_by_all() -> None:
    reads = [Reads("inbound", "inbound", "inbound", (("whatsapp.inbound", 3),))]
    positions = {"inbound": {"p.whatsapp.inbound#0": 10, "p.whatsapp.inbound#1": 4}}
    ends = {
        ("p.whatsapp.inbound", 0): 10,
        ("p.whatsapp.inbound", 1): 9,
        ("p.whatsapp.inbound", 2): 2,
    }
    rows = partitions(reads, positions, ends, "p.")
    assert [(row.partition, row.position, row.end, row.lag) for row in rows] == [
        (0, 10, 10, 0),
        (1, 4, 9, 5),
        (2, None, 2, 2),
    ]
    text = render(rows, [RelayStatus("inbound", 12, 9, 3)], each_partition=True)
    summary = next(line for line in text.splitlines() if line.startswith("inbound "))
    assert summary.split()[-3:] == ["3", "2", "7"]  # partitions, behind, lag
    assert "never read" in text
    assert text.splitlines()[-1].split() == ["inbound", "12", "9", "3"]
