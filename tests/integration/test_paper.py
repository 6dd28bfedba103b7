"""Paper trading against a real MLflow registry, with tiny trained policies and real bars.

Two policies are trained once on bars up to END (v1 and v2 of each registered model used here);
each test gives them the aliases it needs under its own registered-model name, then publishes
later bars (the data stages rerun with a later ``data.end``) and runs `ijules paper`'s function.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow import MlflowClient

from ijules.artifacts import PaperReport
from ijules.config import Config, load_config
from ijules.paper.book import BookState, PaperError
from ijules.paper.ledger import read_ledger
from ijules.paper.night import EXPERIMENT_SUFFIX, run_paper
from ijules.registry.approval import approve
from ijules.registry.register import WEIGHTS_TAG, run_register
from tests.conftest import OPEN_GATE, SAMPLES, TINY, deep_merge, write_params
from tests.integration.conftest import Workspace

pytestmark = pytest.mark.slow

END = "2017-10-15T00:00:00Z"  # the bars the policies were trained and tested on end here
NIGHT_1 = "2017-10-16T00:00:00Z"  # a day of new bars...
NIGHT_2 = "2017-10-17T12:00:00Z"  # ...then a day and a half more
DESK = {
    "data": {"source": str(SAMPLES / "btcusd_1h.csv.gz"), "end": END},
    "gate": OPEN_GATE,
    "seeds": {"count": 1},
    # Tiny policies ask for small changes: rebalance on any, so that the books trade.
    "environment": {"min_trade_weight": 0.0},
}


@dataclass
class Desk:
    """The trained policies, and what each test needs to publish bars and trade."""

    root: Path
    config: Config

    def configured(self, model_name: str, end: str = END) -> Config:
        update = {"registry": {"model_name": model_name}, "data": {"end": end}}
        raw = deep_merge(deep_merge(TINY, DESK), update)
        folder = self.root / "params" / f"{model_name}-{end[:13]}"
        return load_config(write_params(folder, raw))

    def register(self, config: Config, model: str) -> str:
        registered = run_register(
            config,
            model_dir=self.root / model,
            metrics=self.root / "reports" / f"{model}.json",
            features=self.root / "data" / "features" / "features.parquet",
            meta=self.root / "data" / "features" / "meta.json",
            output=self.root / "reports" / f"registry-{config.registry.model_name}.json",
            audit=self.root / "var" / "audit.jsonl",
        )
        return registered.version

    def approve(self, config: Config, version: str) -> None:
        approve(config, version, reason="paper test", audit=self.root / "var" / "audit.jsonl")

    def publish(self, config: Config, folder: Path) -> Workspace:
        """The data stages up to ``config.data.end``, in ``folder``."""
        workspace = Workspace(folder, config)
        workspace.prepare_data()
        return workspace


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    root = tmp_path_factory.mktemp("desk")
    uri = f"sqlite:///{root / 'mlflow' / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        desk = Desk(root, load_config(write_params(root / "params", deep_merge(TINY, DESK))))
        workspace = Workspace(root, desk.config)
        workspace.prepare_data()
        for seed, model in ((1, "m1"), (2, "m2")):
            workspace.config = desk.config.model_copy(update={"seed": seed})
            workspace.train(model)
            workspace.evaluate(model, f"reports/{model}.json")
        yield desk


def night(config: Config, published: Workspace, books: Path) -> PaperReport:
    return run_paper(
        config,
        features=published.path("features"),
        meta=published.path("feature_meta"),
        ledgers=books / "ledgers",
        state=books / "state",
        report=books / "night.json",
    )


def champion_and_challenger(desk: Desk, name: str) -> Config:
    config = desk.configured(name)
    desk.register(config, "m1")
    desk.approve(config, "1")  # no champion yet: v1 is proposed champion
    # Against the champion, a margin no model reaches: v2 is proposed as challenger.
    wide = config.model_copy(
        update={"gate": config.gate.model_copy(update={"champion_margin": 100.0})}
    )
    desk.register(wide, "m2")
    desk.approve(config, "2")
    client = MlflowClient()
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
    assert str(client.get_model_version_by_alias(name, "challenger").version) == "2"
    return config


def paper_runs(config: Config) -> list[Any]:
    found = mlflow.get_experiment_by_name(config.registry.experiment + EXPERIMENT_SUFFIX)
    if found is None:
        return []
    return mlflow.search_runs(
        [found.experiment_id],
        filter_string=f"tags.`ijules.model_name` = '{config.registry.model_name}'",
        output_format="list",
    )


def test_champion_and_challenger_trade_their_shares_and_a_rerun_adds_nothing(
    desk, tmp_path
) -> None:
    config = champion_and_challenger(desk, "paper-ab")
    tonight = desk.configured("paper-ab", NIGHT_1)
    published = desk.publish(tonight, tmp_path / "night-1")
    books = tmp_path / "books"

    report = night(tonight, published, books)
    by_slot = {book.slot: book for book in report.models}
    assert set(by_slot) == {"champion", "challenger"}
    champion, challenger = by_slot["champion"], by_slot["challenger"]
    assert (champion.version, champion.alias, champion.approved) == ("1", "champion", True)
    assert (challenger.version, challenger.alias, challenger.approved) == ("2", "challenger", True)
    assert champion.capital_usd == pytest.approx(90_000.0)
    assert challenger.capital_usd == pytest.approx(10_000.0)
    assert (champion.allocation, challenger.allocation) == (pytest.approx(0.9), 0.1)
    for book in (champion, challenger):
        # The bars after the test window's last bar, up to the last one published: the last
        # decision waits for the next bar to fill.
        assert book.outcome == "traded" and book.started
        assert book.first_bar == "2017-10-15T00:00:00+00:00"
        assert book.last_bar == "2017-10-15T23:00:00+00:00"
        assert book.standing_at == report.data_end == "2017-10-16T00:00:00+00:00"
        assert book.bars == 24
        rows = read_ledger(books / "ledgers" / f"{book.slot}.jsonl")
        assert [row.kind for row in rows] == ["start"] + ["bar"] * 24
        assert rows[0].equity_usd == book.capital_usd
        assert rows[-1].equity_usd == pytest.approx(book.equity_usd)
        assert sum(row.pnl_usd or 0.0 for row in rows) == pytest.approx(book.pnl_usd)
        assert book.pnl_cumulative_usd == pytest.approx(book.equity_usd - book.capital_usd)
        assert {row.version for row in rows} == {book.version}
    # A run per book and night, tagged with its version and alias.
    runs = paper_runs(config)
    tags = {(run.data.tags["ijules.version"], run.data.tags["ijules.paper.alias"]) for run in runs}
    assert tags == {("1", "champion"), ("2", "challenger")}
    assert {run.data.metrics["bars"] for run in runs} == {24.0}

    files = {path: path.read_bytes() for path in books.rglob("*") if path.is_file()}
    again = night(tonight, published, books)
    assert {book.outcome for book in again.models} == {"no new bars"}
    assert all(book.bars == 0 and not book.started for book in again.models)
    for path, content in files.items():
        if path.name != "night.json":
            assert path.read_bytes() == content, path
    assert len(paper_runs(config)) == len(runs)


def test_nights_in_a_row_trade_as_one_night_over_all_their_bars(desk, tmp_path) -> None:
    """Bars 1..k one night and k+1..N the next give the fills and P&L of 1..N in one night,
    with the data stages rerun each night as the nightly DAG runs them."""
    config = champion_and_challenger(desk, "paper-exact")
    first = desk.publish(desk.configured("paper-exact", NIGHT_1), tmp_path / "night-1")
    second = desk.publish(desk.configured("paper-exact", NIGHT_2), tmp_path / "night-2")
    two_nights, one_night = tmp_path / "two", tmp_path / "one"
    night(config, first, two_nights)
    night(config, second, two_nights)
    night(config, second, one_night)
    for slot in ("champion", "challenger"):
        split = read_ledger(two_nights / "ledgers" / f"{slot}.jsonl")
        whole = read_ledger(one_night / "ledgers" / f"{slot}.jsonl")
        assert len(split) == len(whole) == 1 + 60
        assert any(row.units and row.units[0] != 0.0 for row in whole)  # it does trade
        for a, b in zip(split, whole, strict=True):
            assert (a.kind, a.time, a.marked_at, a.trading_state) == (
                b.kind,
                b.time,
                b.marked_at,
                b.trading_state,
            )
            if a.kind == "start":
                assert a == b
                continue
            for field in ("action", "units", "fill_price", "units_held"):
                assert getattr(a, field) == pytest.approx(getattr(b, field), rel=1e-9, abs=1e-12)
            for field in ("pnl_usd", "cost_usd", "equity_usd", "drawdown"):
                assert getattr(a, field) == pytest.approx(getattr(b, field), rel=1e-9, abs=1e-9)
        split_state = BookState.read(two_nights / "state" / f"{slot}.json")
        whole_state = BookState.read(one_night / "state" / f"{slot}.json")
        assert split_state.memory == whole_state.memory  # the LSTM's state, exactly
        assert split_state.account is not None and whole_state.account is not None
        assert split_state.account.standing_at == whole_state.account.standing_at
        assert split_state.account.equity == pytest.approx(whole_state.account.equity, rel=1e-12)


def test_without_a_champion_the_latest_version_trades_in_shadow(desk, tmp_path) -> None:
    config = desk.configured("paper-shadow")
    desk.register(config, "m1")
    desk.register(config, "m2")  # neither approved: no alias
    published = desk.publish(desk.configured("paper-shadow", NIGHT_1), tmp_path / "night-1")
    report = night(config, published, tmp_path / "books")
    (shadow,) = report.models
    assert (shadow.slot, shadow.version, shadow.alias) == ("shadow", "2", None)
    assert (shadow.approved, shadow.allocation) == (False, 0.0)
    assert shadow.capital_usd == pytest.approx(90_000.0)  # notional: the champion's share
    assert shadow.outcome == "traded" and shadow.bars == 24
    rows = read_ledger(tmp_path / "books" / "ledgers" / "shadow.jsonl")
    assert rows[0].kind == "start" and "in shadow" in (rows[0].note or "")
    assert not any(row.approved for row in rows)
    (run,) = paper_runs(config)
    assert run.data.tags["ijules.paper.alias"] == "shadow"
    assert run.data.tags["ijules.paper.approved"] == "false"

    # v1 is approved as champion: the shadow book retires, the champion starts fresh.
    desk.approve(config, "1")
    later = desk.publish(desk.configured("paper-shadow", NIGHT_2), tmp_path / "night-2")
    after = night(config, later, tmp_path / "books")
    by_slot = {book.slot: book for book in after.models}
    assert by_slot["shadow"].outcome == "retired" and by_slot["shadow"].retired == "2"
    assert by_slot["champion"].started and by_slot["champion"].version == "1"
    retired = read_ledger(tmp_path / "books" / "ledgers" / "shadow.jsonl")[-1]
    assert retired.kind == "retire" and retired.time == "2017-10-16T00:00:00+00:00"
    # The champion's book opens where the desk's last night ended, not at v1's test window's
    # end (2017-10-15): it trades the 36 new bars, none the shadow book already traded past.
    started = read_ledger(tmp_path / "books" / "ledgers" / "champion.jsonl")
    assert started[0].kind == "start" and started[0].time == "2017-10-16T00:00:00+00:00"
    assert (by_slot["champion"].first_bar, by_slot["champion"].bars) == (
        "2017-10-16T00:00:00+00:00", 36,
    )  # fmt: skip
    assert BookState.read(tmp_path / "books" / "state" / "shadow.json").version is None

    # The champion alias is withdrawn: the champion's book retires and the emptied shadow slot
    # opens again, with a fresh book for the latest version.
    MlflowClient().delete_registered_model_alias("paper-shadow", "champion")
    third = night(config, later, tmp_path / "books")
    by_slot = {book.slot: book for book in third.models}
    assert (by_slot["champion"].outcome, by_slot["champion"].retired) == ("retired", "1")
    assert by_slot["shadow"].started and by_slot["shadow"].version == "2"
    # Reopened on the same night's bars: it stands where the champion's book stood, nothing new.
    assert (by_slot["shadow"].outcome, by_slot["shadow"].bars) == ("no new bars", 0)
    kinds = [row.kind for row in read_ledger(tmp_path / "books" / "ledgers" / "shadow.jsonl")]
    assert kinds == ["start", *["bar"] * 24, "retire", "start"]
    reopened = read_ledger(tmp_path / "books" / "ledgers" / "shadow.jsonl")[-1]
    assert reopened.time == by_slot["champion"].standing_at


def test_a_model_whose_served_weights_fail_their_checksum_does_not_trade(desk, tmp_path) -> None:
    config = champion_and_challenger(desk, "paper-tampered")
    books = tmp_path / "books"
    night(config, desk.publish(desk.configured("paper-tampered", NIGHT_1), tmp_path / "n1"), books)
    held = (books / "state" / "challenger.json").read_bytes()
    ledger = (books / "ledgers" / "challenger.jsonl").read_bytes()
    MlflowClient().set_model_version_tag("paper-tampered", "2", WEIGHTS_TAG, "0" * 64)

    later = desk.publish(desk.configured("paper-tampered", NIGHT_2), tmp_path / "n2")
    with pytest.raises(PaperError, match=r"challenger: .*v2 \(challenger\): the served weights"):
        night(config, later, books)
    assert (books / "state" / "challenger.json").read_bytes() == held
    assert (books / "ledgers" / "challenger.jsonl").read_bytes() == ledger
    report = PaperReport.read(books / "night.json")
    by_slot = {book.slot: book for book in report.models}
    assert by_slot["challenger"].outcome == "refused"
    assert "sha256" in (by_slot["challenger"].error or "")
    assert by_slot["champion"].outcome == "traded"  # the other model trades on
    assert by_slot["champion"].bars == 36


def test_a_night_that_stopped_before_its_state_is_written_is_redone_once(desk, tmp_path) -> None:
    """Rows a night wrote without committing its state are dropped and written again."""
    config = champion_and_challenger(desk, "paper-crash")
    published = desk.publish(desk.configured("paper-crash", NIGHT_1), tmp_path / "night-1")
    books = tmp_path / "books"
    night(config, published, books)
    done = {path: path.read_bytes() for path in (books / "ledgers").iterdir()}
    runs = len(paper_runs(config))
    # As if it had stopped between the ledgers and the states: no state was committed.
    shutil.rmtree(books / "state")
    night(config, published, books)
    assert {path: path.read_bytes() for path in (books / "ledgers").iterdir()} == done
    assert len(paper_runs(config)) == runs  # the MLflow runs are not logged twice
