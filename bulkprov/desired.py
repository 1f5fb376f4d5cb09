"""The manifest as desired state: what the ledger says was applied to an instance, and what
differs from its manifest line now.

Per instance the ledger holds, without secrets, the state a run applied, in the ``applied``
object of the ``data`` of the step records that applied it (folded by the ledger's replay into
``InstanceState.applied``, the later record winning)::

    credentials   {key: fingerprint}      the secrets step (its "fingerprints")
    validated     {key: fingerprint}      credentials Graph accepted (rotate_validate)
    schema        {"sha256", "parts"}     the schema step: the hash of the normalised schema
                                          file, and a short hash per rule, object mapping and
                                          directory (so a plan can name where it differs)
    jobSettings   [[name, value], ...]    the job step (a job it created, not one it adopted)
    displayName   str                     instantiate (its attempt record), rename
    start         bool                    job (false), start / job_start (true), job_pause

Ledgers written before this release have only the credentials (the secrets step's
fingerprints), the display name and whether the job was started. What a ledger does not
record is *unknown* and taken as applied as the manifest says now: :func:`diff` reports no
change for it (a schema file or job settings changed since such a ledger was written are not
seen until they change again).

:func:`diff` is pure but for reading the schema files and credential values of the instance:
it compares the applied state with the instance and names each :class:`Change`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

from . import schema as schema_mod
from .jsontypes import JSON
from .manifest import Instance

Kind = Literal["credentials", "schema", "job_settings", "display_name", "start"]
KINDS: tuple[Kind, ...] = ("credentials", "schema", "job_settings", "display_name", "start")

# Graph writes each kind of change costs (validate + secrets; PUT; PATCH; app + SP; start|pause)
WRITES: dict[Kind, int] = {
    "credentials": 2,
    "schema": 1,
    "job_settings": 1,
    "display_name": 2,
    "start": 1,
}

PATHS_SHOWN = 3  # a schema change names its first differing paths, this many

# (stored fingerprint, key, value) -> "same" | "changed" | "other-key" (Ledger.compare_fingerprint)
Compare = Callable[[str, str, str], str]


@dataclass(frozen=True, slots=True)
class Change:
    """One kind of change of an instance: ``items`` are credential key names, schema paths,
    job setting names, or the new display name / start value."""

    kind: Kind
    items: tuple[str, ...] = ()
    note: str = ""

    def describe(self) -> str:
        label = self.kind.replace("_", " ")
        text = f"{label} ({', '.join(self.items)})" if self.items else label
        return f"{text}: {self.note}" if self.note else text

    def to_json(self) -> JSON:
        out: JSON = {"kind": self.kind, "items": list(self.items)}
        if self.note:
            out["note"] = self.note
        return out


@dataclass(frozen=True, slots=True)
class Applied:
    """What the ledger says was applied to an instance (None: unknown)."""

    credentials: Mapping[str, str] | None = None
    validated: Mapping[str, str] | None = None
    schema: Mapping[str, Any] | None = None
    job_settings: tuple[tuple[str, str], ...] | None = None
    display_name: str | None = None
    start: bool | None = None

    @classmethod
    def read(cls, applied: Mapping[str, Any], display_name: str | None = None) -> Applied:
        """From ``InstanceState.applied`` (and the display name the ledger last recorded)."""

        def mapping(name: str) -> Mapping[str, str] | None:
            v = applied.get(name)
            return {str(k): str(x) for k, x in v.items()} if isinstance(v, dict) else None

        settings = applied.get("jobSettings")
        schema = applied.get("schema")
        start = applied.get("start")
        name = applied.get("displayName")
        return cls(
            credentials=mapping("credentials"),
            validated=mapping("validated"),
            schema=schema if isinstance(schema, dict) else None,
            job_settings=(
                tuple((str(p[0]), str(p[1])) for p in settings if isinstance(p, list | tuple))
                if isinstance(settings, list)
                else None
            ),
            display_name=name if isinstance(name, str) else display_name,
            start=start if isinstance(start, bool) else None,
        )


# ------------------------------------------------------------------ schema state
def _digest(value: Any) -> str:
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()


def schema_state(schema: JSON) -> JSON:
    """What the ledger keeps of a schema: the hash of it normalised, and a 12-hex hash per
    part (each rule without its object mappings, each object mapping, each directory, and
    every other top-level field)."""
    norm = schema_mod.normalise(schema)
    parts: dict[str, str] = {}
    for key, value in norm.items():
        if key == "synchronizationRules" and isinstance(value, list):
            for i, rule in enumerate(value):
                where = f"synchronizationRules[{i}]"
                if not isinstance(rule, dict):
                    parts[where] = _digest(rule)[:12]
                    continue
                rest = {k: v for k, v in rule.items() if k != "objectMappings"}
                parts[where] = _digest(rest)[:12]
                for j, om in enumerate(rule.get("objectMappings") or []):
                    parts[f"{where}.objectMappings[{j}]"] = _digest(om)[:12]
        elif key == "directories" and isinstance(value, list):
            for i, d in enumerate(value):
                parts[f"directories[{i}]"] = _digest(d)[:12]
        else:
            parts[key] = _digest(value)[:12]
    return {"sha256": _digest(norm), "parts": parts}


@dataclass(slots=True)
class SchemaFiles:
    """Schema files read once each (a template's mapping is one file for all its instances):
    path -> its :func:`schema_state`, or the error reading it."""

    states: dict[Path, JSON | str] = field(default_factory=dict)

    def state(self, path: Path) -> JSON | str:
        if path not in self.states:
            try:
                self.states[path] = schema_state(schema_mod.load(path))
            except ValueError as exc:
                self.states[path] = str(exc)
        return self.states[path]


def differing_parts(applied: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    """The parts (paths) whose hashes differ, in the schema's order."""
    old = applied.get("parts") if isinstance(applied.get("parts"), dict) else {}
    new = wanted.get("parts") if isinstance(wanted.get("parts"), dict) else {}
    assert isinstance(old, dict) and isinstance(new, dict)
    paths = list(new) + [p for p in old if p not in new]
    return [p for p in paths if old.get(p) != new.get(p)]


# ------------------------------------------------------------------ the diff
def _credentials(applied: Applied, inst: Instance, compare: Compare | None) -> Change | None:
    if applied.credentials is None or (not inst.credentials and not applied.credentials):
        return None
    stored = applied.credentials
    changed: list[str] = []
    unreadable: list[str] = []
    given = {ref.key for ref in inst.credentials}
    for ref in inst.credentials:
        fp = stored.get(ref.key)
        if fp is None:
            changed.append(ref.key)
            continue
        if compare is None:
            continue
        try:
            value = ref.resolve().reveal()
        except LookupError:
            unreadable.append(ref.key)
            continue
        if compare(fp, ref.key, value) == "changed":
            changed.append(ref.key)
    changed += [k for k in stored if k not in given]  # a key the manifest no longer gives
    if not changed and not unreadable:
        return None
    note = f"cannot read {', '.join(unreadable)}" if unreadable else ""
    return Change("credentials", tuple(changed + unreadable), note)


def _schema(applied: Applied, inst: Instance, files: SchemaFiles) -> Change | None:
    if applied.schema is None or inst.schema_file is None:
        return None  # unknown, or no file: the job's schema is left as it is
    wanted = files.state(inst.schema_file)
    if isinstance(wanted, str):
        return Change("schema", (), f"cannot read {inst.schema_file.name}: {wanted}")
    if wanted["sha256"] == applied.schema.get("sha256"):
        return None
    paths = differing_parts(applied.schema, wanted)
    return Change("schema", tuple(paths[:PATHS_SHOWN]) or ("(the schema)",))


def _job_settings(applied: Applied, inst: Instance) -> Change | None:
    if applied.job_settings is None:
        return None
    old, new = dict(applied.job_settings), dict(inst.job_settings)
    names = [n for n in [*new, *old] if old.get(n) != new.get(n)]
    return Change("job_settings", tuple(dict.fromkeys(names))) if names else None


def diff(
    applied: Applied,
    inst: Instance,
    *,
    compare: Compare | None = None,
    schemas: SchemaFiles | None = None,
) -> list[Change]:
    """What differs between what was applied to ``inst`` and its manifest line, in the order
    of :data:`KINDS`. ``compare`` tells a changed credential from a fingerprint (None: only
    the key names are compared)."""
    changes: list[Change | None] = [
        _credentials(applied, inst, compare),
        _schema(applied, inst, schemas or SchemaFiles()),
        _job_settings(applied, inst),
    ]
    if applied.display_name is not None and applied.display_name != inst.display_name:
        changes.append(Change("display_name", (inst.display_name,)))
    if applied.start is not None and applied.start != inst.start:
        changes.append(Change("start", ("true" if inst.start else "false",)))
    return [c for c in changes if c is not None]


def counts(changes: Iterable[Change]) -> dict[str, int]:
    """Changes per kind, in the order of :data:`KINDS` (kinds without any left out)."""
    seen = [c.kind for c in changes]
    return {k: seen.count(k) for k in KINDS if k in seen}


def summary(changes: Iterable[Change]) -> str:
    """``update: credentials (ClientSecret); schema (synchronizationRules[0]...)``."""
    return "; ".join(c.describe() for c in changes)
