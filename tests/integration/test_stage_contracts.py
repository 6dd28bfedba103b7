"""Every configuration key is read by some code, and every stage declares the parameters it reads.

Every stage of dvc.yaml runs here in-process, with the command line DVC resolves for it, in a
project copy on a small slice of data, while a recorder notes each configuration field the code
reads (tests/config_audit.py). So do the commands the DAGs run beside the stages (the review,
also of a second model against a champion, the summary, the risk team's e-mail, the failure
alert), the research study (`make research`), a curriculum training tuned to reach its
advancement and adaptation rules, and a rolling walk-forward fold.

- A field that nothing reads parses and then does nothing: it must be built or refused by name
  (ijules.config.REFUSED_KEYS).
- A parameter a stage reads but dvc.yaml does not declare leaves the stage's outputs stale when
  it changes, while `dvc repro` says all is up to date.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterator
from contextlib import chdir
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from ijules.artifacts import HEALTH_COMPONENTS, HealthReport, Registration
from tests.config_audit import ConfigReads, schema_fields
from tests.conftest import REPO, deep_merge, make_project

pytestmark = pytest.mark.slow

# Read through the command line or the files DVC tracks, not through a params entry: the paths are
# in the resolved command (a change there is a new command), the phase in the overlay file dep.
NOT_PARAMS = ("paths.", "phase")

# The curriculum, tuned so that a few tiny episodes reach every rule: advancement with its
# out-of-sample gates (mastery's stress test included), adaptation, the last stage.
EASY = {
    "sharpe_ratio": -1e9,
    "max_drawdown_pct": 1.0,
    "win_rate_pct": 0.0,
    "information_ratio": -1e9,
    "calmar_ratio": -1e9,
}
CURRICULUM = {
    "environment": {"episode_bars": 16},
    "curriculum": {
        "advancement_gates": {"minimum_out_of_sample_periods": 2, "confidence_threshold": 0.0},
        "difficulty_adaptation": {"performance_window": 2},
        "stages": {
            stage: {
                "target_metrics": EASY,
                "minimum_episodes": 1,
                "advancement_criteria": {"consecutive_passing_episodes": 1},
            }
            for stage in ("foundation", "proficiency", "mastery")
        },
    },
    "training": {"total_timesteps": 256, "n_steps": 32, "batch_size": 32},
}

# The research study at its smallest: one trial, one seed, a few steps.
RESEARCH = {
    "trials": 1,
    "seeds": 1,
    "total_timesteps": 64,
    "final_seeds": 1,
    "test_bars": 150,
    "storage": "sqlite:///var/optuna/audit_research.db",
}


@dataclass(frozen=True)
class Audit:
    """Per stage (or command): the fields its code read, and those a digest it made covers."""

    reads: dict[str, set[str]]
    digested: dict[str, set[str]]


@pytest.fixture(scope="module")
def audit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Audit]:
    """The fields each stage (and each extra command) read, by dotted path."""
    from dvc.repo import Repo

    import ijules.cli as cli
    import ijules.config as config_module

    folder = tmp_path_factory.mktemp("contracts")
    project = make_project(folder / "project")
    phase4 = yaml.safe_load((REPO / "config" / "phase4_adaptive_curriculum.yaml").read_text())
    (project / "config" / "audit_curriculum.yaml").write_text(
        yaml.safe_dump(deep_merge(phase4, CURRICULUM), sort_keys=False)
    )
    (project / "config" / "audit_research.yaml").write_text(
        yaml.safe_dump({"research": RESEARCH}, sort_keys=False)
    )
    (project / "config" / "audit_health.yaml").write_text(
        yaml.safe_dump({"health": {"min_live_bars": 12, "min_regime_bars": 6}})
    )
    (project / "config" / "audit_rolling.yaml").write_text(
        yaml.safe_dump({"walk_forward": {"scheme": "rolling", "train_bars": 400}})
    )
    stages = [(stage.name, stage.cmd) for stage in Repo(str(project)).index.stages]
    saved = dict(os.environ)
    os.environ.update(
        {
            "IJULES_PROJECT_DIR": str(project),
            "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'var' / 'mlflow' / 'mlflow.db'}",
        }
    )
    recorder = ConfigReads()
    reads: dict[str, set[str]] = {}
    digested: dict[str, set[str]] = {}

    def command(name: str, argv: list[str]) -> None:
        recorder.reads, recorder.digested = set(), set()
        cli.app(argv, standalone_mode=False)
        reads[name] = set(recorder.reads)
        digested[name] = set(recorder.digested)

    original_load = cli.load_config
    try:
        with chdir(project), recorder.recording():
            cli.load_config = config_module.load_config  # the recording one
            for stage, cmd in stages:
                command(stage, shlex.split(cmd)[1:])
            command("register", ["register"])
            # A second model against a champion: the review's challenge of the champion.
            command("promote", ["promote", "1", "--force", "--reason", "config audit"])
            command("train", ["train", "--model-dir", "var/second"])  # a new run, a new version
            command(
                "evaluate",
                ["evaluate", "--model-dir", "var/second", "--metrics", "var/second.json"],
            )
            command(
                "challenge",
                ["register", "--model-dir", "var/second", "--metrics", "var/second.json",
                 "--seeds", "var/none.json", "--stress", "var/none.json",
                 "--output", "var/second_registry.json"],
            )  # fmt: skip
            # Both models' walk-forward records reach the challenge (the champion's from its card).
            challenged = Registration.read(project / "var/second_registry.json").challenge
            assert challenged is not None and challenged.champion_walk_forward_sharpe is not None
            assert challenged.candidate_walk_forward_sharpe is not None
            command("summary", ["summary"])
            recorder.reads, recorder.digested = set(), set()
            _email(project)
            reads["email"], digested["email"] = set(recorder.reads), set(recorder.digested)
            recorder.reads, recorder.digested = set(), set()
            _failure_email(project)
            reads["failure_email"] = set(recorder.reads)
            digested["failure_email"] = set(recorder.digested)
            # A day and a half of new bars: the champion's paper book trades them, and health
            # judges its live record (on a dozen bars) against its review evidence.
            params = yaml.safe_load((project / "params.yaml").read_text())
            params["data"]["end"] = "2017-10-16T12:00:00Z"
            (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
            by_stage = dict(stages)
            for stage in ("ingest", "validate", "features", "drift", "paper"):
                command(f"{stage} (later)", shlex.split(by_stage[stage])[1:])
            health_argv = shlex.split(by_stage["health"])[1:]
            command("health (live)", ["--phase", "audit_health", *health_argv])
            assert set(read_health(project).components) == set(HEALTH_COMPONENTS)
            measured = read_health(project).components
            assert all(part.score is not None for part in measured.values()), measured
            command("curriculum", ["--phase", "audit_curriculum", "train"])
            command("research", ["--phase", "audit_research", "research"])
            command(
                "rolling",
                ["--phase", "audit_rolling", "walk-forward-fold", "--fold", "0",
                 "--output", "var/rolling_fold.json"],
            )  # fmt: skip
    finally:
        cli.load_config = original_load
        os.environ.clear()
        os.environ.update(saved)
    yield Audit(reads, digested)


def read_health(project: Path) -> HealthReport:
    return HealthReport.read(project / "reports" / "health" / "night.json")


def _email(project: Path) -> None:
    """What the nightly DAG's e-mail task reads: the report it composes."""
    from ijules.config import load_config
    from ijules.monitoring.report_mail import build_drift_email

    config = load_config(project / "params.yaml")
    paths = config.paths
    build_drift_email(
        config,
        drift_metrics=project / paths.drift_metrics,
        drift_html=project / paths.drift_html,
        validation=project / paths.validation,
        metrics=project / paths.metrics,
        registration=project / paths.registration,
        paper=project / paths.paper_report,
        interval="2026-11-26",
    )


def _failure_email(project: Path) -> None:
    """What the DAGs' failure notifier reads: the alert it composes."""
    from ijules.config import load_config
    from ijules.monitoring.failure_mail import TaskFailure, build_failure_email

    build_failure_email(
        load_config(project / "params.yaml"),
        dag_id="ijules_nightly",
        run_id="scheduled__2026-11-26T01:00:00+00:00",
        logical_date="2026-11-26T01:00:00+00:00",
        failures=[TaskFailure("validate", "validation failed", None)],
    )


def test_every_configuration_key_is_read_by_some_code(audit) -> None:
    """A key nothing reads would parse and then do nothing: build it or refuse it by name."""
    read = set().union(*audit.reads.values())
    unread = sorted(set(schema_fields()) - read)
    assert unread == [], f"configuration keys that nothing reads: {unread}"


def test_each_stage_declares_the_parameters_it_reads(audit) -> None:
    from dvc.repo import Repo

    declared: dict[str, list[str]] = {}
    for stage in Repo(str(REPO)).index.stages:
        params = [d for d in stage.deps if type(d).__name__ == "ParamsDependency"]
        declared[stage.name] = [key for dep in params for key in (dep.params or ["*"])]

    def covered(path: str, keys: list[str]) -> bool:
        return any(k == "*" or path == k or path.startswith(f"{k}.") for k in keys)

    # The curriculum and the rolling fold are the train and walk-forward stages under a phase.
    runs = {
        **{stage: stage for stage in declared},
        "curriculum": "train",
        "rolling": "walk_forward@0",
    }
    missing = {
        run: sorted(
            path
            for path in audit.reads[run] | audit.digested[run]
            if not path.startswith(NOT_PARAMS) and not covered(path, declared[stage])
        )
        for run, stage in runs.items()
    }
    missing = {stage: paths for stage, paths in missing.items() if paths}
    assert not missing, f"parameters read but not declared in dvc.yaml: {missing}"
