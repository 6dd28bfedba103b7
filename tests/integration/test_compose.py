"""docker/compose.yaml and the native cluster (scripts/cluster.py) are one deployment: the same
services, each with the same program, subcommands and options, the same Celery queues, the same
Airflow variables, and the GPU worker holding a GPU."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO

COMPOSE = REPO / "docker" / "compose.yaml"
COMPOSE_ONLY = {"airflow-init"}  # a one-shot `db migrate`, which `cluster.py up` runs inline


def native() -> Any:
    spec = importlib.util.spec_from_file_location("cluster", REPO / "scripts" / "cluster.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("cluster", module)  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def shape(command: list[str]) -> tuple[str, tuple[str, ...], frozenset[str], tuple[str, ...]]:
    """A command's program, subcommands, long options and queues; the values (hosts, ports,
    paths, secrets) differ between a machine and containers by design."""
    program = Path(command[0]).name
    words = []
    for word in command[1:]:
        if word.startswith("-"):
            break
        words.append(word)
    options = frozenset(word for word in command if word.startswith("--"))
    queues = ()
    if "--queues" in command:
        queues = tuple(command[command.index("--queues") + 1].split(","))
    return program, tuple(words), options, queues


def compose_services(path: Path = COMPOSE) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())["services"]


def mismatches(services: dict[str, Any], cluster: Any) -> list[str]:
    found = []
    names = set(services) - COMPOSE_ONLY
    if names != set(cluster.SERVICES):
        found.append(f"services: compose {sorted(names)} vs native {sorted(cluster.SERVICES)}")
    for name in names & set(cluster.SERVICES):
        theirs = shape([str(part) for part in services[name]["command"]])
        ours = shape(list(cluster.SERVICES[name].command))
        if theirs != ours:
            found.append(f"{name}: compose {theirs} vs native {ours}")
        if ours[3] != cluster.SERVICES[name].queues:
            found.append(f"{name}: native queues {cluster.SERVICES[name].queues} vs its command")
        if name.startswith("airflow-"):
            env = set(services[name].get("environment") or {})
            missing = set(cluster.AIRFLOW_ENV) - env
            if missing:
                found.append(f"{name}: compose lacks {sorted(missing)}")
    gpu = services.get("airflow-worker-gpu", {})
    devices = gpu.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])
    if not any("gpu" in device.get("capabilities", []) for device in devices):
        found.append("airflow-worker-gpu: no GPU device reserved")
    return found


def test_compose_and_the_native_cluster_are_the_same_deployment() -> None:
    assert mismatches(compose_services(), native()) == []


@pytest.mark.parametrize(
    ("plant", "expected"),
    [
        (
            lambda s: s["airflow-worker-gpu"]["command"].__setitem__(4, "default"),
            "airflow-worker-gpu",
        ),
        (lambda s: s["airflow-scheduler"]["environment"].pop("AIRFLOW__CORE__EXECUTOR"), "lacks"),
        (lambda s: s.pop("airflow-triggerer"), "services"),
        (lambda s: s["mlflow"]["command"].remove("--serve-artifacts"), "mlflow"),
        (lambda s: s["airflow-worker-gpu"].pop("deploy"), "no GPU device"),
    ],
)
def test_a_planted_mismatch_is_named(plant: Any, expected: str) -> None:
    services = compose_services()
    for service in services.values():  # unshare the YAML anchors' mappings
        if isinstance(service.get("environment"), dict):
            service["environment"] = dict(service["environment"])
    plant(services)
    found = mismatches(services, native())
    assert found and any(expected in line for line in found), found


def test_no_secret_has_a_default_in_compose() -> None:
    text = COMPOSE.read_text()
    for secret in native().SECRETS:
        if secret in text:
            assert f"${{{secret}:-" not in text, secret
    example = (REPO / "docker" / ".env.example").read_text()
    for secret in native().SECRETS:
        assert f"\n{secret}=\n" in f"\n{example}", f"{secret} is not blank in .env.example"
