"""`ijules ingest --as-of`, from the command line and through `dvc repro`, on the real sample."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from ijules.artifacts import IngestReport
from tests.conftest import make_project, run

HOUR = pd.Timedelta("1h")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("as_of") / "project")


@pytest.mark.parametrize("as_of", ["2017-08-01T00:00:00Z", "2017-09-10T17:45:00Z"])
def test_ingest_as_of_t_never_publishes_a_bar_after_t(project: Path, as_of: str) -> None:
    run(["ijules", "ingest", "--as-of", as_of], project)
    run(["ijules", "validate"], project)
    bars = pd.read_parquet(project / "data" / "raw" / "bars.parquet")
    cut = pd.Timestamp(as_of)
    # Each published bar had closed by T; the last one is the last that had.
    assert (bars["timestamp"] + HOUR <= cut).all()
    assert bars["timestamp"].iloc[-1] == cut.floor("1h") - HOUR
    report = IngestReport.read(project / "reports" / "ingest.json")
    assert report.as_of == cut.isoformat() and report.rows_after_as_of > 0
    summary = run(["ijules", "summary"], project).stdout
    source = "data/samples/btcusd_1h.csv.gz"
    assert f"{len(bars):,} rows ingested from {source} as of {cut.isoformat()}" in summary


def test_a_future_dated_bar_is_refused_and_nothing_is_staged(project: Path, tmp_path) -> None:
    staged = project / "data" / "staging" / "bars.parquet"
    run(["ijules", "ingest", "--as-of", "2017-08-01T00:00:00Z"], project)
    before = staged.read_bytes()
    ahead = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:00:00Z")
    delivery = tmp_path / "delivery.csv"
    delivery.write_text(
        "timestamp,symbol,open,high,low,close,volume\n"
        "2017-07-01T11:00:00Z,BTCUSD,2505.56,2513.38,2495.12,2509.17,114.6\n"
        f"{ahead},BTCUSD,2509.17,2512.87,2484.99,2488.43,157.36\n"
    )
    refused = run(
        ["ijules", "ingest", "--source", str(delivery), "--as-of", "2017-08-01T00:00:00Z"],
        project,
        check=False,
    )
    assert refused.returncode == 1
    [line] = refused.stderr.strip().splitlines()
    assert line.startswith(f"error: {delivery}: 1 row(s) stamped after the time of ingest")
    assert f"line 3: {ahead.replace('Z', '+00:00')}" in line and "rule not_after_now" in line
    assert staged.read_bytes() == before


def test_as_of_and_as_of_file_are_one_choice(project: Path) -> None:
    both = run(
        ["ijules", "ingest", "--as-of", "2017-08-01T00:00:00Z", "--as-of-file", "as_of.yaml"],
        project,
        check=False,
    )
    assert both.returncode == 1 and "--as-of or --as-of-file, not both" in both.stderr


def test_dvc_repro_stages_the_as_of_file_and_restores_a_former_as_of(tmp_path) -> None:
    """The as-of file is a params file of the ingest stage: a new as-of reruns ingest, a former
    one comes back from DVC's run-cache, the same bytes; the committed null stages everything."""
    project = make_project(tmp_path / "project")
    staged = project / "data" / "staging" / "bars.parquet"
    as_of_file = project / "as_of.yaml"

    # A fresh clone: as committed, the whole history (the test parameters end it 2017-10-15).
    run(["dvc", "repro", "--single-item", "ingest"], project)
    whole = pd.read_parquet(staged)
    assert whole["timestamp"].iloc[-1] == pd.Timestamp("2017-10-15T00:00:00Z")
    assert IngestReport.read(project / "reports" / "ingest.json").as_of is None

    def repro_as_of(as_of: str) -> tuple[str, bytes]:
        as_of_file.write_text(f"as_of: '{as_of}'\n")
        done = run(["dvc", "repro", "--single-item", "ingest"], project)
        return done.stdout, staged.read_bytes()

    said, first = repro_as_of("2017-08-01T00:00:00+00:00")
    assert "Running stage 'ingest'" in said
    said, second = repro_as_of("2017-09-01T00:00:00+00:00")
    assert "Running stage 'ingest'" in said and second != first
    assert pd.read_parquet(staged)["timestamp"].iloc[-1] == pd.Timestamp("2017-08-31T23:00:00Z")
    said, again = repro_as_of("2017-08-01T00:00:00+00:00")
    assert "Running stage 'ingest'" not in said and "is cached" in said
    assert again == first
    report = IngestReport.read(project / "reports" / "ingest.json")
    assert report.as_of == "2017-08-01T00:00:00+00:00"  # the report comes back with the bars
    assert "Data and pipelines are up to date" in run(["dvc", "status", "ingest"], project).stdout
    assert (project / "dvc.lock").read_text().count("as_of: '2017-08-01T00:00:00+00:00'") == 1
