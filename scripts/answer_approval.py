"""Answer a pending promotion approval through Airflow's HITL REST API, as a named user.

A risk officer answers in the UI (Required Actions); this is the same answer sent over HTTP, as
`make run` and the tests do with a demo approver. It logs in to the api-server (simple auth
manager: the user's password from its generated passwords file), waits for an approval of the
DAG that nobody answered yet, and sends the choice with a reason. While it waits it also watches
the process that runs the DAG (``--watch-pid``): when that ends first, no approval was pending
(the automatic review rejected the version and the approval was skipped, or a task failed), and
it says so.

Standard library only: it runs from the scheduler's or anyone's Python.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


def call(api: str, method: str, path: str, token: str | None, body: Any = None) -> Any:
    request = urllib.request.Request(
        f"{api}{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"}
        | ({"Authorization": f"Bearer {token}"} if token else {}),
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        detail = err.read().decode(errors="replace")
        raise SystemExit(f"{method} {path}: HTTP {err.code}: {detail}") from None


def password(user: str) -> str:
    folder = Path(os.environ.get("AIRFLOW_HOME", Path.home() / "airflow"))
    configured = os.environ.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE")
    path = (
        Path(configured) if configured else folder / "simple_auth_manager_passwords.json.generated"
    )
    passwords = json.loads(path.read_text())
    if user not in passwords:
        raise SystemExit(f"{path} holds no password for {user!r}: is it a configured user?")
    return str(passwords[user])


def alive(pid: int | None) -> bool:
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", default="http://127.0.0.1:8793")
    parser.add_argument("--user", required=True)
    parser.add_argument("--dag", default="ijules_weekly")
    parser.add_argument("--choice", choices=["Approve", "Reject"], required=True)
    parser.add_argument("--reason", required=True)
    parser.add_argument("--watch-pid", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=3600.0)
    args = parser.parse_args()

    deadline = time.monotonic() + args.timeout
    while True:  # the api-server may still be starting
        try:
            login = {"username": args.user, "password": password(args.user)}
            token = call(args.api, "POST", "/auth/token", None, login)["access_token"]
            break
        except (urllib.error.URLError, ConnectionError, FileNotFoundError):
            if time.monotonic() > deadline or not alive(args.watch_pid):
                raise SystemExit(f"no api-server answered at {args.api}") from None
            time.sleep(2)
    query = f"/api/v2/dags/{args.dag}/dagRuns/~/hitlDetails?response_received=false"
    while True:
        pending = call(args.api, "GET", query, token)["hitl_details"]
        if pending:
            break
        if not alive(args.watch_pid):
            print(
                f"no approval was pending when the {args.dag} run ended: the automatic review "
                "rejected the version, or a task before it failed"
            )
            return 0
        if time.monotonic() > deadline:
            print(f"no approval became pending in {args.dag} within {args.timeout:.0f} s")
            return 1
        time.sleep(2)
    detail = pending[0]
    ti = detail["task_instance"]
    path = (
        f"/api/v2/dags/{ti['dag_id']}/dagRuns/{ti['dag_run_id']}/taskInstances/"
        f"{ti['task_id']}/{ti['map_index']}/hitlDetails"
    )
    answer = {"chosen_options": [args.choice], "params_input": {"reason": args.reason}}
    answered = call(args.api, "PATCH", path, token, answer)
    who = answered["responded_by"]["name"]
    print(f"{args.choice} ({detail['subject']}) by {who} in run {ti['dag_run_id']}: {args.reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
