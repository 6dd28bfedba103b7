"""The approval drill: a person's approval and rejection through Airflow's HITL REST API.

The project's own model rarely passes the review on `make run`'s budget (it is judged against the
real gate), so no approval is pending there. The drill shows the path a passing version takes:
it copies the project into ``var/drill/project`` (the files git knows, as they are in the working
tree), applies ``scripts/approval_drill.yaml`` (a tiny budget, the review's thresholds opened; the
integrity rows and the VaR zone still apply), and runs the weekly DAG twice through
``airflow dags test`` against its own MLflow store. Week one, the demo approver approves over the
REST API: the version becomes the drill's champion. Week two (the next seed), the approver rejects:
nothing moves. Each week's outcome is checked and printed; the project's registry is not touched.

Usage: python scripts/approval_drill.py --api http://127.0.0.1:8793 --user demo_risk_officer
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from project_copy import ROOT, copy_project

OVERLAY = ROOT / "scripts" / "approval_drill.yaml"
FINISHED = re.compile(r"DagRun Finished: .*state=(\w+)")


def week(project: Path, api: str, user: str, choice: str, reason: str, log: Path) -> dict[str, Any]:
    """Run the weekly DAG on ``project`` and answer its approval; return the review's record."""
    env = {
        **os.environ,
        "IJULES_PROJECT_DIR": str(project),
        "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'var' / 'mlflow' / 'mlflow.db'}",
    }
    with log.open("w") as out:
        dag = subprocess.Popen(
            ["airflow", "dags", "test", "ijules_weekly"], cwd=project, env=env,
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        answer = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "answer_approval.py"), "--api", api,
             "--user", user, "--dag", "ijules_weekly", "--choice", choice, "--reason", reason,
             "--watch-pid", str(dag.pid)],
            capture_output=True, text=True,
        )  # fmt: skip
        dag.wait()
    said = (answer.stdout + answer.stderr).strip()
    ended = FINISHED.findall(log.read_text())
    if answer.returncode != 0 or ended[-1:] != ["success"]:
        raise SystemExit(f"approval drill: the weekly run did not end well ({said}); see {log}")
    record: dict[str, Any] = json.loads((project / "reports" / "registry.json").read_text())
    record["answer"] = said
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--folder", type=Path, default=ROOT / "var" / "drill")
    args = parser.parse_args()
    project = args.folder / "project"
    copy_project(project, yaml.safe_load(OVERLAY.read_text()), "approval drill")
    outcomes = []
    for number, (choice, reason, status) in enumerate(
        [
            ("Approve", "approval drill: the opened review passed", "champion"),
            ("Reject", "approval drill: a rejection leaves the registry as it was", "declined"),
        ],
        start=1,
    ):
        if number > 1:  # next week's model: another seed
            params = yaml.safe_load((project / "params.yaml").read_text())
            params["seed"] += 1
            (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        record = week(
            project, args.api, args.user, choice, reason, args.folder / f"week{number}.log"
        )
        got = (record["version"], record["status"], record.get("decided_by"))
        if got != (str(number), status, args.user):
            raise SystemExit(f"approval drill, week {number}: expected v{number} {status} by "
                             f"{args.user}, got {got}")  # fmt: skip
        done = "approved" if choice == "Approve" else "rejected"
        outcomes.append(
            f"week {number}: v{number} {done} by {record['decided_by']} over the REST API "
            f"-> {status} ({record.get('decision_reason')})"
        )
    print("approval drill (var/drill/, opened review, own MLflow store; the project's registry "
          "is untouched):")  # fmt: skip
    for line in outcomes:
        print(f"  {line}")


if __name__ == "__main__":
    main()
