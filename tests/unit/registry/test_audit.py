"""The audit trail: hash-chained, so an edited, deleted, inserted, moved or cut line is found."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from ijules.registry.audit import AuditError, append, verify, verify_head


@pytest.fixture
def trail(tmp_path: Path) -> Path:
    path = tmp_path / "audit" / "trail.jsonl"
    for version, action in (("1", "register"), ("1", "promote"), ("2", "register")):
        append(
            path,
            action=action,  # type: ignore[arg-type]
            model="ijules-policy",
            version=version,
            alias="champion" if action == "promote" else None,
            reason=f"{action} v{version}",
            checks=["sharpe 0.4 >= 0"],
            actor="risk-officer",
        )
    append(
        path,
        action="force_promote",
        model="ijules-policy",
        version="2",
        alias="champion",
        reason="desk override, ticket 42",
        checks=["sharpe -0.2 is not >= 0"],
        actor="head-of-desk",
    )
    return path


def test_an_intact_trail_verifies_with_who_what_and_why(trail: Path) -> None:
    entries = verify(trail)
    assert [e.seq for e in entries] == [1, 2, 3, 4]
    assert [e.action for e in entries] == ["register", "promote", "register", "force_promote"]
    forced = entries[-1]
    assert (forced.actor, forced.reason, forced.checks) == (
        "head-of-desk",
        "desk override, ticket 42",
        ["sharpe -0.2 is not >= 0"],
    )
    assert all(e.previous == p.hash for p, e in itertools.pairwise(entries))
    verify_head(entries, f"4:{forced.hash}", trail)


def _rewrite(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def test_an_edited_line_is_named(trail: Path) -> None:
    lines = trail.read_text().splitlines()
    edited = json.loads(lines[3])
    edited["reason"] = "routine"  # hide the override
    _rewrite(trail, [*lines[:3], json.dumps(edited)])
    with pytest.raises(AuditError, match=r"line 4: its content does not match its hash"):
        verify(trail)


def test_an_edited_line_with_a_recomputed_hash_breaks_the_next_link(trail: Path) -> None:
    from ijules.registry.audit import AuditEntry

    lines = trail.read_text().splitlines()
    entry = AuditEntry.model_validate_json(lines[1]).model_copy(update={"actor": "someone-else"})
    forged = entry.model_copy(update={"hash": entry.digest()})
    _rewrite(trail, [lines[0], forged.model_dump_json(), *lines[2:]])
    with pytest.raises(AuditError, match=r"line 3: does not follow line 2"):
        verify(trail)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda lines: [lines[0], *lines[2:]], r"line 2: sequence 3, expected 2"),
        (lambda lines: [lines[1], lines[0], *lines[2:]], r"line 1: sequence 2, expected 1"),
        (lambda lines: [*lines[:2], lines[1], *lines[2:]], r"line 3: sequence 2, expected 3"),
    ],
    ids=["deleted", "moved", "inserted"],
)
def test_a_deleted_moved_or_inserted_line_is_named(trail: Path, change, message) -> None:
    _rewrite(trail, change(trail.read_text().splitlines()))
    with pytest.raises(AuditError, match=message):
        verify(trail)


def test_a_cut_tail_is_found_against_the_registry_head(trail: Path) -> None:
    head = verify(trail)[-1]
    _rewrite(trail, trail.read_text().splitlines()[:-1])  # the override removed
    entries = verify(trail)  # the chain alone cannot show it
    with pytest.raises(AuditError, match=r"records line 4 .* as the newest"):
        verify_head(entries, f"{head.seq}:{head.hash}", trail)


def test_nothing_is_appended_to_an_altered_trail(trail: Path) -> None:
    lines = trail.read_text().splitlines()
    _rewrite(trail, [lines[0], *lines[2:]])
    with pytest.raises(AuditError):
        append(
            trail,
            action="rollback",
            model="ijules-policy",
            version="1",
            alias="champion",
            reason="r",
            checks=[],
        )
    assert len(trail.read_text().splitlines()) == 3
