"""The model card of a reviewed version: what it is for, what it rests on, how it was judged.

Model-risk guidance (the Federal Reserve's SR 11-7) asks that a model in use be documented well
enough for someone new to it to understand its purpose, its limits, its data and how it was
validated. The card does that for every reviewed version, rejected ones included, from two sources:

- the facts gathered when the version is reviewed (:func:`collect_facts`): the data and its DVC
  hashes, the parameter digests, the code revision, the packages, the weights' SHA-256 and the
  test window, walk-forward and stress tables. They are logged to the training run beside the
  review (``review/card_facts.json``), so they stay what they were at review time;
- what the registry says now (:func:`ijules.registry.register.recorded`): every row of the
  review, and the decision, with who made it and why.

:func:`run_card` (``ijules card VERSION``) renders both as Markdown and as a self-contained HTML
page, writes them to ``paths.cards`` and logs them to the run under ``card/``. Registering,
approving and rejecting do the same, so the latest card shows the latest decision.
"""

from __future__ import annotations

import html
import importlib.metadata
import logging
import platform
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from ijules.artifacts import (
    CARD_FACTS,
    CardCode,
    CardData,
    CardFold,
    CardParameters,
    CardScenario,
    CardSystem,
    CardTestWindow,
    FeatureSet,
    LockedOutput,
    MetricsReport,
    ModelCardFacts,
    Registration,
    StressReport,
    WalkForwardSummary,
)
from ijules.config import Config
from ijules.errors import RegistryError
from ijules.io import write_text
from ijules.registry.register import REVIEW_ARTIFACTS, recorded, registered_version
from ijules.registry.review import challenge_summary
from ijules.tracking import git_revision

log = logging.getLogger(__name__)

CARD_ARTIFACTS = "card"  # the run's artifact folder holding the rendered card
DVC_LOCK = "dvc.lock"
LOCKED_STAGES = ("ingest", "validate", "features")  # the stages whose outputs are the data
PACKAGES = ("torch", "stable-baselines3", "sb3-contrib", "mlflow", "numpy", "pandas")
UNKNOWN = "unknown"  # what tracking.git_revision says outside a git checkout
_DIRTY = "-dirty"


class RenderedCard(NamedTuple):
    """A card as Markdown and as a self-contained HTML page."""

    markdown: str
    html: str


class CardFiles(NamedTuple):
    """Where a card was written."""

    markdown: Path
    html: Path


# --- the facts, gathered at review ------------------------------------------------------------


def collect_facts(
    config: Config,
    *,
    registration: Registration,
    registered_at_ms: int,
    feature_set: FeatureSet,
    evaluation: MetricsReport,
    walk_forward: WalkForwardSummary | None,
    stress: StressReport | None,
    run_tags: Mapping[str, str],
    lock: Path,
) -> ModelCardFacts:
    """Gather the card's facts about the version ``registration`` reviewed.

    ``run_tags`` are the training run's tags (its lineage: code revision, parameters, data
    hashes); ``lock`` is the project's ``dvc.lock``.
    """
    if registration.weights_sha256 is None:
        raise RegistryError(f"{registration.model_name} v{registration.version}: no weights sha256")
    revision = git_revision()
    passive = evaluation.baselines.passive_buy_and_hold
    rule = evaluation.baselines.by_name()[evaluation.best_rule]
    window = evaluation.window
    return ModelCardFacts(
        model_name=registration.model_name,
        version=registration.version,
        run_id=registration.run_id,
        registered_at=datetime.fromtimestamp(registered_at_ms / 1000, UTC).isoformat(
            timespec="seconds"
        ),
        weights_sha256=registration.weights_sha256,
        data=CardData(
            symbols=feature_set.symbols,
            frequency=feature_set.frequency,
            windows=dict(feature_set.windows),
            dvc_outputs=locked_outputs(lock),
            trained_on={
                key.removeprefix("dvc.md5."): value
                for key, value in sorted(run_tags.items())
                if key.startswith("dvc.md5.")
            },
        ),
        parameters=CardParameters(
            phase=config.phase,
            policy_md5=config.policy_digest(),
            walk_forward_md5=config.walk_forward_digest(),
            config_md5=config.digest(),
            trained_policy_md5=run_tags.get("params.md5"),
        ),
        code=CardCode(
            revision=revision.removesuffix(_DIRTY),
            dirty=None if revision == UNKNOWN else revision.endswith(_DIRTY),
            trained_revision=run_tags.get("git.revision"),
        ),
        system=system(),
        test_window=CardTestWindow(
            start=window.start,
            end=window.end,
            bars=window.bars,
            agent_sharpe=evaluation.agent.sharpe,
            passive_sharpe=passive.sharpe,
            best_rule=evaluation.best_rule,
            best_rule_sharpe=rule.sharpe,
        ),
        walk_forward=None
        if walk_forward is None
        else [
            CardFold(
                fold=row.fold,
                test_first=row.test_first,
                test_last=row.test_last,
                agent_sharpe=row.agent_sharpe,
                passive_sharpe=row.passive_sharpe,
                best_rule=row.best_rule,
                best_rule_sharpe=row.best_rule_sharpe,
                psr=row.psr,
                dsr=row.dsr,
                passed=row.passed,
            )
            for row in walk_forward.table
        ],
        stress=None
        if stress is None
        else [
            CardScenario(
                scenario=result.scenario,
                survived=result.survived,
                agent_total_return=result.agent.total_return,
                max_drawdown=result.max_drawdown,
            )
            for result in stress.scenarios
        ],
    )


def locked_outputs(lock: Path) -> list[LockedOutput]:
    """The data stages' outputs as ``lock`` records them; none when there is no lock file."""
    if not lock.is_file():
        return []
    stages = (yaml.safe_load(lock.read_text(encoding="utf-8")) or {}).get("stages") or {}
    found = []
    for stage in LOCKED_STAGES:
        for out in (stages.get(stage) or {}).get("outs") or []:
            if "md5" not in out:
                raise RegistryError(f"{lock}: stage {stage}'s output {out.get('path')} has no md5")
            found.append(LockedOutput(stage=stage, path=str(out["path"]), md5=str(out["md5"])))
    return found


def system() -> CardSystem:
    """The interpreter, the platform and the versions of the packages the policy depends on."""
    return CardSystem(
        python=platform.python_version(),
        platform=platform.platform(),
        packages={name: _installed(name) for name in PACKAGES},
    )


def _installed(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def log_facts(client: Any, facts: ModelCardFacts) -> None:
    """Log ``facts`` to their run, beside the review (``review/card_facts.json``)."""
    with tempfile.TemporaryDirectory(prefix="ijules-card-") as folder:
        path = Path(folder) / CARD_FACTS
        facts.write(path)
        client.log_artifact(facts.run_id, str(path), REVIEW_ARTIFACTS)


def logged_facts(client: Any, run_id: str) -> ModelCardFacts | None:
    """The card facts logged to ``run_id``; None when there are none (reviewed before cards)."""
    logged = {Path(item.path).name for item in client.list_artifacts(run_id, REVIEW_ARTIFACTS)}
    if CARD_FACTS not in logged:
        return None
    with tempfile.TemporaryDirectory(prefix="ijules-card-") as folder:
        path = client.download_artifacts(run_id, f"{REVIEW_ARTIFACTS}/{CARD_FACTS}", folder)
        return ModelCardFacts.read(Path(path))


# --- rendering --------------------------------------------------------------------------------


class Table(NamedTuple):
    """A table of text cells, rendered as Markdown or HTML."""

    header: tuple[str, ...]
    rows: list[tuple[str, ...]]


Block = str | Table  # a paragraph or a table
Section = tuple[str, list[Block]]  # a heading and what follows it


def intended_use(facts: ModelCardFacts) -> str:
    """The intended use: fixed, but for the instrument and the bars."""
    data = facts.data
    symbols = ", ".join(data.symbols)
    plural = "s" if len(data.symbols) > 1 else ""
    return (
        "Intended use: research and paper trading of an intraday strategy, nothing else. The "
        f"policy trades {symbols} on {data.frequency} bars, the instrument{plural} and bars it "
        "was trained on; other instruments, bar frequencies and markets are outside what it was "
        "trained and tested on. "
        "It must not trade live capital without a person's recorded approval (the decision "
        "below) and the firm's own model-risk sign-off: approval here moves a registry alias "
        "for paper trading, nothing more."
    )


def limits(facts: ModelCardFacts) -> str:
    """The known limits, the comparison with the simple benchmarks read from the numbers."""
    test = facts.test_window
    a, p, r = test.agent_sharpe, test.passive_sharpe, test.best_rule_sharpe
    passive, rule = "passive buy-and-hold", f"the best rule ({test.best_rule})"
    beaten = [(name, value) for name, value in ((passive, p), (rule, r)) if a > value]
    unbeaten = [(name, value) for name, value in ((passive, p), (rule, r)) if a <= value]
    if not beaten:
        versus = (
            f"Out of sample the agent does not beat the simple benchmarks: Sharpe ratio {a:.2f} "
            f"against {p:.2f} for {passive} and {r:.2f} for {rule}."
        )
    elif unbeaten:
        (loser, lost_to), (winner, won_over) = unbeaten[0], beaten[0]
        versus = (
            f"Out of sample the agent does not beat {loser}: Sharpe ratio {a:.2f} against "
            f"{lost_to:.2f} (it beats {winner}, {won_over:.2f})."
        )
    else:
        versus = (
            f"On this window the agent's Sharpe ratio {a:.2f} beats {passive} ({p:.2f}) and "
            f"{rule} ({r:.2f}); one window is not evidence of a lasting edge."
        )
    folds = ""
    if facts.walk_forward:
        wins = sum(
            f.agent_sharpe > max(f.passive_sharpe, f.best_rule_sharpe) for f in facts.walk_forward
        )
        folds = f" In the walk-forward it beats both in {wins} of {len(facts.walk_forward)} folds."
    return (
        f"Known limits: the held-out test window is {test.bars} bars ({test.start} to "
        f"{test.end}), one stretch of one market's history, too short to show how the policy "
        f"behaves across regimes. {versus}{folds} Every figure here is a backtest after "
        "modelled costs, not live fills."
    )


def render_card(facts: ModelCardFacts, registration: Registration) -> RenderedCard:
    """Render the card of ``facts``' version, with the review and the decision
    ``registration`` records, as Markdown and as a self-contained HTML page."""
    if (facts.model_name, facts.version) != (registration.model_name, registration.version):
        raise RegistryError(
            f"the card facts describe {facts.model_name} v{facts.version}, the registration "
            f"{registration.model_name} v{registration.version}"
        )
    title = f"Model card: {facts.model_name} v{facts.version}"
    sections = _sections(facts, registration)
    return RenderedCard(_markdown(title, sections), _html(title, sections))


def _sections(facts: ModelCardFacts, registration: Registration) -> list[Section]:
    return [
        ("Model", [_identity(facts, registration)]),
        ("Intended use and limits", [intended_use(facts), limits(facts)]),
        ("Decision", _decision(registration)),
        ("Automatic review", _review(registration)),
        ("Out-of-sample test window", _test_window(facts)),
        ("Walk-forward", _walk_forward(facts)),
        ("Stress scenarios", _stress(facts)),
        ("Data", _data(facts)),
        ("Parameters", _parameters(facts)),
        ("Code and system", _code(facts)),
    ]


def _identity(facts: ModelCardFacts, registration: Registration) -> Table:
    return Table(
        ("field", "value"),
        [
            ("model", f"{facts.model_name} v{facts.version}"),
            ("MLflow run", facts.run_id),
            ("registered", facts.registered_at),
            ("weights sha256", facts.weights_sha256),
            ("status", registration.status),
        ],
    )


def _decision(registration: Registration) -> list[Block]:
    blocks: list[Block] = [
        Table(
            ("field", "value"),
            [
                ("status", registration.status),
                ("proposed alias", registration.proposed_alias or "none"),
                ("alias now", registration.alias or "none"),
                ("decided by", registration.decided_by or "nobody yet"),
                ("decision reason", registration.decision_reason or "-"),
                ("reasons", "; ".join(registration.reasons) or "-"),
            ],
        )
    ]
    if registration.challenge is not None:
        blocks.append(challenge_summary(registration.challenge))
    return blocks


def _review(registration: Registration) -> list[Block]:
    gate = registration.gate
    if gate is None:
        return ["No review table is recorded for this version."]
    verdict = "every check passed" if gate.passed else f"{len(gate.reasons)} check(s) failed"
    return [
        f"Every check of the automatic review, on what the registry serves: {verdict}.",
        Table(
            ("check", "rule", "threshold", "value", "passed", "note"),
            [
                (c.metric, c.rule, f"{c.threshold:.4g}", f"{c.value:.4g}", _yes(c.passed), c.note)
                for c in gate.checks
            ],
        ),
    ]


def _test_window(facts: ModelCardFacts) -> list[Block]:
    test = facts.test_window
    return [
        f"{test.start} to {test.end}, {test.bars} bars, after costs.",
        Table(
            ("strategy", "Sharpe ratio"),
            [
                ("agent", f"{test.agent_sharpe:.3f}"),
                ("passive buy-and-hold", f"{test.passive_sharpe:.3f}"),
                (f"best rule ({test.best_rule})", f"{test.best_rule_sharpe:.3f}"),
            ],
        ),
    ]


def _walk_forward(facts: ModelCardFacts) -> list[Block]:
    if facts.walk_forward is None:
        return ["No walk-forward summary was given to the review."]
    header = ("fold", "test window", "agent Sharpe", "passive Sharpe", "best rule Sharpe")
    return [
        Table(
            (*header, "PSR", "DSR", "passed"),
            [
                (
                    str(f.fold),
                    f"{f.test_first} to {f.test_last}",
                    f"{f.agent_sharpe:.3f}",
                    f"{f.passive_sharpe:.3f}",
                    f"{f.best_rule_sharpe:.3f} ({f.best_rule})",
                    f"{f.psr:.3f}",
                    f"{f.dsr:.3f}",
                    _yes(f.passed),
                )
                for f in facts.walk_forward
            ],
        )
    ]


def _stress(facts: ModelCardFacts) -> list[Block]:
    if facts.stress is None:
        return ["No stress report was given to the review."]
    return [
        Table(
            ("scenario", "survived", "agent return", "max drawdown"),
            [
                (
                    s.scenario,
                    _yes(s.survived),
                    f"{s.agent_total_return:.2%}",
                    f"{s.max_drawdown:.2%}",
                )
                for s in facts.stress
            ],
        )
    ]


def _data(facts: ModelCardFacts) -> list[Block]:
    data = facts.data
    locked = {out.md5 for out in data.dvc_outputs}
    blocks: list[Block] = [
        f"{', '.join(data.symbols)}, {data.frequency} bars.",
        Table(
            ("window", "start", "end", "rows"),
            [(name, w.start, w.end, str(w.rows)) for name, w in data.windows.items()],
        ),
    ]
    if data.dvc_outputs:
        blocks += [
            f"The data stages' outputs as {DVC_LOCK} recorded them at review:",
            Table(
                ("stage", "path", "md5"),
                [(out.stage, out.path, out.md5) for out in data.dvc_outputs],
            ),
        ]
    else:
        blocks.append(f"No {DVC_LOCK} was found at review.")
    if data.trained_on:
        blocks += [
            "What the training run read (its dvc.md5 tags):",
            Table(
                ("input", "md5", f"in {DVC_LOCK}"),
                [(name, md5, _yes(md5 in locked)) for name, md5 in data.trained_on.items()],
            ),
        ]
        if not locked.issuperset(data.trained_on.values()):
            blocks.append(
                f"The training run read data that {DVC_LOCK} does not record: the policy cannot "
                "be tied to the locked data outputs above."
            )
    return blocks


def _parameters(facts: ModelCardFacts) -> list[Block]:
    p = facts.parameters
    blocks: list[Block] = [
        Table(
            ("digest", "value"),
            [
                ("phase", p.phase),
                ("policy (Config.policy_digest)", p.policy_md5),
                ("walk-forward (Config.walk_forward_digest)", p.walk_forward_md5),
                ("every section (Config.digest)", p.config_md5),
                ("policy at training (params.md5 tag)", p.trained_policy_md5 or UNKNOWN),
            ],
        )
    ]
    if p.trained_policy_md5 is not None and p.trained_policy_md5 != p.policy_md5:
        blocks.append(
            "The policy configuration at review differs from the one it was trained with."
        )
    return blocks


def _code(facts: ModelCardFacts) -> list[Block]:
    code, system = facts.code, facts.system
    state = {None: "unknown state", True: "dirty", False: "clean"}[code.dirty]
    trained = code.trained_revision or UNKNOWN
    if trained.endswith(_DIRTY):  # tracking.git_revision's form
        trained = f"{trained.removesuffix(_DIRTY)} (dirty)"
    return [
        Table(
            ("item", "version"),
            [
                ("git revision at review", f"{code.revision} ({state})"),
                ("git revision at training", trained),
                ("python", system.python),
                ("platform", system.platform),
                *system.packages.items(),
            ],
        )
    ]


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def _markdown(title: str, sections: list[Section]) -> str:
    lines = [f"# {title}"]
    for heading, blocks in sections:
        lines += ["", f"## {heading}"]
        for block in blocks:
            lines.append("")
            if isinstance(block, Table):
                lines.append("| " + " | ".join(block.header) + " |")
                lines.append("|" + "---|" * len(block.header))
                lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in block.rows]
            else:
                lines.append(block)
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    # A pipe would end the cell, a newline the row.
    return text.replace("|", "\\|").replace("\n", " ")


def _html(title: str, sections: list[Section]) -> str:
    parts = [
        "<!DOCTYPE html>",
        "<html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:72em}"
        "table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}"
        "th{background:#f4f4f4}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for heading, blocks in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        for block in blocks:
            if isinstance(block, Table):
                head = "".join(f"<th>{html.escape(h)}</th>" for h in block.header)
                body = "".join(
                    "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                    for row in block.rows
                )
                parts.append(f"<table><tr>{head}</tr>{body}</table>")
            else:
                parts.append(f"<p>{html.escape(block)}</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


# --- writing and logging ----------------------------------------------------------------------


def publish(client: Any, registration: Registration, output_dir: Path) -> CardFiles | None:
    """Write ``registration``'s card to ``output_dir`` as ``<model>-v<N>.md`` and ``.html``, and
    log both to its run under ``card/``.

    None, with a warning, when the run holds no card facts: a version reviewed before cards were
    has none, and its approval must not fail for want of one.
    """
    facts = logged_facts(client, registration.run_id)
    if facts is None:
        log.warning(
            "%s v%s has no card facts (%s/%s); no card written",
            registration.model_name,
            registration.version,
            REVIEW_ARTIFACTS,
            CARD_FACTS,
        )
        return None
    rendered = render_card(facts, registration)
    stem = f"{registration.model_name}-v{registration.version}"
    files = CardFiles(output_dir / f"{stem}.md", output_dir / f"{stem}.html")
    write_text(files.markdown, rendered.markdown)
    write_text(files.html, rendered.html)
    for path in files:
        client.log_artifact(registration.run_id, str(path), CARD_ARTIFACTS)
    return files


def run_card(config: Config, version: str, *, output_dir: Path) -> CardFiles:
    """Write ``version``'s model card (with the registry's current decision) to ``output_dir``
    and log it to the version's run."""
    client, name, target = registered_version(config, version)
    files = publish(client, recorded(client, name, target), output_dir)
    if files is None:
        raise RegistryError(
            f"{name} v{version} has no card facts ({REVIEW_ARTIFACTS}/{CARD_FACTS}): it was not "
            "reviewed, or was reviewed before model cards; register a new version"
        )
    return files
