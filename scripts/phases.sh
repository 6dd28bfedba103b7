#!/usr/bin/env bash
# `make phases`: run each phase overlay of config/ that loads as a DVC experiment, then set their
# metrics beside the master plan's success criteria in reports/phases/ (`ijules phases`).
# Overlays refused by name (REFUSED_KEYS) are skipped, with the reason. Each experiment runs in a
# temporary copy (--temp), so the workspace keeps its own results. Arguments name the overlays to
# run (default: every one in config/).
set -euo pipefail
cd "$(dirname "$0")/.."

if (($#)); then
  phases=("$@")
else
  phases=()
  for overlay in config/*.yaml; do phases+=("$(basename "$overlay" .yaml)"); done
fi

# A rerun replaces the phase's experiment on this commit, rather than failing on its name.
existing=$(dvc exp list --name-only 2>/dev/null || true)
for phase in "${phases[@]}"; do
  if ! error=$(ijules --phase "$phase" config 2>&1 >/dev/null); then
    if [[ $error == *"remove it or select another phase"* ]]; then
      echo "== $phase: skipped: ${error#error: }"
      continue
    fi
    echo "$error" >&2
    exit 1
  fi
  name="phase-$phase"
  if grep -qxF "$name" <<<"$existing"; then dvc exp remove "$name" >/dev/null; fi
  # Every stage but paper trading: a phase experiment is research, and the paper books (and
  # their MLflow runs) are the live record of the registry's models, not of an experiment.
  echo "== $phase: dvc exp run --temp --name $name --set-param phase=$phase report drift risk"
  dvc exp run --temp --name "$name" --set-param "phase=$phase" report drift risk
done
ijules phases
