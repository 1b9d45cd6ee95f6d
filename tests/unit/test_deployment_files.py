"""The deployment files are generated from the process registry and committed: they list
every process with its replicas, cannot drift from the registry, the Kubernetes manifests
pass the Kubernetes API's schemas, and the image holds every package the processes import."""

from __future__ import annotations

import inspect
import re
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from runtime.process import Process
from services import deployment, registry

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
# As make lint validates them.
KUBERNETES_VERSION = re.search(
    r"^KUBERNETES_VERSION \?= (\S+)$", (ROOT / "Makefile").read_text(), re.MULTILINE
)


def test_the_committed_files_are_what_the_registry_says() -> None:
    assert deployment.check(ROOT) == []


def test_a_file_edited_by_hand_or_a_process_added_is_reported(tmp_path: Path) -> None:
    assert len(deployment.check(tmp_path)) == 2  # both missing
    assert set(deployment.write(tmp_path)) == {
        deployment.COMPOSE_PATH,
        deployment.KUBERNETES_PATH,
    }
    assert deployment.check(tmp_path) == []
    assert deployment.write(tmp_path) == []
    compose = tmp_path / deployment.COMPOSE_PATH
    compose.write_text(compose.read_text().replace("replicas: 2", "replicas: 1", 1))
    assert deployment.check(tmp_path) == [
        f"{deployment.COMPOSE_PATH} differs from services/registry.py;"
        " run `switchboard deployment write`"
    ]
    # What a registry line more would do: the file no longer matches.
    notes = Process(
        "notes", "consumer", "services.notes.app:SERVICE", "notes", replicas=3, store="notes"
    )
    assert "notes:" in deployment.compose_file((*registry.PROCESSES, notes))
    assert deployment.compose_file((*registry.PROCESSES, notes)) != deployment.compose_file()


def test_compose_runs_every_process_with_its_replicas() -> None:
    document = yaml.safe_load((ROOT / deployment.COMPOSE_PATH).read_text())
    services = document["services"]
    assert set(services) == {"kafka", "postgres", *registry.names()}
    for process in registry.PROCESSES:
        service = services[process.name]
        assert service["command"] == ["switchboard", "run", process.name]
        assert service["deploy"]["replicas"] == process.replicas
        # The merge key gives every process the connections and dependencies.
        assert service["environment"]["SWITCHBOARD_KAFKA_BOOTSTRAP"] == "kafka:9092"
        assert set(service["depends_on"]) == {"kafka", "postgres"}
        assert "container_name" not in service  # replicas need names of their own
    gateway = services["gateway"]
    assert gateway["ports"] == ["8000-8001:8000"]  # one host port per replica
    assert "/healthz" in " ".join(gateway["healthcheck"]["test"])


def _manifests() -> list[Any]:
    return list(yaml.safe_load_all((ROOT / deployment.KUBERNETES_PATH).read_text()))


def test_kubernetes_has_a_deployment_per_process_with_replicas_and_probes() -> None:
    manifests = _manifests()
    deployments = {m["metadata"]["name"]: m for m in manifests if m["kind"] == "Deployment"}
    assert set(deployments) == set(registry.names())
    for process in registry.PROCESSES:
        spec = deployments[process.name]["spec"]
        assert spec["replicas"] == process.replicas
        (container,) = spec["template"]["spec"]["containers"]
        assert container["command"] == ["switchboard", "run", process.name]
        assert container["resources"]["requests"]
        database = container["env"][0]["valueFrom"]["secretKeyRef"]
        assert database == {"name": "switchboard-db-app", "key": "uri"}  # CloudNativePG's
        if process.health is not None:
            assert container["readinessProbe"]["httpGet"]["path"] == process.health
            assert container["livenessProbe"]["httpGet"]["path"] == process.health
        else:  # consumers and the relay: their own metrics endpoint (runtime.observe)
            ready, live = (
                container["readinessProbe"]["httpGet"],
                container["livenessProbe"]["httpGet"],
            )
            assert ready == {"path": "/readyz", "port": process.metrics_port}
            assert live == {"path": "/healthz", "port": process.metrics_port}
        scraped = spec["template"]["metadata"]["annotations"]
        assert scraped["prometheus.io/scrape"] == "true"
        assert scraped["prometheus.io/path"] == "/metrics"
    services = [m for m in manifests if m["kind"] == "Service"]
    assert [s["metadata"]["name"] for s in services] == ["gateway"]
    (config,) = [m for m in manifests if m["kind"] == "ConfigMap"]
    assert config["data"]["SWITCHBOARD_KAFKA_BOOTSTRAP"] == "switchboard-kafka-bootstrap:9092"


def test_every_manifest_passes_the_kubernetes_api_schemas() -> None:
    assert KUBERNETES_VERSION is not None
    for manifest in _manifests():
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION.group(1), strict=True)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("spec", "replicas"), "two"),
        (("spec", "template", "spec", "containers", 0, "livenessprobe"), {}),
        (
            (
                "spec",
                "template",
                "spec",
                "containers",
                0,
                "env",
                0,
                "valueFrom",
                "secretKeyRef",
                "key",
            ),
            5,
        ),
    ],
)
def test_the_schema_check_refuses_a_broken_manifest(path: tuple[Any, ...], value: Any) -> None:
    assert KUBERNETES_VERSION is not None
    manifest = next(m for m in _manifests() if m["kind"] == "Deployment")
    node = manifest
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION.group(1), strict=True)


def test_the_image_holds_every_package_of_the_project() -> None:
    """The Dockerfile copies the packages one by one (for its layer cache): a package added
    to pyproject.toml and not copied would make every process fail to import in the image."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {
        pattern.rstrip("*")
        for pattern in project["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    copied = set(
        re.findall(r"^COPY (\w+) \./\1$", (ROOT / "deploy" / "Dockerfile").read_text(), re.M)
    )
    assert packages == copied


def test_make_run_supervises_every_process_of_the_registry() -> None:
    """`make run` is `switchboard run all`: the supervisor's default list is the registry's."""
    from services import supervisor

    assert registry.names() == supervisor.PROCESSES
    assert inspect.signature(supervisor.run_all).parameters["processes"].default == registry.names()
