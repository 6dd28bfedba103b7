"""Reproduce a registered version's baseline: rerun its pipeline, compare its test metrics.

A version's training run records the commit its code came from (``ijules.git_revision``),
whether anything a checkout of it would not restore had changed (``ijules.git_dirty``) and the
parameter file it ran with (artifact ``params/``); its review recorded the test metrics on the
version (tags ``test.sharpe`` ...). Reproducing checks that commit out into a throw-away git
worktree, writes the recorded parameters there as ``params.yaml`` (and the recorded as-of as
``as_of.yaml``) and runs ``dvc repro evaluate`` against a throw-away MLflow store (the registry is
only read), then compares the agent's test figures with the registered ones.

On the machine that trained the version they must be equal (tolerance 0); on another, torch's
and BLAS's kernels round differently, so a relative ``tolerance`` bounds the difference.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from ijules.artifacts import BaselineReproduction, ReproducedMetric
from ijules.config import AS_OF_FILE, AS_OF_KEY, BASE_PHASE, Config, PathsConfig
from ijules.errors import IjulesError, RegistryError
from ijules.io import md5_file, read_json
from ijules.registry.register import registered_version
from ijules.tracking import (
    AS_OF_TAG,
    DIRTY_TAG,
    PARAMS_ARTIFACT,
    REVISION_TAG,
    git_output,
    project_root,
)

log = logging.getLogger(__name__)

# The test-window figures the review records on a version (tags test.<name>), in table order.
METRICS = ("sharpe", "total_return", "max_drawdown", "daily_turnover", "num_trades")
LEGACY_REVISION_TAG = "git.revision"  # HEAD, suffixed "-dirty" when any tracked file changed
STAGE = "evaluate"  # the last stage the registered figures come from


class Recorded(NamedTuple):
    """What the registry holds about a version: its run, commit, parameters and test figures."""

    model_name: str
    version: str
    run_id: str
    revision: str
    params: str | None  # the parameter file's text; None: the commit's own params.yaml
    phase: str | None
    metrics: dict[str, float]
    features_md5: str | None
    as_of: str | None = None  # the as-of it trained as of ("null": none); None: not recorded


def reproduce(
    config: Config, version: str, *, tolerance: float, output: Path
) -> BaselineReproduction:
    """Rerun ``version``'s pipeline up to the evaluation at its commit and parameters, compare
    its test metrics with the registered ones, and write the comparison to ``output``.

    Raises
    ------
    RegistryError
        When the version records no clean commit, no parameters or no test metrics, when the
        repository does not hold the commit, or when the pipeline fails there.
    """
    if not tolerance >= 0:
        raise IjulesError(f"--tolerance must be at least 0, got {tolerance:g}")
    record = recorded(config, version)
    repository, prefix = _repository(project_root())
    _require_commit(repository, record)
    scratch = Path(tempfile.mkdtemp(prefix="ijules-baseline-"))
    checkout = scratch / "checkout"
    try:
        _check_out(repository, checkout, record.revision)
        project = checkout / prefix
        paths = _write_params(project, record)
        _write_as_of(project, record)
        _repro(project, scratch / "mlflow", record)
        figures = _agent_figures(project / paths.metrics)
        features = project / paths.features
        features_md5 = md5_file(features) if features.is_file() else None
    finally:
        _discard(repository, checkout, scratch)
    rows = compare(record.metrics, figures, tolerance)
    result = BaselineReproduction(
        model_name=record.model_name,
        version=record.version,
        run_id=record.run_id,
        revision=record.revision,
        tolerance=tolerance,
        reproduced=all(row.within_tolerance for row in rows),
        metrics=rows,
        features_md5_registered=record.features_md5,
        features_md5_reproduced=features_md5,
    )
    result.write(output)
    return result


def recorded(config: Config, version: str) -> Recorded:
    """Read ``version``'s commit, parameters and registered test metrics from the registry."""
    client, name, model_version = registered_version(config, version)
    missing = [f"test.{m}" for m in METRICS if f"test.{m}" not in model_version.tags]
    if missing:
        raise RegistryError(
            f"{name} v{version} records no {', '.join(missing)}: `ijules register` records "
            "the test metrics when it reviews a version"
        )
    run_id = str(model_version.run_id)
    tags = client.get_run(run_id).data.tags
    if REVISION_TAG in tags:
        revision, dirty = tags[REVISION_TAG], tags.get(DIRTY_TAG) != "false"
        params = _logged_params(client, run_id)
        if params is None:
            raise RegistryError(
                f"{name} v{version}'s run {run_id} logged no parameter file (artifact "
                f"{PARAMS_ARTIFACT}/): only `ijules train` logs it"
            )
    else:
        # Trained before the parameter file was logged: a clean commit holds the one it read.
        legacy = tags.get(LEGACY_REVISION_TAG, "unknown")
        revision, dirty, params = legacy.removesuffix("-dirty"), legacy.endswith("-dirty"), None
    if revision == "unknown":
        raise RegistryError(
            f"{name} v{version}'s run {run_id} records no git revision: it was not trained "
            "from a git checkout"
        )
    if dirty:
        raise RegistryError(
            f"{name} v{version} was trained at {revision} with uncommitted changes to tracked "
            "files (tag ijules.git_dirty): no checkout holds its code, so its baseline cannot "
            "be reproduced"
        )
    return Recorded(
        model_name=name,
        version=str(model_version.version),
        run_id=run_id,
        revision=revision,
        params=params,
        phase=tags.get("params.phase"),
        metrics={m: float(model_version.tags[f"test.{m}"]) for m in METRICS},
        features_md5=tags.get("dvc.md5.features"),
        as_of=tags.get(AS_OF_TAG),
    )


def compare(
    registered: dict[str, float], reproduced: dict[str, float], tolerance: float
) -> list[ReproducedMetric]:
    """Each metric beside its reproduction; within ``tolerance`` when the difference is at most
    ``tolerance`` times the larger magnitude (0: equal)."""
    rows = []
    for metric in METRICS:
        before, again = registered[metric], reproduced[metric]
        difference = again - before
        rows.append(
            ReproducedMetric(
                metric=metric,
                registered=before,
                reproduced=again,
                difference=difference,
                within_tolerance=abs(difference) <= tolerance * max(abs(before), abs(again)),
            )
        )
    return rows


def table(result: BaselineReproduction) -> str:
    """The comparison side by side, figures in full (a difference in the last digit shows)."""
    rows = [("metric", "registered", "reproduced", "difference", f"within {result.tolerance:g}")]
    rows += [
        (
            row.metric,
            repr(row.registered),
            repr(row.reproduced),
            f"{row.difference:.3g}",
            "yes" if row.within_tolerance else "NO",
        )
        for row in result.metrics
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    before, again = result.features_md5_registered, result.features_md5_reproduced
    if before is not None and before != again:
        lines.append(f"the features differ from the registered run's (MD5 {before} vs {again})")
    return "\n".join(line.rstrip() for line in lines)


def outcome(result: BaselineReproduction) -> str:
    """One line: reproduced, or which metrics differ beyond the tolerance."""
    where = f"{result.model_name} v{result.version} at {result.revision[:12]}"
    if result.reproduced:
        return f"{where} reproduced: every test metric within tolerance {result.tolerance:g}"
    differing = [row.metric for row in result.metrics if not row.within_tolerance]
    verb = "differs" if len(differing) == 1 else "differ"
    return (
        f"{where} does not reproduce: {', '.join(differing)} {verb} from the registered "
        f"figure beyond tolerance {result.tolerance:g} (relative)"
    )


def _logged_params(client: Any, run_id: str) -> str | None:
    import mlflow

    files = [item for item in client.list_artifacts(run_id, PARAMS_ARTIFACT) if not item.is_dir]
    if len(files) != 1:
        return None
    with tempfile.TemporaryDirectory() as folder:
        local = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=files[0].path, dst_path=folder
        )
        return Path(local).read_text(encoding="utf-8")


def _repository(root: Path) -> tuple[Path, str]:
    """The git checkout holding ``root``, and ``root``'s place in it."""
    try:
        return Path(git_output(root, "rev-parse", "--show-toplevel")), git_output(
            root, "rev-parse", "--show-prefix"
        )
    except (OSError, subprocess.CalledProcessError):
        raise RegistryError(f"{root} is not in a git checkout") from None


def _require_commit(repository: Path, record: Recorded) -> None:
    try:
        git_output(repository, "cat-file", "-e", f"{record.revision}^{{commit}}")
    except subprocess.CalledProcessError:
        raise RegistryError(
            f"{record.model_name} v{record.version} was trained at {record.revision}, which the "
            f"repository at {repository} does not hold: fetch it first"
        ) from None


def _check_out(repository: Path, checkout: Path, revision: str) -> None:
    try:
        git_output(repository, "worktree", "add", "--quiet", "--detach", str(checkout), revision)
    except subprocess.CalledProcessError as err:
        raise RegistryError(f"cannot check {revision} out: {err.stderr.strip()}") from None


def _write_params(project: Path, record: Recorded) -> PathsConfig:
    """Write the recorded parameters as ``project``'s params.yaml; return its paths."""
    target = project / "params.yaml"
    text = record.params if record.params is not None else target.read_text(encoding="utf-8")
    raw = yaml.safe_load(text)
    if not isinstance(raw, dict):
        raise RegistryError(f"the parameters {record.run_id} recorded are not a mapping")
    if record.phase is not None and raw.get("phase", BASE_PHASE) != record.phase:
        # Trained with `--phase`: the pipeline takes the phase from the file.
        raw["phase"] = record.phase
        text = yaml.safe_dump(raw, sort_keys=False)
    target.write_text(text, encoding="utf-8")
    # Another commit's paths section may hold keys this one does not know: keep the known ones.
    paths = raw.get("paths") or {}
    return PathsConfig.model_validate(
        {key: value for key, value in paths.items() if key in PathsConfig.model_fields}
    )


def _write_as_of(project: Path, record: Recorded) -> None:
    """Write the as-of the training recorded as ``project``'s as-of file, so that its ingest
    stages the same history however the source has grown; a run that recorded none (trained
    before the as-of existed) keeps the commit's own."""
    if record.as_of is None:
        return
    value = "null" if record.as_of == "null" else f"'{record.as_of}'"
    (project / AS_OF_FILE).write_text(f"{AS_OF_KEY}: {value}\n", encoding="utf-8")


def _repro(project: Path, store: Path, record: Recorded) -> None:
    """Run the pipeline up to :data:`STAGE` in ``project``, its runs going to ``store``."""
    bin_dir = Path(sys.executable).parent
    search = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    inherited = os.environ.get("PYTHONPATH")
    env = {
        **os.environ,
        "PATH": search,
        # The commit's own package first: an editable install would import today's code.
        "PYTHONPATH": os.pathsep.join([str(project), *([inherited] if inherited else [])]),
        "IJULES_PROJECT_DIR": str(project),
        "MLFLOW_TRACKING_URI": f"sqlite:///{store / 'mlflow.db'}",
    }
    dvc = shutil.which("dvc", path=search) or "dvc"
    command = [dvc, "repro", "--force", "--no-run-cache", STAGE]
    log.info(
        "reproducing %s v%s at %s in %s",
        record.model_name, record.version, record.revision, project,
    )  # fmt: skip
    # DVC's output goes to stderr (fd 2): stdout keeps the comparison alone.
    done = subprocess.run(command, cwd=project, env=env, stdout=2, check=False)
    if done.returncode != 0:
        raise RegistryError(
            f"`dvc repro {STAGE}` failed at {record.revision} (exit {done.returncode}); its "
            "output is above"
        )


def _agent_figures(metrics: Path) -> dict[str, float]:
    """The agent's test figures. Read as plain JSON: another commit's code wrote the file, and
    its other keys may differ from today's MetricsReport."""
    try:
        agent = read_json(metrics)["agent"]
        return {metric: float(agent[metric]) for metric in METRICS}
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise RegistryError(
            f"the reproduced {metrics.name} holds no agent figures ({err})"
        ) from None


def _discard(repository: Path, checkout: Path, scratch: Path) -> None:
    """Remove the worktree and its folder, also after a failure: git would keep listing it."""
    subprocess.run(
        ["git", "worktree", "remove", "--force", str(checkout)],
        cwd=repository,
        capture_output=True,
        check=False,
    )
    shutil.rmtree(scratch, ignore_errors=True)
    subprocess.run(["git", "worktree", "prune"], cwd=repository, capture_output=True, check=False)
