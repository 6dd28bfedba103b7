"""The deployment past one laptop, natively on this machine: PostgreSQL, Redis, Airflow with the
CeleryExecutor (api-server, scheduler, dag-processor, triggerer, a default worker and a `gpu`
worker), and an MLflow tracking server on PostgreSQL behind its basic-auth app.

docker/compose.yaml is the same deployment in containers; tests/integration/test_compose.py
holds the two to the same services, commands, queues and variables (SERVICES and AIRFLOW_ENV
here are what it reads).

Usage: python scripts/cluster.py up|down|env [--folder var/cluster]

Everything listens on loopback, on free ports, and lives under the folder: data, logs, pids and
the secrets (generated once into FOLDER/secrets.env, mode 0600, never committed). PostgreSQL runs
as the `postgres` user (it refuses root). `up` installs Debian's redis-server when it is missing.
`env` prints the variables a shell needs to talk to the cluster (Airflow CLI, MLflow client).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PG_BIN = Path("/usr/lib/postgresql/15/bin")
WAIT_S = 180


@dataclass(frozen=True)
class Service:
    """One long-running process of the deployment: its command (``{...}`` filled from the
    cluster's settings), the port it listens on, and the Celery queues a worker consumes."""

    command: tuple[str, ...]
    port: str | None = None
    queues: tuple[str, ...] = ()
    user: str | None = None  # run as this user (PostgreSQL refuses root)


# The services in the order `up` starts them; compose has one service of each name.
SERVICES: dict[str, Service] = {
    "postgres": Service(
        (
            str(PG_BIN / "postgres"),
            "-D",
            "{pgdata}",
            "-h",
            "127.0.0.1",
            "-p",
            "{postgres_port}",
            "-k",
            "{pgdata}",
        ),
        port="postgres_port",
        user="postgres",
    ),
    "redis": Service(
        (
            "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            "{redis_port}",
            "--requirepass",
            "{REDIS_PASSWORD}",
            "--dir",
            "{folder}/redis",
            "--save",
            "",
            "--appendonly",
            "no",
        ),
        port="redis_port",
    ),
    "mlflow": Service(
        (
            "mlflow",
            "server",
            "--app-name",
            "basic-auth",
            "--backend-store-uri",
            "{mlflow_db}",
            "--artifacts-destination",
            "{folder}/mlflow-artifacts",
            "--serve-artifacts",
            "--host",
            "127.0.0.1",
            "--port",
            "{mlflow_port}",
            "--workers",
            "1",
        ),
        port="mlflow_port",
    ),
    "airflow-api-server": Service(
        ("airflow", "api-server", "--host", "127.0.0.1", "--port", "{api_port}"), port="api_port"
    ),
    "airflow-scheduler": Service(("airflow", "scheduler")),
    "airflow-dag-processor": Service(("airflow", "dag-processor")),
    "airflow-triggerer": Service(("airflow", "triggerer")),
    "airflow-worker": Service(
        (
            "airflow",
            "celery",
            "worker",
            "--queues",
            "default",
            "--concurrency",
            "1",
            "--celery-hostname",
            "{instance}@%h",
        ),
        queues=("default",),
    ),
    "airflow-worker-gpu": Service(
        (
            "airflow",
            "celery",
            "worker",
            "--queues",
            "gpu",
            "--concurrency",
            "1",
            "--celery-hostname",
            "{instance}@%h",
        ),
        queues=("gpu",),
    ),
}

# What every Airflow process gets (and the tasks it runs), by name; compose sets the same names.
AIRFLOW_ENV = (
    "AIRFLOW_HOME",
    "AIRFLOW__CORE__EXECUTOR",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC",
    "AIRFLOW__CELERY__BROKER_URL",
    "AIRFLOW__CELERY__RESULT_BACKEND",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__CORE__AUTH_MANAGER",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE",
    "AIRFLOW__CORE__HOSTNAME_CALLABLE",
    "AIRFLOW__CORE__DAGS_FOLDER",
    "AIRFLOW__CORE__LOAD_EXAMPLES",
    "AIRFLOW_CONN_SMTP_DEFAULT",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "IJULES_PROJECT_DIR",
    "IJULES_APPROVERS",
)
SECRETS = (
    "POSTGRES_PASSWORD",
    "REDIS_PASSWORD",
    "AIRFLOW_JWT_SECRET",
    "AIRFLOW_FERNET_KEY",
    "MLFLOW_ADMIN_PASSWORD",
    "MLFLOW_FLASK_SERVER_SECRET_KEY",
)
# Airflow's users and their roles (the simple auth manager's): the quant triggers, reruns and
# backfills (`op`), the risk officer may besides answer approvals (`user`, and named in
# IJULES_APPROVERS: the only one who may), the viewer only reads, the admin administers.
AIRFLOW_USERS = "admin:admin,quant:op,risk_officer:user,viewer:viewer"
APPROVERS = "risk_officer"
# The DVC workspace pool (dags/wiring.py: WORKSPACE_POOL, WORKSPACE_SLOTS).
WORKSPACE_POOL = "ijules_dvc_workspace"
WORKSPACE_SLOTS = 4
POOL_DESCRIPTION = "DVC workspace: a writer takes all 4 slots, a shared reader 1 (dags/wiring.py)"
MLFLOW_ADMIN = "admin"
DAG_IDS = ("ijules_nightly", "ijules_rollback", "ijules_weekly")  # `up` waits for them
CELERY_EXECUTOR = "airflow.providers.celery.executors.celery_executor.CeleryExecutor"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("up", "down", "env"))
    parser.add_argument("--folder", type=Path, default=ROOT / "var" / "cluster")
    parser.add_argument(
        "--gpu-workers", type=int, default=1, help="replicas of the gpu worker (up only)"
    )
    args = parser.parse_args()
    cluster = Cluster(args.folder.resolve())
    if args.action == "up":
        cluster.up(args.gpu_workers)
    elif args.action == "down":
        cluster.down()
    else:
        for key, value in cluster.client_env().items():
            print(f"export {key}={shlex_quote(value)}")
    return 0


def shlex_quote(value: str) -> str:
    import shlex

    return shlex.quote(value)


class Cluster:
    """The services' settings (ports, secrets, URLs) and their processes under ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.settings_file = folder / "settings.json"
        self.secrets_file = folder / "secrets.env"

    # --- settings ------------------------------------------------------------------------------

    def settings(self) -> dict[str, str]:
        """Ports and paths (chosen once, kept in settings.json) and secrets (secrets.env)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.settings_file.exists():
            chosen: dict[str, str] = json.loads(self.settings_file.read_text())
        else:
            chosen = {
                key: str(free_port())
                for key in ("postgres_port", "redis_port", "mlflow_port", "api_port")
            }
            self.settings_file.write_text(json.dumps(chosen, indent=2))
        values = {**chosen, **self.secrets(), "folder": str(self.folder)}
        values["pgdata"] = str(self.folder / "pgdata")
        db = f"ijules:{values['POSTGRES_PASSWORD']}@127.0.0.1:{values['postgres_port']}"
        values["airflow_db"] = f"postgresql+psycopg://{db}/airflow"
        values["mlflow_db"] = f"postgresql+psycopg://{db}/mlflow"
        values["mlflow_auth_db"] = f"postgresql+psycopg://{db}/mlflow_auth"
        return values

    def secrets(self) -> dict[str, str]:
        if not self.secrets_file.exists():
            generated = {name: secrets.token_urlsafe(24) for name in SECRETS}
            from cryptography.fernet import Fernet

            generated["AIRFLOW_FERNET_KEY"] = Fernet.generate_key().decode()
            self.secrets_file.touch(mode=0o600)
            self.secrets_file.write_text("".join(f"{k}={v}\n" for k, v in generated.items()))
        pairs = (line.split("=", 1) for line in self.secrets_file.read_text().splitlines())
        return {key: value for key, value in pairs}

    def airflow_env(self) -> dict[str, str]:
        """AIRFLOW_ENV's values for this cluster."""
        s = self.settings()
        airflow_home = self.folder / "airflow"
        env = {
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__EXECUTOR": CELERY_EXECUTOR,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": s["airflow_db"],
            # psycopg 3 serves SQLAlchemy's async engine too (Airflow would assume asyncpg).
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": s["airflow_db"],
            "AIRFLOW__CELERY__BROKER_URL": (
                f"redis://:{s['REDIS_PASSWORD']}@127.0.0.1:{s['redis_port']}/0"
            ),
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{s['airflow_db']}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": (
                f"http://127.0.0.1:{s['api_port']}/execution/"
            ),
            "AIRFLOW__API_AUTH__JWT_SECRET": s["AIRFLOW_JWT_SECRET"],
            "AIRFLOW__CORE__FERNET_KEY": s["AIRFLOW_FERNET_KEY"],
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": AIRFLOW_USERS,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(
                self.folder / "airflow-passwords.json"
            ),
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "ijules.host.worker_hostname",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW_CONN_SMTP_DEFAULT": os.environ.get(
                "AIRFLOW_CONN_SMTP_DEFAULT",
                json.dumps(
                    {
                        "conn_type": "smtp",
                        "host": "127.0.0.1",
                        "port": 1025,
                        "extra": {"disable_tls": True, "disable_ssl": True},
                    }
                ),
            ),
            "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{s['mlflow_port']}",
            "MLFLOW_TRACKING_USERNAME": MLFLOW_ADMIN,
            "MLFLOW_TRACKING_PASSWORD": s["MLFLOW_ADMIN_PASSWORD"],
            "IJULES_PROJECT_DIR": os.environ.get("IJULES_PROJECT_DIR", str(ROOT)),
            "IJULES_APPROVERS": APPROVERS,
        }
        assert tuple(env) == AIRFLOW_ENV, "AIRFLOW_ENV and the values set here differ"
        return env

    def client_env(self) -> dict[str, str]:
        return {**self.airflow_env(), "PATH": os.environ["PATH"]}

    # --- clients (tests, benchmarks) -----------------------------------------------------------

    @property
    def airflow_url(self) -> str:
        return f"http://127.0.0.1:{self.settings()['api_port']}"

    @property
    def mlflow_url(self) -> str:
        return f"http://127.0.0.1:{self.settings()['mlflow_port']}"

    def passwords(self) -> dict[str, str]:
        """The Airflow users' passwords (the simple auth manager writes them at first start)."""
        return dict(json.loads((self.folder / "airflow-passwords.json").read_text()))

    def api(self, user: str, method: str, path: str, **kwargs: Any) -> Any:
        """One call to Airflow's REST API (``/api/v2`` + path) as ``user``; the response."""
        import requests

        token = requests.post(
            f"{self.airflow_url}/auth/token",
            json={"username": user, "password": self.passwords()[user]},
            timeout=30,
        )
        token.raise_for_status()
        return requests.request(
            method,
            f"{self.airflow_url}/api/v2{path}",
            headers={"Authorization": f"Bearer {token.json()['access_token']}"},
            timeout=60,
            **kwargs,
        )

    # --- processes -----------------------------------------------------------------------------

    def up(self, gpu_workers: int = 1) -> None:
        s = self.settings()
        for folder in ("logs", "pids", "redis", "mlflow-artifacts", "airflow"):
            (self.folder / folder).mkdir(parents=True, exist_ok=True)
        if shutil.which("redis-server") is None:
            run(["apt-get", "install", "-y", "-q", "redis-server"])
        self.init_postgres(s)
        self.start("postgres", s)
        self.create_databases(s)
        self.start("redis", s)
        self.write_mlflow_auth(s)
        self.start(
            "mlflow",
            s,
            {
                "MLFLOW_AUTH_CONFIG_PATH": str(self.folder / "mlflow-auth.ini"),
                "MLFLOW_FLASK_SERVER_SECRET_KEY": s["MLFLOW_FLASK_SERVER_SECRET_KEY"],
            },
        )
        env = {**os.environ, **self.airflow_env()}
        run(
            [sys.executable, "-m", "airflow", "db", "migrate"],
            env=env,
            log=self.folder / "logs" / "airflow-migrate.log",
        )
        run(
            [sys.executable, "-m", "airflow", "pools", "set", WORKSPACE_POOL,
             str(WORKSPACE_SLOTS), POOL_DESCRIPTION],
            env=env,
            log=self.folder / "logs" / "airflow-pools.log",
        )  # fmt: skip
        for name in SERVICES:
            if not name.startswith("airflow-"):
                continue
            # A worker service may run as several replicas (compose: --scale): name-2, name-3.
            replicas = gpu_workers if name == "airflow-worker-gpu" else 1
            for replica in range(1, replicas + 1):
                instance = name if replica == 1 else f"{name}-{replica}"
                extra = {"IJULES_WORKER_NAME": instance} if SERVICES[name].queues else {}
                self.start(name, s, {**self.airflow_env(), **extra}, instance=instance)
        self.wait_for_dags()

    def wait_for_dags(self, wait_s: float = WAIT_S) -> None:
        """Until the DAG processor has parsed the project's DAGs into the metadata database, with
        no import error: only then can anyone trigger a run."""
        deadline = time.monotonic() + wait_s
        while True:
            try:
                listed = {dag["dag_id"] for dag in self.api("admin", "GET", "/dags").json()["dags"]}
                errors = self.api("admin", "GET", "/importErrors").json()["total_entries"]
            except (OSError, KeyError, ValueError):  # the api-server is still starting
                listed, errors = set(), 0
            if errors:
                raise SystemExit(f"the DAGs have {errors} import error(s); see the UI or logs")
            if listed >= set(DAG_IDS):
                return
            if time.monotonic() > deadline:
                raise SystemExit(f"the DAG processor did not load {DAG_IDS} within {wait_s:.0f} s")
            time.sleep(2)

    def init_postgres(self, s: dict[str, str]) -> None:
        pgdata = Path(s["pgdata"])
        if (pgdata / "PG_VERSION").exists():
            return
        pgdata.mkdir(parents=True, exist_ok=True)
        shutil.chown(pgdata, "postgres", "postgres")
        password = self.folder / ".pgpass-init"
        password.write_text(s["POSTGRES_PASSWORD"] + "\n")
        shutil.chown(password, "postgres", "postgres")
        password.chmod(0o600)
        try:
            run(
                [
                    "runuser",
                    "-u",
                    "postgres",
                    "--",
                    str(PG_BIN / "initdb"),
                    "-D",
                    str(pgdata),
                    "-U",
                    "ijules",
                    "--pwfile",
                    str(password),
                    "-A",
                    "scram-sha-256",
                ],
                log=self.folder / "logs" / "initdb.log",
            )
        finally:
            password.unlink(missing_ok=True)

    def create_databases(self, s: dict[str, str]) -> None:
        import psycopg

        dsn = (
            f"host=127.0.0.1 port={s['postgres_port']} user=ijules "
            f"password={s['POSTGRES_PASSWORD']} dbname=postgres"
        )
        with psycopg.connect(dsn, autocommit=True) as connection:
            existing = {row[0] for row in connection.execute("SELECT datname FROM pg_database")}
            for name in ("airflow", "mlflow", "mlflow_auth"):
                if name not in existing:
                    connection.execute(f'CREATE DATABASE "{name}"')

    def write_mlflow_auth(self, s: dict[str, str]) -> None:
        ini = self.folder / "mlflow-auth.ini"
        ini.touch(mode=0o600)
        ini.write_text(
            "[mlflow]\n"
            "default_permission = READ\n"
            f"database_uri = {s['mlflow_auth_db']}\n"
            f"admin_username = {MLFLOW_ADMIN}\n"
            f"admin_password = {s['MLFLOW_ADMIN_PASSWORD']}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        )

    def start(
        self,
        name: str,
        s: dict[str, str],
        env: dict[str, str] | None = None,
        instance: str | None = None,
    ) -> None:
        service = SERVICES[name]
        instance = instance or name
        pid_file = self.folder / "pids" / f"{instance}.pid"
        if pid_file.exists() and alive(int(pid_file.read_text())):
            return
        command = [part.format(**s, instance=instance) for part in service.command]
        if service.user is not None:
            command = ["runuser", "-u", service.user, "--", *command]
        log = (self.folder / "logs" / f"{instance}.log").open("a")
        process = subprocess.Popen(
            command,
            env={**os.environ, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=ROOT,
        )
        pid_file.write_text(str(process.pid))
        if service.port is not None:
            wait_port(int(s[service.port]), process, log.name)

    def down(self) -> None:
        """Stop what `up` started, Airflow's workers first and the stores last."""
        pids = self.folder / "pids"
        started = list(pids.glob("*.pid")) if pids.is_dir() else []
        for pid_file in sorted(started, key=service_rank, reverse=True):
            pid = int(pid_file.read_text())
            if alive(pid):
                os.killpg(pid, signal.SIGTERM)
                deadline = time.monotonic() + 60
                while alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.5)
                if alive(pid):
                    os.killpg(pid, signal.SIGKILL)
            pid_file.unlink()


def service_rank(pid_file: Path) -> int:
    """The place in SERVICES of the service a pid file belongs to (a replica: `name-2`)."""
    name = pid_file.stem if pid_file.stem in SERVICES else pid_file.stem.rsplit("-", 1)[0]
    return list(SERVICES).index(name)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_port(port: int, process: subprocess.Popen[bytes], log: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"port {port} did not open; see {log}")
        time.sleep(0.5)


def run(command: list[str], env: dict[str, str] | None = None, log: Path | None = None) -> None:
    with (log if log is not None else Path(os.devnull)).open("w") as output:
        subprocess.run(command, env=env, stdout=output, stderr=subprocess.STDOUT, check=True)


if __name__ == "__main__":
    sys.exit(main())
