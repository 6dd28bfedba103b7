"""MLflow set-up and lineage: where runs go, and what ties a run to its code, data and params.

Embedded default: a SQLite store at ``var/mlflow/mlflow.db`` with artifacts in
``var/mlflow/artifacts`` under the project; ``MLFLOW_TRACKING_URI`` overrides both.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from urllib.parse import urlparse

from ijules.config import AS_OF_FILE, Config, load_as_of
from ijules.io import md5_file

# What a training run records so that `ijules baseline reproduce` can rerun it.
REVISION_TAG = "ijules.git_revision"  # the commit the code ran from ("unknown": no git checkout)
DIRTY_TAG = "ijules.git_dirty"  # "true": tracked files a checkout of it would not restore changed
PARAMS_ARTIFACT = "params"  # the run's artifact folder holding the params.yaml it ran with
AS_OF_TAG = "ijules.as_of"  # the as-of its data was staged as of (as_of.yaml); "null": none


def project_root() -> Path:
    """The project folder: ``IJULES_PROJECT_DIR`` or the working directory."""
    return Path(os.environ.get("IJULES_PROJECT_DIR", Path.cwd())).resolve()


def tracking_uri() -> str:
    """The MLflow tracking URI in force."""
    configured = os.environ.get("MLFLOW_TRACKING_URI")
    if configured:
        return configured
    return f"sqlite:///{project_root() / 'var' / 'mlflow' / 'mlflow.db'}"


def artifact_root(uri: str) -> str | None:
    """Artifact folder for experiments we create: beside a SQLite store, else the server's."""
    parsed = urlparse(uri)
    if parsed.scheme != "sqlite":
        return None
    database = Path(uri.removeprefix("sqlite:///"))
    return (database.parent / "artifacts").as_uri()


def configure(experiment: str) -> str:
    """Point MLflow at the store, create ``experiment`` if needed, and return its id."""
    import mlflow

    uri = tracking_uri()
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    found = mlflow.get_experiment_by_name(experiment)
    if found is not None:
        return str(found.experiment_id)
    return str(mlflow.create_experiment(experiment, artifact_location=artifact_root(uri)))


def run_exists(run_id: str) -> bool:
    """Whether the configured MLflow store holds run ``run_id``."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        mlflow.get_run(run_id)
    except MlflowException:
        return False
    return True


def git_output(where: Path, *args: str) -> str:
    """Run ``git args`` in ``where`` and return its output (raises CalledProcessError)."""
    return subprocess.run(
        ["git", *args], cwd=where, capture_output=True, text=True, check=True
    ).stdout.strip()


def git_revision(cwd: Path | None = None) -> str:
    """Return ``HEAD``'s hash, suffixed ``-dirty`` when tracked files have uncommitted changes."""
    where = cwd or project_root()
    try:
        head = git_output(where, "rev-parse", "HEAD")
        status = git_output(where, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}-dirty" if status else head


def source_tags(config: Config, params: Path | None) -> dict[str, str]:
    """The commit a training runs from, and whether a checkout of it would run other code or data.

    Changes to ``params`` (logged with the run), to ``dvc.lock``, to the pipeline's outputs
    (``paths``) and to the as-of file do not count: ``dvc repro`` and the DAG runs rewrite those
    before the train stage starts, so counting them would mark nearly every pipeline run dirty.
    The as-of is recorded instead (:data:`AS_OF_TAG`, when the file is there), for a
    reproduction to stage the same history.
    """
    root = project_root()
    as_of_file = Path(AS_OF_FILE)
    spared = [
        Path("dvc.lock"),
        as_of_file,
        *(Path(p) for p in config.paths.model_dump().values()),
    ]
    if params is not None:
        spared.append(params)
    excluded = [
        f":(exclude,literal){relative}"
        for path in spared
        if (relative := _inside(path, root)) not in (None, ".")
    ]
    try:
        head = git_output(root, "rev-parse", "HEAD")
        changed = git_output(
            root, "status", "--porcelain", "--untracked-files=no", "--", ".", *excluded
        )
    except (OSError, subprocess.CalledProcessError):
        return {REVISION_TAG: "unknown", DIRTY_TAG: "true"}
    tags = {REVISION_TAG: head, DIRTY_TAG: "true" if changed else "false"}
    if as_of_file.is_file():
        as_of = load_as_of(as_of_file)
        tags[AS_OF_TAG] = "null" if as_of is None else as_of.isoformat()
    return tags


def _inside(path: Path, root: Path) -> str | None:
    """``path`` (relative: to the working directory, like every path given) relative to
    ``root``, or None when it lies outside."""
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return None


def lineage_tags(config: Config, inputs: dict[str, Path]) -> dict[str, str]:
    """Tags that tie a run to its code revision, its input data (DVC MD5s) and its params."""
    tags = {
        "git.revision": git_revision(),
        "params.md5": config.policy_digest(),
        "params.phase": config.phase,
    }
    for name, path in inputs.items():
        tags[f"dvc.md5.{name}"] = md5_file(path)
    return tags


def registered_model_tag(experiment: str, model: str, key: str) -> str | None:
    """A tag of the registered model ``model`` (None when the model or the tag is absent)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    configure(experiment)
    try:
        tags = MlflowClient().get_registered_model(model).tags
    except MlflowException:
        return None
    value = tags.get(key)
    return None if value is None else str(value)
