"""Day 2: the instances a ledger finished whose manifest line changed since, and those the
manifest no longer lists.

``plan`` marks a finished instance whose desired state differs ``update`` (with the list of
changes, ``desired.diff``) and lists the ledger's instances the manifest dropped as
``removed from manifest``; ``run`` takes the update steps (``steps.update``) for the former and,
with ``--prune``, deletes the latter the way ``cleanup`` does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from .desired import Applied, Change, Compare, SchemaFiles, diff
from .jsontypes import JSON
from .ledger import REMOVED, InstanceState, Ledger, Replay
from .manifest import Instance

REMOVED_ACTION = "removed from manifest"


def comparer(ledger_path: Path, replay: Replay) -> Compare:
    """``Ledger.compare_fingerprint`` for the ledger ``replay`` was read from (read only)."""
    reader = Ledger(ledger_path)
    salt = replay.header.salt if replay.header is not None else None
    reader.salt = bytes.fromhex(salt or "")
    return reader.compare_fingerprint


def changes_of(
    state: InstanceState | None,
    inst: Instance,
    compare: Compare | None,
    schemas: SchemaFiles | None = None,
    *,
    finished_only: bool = True,
) -> list[Change]:
    """What an instance the ledger finished needs to match its manifest line (nothing for one
    not finished: a run sets it up from its manifest line anyway; ``finished_only`` false:
    for one just set up, or resumed after an update failed)."""
    if state is None or (finished_only and not state.finished):
        return []
    applied = Applied.read(state.applied, state.display_name)
    return diff(applied, inst, compare=compare, schemas=schemas)


def removed(replay: Replay, keys: set[str]) -> list[InstanceState]:
    """The ledger's instances with objects in Graph that ``keys`` (the manifest's) lacks."""
    return [
        st
        for key, st in replay.instances.items()
        if key not in keys and st.status != REMOVED and st.ids.get("applicationId")
    ]


def plan_rows(
    rows: list[JSON], replay: Replay, instances: Iterable[Instance], compare: Compare
) -> list[JSON]:
    """Turn the ``done`` rows of ``plan`` whose instance changed into ``update`` rows (with
    ``changes``), and answer the rows of the instances removed from the manifest."""
    by_key = {r["key"]: r for r in rows}
    schemas = SchemaFiles()
    keys: set[str] = set()
    for inst in instances:
        keys.add(inst.key)
        row = by_key.get(inst.key)
        if row is None or row.get("action") not in ("done", "quarantined"):
            continue
        changes = changes_of(replay.instances.get(inst.key), inst, compare, schemas)
        if changes:
            row["action"] = "update"
            row["changes"] = [c.to_json() for c in changes]
            row["note"] = "; ".join(c.describe() for c in changes)
    out: list[JSON] = []
    for st in removed(replay, keys):
        rec = st.record
        out.append(
            {
                "key": st.key,
                "where": "ledger:-",
                "displayName": st.display_name or "",
                "template": (rec.template if rec is not None else None) or "",
                "schema": None,
                "action": REMOVED_ACTION,
                "applicationId": st.ids.get("applicationId"),
                "note": "run --prune deletes it (as cleanup does)",
            }
        )
    return out


def change_counts(rows: Iterable[JSON]) -> dict[str, int]:
    """Per kind of change, the instances the plan updates for it."""
    seen: Counter[str] = Counter()
    for r in rows:
        for c in r.get("changes") or []:
            seen[c["kind"]] += 1
    return dict(seen)
