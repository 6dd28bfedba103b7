"""Replay weeks of a sample's history through the real DAGs, a logical date at a time, and write
the operations timeline a risk team reads: per day the champion and challenger, each paper
book's P&L, drift, health, alerts, retrainings, promotions and rollbacks.

It copies the project into ``FOLDER/project`` (the files git knows, as in the working tree) with
``scripts/replay.yaml``'s ``params`` laid over params.yaml (a tiny training budget, the review's
thresholds opened), with its own MLflow store and its own Airflow home and metadata database
(``FOLDER/airflow``). The sample's bars, stamped ``shift_weeks`` later, arrive in the copy's
landing folder one delivery a day, so no run sees a later day's bars whatever its as-of. Then, for
each day: that day's delivery lands; each DAG whose schedule falls on the day runs with
``dag.test(logical_date=...)`` at its scheduled instant (the nightly every day, the weekly on its
day; for these cron schedules the run's data interval ends at its logical date, the as-of its
ingest writes), and so does what the desk plans that day (a person triggering a rollback or a
retraining, with its reason, or promoting the challenger with `ijules promote`); after each run,
the runs it created in the metadata database and left queued (the nightly's health starting the
weekly early, or a rollback) run next, as a scheduler would start them, with their logical date and
conf. The weekly's approval is answered over the api-server's HITL REST API by the plan's approver
(``scripts/answer_approval.py``). The tasks' `ijules` commands are forked from one warm process
(ijules/launch.py): the same commands, without each importing its libraries again (a night took
46 s cold, 19 s warm, on two cores). After each day the timeline is written to
``OUTPUT/timeline.json`` and ``OUTPUT/timeline.html`` (atomically).

Usage: python scripts/replay.py [--from 2026-04-18] [--to 2026-05-08] [--plan scripts/replay.yaml]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from project_copy import ROOT, copy_project

PLAN = ROOT / "scripts" / "replay.yaml"
ANSWER = ROOT / "scripts" / "answer_approval.py"
NIGHTLY, WEEKLY, ROLLBACK = "ijules_nightly", "ijules_weekly", "ijules_rollback"
SCHEDULED = (NIGHTLY, WEEKLY)  # the DAGs with a schedule; the rollback runs only when triggered
TRIGGERED = (WEEKLY, ROLLBACK)  # what another run may queue
API_WAIT_S = 180
# An approval nobody answers fails after this (the approver answers in seconds): a replay never
# waits the production default of three days on a broken approver.
APPROVAL_TIMEOUT_HOURS = "0.5"


def parse_day(text: str) -> date:
    return date.fromisoformat(text)


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Replay weeks of a sample's history through the DAGs; write the timeline."
    )
    parser.add_argument(
        "--from", dest="first_day", type=parse_day, help="first day (default: the plan's)"
    )
    parser.add_argument(
        "--to", dest="last_day", type=parse_day, help="last day (default: the plan's)"
    )
    parser.add_argument("--plan", type=Path, default=PLAN, help="the replay file")
    parser.add_argument(
        "--folder", type=Path, default=ROOT / "var" / "replay", help="where the copy runs"
    )
    parser.add_argument(
        "--output", type=Path, default=ROOT / "reports" / "operations", help="the timeline's folder"
    )
    args = parser.parse_args()

    from ijules.operations.plan import load_plan

    replay_file = load_plan(args.plan, first_day=args.first_day, last_day=args.last_day)
    folder, output = args.folder.resolve(), args.output.resolve()
    project = folder / "project"
    for part in ("project", "airflow", "mail", "logs"):
        shutil.rmtree(folder / part, ignore_errors=True)
    (folder / "logs").mkdir(parents=True)
    copy_project(project, replay_file.params, "replay")
    isolate(project, folder)
    return Replay(replay_file.replay, project, folder, output, args.plan).run()


def isolate(project: Path, folder: Path) -> None:
    """This process's environment, before Airflow is imported: the copy's stores, not the
    project's, for the DAG runs here and for every command their tasks start."""
    os.environ.update(
        {
            "IJULES_PROJECT_DIR": str(project),
            "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'var' / 'mlflow' / 'mlflow.db'}",
            "AIRFLOW_HOME": str(folder / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(project / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "IJULES_TASK_RETRIES": "0",  # a replayed failure shows at once, as in `make run`
            "IJULES_APPROVAL_TIMEOUT_HOURS": APPROVAL_TIMEOUT_HOURS,
            "GX_ANALYTICS_ENABLED": "False",
            "DO_NOT_TRACK": "1",
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
            "TQDM_DISABLE": "1",
        }
    )
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"


@dataclass
class Planned:
    """What the replay starts itself: a DAG run by its schedule or for the desk (a person's
    trigger), or a desk command (``dag_id`` None)."""

    dag_id: str | None
    logical_date: datetime | None  # None: a run another created without one
    trigger: str  # "schedule", "desk" or "triggered"
    reason: str | None = None
    action: str | None = None  # the desk's action


class Replay:
    """The replay's days, run in the copy: its services, its DAG runs and its timeline."""

    def __init__(self, plan: Any, project: Path, folder: Path, output: Path, plan_file: Path):
        self.plan = plan
        self.project = project
        self.folder = folder
        self.output = output
        self.plan_file = plan_file
        self.logs = folder / "logs"
        # Progress goes to the terminal; everything Airflow and the tasks print, to the logs.
        self.say: IO[str] = os.fdopen(os.dup(1), "w", buffering=1)

    def run(self) -> int:
        from ijules.config import load_config
        from ijules.operations.approvals import approvals_api
        from ijules.operations.landing import deliver, deliver_backlog, shifted_sample

        started = time.monotonic()
        config = load_config(self.project / "params.yaml")
        if config.data.layout != "deliveries":
            raise SystemExit(f"{self.plan_file}: the replay needs data.layout: deliveries")
        landing = self.project / str(config.data.source)
        sample = shifted_sample(self.project / self.plan.sample, self.plan.shift)
        days = self.plan.days()
        backlog = deliver_backlog(landing, days[0], sample)
        self.say.write(
            f"replay {days[0]} .. {days[-1]} ({len(days)} days) in {self.project}; "
            f"{len(backlog)} deliveries landed before day one; logs in {self.logs}\n"
        )
        self.migrate()
        with (
            self.warm_commands(),
            approvals_api(self.plan.approver, self.logs / "api-server.log", API_WAIT_S) as api,
            self.mail_sink(),
        ):
            self.api = api
            dags = self.load_dags()
            timeline = TimelineWriter(config, self.plan, self.output, self.project)
            for number, day in enumerate(days):
                if number > 0:
                    deliver(landing, day, sample)
                runs, desk = [], []
                for planned in self.schedule(dags, day):
                    if planned.dag_id is None:
                        desk.append(self.command(config, planned))
                        continue
                    runs.append(self.execute(dags[planned.dag_id], planned, number))
                    runs.extend(self.queued(dags, runs[-1], number))
                timeline.add(day, runs, desk, time.monotonic() - started, last=day == days[-1])
                self.say.write(timeline.line(number + 1, len(days)) + "\n")
        self.say.write(
            f"replay finished in {time.monotonic() - started:.0f} s: "
            f"{self.output / 'timeline.html'}\n"
        )
        return 0

    # --- Airflow -------------------------------------------------------------------------------

    def migrate(self) -> None:
        with (self.logs / "airflow-migrate.log").open("w") as log:
            subprocess.run(
                [sys.executable, "-m", "airflow", "db", "migrate"],
                check=True, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    @contextmanager
    def warm_commands(self) -> Iterator[None]:
        """Every `ijules` command the tasks start, forked from one warm process (ijules/launch.py):
        the same commands, without each paying seconds to import its libraries."""
        from ijules.launch import WARM_SOCKET_ENV, warm_process

        # A short folder: a Unix socket's path is limited to about 100 bytes.
        with (
            tempfile.TemporaryDirectory(prefix="ijules-warm-") as short,
            warm_process(Path(short), self.logs / "warm-ijules.log") as path,
        ):
            os.environ[WARM_SOCKET_ENV] = str(path)
            try:
                yield
            finally:
                del os.environ[WARM_SOCKET_ENV]

    @contextmanager
    def mail_sink(self) -> Iterator[None]:
        """A real SMTP server for the risk team's e-mails, into the Maildir FOLDER/mail."""
        import json
        import mailbox

        from aiosmtpd.controller import Controller
        from aiosmtpd.handlers import Mailbox

        maildir = self.folder / "mail"
        mailbox.Maildir(str(maildir), create=True)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        controller = Controller(Mailbox(str(maildir)), hostname="127.0.0.1", port=port)
        controller.start()
        os.environ["AIRFLOW_CONN_SMTP_DEFAULT"] = json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": port,
                "extra": {"disable_tls": True, "disable_ssl": True, "from_email": "ijules@replay"},
            }
        )
        try:
            yield
        finally:
            controller.stop()

    def load_dags(self) -> dict[str, Any]:
        from airflow.dag_processing.dagbag import DagBag

        sys.path.insert(0, str(self.project / "dags"))  # the DAG files import their wiring
        with self.output_to(self.logs / "dagbag.log"):
            bag = DagBag(dag_folder=str(self.project / "dags"))
        if bag.import_errors:
            raise SystemExit(f"the DAGs do not load: {bag.import_errors}")
        return dict(bag.dags)

    def schedule(self, dags: dict[str, Any], day: date) -> list[Planned]:
        """The day's runs in time order: each scheduled DAG's instants that fall on the day (by
        its own timetable, as the scheduler computes them), and the desk's runs."""
        from airflow.serialization.encoders import coerce_to_core_timetable
        from airflow.timetables.base import TimeRestriction

        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        end = start + timedelta(days=1) - timedelta(microseconds=1)
        planned = []
        for dag_id in SCHEDULED:
            timetable = coerce_to_core_timetable(dags[dag_id].timetable)
            restriction = TimeRestriction(earliest=start, latest=end, catchup=True)
            last = None
            while (
                info := timetable.next_dagrun_info(
                    last_automated_data_interval=last, restriction=restriction
                )
            ) is not None:
                planned.append(Planned(dag_id, info.logical_date, "schedule"))
                last = info.data_interval
        for desk in self.plan.desk:
            if desk.day == day:
                planned.append(Planned(desk.dag_id, desk.instant, "desk", desk.reason, desk.action))
        return sorted(planned, key=lambda run: run.logical_date)

    def execute(self, dag: Any, planned: Planned, number: int, **extra: Any) -> Any:
        """Run one DAG run through ``dag.test``; for the weekly, with the approver answering."""
        from ijules.operations.timeline import ReplayRun

        conf = None if planned.reason is None else {"reason": planned.reason}
        approver = self.approver() if dag.dag_id == WEEKLY else None
        began = time.monotonic()
        when = "none" if planned.logical_date is None else planned.logical_date.isoformat()
        log = self.logs / f"day{number + 1:02d}-{dag.dag_id}.log"
        error = None
        try:
            with self.output_to(log):
                print(f"=== {dag.dag_id} logical date {when} ({planned.trigger})", flush=True)
                try:
                    run = dag.test(logical_date=planned.logical_date, run_conf=conf)
                except Exception as raised:  # noqa: BLE001 - recorded, and the days go on
                    # Airflow itself failed to finish the run (a DAG callback raised inside
                    # dag.test): the run's tasks are done and in the metadata database; a
                    # scheduler would carry on with the next run, and so does the replay.
                    traceback.print_exc()
                    error = f"{type(raised).__name__}: {raised}"
                    run = self.latest_run(dag.dag_id)
        finally:
            answer = self.dismiss(approver)
        seconds = time.monotonic() - began
        tasks = self.task_states(run)
        if answer:
            with log.open("a") as out:
                out.write(f"approver: {answer}\n")
        if error is not None:
            self.say.write(f"  {dag.dag_id} {run.run_id}: dag.test raised {error}; see {log}\n")
        return ReplayRun(
            dag_id=dag.dag_id,
            run_id=run.run_id,
            logical_date=None if run.logical_date is None else run.logical_date.isoformat(),
            trigger=planned.trigger,
            triggered_by=extra.get("triggered_by"),
            queued_as=extra.get("queued_as"),
            reason=planned.reason,
            # A run Airflow failed to finish is left running in the database: it failed.
            state=str(run.state) if error is None else "failed",
            seconds=round(seconds, 1),
            tasks=tasks,
            error=error,
        )

    def queued(self, dags: dict[str, Any], after: Any, number: int) -> list[Any]:
        """Run what ``after`` queued (its trigger tasks), and what those queue in turn, as a
        scheduler would: each with the logical date and conf it was created with."""
        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session
        from sqlalchemy import select

        ran = []
        parents = [after]
        while parents:
            parent = parents.pop(0)
            with create_session() as session:
                waiting = session.scalars(
                    select(DagRun)
                    .where(DagRun.dag_id.in_(TRIGGERED), DagRun.state == "queued")
                    .order_by(DagRun.id)
                ).all()
                found = [
                    (run.dag_id, run.logical_date, dict(run.conf or {}), run.run_id)
                    for run in waiting
                ]
                for run in waiting:  # dag.test starts its own run in its place
                    session.delete(run)
            for dag_id, logical_date, conf, run_id in found:
                self.say.write(f"  {parent.run_id} queued {dag_id} {run_id}: {conf}\n")
                planned = Planned(dag_id, logical_date, "triggered", conf.get("reason"))
                child = self.execute(
                    dags[dag_id], planned, number, triggered_by=parent.run_id, queued_as=run_id
                )
                ran.append(child)
                parents.append(child)
        return ran

    def command(self, config: Any, planned: Planned) -> Any:
        """A person's command at a shell in the project (the desk promoting the challenger),
        as the plan's approver."""
        from ijules.operations.timeline import DeskCommand, aliases

        assert planned.action == "promote_challenger", planned
        challenger = aliases(config)[1]
        at = planned.logical_date.isoformat()
        reason = str(planned.reason)
        if challenger is None:
            said = "no challenger to promote"
            self.say.write(f"  desk at {at}: {said}\n")
            return DeskCommand(at=at, command=None, reason=reason, exit_code=None, said=said)
        argv = ["ijules", "promote", challenger, "--alias", "champion", "--reason", reason]
        done = subprocess.run(
            argv, cwd=self.project, capture_output=True, text=True,
            env={**os.environ, "IJULES_ACTOR": self.plan.approver},
        )  # fmt: skip
        with (self.logs / "desk.log").open("a") as log:
            log.write(f"=== {at} {' '.join(argv)}\n{done.stdout}{done.stderr}\n")
        # What it printed (the alias moved), or on failure its error line.
        said = (done.stdout if done.returncode == 0 else done.stderr).strip().splitlines()
        return DeskCommand(
            at=at,
            command=" ".join(argv[:5]),
            reason=reason,
            exit_code=done.returncode,
            said=said[-1] if said else "",
        )

    @staticmethod
    def latest_run(dag_id: str) -> Any:
        """The newest run of ``dag_id`` in the metadata database (the one just started)."""
        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            run = session.scalars(
                select(DagRun).where(DagRun.dag_id == dag_id).order_by(DagRun.id.desc())
            ).first()
            session.expunge_all()
        return run

    @staticmethod
    def task_states(run: Any) -> dict[str, str]:
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            rows = session.scalars(
                select(TaskInstance).where(
                    TaskInstance.dag_id == run.dag_id, TaskInstance.run_id == run.run_id
                )
            ).all()
            return {ti.task_id: str(ti.state) for ti in rows}

    # --- the approver ---------------------------------------------------------------------------

    def approver(self) -> subprocess.Popen[str]:
        """The plan's approver, waiting for the weekly's approval to answer it over HTTP."""
        return subprocess.Popen(
            [sys.executable, str(ANSWER), "--api", self.api, "--user", self.plan.approver,
             "--dag", WEEKLY, "--choice", "Approve", "--reason", self.plan.approval_reason,
             "--timeout", str(float(APPROVAL_TIMEOUT_HOURS) * 3600)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip

    @staticmethod
    def dismiss(approver: subprocess.Popen[str] | None) -> str:
        """What the approver said; one still waiting when the run ended was asked nothing (the
        review rejected the version, or a task before the approval failed)."""
        if approver is None:
            return ""
        if approver.poll() is None:
            approver.terminate()
            approver.communicate(timeout=30)
            return "asked nothing (no approval was pending in this run)"
        said, _ = approver.communicate(timeout=30)
        return said.strip()

    # --- output -------------------------------------------------------------------------------

    @contextmanager
    def output_to(self, path: Path) -> Iterator[None]:
        """Send this process's output (and its children's) to ``path`` for the block."""
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        with path.open("a") as log:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            try:
                yield
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
                os.close(saved[0])
                os.close(saved[1])


class TimelineWriter:
    """The timeline as it grows, written after every day."""

    def __init__(self, config: Any, plan: Any, output: Path, project: Path) -> None:
        self.config, self.plan, self.output, self.project = config, plan, output, project
        self.days: list[Any] = []

    def add(
        self, day: date, runs: list[Any], desk: list[Any], seconds: float, *, last: bool
    ) -> None:
        from ijules.operations.page import write_timeline
        from ijules.operations.timeline import Timeline as Record
        from ijules.operations.timeline import snapshot_day

        seen = self.days[-1].audit_head if self.days else 0
        self.days.append(snapshot_day(self.config, self.project, day, runs, desk, seen))
        record = Record(
            model_name=self.config.registry.model_name,
            sample=self.plan.sample,
            shift_weeks=self.plan.shift_weeks,
            first_day=self.plan.first_day.isoformat(),
            last_day=self.plan.last_day.isoformat(),
            approver=self.plan.approver,
            days=self.days,
            seconds=round(seconds, 1),
            complete=last,
        )
        write_timeline(record, self.output)

    def line(self, number: int, total: int) -> str:
        day = self.days[-1]
        runs = ", ".join(f"{run.dag_id.removeprefix('ijules_')} {run.state}" for run in day.runs)
        books = "; ".join(
            f"{book.slot} v{book.version} {book.pnl_usd:+,.0f}" for book in day.books or []
        )
        events = ", ".join(f"{e.action} v{e.version}" for e in day.events)
        return (
            f"day {number}/{total} {day.day}: {runs or 'no runs'} | champion "
            f"{day.champion or '-'} challenger {day.challenger or '-'} | {books or 'no books'}"
            + (f" | {events}" if events else "")
        )


if __name__ == "__main__":
    sys.exit(main())
