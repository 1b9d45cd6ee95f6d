"""The committed AsyncAPI document passes the official AsyncAPI parser (@asyncapi/parser, pinned
in tools/asyncapi/package.json and installed by `make asyncapi-tools`, which `make test` runs),
and the same check fails on documents broken in the ways that matter: a payload schema that is
not a schema, an operation naming another channel's message, a reference to nothing, a
required field missing, a wrong operation action."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from events.base import JsonObject
from services import asyncapi

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / "tools" / "asyncapi"
VALIDATOR = TOOLS / "validate.mjs"
COMMITTED = ROOT / "docs" / "asyncapi.yaml"


def _payload_not_a_schema(document: JsonObject) -> None:
    record = document["components"]["schemas"]["conversation.started.v3"]
    record["properties"]["event_id"]["type"] = "uuid-ish"


def _foreign_message(document: JsonObject) -> None:
    document["operations"]["flows.receive.conversation.events"]["messages"].append(
        {"$ref": "#/channels/flow.events/messages/flow.ended.v1"}
    )


def _dangling_reference(document: JsonObject) -> None:
    document["channels"]["flow.events"]["messages"]["flow.ended.v1"] = {
        "$ref": "#/components/messages/flow.ended.v9"
    }


def _no_version(document: JsonObject) -> None:
    del document["info"]["version"]


def _unknown_action(document: JsonObject) -> None:
    document["operations"]["flows.receive.conversation.events"]["action"] = "consume"


BREAKAGES: dict[str, tuple[Callable[[JsonObject], None], str]] = {
    # name: (how the document is broken, what the parser must say)
    "payload-not-a-schema": (_payload_not_a_schema, "components.schemas.conversation.started.v3"),
    "foreign-message": (_foreign_message, "does not belong to the specified channel"),
    "dangling-reference": (_dangling_reference, "'#/components/messages/flow.ended.v9' does not"),
    "no-version": (_no_version, 'required property "version"'),
    "unknown-action": (_unknown_action, '"action" property must be equal to one of'),
}


@pytest.fixture(scope="module")
def node() -> str:
    found = shutil.which("node")
    if found is None or not (TOOLS / "node_modules" / "@asyncapi" / "parser").is_dir():
        pytest.fail(
            "the AsyncAPI validator is not installed: run `make asyncapi-tools` (Node.js 18+"
            " and npm; `make test` does it)"
        )
    return found


def _validate(node: str, *files: Path) -> tuple[int, str]:
    done = subprocess.run(
        [node, str(VALIDATOR), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def test_the_committed_document_is_valid_asyncapi_3(node: str) -> None:
    code, output = _validate(node, COMMITTED)
    assert code == 0, output
    assert f"{COMMITTED}: valid AsyncAPI 3.0.0" in output
    assert not re.search(r": (error|warning) ", output), output


def test_the_validator_fails_on_each_broken_document(node: str, tmp_path: Path) -> None:
    generated = asyncapi.asyncapi_document()
    files = {}
    for name, (breaking, _) in BREAKAGES.items():
        document = copy.deepcopy(generated)
        breaking(document)
        files[name] = tmp_path / f"{name}.yaml"
        files[name].write_text(asyncapi.render(document))
    code, output = _validate(node, *files.values())
    assert code == 1, output
    lines = output.splitlines()
    for name, (_, expected) in BREAKAGES.items():
        said = [line for line in lines if line.startswith(f"{files[name]}: ")]
        assert f"{files[name]}: INVALID" in " ".join(said), f"{name} passed:\n{output}"
        assert any(expected in line for line in said), f"{name}:\n" + "\n".join(said)


def test_the_validator_refuses_a_file_that_is_not_asyncapi(node: str, tmp_path: Path) -> None:
    path = tmp_path / "not-asyncapi.yaml"
    path.write_text("openapi: 3.1.0\ninfo: {title: x, version: '1'}\npaths: {}\n")
    code, output = _validate(node, path)
    assert code == 1, output
    assert "INVALID" in output
