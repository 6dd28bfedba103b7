"""The deployment past one laptop, run here: PostgreSQL, Redis, Airflow on the CeleryExecutor with
a default and a `gpu` worker, MLflow on PostgreSQL behind basic auth (scripts/cluster.py), and
the UIs a person opens, driven in Debian's Chromium by Playwright.

One weekly run goes through it on a tiny budget, as people run it: a quant triggers it from the
Airflow UI, the risk officer approves it on the Required Actions page, the MLflow model page shows
the champion. The screenshots go to reports/ui/ (kept, failed or not: the last one shows where a
failure stopped). Then the task instances say where each task ran (queue and worker), and
PostgreSQL holds the registered version and its alias.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from ijules.artifacts import Registration
from tests.conftest import OPEN_GATE, REPO, MailSink, make_project

pytestmark = pytest.mark.slow

CLUSTER = REPO / "scripts" / "cluster.py"
SHOTS = REPO / "reports" / "ui"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
WEEKLY = "ijules_weekly"
DAGS = ("ijules_nightly", "ijules_rollback", WEEKLY)
ON_GPU = {"train", "seeds", "tune", "walk_forward_fold"}  # TRAINERS in tests/dags
RUN_WAIT_S = 1500
GPU_WORKER = ("gpu", "airflow-worker-gpu")  # (queue, hostname): ijules.host names each worker
DEFAULT_WORKER = ("default", "airflow-worker")


def native() -> Any:
    """scripts/cluster.py as a module: its Cluster knows the ports, passwords and secrets."""
    spec = importlib.util.spec_from_file_location("cluster", CLUSTER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("cluster", module)
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Cluster:
    handle: Any  # scripts/cluster.py's Cluster
    project: Path

    @property
    def airflow(self) -> str:
        return str(self.handle.airflow_url)

    @property
    def mlflow(self) -> str:
        return str(self.handle.mlflow_url)

    @property
    def passwords(self) -> dict[str, str]:
        return dict(self.handle.passwords())

    def secret(self, name: str) -> str:
        return str(self.handle.secrets()[name])

    def api(self, user: str, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.handle.api(user, method, path, **kwargs)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("cluster")
    project = make_project(root / "project", {"gate": OPEN_GATE})
    # PostgreSQL runs as its own user: its data folder must be reachable (pytest's are 0700).
    folder = Path(tempfile.mkdtemp(prefix="ijules-cluster-"))
    folder.chmod(0o755)
    with MailSink(root / "mail") as sink:
        env = {
            **os.environ,
            "IJULES_PROJECT_DIR": str(project),
            "AIRFLOW_CONN_SMTP_DEFAULT": sink.airflow_connection(),
            # Only the run the test triggers: no scheduled run of the unpaused DAG beside it.
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        }
        try:
            subprocess.run(
                [sys.executable, str(CLUSTER), "up", "--folder", str(folder)],
                env=env, check=True, timeout=600,
            )  # fmt: skip
            # `up` returns once the DAGs are parsed with no import error.
            yield Cluster(native().Cluster(folder), project)
        finally:
            subprocess.run(
                [sys.executable, str(CLUSTER), "down", "--folder", str(folder)],
                env=env, check=False, timeout=600,
            )  # fmt: skip
            shutil.copytree(folder / "logs", root / "logs", dirs_exist_ok=True)  # for a failure
            shutil.rmtree(folder, ignore_errors=True)


class Browser:
    """Chromium with one page, and a numbered screenshot of each step under reports/ui/."""

    def __init__(self, playwright: Any) -> None:
        self.browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        self.shots = 0

    def page(self, **context: Any) -> Any:
        return self.browser.new_context(viewport={"width": 1400, "height": 900}, **context)

    def shot(self, page: Any, name: str) -> None:
        self.shots += 1
        page.screenshot(path=str(SHOTS / f"{self.shots:02d}-{name}.png"), full_page=True)


def sign_in(context: Any, cluster: Cluster, user: str) -> Any:
    page = context.new_page()
    page.goto(f"{cluster.airflow}/")
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(cluster.passwords[user])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{cluster.airflow}/")
    return page


def task_instances(cluster: Cluster, run_id: str) -> list[dict[str, Any]]:
    answer = cluster.api("admin", "GET", f"/dags/{WEEKLY}/dagRuns/{run_id}/taskInstances")
    answer.raise_for_status()
    return list(answer.json()["task_instances"])


def wait_for(cluster: Cluster, run_id: str, done: Any, what: str) -> list[dict[str, Any]]:
    """Poll the run's task instances until ``done(instances)``; fail at once if the run failed."""
    deadline = time.monotonic() + RUN_WAIT_S
    while time.monotonic() < deadline:
        instances = task_instances(cluster, run_id)
        if done(instances):
            return instances
        run = cluster.api("admin", "GET", f"/dags/{WEEKLY}/dagRuns/{run_id}").json()
        states = {f"{t['task_id']}[{t['map_index']}]": t["state"] for t in instances}
        assert run["state"] != "failed", f"the run failed before {what}: {states}"
        time.sleep(5)
    raise AssertionError(f"no {what} within {RUN_WAIT_S} s")


def approval_pending(instances: list[dict[str, Any]]) -> bool:
    return any(t["task_id"] == "approval" and t["state"] == "awaiting_input" for t in instances)


def hitl_path(run_id: str) -> str:
    return f"/dags/{WEEKLY}/dagRuns/{run_id}/taskInstances/approval/-1/hitlDetails"


def test_mlflow_refuses_a_request_without_credentials(cluster: Cluster) -> None:
    search = f"{cluster.mlflow}/api/2.0/mlflow/registered-models/search"
    assert requests.get(search, timeout=30).status_code == 401
    assert requests.get(search, auth=("admin", "not-the-password"), timeout=30).status_code == 401
    admin = ("admin", cluster.secret("MLFLOW_ADMIN_PASSWORD"))
    assert requests.get(search, auth=admin, timeout=30).status_code == 200


def test_a_weekly_run_on_the_cluster_from_trigger_to_champion(cluster: Cluster) -> None:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=30_000)  # a page on a busy 2-core machine
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    with sync_playwright() as playwright:
        browser = Browser(playwright)

        # A quant: every DAG loaded, none with an import error; triggers the weekly run.
        quant = sign_in(browser.page(), cluster, "quant")
        quant.goto(f"{cluster.airflow}/dags")
        for dag_id in DAGS:
            expect(quant.get_by_role("link", name=dag_id, exact=True)).to_be_visible()
        expect(quant.get_by_text("3 Dags")).to_be_visible()
        expect(quant.get_by_text("Import Errors")).to_have_count(0)
        browser.shot(quant, "dags")
        errors = cluster.api("admin", "GET", "/importErrors").json()
        assert errors["total_entries"] == 0, errors
        quant.goto(f"{cluster.airflow}/dags/{WEEKLY}")
        quant.get_by_role("button", name="Trigger Dag").click()
        dialog = quant.get_by_role("dialog")
        expect(dialog.get_by_text(f"Unpause {WEEKLY} on trigger")).to_be_visible()
        browser.shot(quant, "trigger")
        dialog.get_by_role("button", name="Trigger").click()
        quant.wait_for_url(f"**/dags/{WEEKLY}/runs/**")
        run_id = quant.url.split("/runs/")[1].split("/")[0].replace("%2B", "+")
        assert run_id.startswith("manual__"), quant.url

        wait_for(cluster, run_id, approval_pending, "pending approval")
        # Only the risk officer (IJULES_APPROVERS) may answer: not the quant who triggered the
        # run, not the viewer, though the quant's role may edit DAG runs.
        answer = {"chosen_options": ["Approve"], "params_input": {"reason": "self-approval"}}
        for user in ("quant", "viewer"):
            refused = cluster.api(user, "PATCH", hitl_path(run_id), json=answer)
            assert refused.status_code == 403, (user, refused.text)

        # The risk officer approves on the Required Actions page, with a reason.
        officer = sign_in(browser.page(), cluster, "risk_officer")
        officer.goto(f"{cluster.airflow}/required_actions")
        expect(officer.get_by_text("Promote the reviewed ijules policy?").first).to_be_visible()
        browser.shot(officer, "required-actions")
        officer.get_by_role("link", name="Promote the reviewed ijules policy?").first.click()
        expect(officer.get_by_text("walk_forward_pass_rate")).to_be_visible()  # the review table
        officer.locator('[name="element_reason"]').fill("tiny-budget cluster check")
        browser.shot(officer, "approval-form")
        officer.get_by_role("button", name="Approve").click()

        finished = {"success", "failed", "upstream_failed"}

        def ended(instances: list[dict[str, Any]]) -> bool:
            return all(t["state"] in finished | {"skipped"} for t in instances)

        instances = wait_for(cluster, run_id, ended, "end of the run")
        run = cluster.api("admin", "GET", f"/dags/{WEEKLY}/dagRuns/{run_id}").json()
        quant.goto(f"{cluster.airflow}/dags/{WEEKLY}/runs/{run_id}")
        expect(quant.get_by_text("success").first).to_be_visible()
        browser.shot(quant, "run-finished")
        assert run["state"] == "success", {t["task_id"]: t["state"] for t in instances}

        # MLflow's model page (basic auth): version 1 carries the champion alias.
        mlflow = browser.page(
            http_credentials={
                "username": "admin",
                "password": cluster.secret("MLFLOW_ADMIN_PASSWORD"),
            }
        ).new_page()
        mlflow.goto(f"{cluster.mlflow}/#/models/ijules-policy")
        expect(mlflow.get_by_text("@ champion", exact=True)).to_be_visible(timeout=60_000)
        browser.shot(mlflow, "mlflow-model")
        browser.browser.close()

    # Where each task ran: training, the seeds, the study and every fold on the gpu worker; the
    # rest on the default one.
    ran = [t for t in instances if t["state"] == "success"]
    folds = [t for t in ran if t["task_id"] == "walk_forward_fold"]
    assert len(folds) == 3 and sorted(t["map_index"] for t in folds) == [0, 1, 2]
    placed = {(t["task_id"], t["map_index"]): (t["queue"], t["hostname"]) for t in ran}
    for (task_id, index), (queue, host) in placed.items():
        expected = (
            ("gpu", "airflow-worker-gpu") if task_id in ON_GPU else ("default", "airflow-worker")
        )
        assert (queue, host) == expected, (task_id, index, queue, host)
    print(json.dumps({f"{k[0]}[{k[1]}]" if k[1] >= 0 else k[0]: v for k, v in placed.items()}))

    # The registry is MLflow's PostgreSQL database; the approval is on the record by name.
    import psycopg

    with psycopg.connect(
        host="127.0.0.1", port=int(cluster.handle.settings()["postgres_port"]), user="ijules",
        password=cluster.secret("POSTGRES_PASSWORD"), dbname="mlflow",
    ) as db:  # fmt: skip
        versions = db.execute("SELECT name, version FROM model_versions").fetchall()
        aliases = db.execute("SELECT name, alias, version FROM registered_model_aliases").fetchall()
    assert versions == [("ijules-policy", 1)]
    assert aliases == [("ijules-policy", "champion", 1)]
    approved = Registration.read(cluster.project / "reports" / "registry.json")
    assert (approved.version, approved.status, approved.decided_by) == (
        "1",
        "champion",
        "risk_officer",
    )
    assert approved.decision_reason == "tiny-budget cluster check"
