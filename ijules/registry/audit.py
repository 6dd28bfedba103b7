"""The audit trail: every change to what trades, append-only and hash-chained.

One JSON line per event (a registration and its automatic review, an approval or rejection, a
promotion, a forced promotion, a rollback): who, when, which version, why, and the checks it rests
on or overrides. Each line carries the hash of the line before it and its own hash over everything
it says, so an edited, deleted, inserted or reordered line breaks the chain at that line, and
:func:`verify` names it.
Appends take an exclusive lock and are flushed to disk before the registry moves an alias, so
the trail is never behind the registry. The latest event per version is mirrored as MLflow tags.
"""

from __future__ import annotations

import fcntl
import getpass
import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from ijules.artifacts import Record
from ijules.errors import RegistryError

# register: a version and its automatic review; approve / reject: a person's answer to it.
Action = Literal["register", "approve", "reject", "promote", "force_promote", "rollback"]
GENESIS = "0" * 64  # the "previous hash" of the first line


class AuditError(RegistryError):
    """The trail was altered: a line edited, deleted, inserted or reordered."""


class AuditEntry(Record):
    """One event of the trail."""

    seq: int
    time: str  # UTC, ISO 8601
    actor: str
    action: Action
    model: str
    version: str
    alias: str | None
    reason: str
    checks: list[str]  # the checks it rests on (register) or overrides (force_promote)
    previous: str  # the hash of the line before
    hash: str

    def digest(self) -> str:
        """The hash over everything this line says but its own hash."""
        body = self.model_dump(exclude={"hash"})
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def default_actor() -> str:
    """Who acts: ``IJULES_ACTOR`` (set by a scheduler or a service), else the OS user."""
    return os.environ.get("IJULES_ACTOR") or getpass.getuser()


def verify(path: Path) -> list[AuditEntry]:
    """Read the trail and check every link; raise :class:`AuditError` at the first break."""
    if not path.is_file():
        return []
    entries: list[AuditEntry] = []
    previous = GENESIS
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            entry = AuditEntry.model_validate_json(line)
        except ValidationError:
            raise AuditError(f"{path} line {number}: not an audit entry") from None
        if entry.seq != number:
            raise AuditError(
                f"{path} line {number}: sequence {entry.seq}, expected {number} "
                "(a line was deleted, inserted or moved)"
            )
        if entry.previous != previous:
            raise AuditError(
                f"{path} line {number}: does not follow line {number - 1} "
                "(a line before it was edited, deleted or moved)"
            )
        if entry.digest() != entry.hash:
            raise AuditError(f"{path} line {number}: its content does not match its hash (edited)")
        entries.append(entry)
        previous = entry.hash
    return entries


def append(
    path: Path,
    *,
    action: Action,
    model: str,
    version: str,
    alias: str | None,
    reason: str,
    checks: list[str],
    actor: str | None = None,
) -> AuditEntry:
    """Verify the trail, then add one event at its end (under an exclusive lock, flushed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            entries = verify(path)
            body = {
                "seq": len(entries) + 1,
                "time": datetime.now(UTC).isoformat(timespec="microseconds"),
                "actor": actor or default_actor(),
                "action": action,
                "model": model,
                "version": version,
                "alias": alias,
                "reason": reason,
                "checks": checks,
                "previous": entries[-1].hash if entries else GENESIS,
                "hash": "",
            }
            draft = AuditEntry.model_validate(body)
            entry = draft.model_copy(update={"hash": draft.digest()})
            handle.write(entry.model_dump_json() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    return entry


HEAD_TAG = "ijules.audit.head"  # on the registered model: the newest line's "seq:hash"


def mirror(client: object, entry: AuditEntry) -> None:
    """Record the event on the model version, and the trail's newest line on the registered
    model, as MLflow tags (the trail stays the record; the head shows a cut tail)."""
    set_tag = client.set_model_version_tag  # type: ignore[attr-defined]
    prefix = f"ijules.audit.{entry.seq:06d}"
    set_tag(entry.model, entry.version, prefix, f"{entry.action} by {entry.actor} at {entry.time}")
    set_tag(entry.model, entry.version, f"{prefix}.reason", entry.reason or "-")
    client.set_registered_model_tag(  # type: ignore[attr-defined]
        entry.model, HEAD_TAG, f"{entry.seq}:{entry.hash}"
    )


def verify_head(entries: list[AuditEntry], head: str | None, path: Path) -> None:
    """Check the trail reaches the registry's recorded head: lines cut from its end, which the
    chain alone cannot show, break here."""
    if head is None:
        return
    seq, _, digest = head.partition(":")
    known = {entry.seq: entry.hash for entry in entries}
    if known.get(int(seq)) != digest:
        raise AuditError(
            f"{path}: the registry records line {seq} ({digest[:12]}...) as the newest, but the "
            f"trail holds {len(entries)} lines that do not include it (lines were cut or replaced)"
        )
