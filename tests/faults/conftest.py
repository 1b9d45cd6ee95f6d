"""The fault suite runs the processes as the e2e tests do: the same fixtures.

``make test`` (and so CI) runs the scenarios that no e2e test covers already; the broker and
database restarts and the replicas, which ``tests/e2e`` runs too (test_kafka_outage,
test_postgres_outage, test_replicas) with their own checks, run here under the invariants
with ``make test-faults`` (``SWITCHBOARD_WHOLE_FAULT_SUITE=1``).
"""

import os

import pytest

from tests.e2e.conftest import e2e_env, flow_env, graph, http, processes

__all__ = ["e2e_env", "flow_env", "graph", "http", "processes"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.environ.get("SWITCHBOARD_WHOLE_FAULT_SUITE") == "1":
        return
    skip = pytest.mark.skip(reason="covered in tests/e2e; the whole fault suite: make test-faults")
    for item in items:
        if item.get_closest_marker("whole_fault_suite") is not None:
            item.add_marker(skip)
