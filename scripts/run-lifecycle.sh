#!/usr/bin/env bash
# The main job: run the weekly DAG (retrain, evaluate, gate and register) and then the nightly DAG
# (drift and the risk team's e-mail) once through Airflow, against the project-local stores, then
# push the DVC outputs to the local remote and print a summary.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p var/log

started_sink=0
if ! bash scripts/services.sh mail-up | tee /dev/stderr | grep -q "already running"; then
  started_sink=1
fi
cleanup() { if [[ $started_sink == 1 ]]; then bash scripts/services.sh mail-down >/dev/null; fi; }
trap cleanup EXIT

# One shot: a failure should surface now, not after the production retry delays.
export IJULES_TASK_RETRIES=0
started=$(date +%s)

echo "== Airflow metadata database ($AIRFLOW_HOME)"
airflow db migrate >var/log/airflow-migrate.log 2>&1
airflow pools set ijules_dvc_workspace 1 "DVC workspace: one writer at a time" >/dev/null

for dag in ijules_weekly ijules_nightly; do
  echo "== airflow dags test $dag (log: var/log/$dag.log)"
  if ! airflow dags test "$dag" >"var/log/$dag.log" 2>&1; then
    grep -E "ERROR|error:|Error" "var/log/$dag.log" | tail -15 >&2 || true
    echo "$dag failed; full log: var/log/$dag.log" >&2
    exit 1
  fi
done

echo "== dvc push (remote: $(dvc remote list | head -1))"
dvc push --quiet
echo
ijules summary
echo
echo "lifecycle finished in $(( $(date +%s) - started )) s"
