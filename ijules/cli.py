"""The ``ijules`` command line: one subcommand per pipeline stage.

Parameters come from ``params.yaml`` (and the selected phase overlay), parsed once here. Paths
default to ``params.yaml``'s ``paths`` section; ``dvc.yaml`` passes them explicitly. Stage modules
are imported inside each command so that ``--help`` stays fast.

A failing command prints its cause as one line (``error: ...``) and exits non-zero. When
IJULES_ERROR_FILE names a file, the same line is written there too: an Airflow task runs a command
under `dvc repro`, and the task's own exception only says that the shell exited 1, so the DAGs'
failure e-mail reads the cause from this file (dags/wiring.py).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from ijules.config import AS_OF_FILE, AS_OF_KEY, Config, load_as_of, load_config, parse_as_of
from ijules.errors import IjulesError
from ijules.io import write_text

app = typer.Typer(
    name="ijules",
    help="IntradayJules: intraday RL trading with a risk-first MLOps lifecycle.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_QUIET_LOGGERS = (
    "great_expectations", "mlflow", "alembic", "evidently", "matplotlib", "urllib3",
    "httpx", "fsspec", "numexpr", "py.warnings",
)  # fmt: skip

PathOption = Annotated[Path | None, typer.Option(show_default=False)]


@dataclass(frozen=True)
class _Options:
    params: Path
    phase: str | None


@app.callback()
def _global(
    ctx: typer.Context,
    params: Annotated[Path, typer.Option(help="Parameter file.")] = Path("params.yaml"),
    phase: Annotated[
        str | None, typer.Option(help="Phase overlay from config/ (overrides params' phase).")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    _configure_logging(verbose)
    ctx.obj = _Options(params, phase)


def _config(ctx: typer.Context) -> Config:
    options: _Options = ctx.obj
    return load_config(options.params, options.phase)


def _path(given: Path | None, default: str) -> Path:
    return given if given is not None else Path(default)


@app.command()
def config(ctx: typer.Context) -> None:
    """Print the resolved parameters (params.yaml plus the phase overlay) as YAML."""
    import yaml

    resolved = _config(ctx)
    typer.echo(yaml.safe_dump(resolved.model_dump(mode="json"), sort_keys=False), nl=False)


@app.command()
def ingest(
    ctx: typer.Context,
    source: Annotated[
        Path | None, typer.Option(help="Bar file or folder (default: data.source).")
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Stage the history as of this instant (ISO 8601; naive: UTC): no bar that "
            "closes after it, no delivery dated after it. Default: the source's whole history.",
            show_default=False,
        ),
    ] = None,
    as_of_file: Annotated[
        Path | None,
        typer.Option(
            help=f"Read the as-of from this YAML file ({AS_OF_KEY}: INSTANT, or null for the "
            f"whole history); dvc.yaml passes {AS_OF_FILE}, where the DAG runs write theirs.",
            show_default=False,
        ),
    ] = None,
    output: PathOption = None,
    report: PathOption = None,
) -> None:
    """Read bars from the source into staging: canonical columns, UTC, cleaning policy applied."""
    from ijules.data.ingest import run_ingest

    if as_of is not None and as_of_file is not None:
        raise IjulesError("give the as-of once: --as-of or --as-of-file, not both")
    cfg = _config(ctx)
    instant = load_as_of(as_of_file) if as_of_file is not None else parse_as_of(as_of, "--as-of")
    result = run_ingest(
        cfg,
        source=source,
        output=_path(output, cfg.paths.staged),
        report=_path(report, cfg.paths.ingest_report),
        as_of=instant,
    )
    known = "" if result.as_of is None else f" as of {result.as_of}"
    typer.echo(
        f"ingested {result.rows_written} of {result.rows_read} rows from {result.source}{known}"
    )


@app.command()
def validate(
    ctx: typer.Context,
    staged: PathOption = None,
    output: PathOption = None,
    result: PathOption = None,
) -> None:
    """Check staged bars with Great Expectations; publish them to data/raw only if they pass."""
    from ijules.data.validate import run_validate

    cfg = _config(ctx)
    report = run_validate(
        cfg,
        staged=_path(staged, cfg.paths.staged),
        output=_path(output, cfg.paths.bars),
        result=_path(result, cfg.paths.validation),
    )
    typer.echo(
        f"validated {report.rows} bars: {report.successful_expectations} of "
        f"{report.evaluated_expectations} expectations met, {len(report.warnings)} warning(s)"
    )


@app.command()
def features(
    ctx: typer.Context,
    bars: PathOption = None,
    output: PathOption = None,
    meta: PathOption = None,
) -> None:
    """Compute past-only features and the train / validation / test split."""
    from ijules.data.features import run_features

    cfg = _config(ctx)
    feature_set = run_features(
        cfg,
        bars=_path(bars, cfg.paths.bars),
        output=_path(output, cfg.paths.features),
        meta=_path(meta, cfg.paths.feature_meta),
    )
    spans = ", ".join(f"{name} {span.rows}" for name, span in feature_set.windows.items())
    typer.echo(f"{len(feature_set.feature_names)} features; bars per window: {spans}")


@app.command()
def train(
    ctx: typer.Context,
    features: PathOption = None,
    meta: PathOption = None,
    model_dir: PathOption = None,
    checkpoints: PathOption = None,
    device: Annotated[
        str | None, typer.Option(help="auto, cpu or cuda (overrides training.device).")
    ] = None,
) -> None:
    """Train RecurrentPPO on the train window; log the run and the model to MLflow."""
    from ijules.training.train import run_train

    cfg = _config(ctx)
    if device is not None:
        if device not in ("auto", "cpu", "cuda"):
            raise IjulesError(f"--device must be auto, cpu or cuda, got {device!r}")
        cfg = cfg.model_copy(
            update={"training": cfg.training.model_copy(update={"device": device})}
        )
    result = run_train(
        cfg,
        features=_path(features, cfg.paths.features),
        meta=_path(meta, cfg.paths.feature_meta),
        model_dir=_path(model_dir, cfg.paths.model_dir),
        checkpoints=_path(checkpoints, cfg.paths.checkpoints),
        params=ctx.obj.params,
    )
    typer.echo(
        f"trained {result.timesteps} steps on {result.device} in {result.seconds:.0f} s; "
        f"MLflow run {result.run_id}"
    )


@app.command()
def evaluate(
    ctx: typer.Context,
    features: PathOption = None,
    meta: PathOption = None,
    model_dir: PathOption = None,
    metrics: PathOption = None,
    curve: PathOption = None,
    plot: PathOption = None,
) -> None:
    """Backtest the policy on the test window after costs, beside the benchmark and the rules."""
    from ijules.evaluation.evaluate import run_evaluate

    cfg = _config(ctx)
    report = run_evaluate(
        cfg,
        features=_path(features, cfg.paths.features),
        meta=_path(meta, cfg.paths.feature_meta),
        model_dir=_path(model_dir, cfg.paths.model_dir),
        metrics=_path(metrics, cfg.paths.metrics),
        curve=_path(curve, cfg.paths.equity_curve),
        plot=_path(plot, cfg.paths.equity_plot),
    )
    agent, passive = report.agent, report.baselines.passive_buy_and_hold
    rule = report.baselines.by_name()[report.best_rule]
    typer.echo(
        f"test window: agent Sharpe {agent.sharpe:.2f}, return {agent.total_return:.2%}; "
        f"passive buy-and-hold Sharpe {passive.sharpe:.2f}, return {passive.total_return:.2%}; "
        f"best rule {report.best_rule} Sharpe {rule.sharpe:.2f}"
    )


@app.command()
def seeds(
    ctx: typer.Context,
    features: PathOption = None,
    meta: PathOption = None,
    model_dir: PathOption = None,
    metrics: PathOption = None,
    output: PathOption = None,
    checkpoints: PathOption = None,
) -> None:
    """Train the other seeds and test them: the agent's figures over seeds, with their spread."""
    from ijules.evaluation.seeds import run_seeds

    cfg = _config(ctx)
    spread = run_seeds(
        cfg,
        features=_path(features, cfg.paths.features),
        meta=_path(meta, cfg.paths.feature_meta),
        model_dir=_path(model_dir, cfg.paths.model_dir),
        metrics=_path(metrics, cfg.paths.metrics),
        output=_path(output, cfg.paths.seeds),
        checkpoints=_path(checkpoints, cfg.paths.checkpoints),
    )
    sharpes = ", ".join(f"{run.seed}: {run.sharpe:.2f}" for run in spread.runs)
    typer.echo(
        f"test Sharpe by seed ({sharpes}); mean {spread.mean_sharpe:.2f}, lower bound "
        f"{spread.sharpe_lower_bound:.2f} at {spread.confidence:.0%}"
    )


@app.command()
def register(
    ctx: typer.Context,
    model_dir: PathOption = None,
    metrics: PathOption = None,
    features: PathOption = None,
    meta: PathOption = None,
    output: PathOption = None,
    walk_forward: PathOption = None,
    stress: PathOption = None,
    seeds: PathOption = None,
    audit: PathOption = None,
    cards: PathOption = None,
) -> None:
    """Register the model in MLflow and review it: rejected, or awaiting a person's approval.

    The review reads the test-window metrics over training seeds, the walk-forward summary and
    the stress results, and recomputes the rest from the model the registry serves. No alias
    moves until `ijules approve`.
    """
    from ijules.registry.register import run_register
    from ijules.registry.review import table_markdown as review_table

    cfg = _config(ctx)
    result = run_register(
        cfg,
        model_dir=_path(model_dir, cfg.paths.model_dir),
        metrics=_path(metrics, cfg.paths.metrics),
        features=_path(features, cfg.paths.features),
        meta=_path(meta, cfg.paths.feature_meta),
        output=_path(output, cfg.paths.registration),
        walk_forward=_path(walk_forward, cfg.paths.walk_forward),
        stress=_path(stress, cfg.paths.stress),
        seeds=_path(seeds, cfg.paths.seeds),
        audit=_path(audit, cfg.paths.audit),
        cards=_path(cards, cfg.paths.cards),
    )
    typer.echo(
        f"{result.model_name} v{result.version}: {result.status} ({'; '.join(result.reasons)})"
    )
    # The last line is for the scheduler: the approval shows the table and answers this version.
    table = review_table(result.gate.checks) if result.gate is not None else ""
    typer.echo(json.dumps({"version": result.version, "status": result.status, "table": table}))


@app.command()
def drift(
    ctx: typer.Context,
    features: PathOption = None,
    meta: PathOption = None,
    html: PathOption = None,
    snapshot: PathOption = None,
    metrics: PathOption = None,
) -> None:
    """Write an Evidently drift report of the newest bars against the trading model's training
    window (the champion's; with none, the shadow's; with no model, the current train split)."""
    from ijules.health.reference import drift_reference
    from ijules.monitoring.drift import run_drift

    cfg = _config(ctx)
    summary = run_drift(
        cfg,
        reference_window=drift_reference(cfg),
        features=_path(features, cfg.paths.features),
        meta=_path(meta, cfg.paths.feature_meta),
        html=_path(html, cfg.paths.drift_html),
        snapshot=_path(snapshot, cfg.paths.drift_snapshot),
        metrics=_path(metrics, cfg.paths.drift_metrics),
    )
    typer.echo(
        f"{summary.drifted_features} of {summary.features} features drifted "
        f"(share {summary.drift_share:.2f}); report: {_path(html, cfg.paths.drift_html)}"
    )


@app.command()
def paper(
    ctx: typer.Context,
    features: PathOption = None,
    meta: PathOption = None,
    ledgers: PathOption = None,
    state: PathOption = None,
    report: PathOption = None,
) -> None:
    """Paper-trade the bars published since the last night: champion, challenger (or shadow).

    Each book continues from its carried state; its ledger gets a row per bar. A model whose
    served weights fail their checksum is refused (the others trade) and the command fails.
    """
    from ijules.paper.night import run_paper

    cfg = _config(ctx)
    result = run_paper(
        cfg,
        features=_path(features, cfg.paths.features),
        meta=_path(meta, cfg.paths.feature_meta),
        ledgers=_path(ledgers, cfg.paths.paper_ledgers),
        state=_path(state, cfg.paths.paper_state),
        report=_path(report, cfg.paths.paper_report),
    )
    if result.note:
        typer.echo(result.note)
    for book in result.models:
        role = book.alias or "shadow"
        typer.echo(
            f"paper {book.slot}: v{book.version} ({role}) {book.outcome}, {book.bars} bar(s); "
            f"P&L tonight {book.pnl_usd:+,.2f} USD, cumulative {book.pnl_cumulative_usd:+,.2f} "
            f"USD, drawdown {book.drawdown:.2%}"
        )


@app.command()
def health(
    ctx: typer.Context,
    features: PathOption = None,
    meta: PathOption = None,
    drift_metrics: PathOption = None,
    paper_report: PathOption = None,
    ledgers: PathOption = None,
    state: PathOption = None,
    report: PathOption = None,
    history: PathOption = None,
    charts: PathOption = None,
) -> None:
    """Score the trading model's health tonight; fire its alerts; say what they start.

    The champion's (with none, the shadow's) live paper record against its own review evidence,
    and the data's drift against its training window. The last line is the report as JSON.
    """
    from ijules.health.night import run_health

    cfg = _config(ctx)
    paths = cfg.paths
    result = run_health(
        cfg,
        features=_path(features, paths.features),
        meta=_path(meta, paths.feature_meta),
        drift_metrics=_path(drift_metrics, paths.drift_metrics),
        paper_report=_path(paper_report, paths.paper_report),
        ledgers=_path(ledgers, paths.paper_ledgers),
        state=_path(state, paths.paper_state),
        report=_path(report, paths.health_report),
        history=_path(history, paths.health_history),
        charts=_path(charts, paths.health_charts),
    )
    judged = "no model" if result.version is None else f"v{result.version} ({result.slot})"
    score = "not measured" if result.score is None else f"{result.score:.2f}"
    typer.echo(f"health of {judged}: {score}")
    for alert in result.alerts:
        typer.echo(f"  {'NEW ' if alert.new else ''}{alert.severity}: {alert.key}: {alert.message}")
    typer.echo(result.actions.model_dump_json())


@app.command(name="risk-report")
def risk_report(
    ctx: typer.Context,
    source: PathOption = None,
    var_backtest: PathOption = None,
    breakers: PathOption = None,
) -> None:
    """Backtest every VaR method and replay the circuit breakers on the daily index sample."""
    from ijules.evaluation.risk_report import run_risk_report

    cfg = _config(ctx)
    report = run_risk_report(
        cfg,
        source=_path(source, cfg.risk_report.source),
        var_output=_path(var_backtest, cfg.paths.var_backtest),
        breakers_output=_path(breakers, cfg.paths.breakers),
    )
    fired = ", ".join(
        f"{name} {window.breakers_fired}" for name, window in report.breakers.windows.items()
    )
    typer.echo(f"{len(report.var.backtests)} VaR backtests; breakers fired per window: {fired}")


@app.command()
def tune(
    ctx: typer.Context,
    features: PathOption = None,
    meta: PathOption = None,
    output: PathOption = None,
) -> None:
    """Search hyper-parameters (Optuna) on the walk-forward folds; never the test window."""
    from ijules.evaluation.tuning import run_tuning

    cfg = _config(ctx)
    report = run_tuning(
        cfg,
        features=_path(features, cfg.paths.features),
        meta=_path(meta, cfg.paths.feature_meta),
        output=_path(output, cfg.paths.tuning),
    )
    best = (
        "no trial completed"
        if report.best_value is None
        else f"best trial {report.best_number}: mean fold Sharpe {report.best_value:.2f} "
        f"with {report.best_params}"
    )
    typer.echo(
        f"study {report.study}: {report.trials} trials ({report.complete} complete, "
        f"{report.pruned} pruned); {best}"
    )


@app.command()
def research(
    ctx: typer.Context,
    output: PathOption = None,
    work: PathOption = None,
) -> None:
    """Search one policy pooled over research.instruments; test the best per instrument."""
    from ijules.evaluation.research import run_research

    cfg = _config(ctx)
    summary = run_research(
        cfg,
        output=_path(output, cfg.paths.research),
        work=_path(work, cfg.paths.research_work),
    )
    typer.echo(
        f"research study {summary.study}: {summary.trials} trials ({summary.complete} "
        f"complete, {summary.pruned} pruned); best trial {summary.best_number}: "
        f"{summary.best_params}"
    )
    typer.echo(summary.conclusion)


@app.command(name="walk-forward-fold")
def walk_forward_fold(
    ctx: typer.Context,
    fold: Annotated[int, typer.Option(help="Fold number (walk_forward.fold_ids).")],
    features: PathOption = None,
    meta: PathOption = None,
    output: PathOption = None,
    checkpoints: PathOption = None,
) -> None:
    """Train and test one walk-forward fold on the development bars."""
    from ijules.artifacts import fold_file
    from ijules.evaluation.walk_forward import run_fold

    cfg = _config(ctx)
    folds = Path(cfg.paths.walk_forward_folds)
    result = run_fold(
        cfg,
        fold_id=fold,
        features=_path(features, cfg.paths.features),
        meta=_path(meta, cfg.paths.feature_meta),
        output=_path(output, str(folds / fold_file(fold))),
        checkpoints=_path(checkpoints, cfg.paths.checkpoints),
    )
    typer.echo(
        f"fold {fold}: agent Sharpe {result.agent.sharpe:.2f}, passive buy-and-hold "
        f"{result.baselines.passive_buy_and_hold.sharpe:.2f}, best rule {result.best_rule} "
        f"{result.baselines.by_name()[result.best_rule].sharpe:.2f}; "
        f"{'passed' if result.passed else 'failed'}"
    )


@app.command(name="walk-forward")
def walk_forward(
    ctx: typer.Context,
    folds: PathOption = None,
    output: PathOption = None,
    ledger: PathOption = None,
    tuning: PathOption = None,
    research: PathOption = None,
) -> None:
    """Gather the folds into the walk-forward table: pass rate, PSR and DSR per fold. The folds,
    and the tuning and research studies' trials, enter the trial ledger the DSR counts."""
    from ijules.artifacts import RESEARCH_SUMMARY
    from ijules.evaluation.walk_forward import run_summary

    cfg = _config(ctx)
    result = run_summary(
        cfg,
        folds=_path(folds, cfg.paths.walk_forward_folds),
        output=_path(output, cfg.paths.walk_forward),
        ledger=_path(ledger, cfg.paths.trials),
        tuning=_path(tuning, cfg.paths.tuning),
        research=_path(research, cfg.paths.research) / RESEARCH_SUMMARY,
    )
    typer.echo(
        f"walk-forward: {result.folds_passed} of {result.folds} folds passed "
        f"(required {result.required_pass_rate:.0%}); {result.trials} trial(s)"
    )


@app.command(name="stress-scenario")
def stress_scenario(
    ctx: typer.Context,
    scenario: Annotated[str, typer.Option(help="Scenario name (stress.scenarios).")],
    features: PathOption = None,
    meta: PathOption = None,
    model_dir: PathOption = None,
    output: PathOption = None,
) -> None:
    """Backtest the policy under one stress scenario and judge its survival."""
    from ijules.artifacts import scenario_file
    from ijules.evaluation.stress import run_scenario

    cfg = _config(ctx)
    report = run_scenario(
        cfg,
        scenario=scenario,  # type: ignore[arg-type]  # checked against stress.scenarios
        features=_path(features, cfg.paths.features),
        meta=_path(meta, cfg.paths.feature_meta),
        model_dir=_path(model_dir, cfg.paths.model_dir),
        output=_path(output, str(Path(cfg.paths.stress_scenarios) / scenario_file(scenario))),
    )
    result = report.result
    verdict = "survived" if result.survived else "FAILED " + ", ".join(result.checks.unmet)
    typer.echo(f"stress {scenario}: {verdict} (agent max drawdown {result.max_drawdown:.2%})")


@app.command()
def stress(
    ctx: typer.Context,
    scenarios: PathOption = None,
    model_dir: PathOption = None,
    output: PathOption = None,
) -> None:
    """Gather the stress scenarios' results on the current model; judge survival of them all."""
    from ijules.evaluation.stress import run_stress

    cfg = _config(ctx)
    result = run_stress(
        cfg,
        scenarios=_path(scenarios, cfg.paths.stress_scenarios),
        model_dir=_path(model_dir, cfg.paths.model_dir),
        output=_path(output, cfg.paths.stress),
    )
    typer.echo(f"stress: survived {result.survived} of {result.scenarios_run} scenarios")


@app.command()
def report(
    ctx: typer.Context,
    metrics: PathOption = None,
    curve: PathOption = None,
    model_dir: PathOption = None,
    walk_forward: PathOption = None,
    stress: PathOption = None,
    output: PathOption = None,
    html: PathOption = None,
    rolling: PathOption = None,
    seeds: PathOption = None,
) -> None:
    """Write the performance report (plan schema, red flags) and its HTML page."""
    from ijules.evaluation.report import run_report

    cfg = _config(ctx)
    result = run_report(
        cfg,
        metrics=_path(metrics, cfg.paths.metrics),
        curve=_path(curve, cfg.paths.equity_curve),
        model_dir=_path(model_dir, cfg.paths.model_dir),
        walk_forward=_path(walk_forward, cfg.paths.walk_forward),
        stress=_path(stress, cfg.paths.stress),
        output=_path(output, cfg.paths.performance_report),
        html_output=_path(html, cfg.paths.performance_html),
        rolling=_path(rolling, cfg.paths.performance_rolling),
        seeds=_path(seeds, cfg.paths.seeds),
    )
    flags = result["baseline_performance"]["red_flags"]
    typer.echo(f"performance report: {len(flags)} red flag(s); {cfg.paths.performance_html}")


ActorOption = Annotated[
    str | None,
    typer.Option(help="Who acts (default: $IJULES_ACTOR, else the OS user); audited."),
]


@app.command()
def promote(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="Model version to move the alias to.")],
    alias: Annotated[str, typer.Option(help="champion or challenger.")] = "champion",
    reason: Annotated[str, typer.Option(help="Why; audited (required with --force).")] = "",
    force: Annotated[
        bool, typer.Option(help="Allow a version the gate rejected or never decided.")
    ] = False,
    actor: ActorOption = None,
    audit: PathOption = None,
) -> None:
    """Point an alias at a model version whose gate passed (audited; recorded for rollback)."""
    from ijules.registry.aliases import promote as move

    cfg = _config(ctx)
    previous = move(
        cfg,
        version,
        alias,
        # A forced promotion must say why; a plain one may keep the default.
        reason=reason if force else reason or "manual promotion",
        force=force,
        audit=_path(audit, cfg.paths.audit),
        actor=actor,
    )
    was = f"was v{previous}" if previous else "was unset"
    typer.echo(f"{cfg.registry.model_name}@{alias} -> v{version} ({was})")


ReasonOption = Annotated[str, typer.Option(help="Why; audited.")]


@app.command()
def approve(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="The version awaiting approval.")],
    reason: ReasonOption = "",
    actor: ActorOption = None,
    audit: PathOption = None,
    output: PathOption = None,
    cards: PathOption = None,
) -> None:
    """Approve a version whose automatic review passed: it takes the alias the review proposed."""
    from ijules.registry.approval import approve as give_alias

    cfg = _config(ctx)
    result = give_alias(
        cfg,
        version,
        reason=reason or "approved",
        audit=_path(audit, cfg.paths.audit),
        output=_path(output, cfg.paths.registration),
        actor=actor,
        cards=_path(cards, cfg.paths.cards),
    )
    typer.echo(f"{result.model_name} v{result.version}: {result.status} (by {result.decided_by})")


@app.command()
def reject(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="The version awaiting approval.")],
    reason: ReasonOption = "",
    actor: ActorOption = None,
    audit: PathOption = None,
    output: PathOption = None,
    cards: PathOption = None,
) -> None:
    """Reject a version awaiting approval, with a reason: no alias moves."""
    from ijules.registry.approval import reject as decline

    cfg = _config(ctx)
    result = decline(
        cfg,
        version,
        reason=reason,
        audit=_path(audit, cfg.paths.audit),
        output=_path(output, cfg.paths.registration),
        actor=actor,
        cards=_path(cards, cfg.paths.cards),
    )
    typer.echo(f"{result.model_name} v{result.version}: {result.status} (by {result.decided_by})")


@app.command()
def card(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="The reviewed version.")],
    output_dir: Annotated[
        Path | None, typer.Option(help="Folder for the card (default: paths.cards).")
    ] = None,
) -> None:
    """Write a version's model card (use, limits, data, review, decision) as Markdown and HTML."""
    from ijules.registry.card import run_card

    cfg = _config(ctx)
    files = run_card(cfg, version, output_dir=_path(output_dir, cfg.paths.cards))
    typer.echo(str(files.markdown))
    typer.echo(str(files.html))


@app.command()
def rollback(
    ctx: typer.Context,
    reason: Annotated[str, typer.Option(help="Why; audited.")] = "manual rollback",
    actor: ActorOption = None,
    audit: PathOption = None,
) -> None:
    """Move the champion alias back to the version it replaced (audited)."""
    from ijules.registry.aliases import rollback as roll_back

    cfg = _config(ctx)
    current, restored = roll_back(
        cfg, reason=reason, audit=_path(audit, cfg.paths.audit), actor=actor
    )
    typer.echo(f"{cfg.registry.model_name}@champion: v{current} -> v{restored}")


@app.command()
def audit(ctx: typer.Context, trail: PathOption = None) -> None:
    """Verify the audit trail's hash chain and print it; fails at the first altered line."""
    from ijules.registry.audit import HEAD_TAG, verify, verify_head
    from ijules.tracking import registered_model_tag

    cfg = _config(ctx)
    path = _path(trail, cfg.paths.audit)
    entries = verify(path)
    head = registered_model_tag(cfg.registry.experiment, cfg.registry.model_name, HEAD_TAG)
    verify_head(entries, head, path)
    for e in entries:
        alias = f" @{e.alias}" if e.alias else ""
        typer.echo(
            f"{e.seq:>4} {e.time} {e.actor:<12} {e.action:<13} {e.model} v{e.version}{alias}: "
            f"{e.reason}" + (f" [{'; '.join(e.checks)}]" if e.checks else "")
        )
    typer.echo(f"{path}: {len(entries)} entries, hash chain intact")


@app.command()
def summary(ctx: typer.Context) -> None:
    """Print what the last run produced: rows, metrics, the model's alias, drift, the e-mail."""
    from ijules.summary import render_summary

    typer.echo(render_summary(_config(ctx)))


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


ERROR_FILE_ENV = "IJULES_ERROR_FILE"


def _record_error(message: str) -> None:
    """Write the failure's one line to the file IJULES_ERROR_FILE names, if it names one."""
    target = os.environ.get(ERROR_FILE_ENV)
    if not target:
        return
    line = " ".join(part.strip() for part in message.splitlines() if part.strip())
    try:
        write_text(Path(target), line + "\n")
    except OSError as err:
        # The command's own failure is what matters; a lost record only costs the e-mail its cause.
        typer.echo(f"warning: could not write the error to {target}: {err}", err=True)


def main() -> None:
    """Run the CLI; an expected failure prints one line and exits 1."""
    # No usage telemetry (the network may be closed), and no progress bars in captured logs.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if not sys.stderr.isatty():
        os.environ.setdefault("TQDM_DISABLE", "1")
    try:
        app(standalone_mode=False)
    except IjulesError as err:
        _record_error(str(err))
        typer.echo(f"error: {err}", err=True)
        raise SystemExit(1) from None
    except typer.TyperException as err:  # a usage error (Typer's own click raises these)
        _record_error(err.format_message())
        show = getattr(err, "show", None)  # usage and the error, as click prints them
        if callable(show):
            show()
        else:
            typer.echo(f"Error: {err.format_message()}", err=True)
        raise SystemExit(err.exit_code) from None
    except typer.Abort:
        _record_error("aborted")
        typer.echo("aborted", err=True)
        raise SystemExit(130) from None
    except Exception as err:
        # Unexpected: the traceback stays, and the record still gets the failure's one line.
        _record_error(f"{type(err).__name__}: {err}")
        raise


# A registered model's baseline: `ijules baseline reproduce VERSION`.
baseline_app = typer.Typer(
    help="A registered version's baseline: reproduce it from its commit and parameters.",
    no_args_is_help=True,
)
app.add_typer(baseline_app, name="baseline")


@baseline_app.command(name="reproduce")
def baseline_reproduce(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="The registered version to reproduce.")],
    tolerance: Annotated[
        float,
        typer.Option(
            help="Largest relative difference allowed: 0 (equal) on the machine that trained "
            "it; more on another, whose torch and BLAS kernels round differently."
        ),
    ] = 0.0,
    output: Annotated[
        Path | None, typer.Option(help="Result JSON (default: reports/baseline/v<N>.json).")
    ] = None,
) -> None:
    """Rerun a registered version's pipeline; compare its test metrics with the registered ones.

    The pipeline runs up to the evaluation at the version's commit and parameters, in a
    throw-away git worktree and MLflow store; exits 1 naming any metric that differs beyond the
    tolerance.
    """
    from ijules.registry.baseline import outcome, reproduce, table

    cfg = _config(ctx)
    result = reproduce(
        cfg,
        version,
        tolerance=tolerance,
        output=_path(output, f"reports/baseline/v{version}.json"),
    )
    typer.echo(table(result))
    if not result.reproduced:
        raise IjulesError(outcome(result))
    typer.echo(outcome(result))


@app.command()
def phases(
    ctx: typer.Context,
    output: Annotated[
        Path | None,
        typer.Option(help="Folder for summary.json and summary.md (default: reports/phases)."),
    ] = None,
) -> None:
    """Set each phase overlay's DVC experiment beside the master plan's success criteria.

    Reads the checked-out commit's experiments (`dvc exp show`): a phase's is the newest that
    set only `phase` (`make phases` runs them). Overlays refused by name are listed, not run.
    """
    from ijules.evaluation.phases import SUMMARY_MD, run_phases

    cfg = _config(ctx)
    folder = _path(output, "reports/phases")
    summary = run_phases(cfg, params=ctx.obj.params, output=folder)
    for row in summary.phases:
        judged = "; ".join(
            f"{c.criterion}: {c.outcome}" for c in row.criteria if c.outcome != "not measured"
        )
        where = f"experiment {row.experiment}" if row.experiment else row.status
        typer.echo(f"{row.phase} ({where}): {row.gate}" + (f" ({judged})" if judged else ""))
    typer.echo(str(folder / SUMMARY_MD))
