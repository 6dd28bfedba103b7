"""Walk-forward folds as mapped tasks: a 4-fold walk-forward on two `gpu` workers against one.

The native cluster (scripts/cluster.py: Celery on Redis, PostgreSQL) runs the weekly DAG in a
throw-away copy of the project with four folds. Every stage the folds run beside (training, seeds,
tuning, the stress scenarios, the risk report) is brought up to date first, outside the timing, so
in the runs those tasks are no-ops and the folds run alone. Each measurement starts a fresh cluster
with N replicas of the gpu worker (concurrency 1 each), triggers the weekly run and reads from
Airflow's metadata the fold tasks' start and end: the span (first start to last end) is the
walk-forward's wall time, the sum of the four durations its work. Before each measurement the folds'
outputs, their dvc.lock records and DVC's run-cache are removed, so each run trains the same four
folds. The reference is the one-worker run, measured in the same invocation; the ratio is one-worker
span / two-worker span.

Run: .venv/bin/python benchmarks/mapped_folds.py   (about 10 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
FOLDS = [0, 1, 2, 3]
WEEKLY = "ijules_weekly"
BEFORE_FOLDS = ["tune", "seeds", "stress", "risk"]


def cluster_module() -> Any:
    spec = importlib.util.spec_from_file_location("cluster", REPO / "scripts" / "cluster.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("cluster", module)
    spec.loader.exec_module(module)
    return module


def fold_tasks(cluster: Any, timeout_s: float) -> list[dict[str, Any]]:
    """Trigger the weekly run (unpausing it) and wait until its fold summary has run."""
    cluster.api("admin", "PATCH", f"/dags/{WEEKLY}", json={"is_paused": False}).raise_for_status()
    run = cluster.api(
        "admin", "POST", f"/dags/{WEEKLY}/dagRuns", json={"logical_date": None}
    )  # fmt: skip
    run.raise_for_status()
    run_id = run.json()["dag_run_id"]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answer = cluster.api("admin", "GET", f"/dags/{WEEKLY}/dagRuns/{run_id}/taskInstances")
        instances = answer.json()["task_instances"]
        states = {(t["task_id"], t["map_index"]): t["state"] for t in instances}
        if states.get(("walk_forward", -1)) in ("success", "failed", "upstream_failed"):
            folds = [t for t in instances if t["task_id"] == "walk_forward_fold"]
            failed = [t["map_index"] for t in folds if t["state"] != "success"]
            if failed or len(folds) != len(FOLDS):
                raise SystemExit(f"folds did not all succeed: {states}")
            cluster.api("admin", "PATCH", f"/dags/{WEEKLY}", json={"is_paused": True})
            return list(folds)
        if any(state == "failed" for state in states.values()):
            raise SystemExit(f"the run failed before the folds ended: {states}")
        time.sleep(3)
    raise SystemExit(f"the folds did not end within {timeout_s:.0f} s")


def span(folds: list[dict[str, Any]]) -> tuple[float, float]:
    """(first start to last end, sum of durations) in seconds."""

    def at(text: str) -> float:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()

    starts = [at(t["start_date"]) for t in folds]
    ends = [at(t["end_date"]) for t in folds]
    return max(ends) - min(starts), sum(e - s for s, e in zip(starts, ends, strict=True))


def forget_folds(project: Path) -> None:
    """Remove the folds' outputs, their records in dvc.lock and DVC's run-cache, so the folds
    train again (with a record and a cached output, DVC would restore them instead)."""
    shutil.rmtree(project / "reports" / "walk_forward" / "folds", ignore_errors=True)
    shutil.rmtree(project / ".dvc" / "cache" / "runs", ignore_errors=True)
    lock = project / "dvc.lock"
    if lock.is_file():
        recorded = yaml.safe_load(lock.read_text())
        recorded["stages"] = {
            name: stage
            for name, stage in recorded["stages"].items()
            if not name.startswith("walk_forward")
        }
        lock.write_text(yaml.safe_dump(recorded, sort_keys=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=4096, help="training budget per fold")
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()
    from tests.conftest import make_project

    root = Path(tempfile.mkdtemp(prefix="ijules-folds-"))
    root.chmod(0o755)  # PostgreSQL, as its own user, must reach its data folder under it
    project = make_project(
        root / "project",
        {"walk_forward": {"fold_ids": FOLDS, "total_timesteps": args.timesteps}},
    )
    env = {**os.environ, "IJULES_PROJECT_DIR": str(project)}
    # Everything but the folds, outside the timing: in the runs they are no-ops.
    subprocess.run(["dvc", "repro", *BEFORE_FOLDS], cwd=project, env=env, check=True,
                   capture_output=True)  # fmt: skip
    module = cluster_module()
    script = [sys.executable, str(REPO / "scripts" / "cluster.py")]
    env["AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE"] = "False"  # the triggered runs only
    results = {}
    for workers in (1, 2):
        # A fresh cluster each time (its own PostgreSQL, Redis, Airflow), the same project.
        cluster = module.Cluster(root / f"cluster-{workers}")
        folder = ["--folder", str(cluster.folder)]
        forget_folds(project)
        try:
            subprocess.run([*script, "up", *folder, "--gpu-workers", str(workers)], env=env,
                           check=True)  # fmt: skip
            results[workers] = span(fold_tasks(cluster, args.timeout))
        finally:
            subprocess.run([*script, "down", *folder], env=env, check=False)
    print(f"{len(FOLDS)} walk-forward folds, {args.timesteps} timesteps each, mapped tasks on the")
    print("native Celery cluster (gpu worker replicas, concurrency 1 each):")
    print(f"{'gpu workers':>12} {'span s':>8} {'sum of folds s':>15}")
    for workers, (wall, work) in results.items():
        print(f"{workers:>12} {wall:>8.1f} {work:>15.1f}")
    print(f"speed-up (one worker's span / two workers'): {results[1][0] / results[2][0]:.2f}")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
