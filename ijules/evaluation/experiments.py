"""The DVC experiments of the checked-out commit, as phase runs: ``dvc exp show --json``.

A phase's baseline is an experiment that ran the whole of the workspace's parameters with only
``phase`` set (``dvc exp run --set-param phase=NAME``, as ``make phases`` does). ``dvc exp show``
lists the experiments with their parameters and metrics; the figures come from the two files
the evaluation and the training wrote, read whole at the experiment's commit through DVC: the
metrics file (``dvc exp show`` drops its nulls and empty mappings, so it no longer parses as a
:class:`~ijules.artifacts.MetricsReport`) and the policy record (a cached output). Every other
experiment on the commit is left out with the reason: one that set other parameters too,
failed, stopped before the evaluation, or whose metrics describe another model; of two runs of
one phase, the newer counts.

The JSON is DVC 3's: a row for the workspace, then one per baseline commit, whose
``experiments`` each hold ``revs`` (the experiment's commit first) with ``data`` (``params`` and
``metrics`` by file, each ``{"data": ...}`` or ``{"error": ...}``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import ValidationError

from ijules.artifacts import (
    POLICY_SPEC,
    LeftOutExperiment,
    MetricsReport,
    PhaseFigures,
    PolicyRecord,
)
from ijules.config import BASE_PHASE, Config
from ijules.errors import IjulesError

# DVC interpolates ${phase} in dvc.yaml from its default parameter file.
PARAMS_FILE = "params.yaml"

FileAt = Callable[[str, str], str | None]  # (path, rev) -> the file's text; None: not there


class ExperimentRun(NamedTuple):
    """The experiment that ran a phase, and its figures."""

    name: str
    rev: str
    timestamp: str | None
    figures: PhaseFigures


class Experiments(NamedTuple):
    """The commit's experiments: each phase's newest baseline, and those left out."""

    baseline_rev: str
    runs: dict[str, ExperimentRun]
    left_out: list[LeftOutExperiment]


def read_experiments(config: Config, project: Path) -> Experiments:
    """Read the experiments of ``project``'s checked-out commit, by phase.

    Raises
    ------
    IjulesError
        When ``dvc exp show`` fails, or shows no commit.
    """
    return select(config, _exp_show(project), lambda path, rev: _read_at(project, path, rev))


def select(config: Config, rows: list[dict[str, Any]], read: FileAt) -> Experiments:
    """Each phase's baseline among the experiments ``dvc exp show --json`` printed (``rows``),
    reading their files with ``read(path, rev)``."""
    workspace = next((row for row in rows if row.get("rev") == "workspace"), None)
    baseline = next((row for row in rows if row.get("rev") != "workspace"), None)
    if workspace is None or baseline is None:
        raise IjulesError("`dvc exp show` shows no commit: commit the project first")
    reference = _params_but_phase(workspace["data"]["params"])
    runs: dict[str, ExperimentRun] = {}
    left_out: list[LeftOutExperiment] = []
    for entry in baseline.get("experiments") or []:
        head = entry["revs"][0]
        name = str(head.get("name") or entry.get("name") or head["rev"][:7])
        rev = str(head["rev"])
        found = _phase_run(config, read, name, head, reference)
        if isinstance(found, str):
            left_out.append(LeftOutExperiment(name=name, rev=rev, reason=found))
            continue
        phase, run = found
        older = runs.get(phase)
        if older is not None and (older.timestamp or "") > (run.timestamp or ""):
            run, older = older, run
        if older is not None:
            left_out.append(
                LeftOutExperiment(
                    name=older.name,
                    rev=older.rev,
                    reason=f"an older run of {phase} (the newer is {run.name})",
                )
            )
        runs[phase] = run
    return Experiments(baseline_rev=str(baseline["rev"]), runs=runs, left_out=left_out)


def _phase_run(
    config: Config, read: FileAt, name: str, head: Mapping[str, Any], reference: dict[str, Any]
) -> tuple[str, ExperimentRun] | str:
    """The phase an experiment ran and its figures, or why it is no phase's baseline."""
    data = head.get("data")
    if head.get("error") or data is None:
        error = (head.get("error") or {}).get("msg", "no data")
        return f"failed or unreadable ({error})"
    params = data.get("params") or {}
    phase = str(((params.get(PARAMS_FILE) or {}).get("data") or {}).get("phase", BASE_PHASE))
    mine = _params_but_phase(params)
    changed = [
        key if path == PARAMS_FILE else f"{path}:{key}"
        for path in sorted(set(reference) | set(mine))
        for key in _differences(reference.get(path), mine.get(path))
    ]
    if changed:
        return f"sets parameters besides the phase: {', '.join(changed[:5])}"
    rev = str(head["rev"])
    shown = (data.get("metrics") or {}).get(config.paths.metrics) or {}
    metrics = read(config.paths.metrics, rev) if "data" in shown else None
    if metrics is None:
        return f"holds no {config.paths.metrics} (it stopped before the evaluate stage)"
    policy_path = f"{config.paths.model_dir}/{POLICY_SPEC}"
    policy_text = read(policy_path, rev)
    if policy_text is None:
        return f"holds no {policy_path}"
    try:
        report = MetricsReport.model_validate_json(metrics)
        policy = PolicyRecord.model_validate_json(policy_text)
    except ValidationError:
        return "its metrics or policy record is not what today's `ijules` writes"
    if policy.mlflow.run_id != report.model.run_id:
        return (
            f"its {config.paths.metrics} describes run {report.model.run_id}, not its "
            f"policy's {policy.mlflow.run_id} (a stale file)"
        )
    run = ExperimentRun(
        name=name,
        rev=rev,
        timestamp=data.get("timestamp"),
        figures=figures(report, policy),
    )
    return phase, run


def figures(report: MetricsReport, policy: PolicyRecord) -> PhaseFigures:
    """The figures the phase criteria read, from the evaluation and the training."""
    agent = report.agent
    rule = report.baselines.by_name()[report.best_rule]
    return PhaseFigures(
        sharpe=agent.sharpe,
        max_drawdown=agent.max_drawdown,
        daily_turnover=agent.daily_turnover,
        win_rate=agent.win_rate,
        information_ratio=agent.information_ratio,
        calmar=agent.calmar,
        episode_reward_mean=policy.training.diagnostics.get("rollout_ep_rew_mean"),
        curriculum_stage=policy.training.curriculum_stage,
        passive_buy_and_hold_sharpe=report.baselines.passive_buy_and_hold.sharpe,
        best_rule=report.best_rule,
        best_rule_sharpe=rule.sharpe,
    )


def _exp_show(project: Path) -> list[dict[str, Any]]:
    bin_dir = Path(sys.executable).parent
    dvc = shutil.which("dvc", path=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}") or "dvc"
    done = subprocess.run(
        [dvc, "exp", "show", "--json"], cwd=project, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["no output"]
        raise IjulesError(f"`dvc exp show` failed in {project}: {lines[-1]}")
    shown = json.loads(done.stdout)
    if not isinstance(shown, list):
        raise IjulesError("`dvc exp show --json` printed no list of rows (DVC 3's shape)")
    return shown


def _params_but_phase(params: Mapping[str, Any]) -> dict[str, Any]:
    """Each parameter file's values, less params.yaml's phase (what experiments may differ in)."""
    values = {path: (content or {}).get("data") for path, content in params.items()}
    main = values.get(PARAMS_FILE)
    if isinstance(main, dict):
        values[PARAMS_FILE] = {key: value for key, value in main.items() if key != "phase"}
    return values


def _differences(reference: Any, other: Any, prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two parameter trees."""
    if isinstance(reference, dict) and isinstance(other, dict):
        changed: list[str] = []
        for key in sorted(set(reference) | set(other), key=str):
            dotted = f"{prefix}{key}" if prefix else str(key)
            changed += _differences(reference.get(key), other.get(key), f"{dotted}.")
        return changed
    return [] if reference == other else [prefix.rstrip(".") or "(the whole file)"]


def _read_at(project: Path, path: str, rev: str) -> str | None:
    """A file as commit ``rev`` holds it, in git or in DVC's cache (None: not there)."""
    import dvc.api
    from dvc.exceptions import DvcException

    try:
        text: str = dvc.api.read(path, repo=str(project), rev=rev)
    except (FileNotFoundError, DvcException):
        return None
    return text
