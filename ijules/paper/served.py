"""Which registered versions trade in paper tonight, and the policy each one serves.

The registry decides: the ``champion`` alias trades ``1 - challenger_allocation`` of the paper
capital, the ``challenger`` alias the rest. While no version is champion, the latest registered
version (the highest number) trades in shadow: unapproved, no allocation, its P&L recorded on the
champion's share as notional capital, so there is always a live record to judge the next
decision by. A served policy trades only after its weights' SHA-256 matches the checksum
recorded at registration.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ijules.artifacts import MetricsReport, PaperSlot
from ijules.config import Config
from ijules.errors import ArtifactError, RegistryError
from ijules.registry.aliases import PASSED
from ijules.registry.register import CHALLENGER, CHAMPION, STATUS_TAG, WEIGHTS_TAG, alias_version
from ijules.registry.review import download
from ijules.tracking import configure
from ijules.training.policy import RecurrentPolicy

EVALUATION_ARTIFACTS = "evaluation"  # the training run's folder of its test-window evaluation


class WeightsMismatch(RegistryError):
    """The served weights are not the ones recorded at registration: the model must not trade."""


@dataclass(frozen=True)
class Assignment:
    """A registered version's place in the paper book tonight."""

    slot: PaperSlot
    version: str
    alias: str | None  # None: in shadow
    status: str | None
    approved: bool
    allocation: float
    capital_usd: float
    weights_sha256: str | None
    run_id: str


@dataclass(frozen=True)
class TestedWindow:
    """The test window a version was evaluated on: where its paper book starts, and the bars
    per year its environment ran with."""

    start: str
    end: str
    bars_per_year: float


def assignments(config: Config) -> list[Assignment]:
    """The versions that trade tonight, by slot (none while nothing is registered)."""
    from mlflow import MlflowClient

    configure(config.registry.experiment)
    client = MlflowClient()
    name = config.registry.model_name
    paper = config.paper
    share = paper.challenger_allocation
    champion = alias_version(client, name, CHAMPION)
    challenger = alias_version(client, name, CHALLENGER)
    found: list[Assignment] = []
    champion_usd = paper.capital_usd * (1.0 - share)
    if champion is not None:
        found.append(_assigned("champion", champion, CHAMPION, 1.0 - share, champion_usd))
    if challenger is not None:
        challenger_usd = paper.capital_usd * share
        found.append(_assigned("challenger", challenger, CHALLENGER, share, challenger_usd))
    if champion is None:
        versions = list(client.search_model_versions(f"name='{name}'"))
        if versions:
            latest = max(versions, key=lambda v: int(v.version))
            if challenger is None or str(challenger.version) != str(latest.version):
                # Notional: the champion's share, as if it were champion; nothing allocated.
                found.append(_assigned("shadow", latest, None, 0.0, champion_usd))
    return found


def _assigned(
    slot: PaperSlot, version: Any, alias: str | None, allocation: float, book_usd: float
) -> Assignment:
    tags = version.tags
    status = tags.get(STATUS_TAG)
    return Assignment(
        slot=slot,
        version=str(version.version),
        alias=alias,
        status=status,
        approved=status in PASSED,
        allocation=allocation,
        capital_usd=book_usd,
        weights_sha256=tags.get(WEIGHTS_TAG),
        run_id=str(version.run_id),
    )


def served_policy(config: Config, assignment: Assignment) -> RecurrentPolicy:
    """The policy the registry serves for ``assignment``, after its checksum is verified."""
    name = config.registry.model_name
    expected = assignment.weights_sha256
    if not expected:
        raise WeightsMismatch(
            f"{name} v{assignment.version} has no recorded weights checksum "
            f"(tag ijules.weights_sha256); it cannot be verified, so it does not trade"
        )
    served = download(name, assignment.version)
    try:
        actual = served.sha256
        if actual != expected:
            raise WeightsMismatch(
                f"{name} v{assignment.version} ({assignment.slot}): the served weights' sha256 "
                f"{actual[:12]}... differs from the {expected[:12]}... recorded at registration; "
                "not traded, its paper book untouched"
            )
        return RecurrentPolicy.load_files(served.zip_path, served.spec_path)
    finally:
        served.folder.cleanup()


def tested_window(assignment: Assignment) -> TestedWindow:
    """The test window the version's training run was evaluated on (its logged metrics)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory(prefix="ijules-evaluation-") as scratch:
        try:
            folder = Path(
                mlflow.artifacts.download_artifacts(
                    run_id=assignment.run_id, artifact_path=EVALUATION_ARTIFACTS, dst_path=scratch
                )
            )
        except (MlflowException, OSError) as error:
            raise RegistryError(
                f"v{assignment.version}'s run {assignment.run_id} holds no evaluation "
                f"({error.__class__.__name__}); run `ijules evaluate` on it"
            ) from None
        for path in sorted(folder.glob("*.json")):
            try:
                report = MetricsReport.read(path)
            except (ArtifactError, json.JSONDecodeError):
                continue
            if report.model.run_id == assignment.run_id:
                window = report.window
                return TestedWindow(window.start, window.end, window.bars_per_year)
    raise RegistryError(
        f"v{assignment.version}'s run {assignment.run_id} holds no test-window metrics "
        "of its own; run `ijules evaluate` on it"
    )
