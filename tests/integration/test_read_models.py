"""Read models rebuild themselves when their tables change shape."""

from __future__ import annotations

import pytest

from projections.app import open_recorder
from projections.recorder import READ_MODEL_VERSION
from services.settings import Settings
from tests.harness import query

pytestmark = pytest.mark.integration


async def test_read_models_of_an_older_version_are_dropped_and_positions_forgotten(
    settings: Settings,
) -> None:
    recorder = open_recorder(settings)
    recorder.datastore.close()
    await query(settings, "projections", "UPDATE {s}.read_model_version SET version = 1")
    await query(
        settings,
        "projections",
        "INSERT INTO {s}.workspaces VALUES ('00000000-0000-0000-0000-000000000001', 'Old',"
        " 'UTC', now())",
    )
    await query(settings, "projections", "INSERT INTO {s}.tracking VALUES ('x#0', 41)")
    await query(settings, "projections", "INSERT INTO {s}.tracking VALUES ('__relay__', 7)")

    recorder = open_recorder(settings)
    recorder.datastore.close()

    assert await query(settings, "projections", "SELECT * FROM {s}.workspaces") == []
    assert await query(settings, "projections", "SELECT version FROM {s}.read_model_version") == [
        {"version": READ_MODEL_VERSION}
    ]
    names = await query(settings, "projections", "SELECT application_name FROM {s}.tracking")
    assert sorted(row["application_name"] for row in names) == ["__migration__", "__relay__"]

    # The current version is left alone.
    await query(settings, "projections", "INSERT INTO {s}.tracking VALUES ('y#0', 5)")
    open_recorder(settings).datastore.close()
    names = await query(settings, "projections", "SELECT application_name FROM {s}.tracking")
    assert "y#0" in {row["application_name"] for row in names}
