#!/usr/bin/env bash
# Background services for local use: the mail sink, the MLflow UI and Airflow (standalone), and
# the api-server `make run` answers approvals through.
# Each runs in its own process group; its pid is kept in var/run/NAME.pid and its log in var/log/.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p var/run var/log var/mail/tmp var/mail/new var/mail/cur  # var/mail is a Maildir

port_open() { python -c "import socket,sys; s=socket.socket(); s.settimeout(0.5); sys.exit(s.connect_ex(('127.0.0.1', $1)))"; }

wait_port() {  # name port seconds
  for _ in $(seq "$3"); do port_open "$2" && return 0; sleep 1; done
  echo "$1 did not open port $2 in $3 s; see var/log/$1.log" >&2
  return 1
}

running() { [[ -f "var/run/$1.pid" ]] && kill -0 "$(cat "var/run/$1.pid")" 2>/dev/null; }

start() {  # name port wait-seconds command...
  local name=$1 port=$2 wait=$3; shift 3
  if running "$name"; then echo "$name already running (pid $(cat "var/run/$name.pid"))"; return 0; fi
  if port_open "$port"; then echo "port $port is taken: cannot start $name" >&2; return 1; fi
  setsid nohup "$@" >"var/log/$name.log" 2>&1 &
  echo $! >"var/run/$name.pid"
  wait_port "$name" "$port" "$wait"
  echo "$name up on 127.0.0.1:$port (log var/log/$name.log)"
}

stop() {
  local name=$1
  if running "$name"; then
    kill -- "-$(cat "var/run/$name.pid")" 2>/dev/null || true
    echo "$name stopped"
  fi
  rm -f "var/run/$name.pid"
}

mail_up() {
  start mail-sink "${IJULES_SMTP_PORT:-1025}" 20 \
    python -m aiosmtpd -n -l "127.0.0.1:${IJULES_SMTP_PORT:-1025}" -c aiosmtpd.handlers.Mailbox var/mail
}

# The api-server that approvals are answered through (Required Actions, the HITL REST API), with
# one named user, the demo risk officer, whose password the simple auth manager generates into
# $AIRFLOW_HOME (not all-admins: the answer is recorded under a real name).
approvals_up() {
  mkdir -p "$AIRFLOW_HOME"
  AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=False \
  AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="${IJULES_APPROVER:-demo_risk_officer}:admin" \
  AIRFLOW__API_AUTH__JWT_SECRET="${AIRFLOW__API_AUTH__JWT_SECRET:-$(python -c 'import secrets; print(secrets.token_hex(32))')}" \
    start airflow-api "${IJULES_API_PORT:-8793}" 120 \
    airflow api-server --host 127.0.0.1 --port "${IJULES_API_PORT:-8793}"
}

case "${1:-}" in
  mail-up) mail_up ;;
  mail-down) stop mail-sink ;;
  approvals-up) approvals_up ;;
  approvals-down) stop airflow-api ;;
  up)
    mail_up
    mkdir -p var/mlflow/artifacts
    start mlflow "${IJULES_MLFLOW_PORT:-5000}" 90 \
      mlflow server --backend-store-uri "$MLFLOW_TRACKING_URI" \
      --default-artifact-root "file://$PWD/var/mlflow/artifacts" \
      --host 127.0.0.1 --port "${IJULES_MLFLOW_PORT:-5000}" --workers 1
    airflow db migrate >var/log/airflow-migrate.log 2>&1
    airflow pools set ijules_dvc_workspace 4 "DVC workspace: a writer takes all 4 slots, a shared reader 1 (dags/wiring.py)" >/dev/null
    start airflow 8080 120 airflow standalone
    echo "Airflow UI: http://127.0.0.1:8080   MLflow UI: http://127.0.0.1:${IJULES_MLFLOW_PORT:-5000}   mail: var/mail/new/"
    ;;
  down)
    stop airflow
    stop mlflow
    stop mail-sink
    ;;
  *) echo "usage: $0 up|down|mail-up|mail-down|approvals-up|approvals-down" >&2; exit 2 ;;
esac
