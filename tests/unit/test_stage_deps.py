"""dvc.yaml declares every package module each stage runs, so a code change reruns the stage.

The modules a stage runs are the import closure of its `ijules` command (scripts/stage_deps.py);
`python scripts/stage_deps.py --write` rewrites dvc.yaml's code deps from it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


def _load_stage_deps():
    spec = importlib.util.spec_from_file_location("stage_deps", REPO / "scripts" / "stage_deps.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["stage_deps"] = module
    spec.loader.exec_module(module)
    return module


stage_deps = _load_stage_deps()


@pytest.fixture(scope="module")
def required() -> dict[str, list[str]]:
    return stage_deps.required_deps()


def test_every_stage_declares_the_modules_its_command_imports(required) -> None:
    declared = stage_deps.declared_deps()
    uncovered = {s: stage_deps.uncovered(e, declared[s]) for s, e in required.items()}
    missing = {stage: entries for stage, entries in uncovered.items() if entries}
    assert not missing, (
        f"dvc.yaml lacks code deps (run `python scripts/stage_deps.py --write`): {missing}"
    )


def test_the_closure_follows_imports_into_other_packages(required) -> None:
    """The risk report runs the environment: its deps reach the simulation core through it."""
    assert "ijules/sim" in required["risk"]
    assert "ijules/evaluation/risk_report.py" in required["risk"]
    # and a stage does not depend on the other commands' modules
    assert not any(entry.startswith("ijules/training/fit") for entry in required["ingest"])


def test_a_new_import_in_a_stage_module_is_caught(tmp_path: Path) -> None:
    """Planting an import of an undeclared module in the ingest stage makes the check fail."""
    project = tmp_path / "project"
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(REPO / "ijules", project / "ijules", ignore=ignore)
    shutil.copytree(REPO / "scripts", project / "scripts", ignore=ignore)
    shutil.copy(REPO / "dvc.yaml", project / "dvc.yaml")
    ingest = project / "ijules" / "data" / "ingest.py"
    ingest.write_text(ingest.read_text() + "\nfrom ijules.analytics import metrics  # planted\n")
    result = subprocess.run(
        [sys.executable, "scripts/stage_deps.py"],
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(project)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        "ingest:" in result.stdout
        and "ijules/analytics" in result.stdout.split("ingest:")[1].split("\n")[0]
    )


def test_dvc_yaml_names_the_files_the_code_names() -> None:
    """File names fixed in the code (ijules.artifacts) are the ones dvc.yaml tracks."""
    from dvc.repo import Repo

    from ijules.artifacts import POLICY_SPEC, POLICY_ZIP, fold_file
    from ijules.config import load_config

    paths = load_config(REPO / "params.yaml").paths
    stages = {stage.name: stage for stage in Repo(str(REPO)).index.stages}
    outs = {name: {str(out.def_path) for out in stage.outs} for name, stage in stages.items()}
    assert {f"{paths.model_dir}/{POLICY_ZIP}", f"{paths.model_dir}/{POLICY_SPEC}"} <= outs["train"]
    for name in (n for n in stages if n.startswith("walk_forward@")):
        fold = int(name.split("@")[1])
        assert outs[name] == {f"{paths.walk_forward_folds}/{fold_file(fold)}"}
