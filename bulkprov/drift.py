"""``bulkprov drift``: each instance of a ledger as Graph has it now, against its manifest line.

Per instance the ledger set up, these reads (paced like a run's, through the
:class:`~bulkprov.client.GraphClient`): the application and the service principal (exist,
display name), the job (exists, state and quarantine, settings the manifest names), the job's
schema when the manifest gives a schema file (a path-level diff: path, desired, live), and the
keys of the saved secrets when the manifest gives credentials (Graph returns keys, never
values: a secret changed in the portal is invisible here). Instances the ledger has and the
manifest no longer lists are drift too (``run --prune`` deletes them).

What drifted is given as :class:`InstanceDrift`; its ``applied`` is the desired state the live
one amounts to (``bulkprov.desired``), which the command records in the ledger in a ``drift``
record, so that the next ``run`` puts it back with the update steps (a job paused by hand is
started again, a schema edited in the portal is PUT again, ...).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import orjson

from . import schema as schema_mod
from .desired import schema_state
from .errors import GraphError
from .graph import Graph
from .jsontypes import JSON
from .ledger import InstanceState, Replay
from .manifest import Instance
from .updates import removed

PATHS_KEPT = 50  # schema paths kept per instance (the count says how many differ in all)
VALUE_CHARS = 120  # characters of a schema value shown


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing that differs: ``what`` (application, servicePrincipal, displayName, job,
    quarantine, jobSettings, schema, secrets, manifest), as the manifest wants it and as
    Graph has it; ``paths`` for a schema: (path, desired, live)."""

    what: str
    desired: Any
    live: Any
    paths: tuple[tuple[str, str, str], ...] = ()
    more: int = 0  # schema paths that differ beyond ``paths``

    def describe(self) -> str:
        if self.paths:
            first = ", ".join(p for p, _d, _l in self.paths[:3])
            n = len(self.paths) + self.more
            return f"schema: {n} path(s) differ ({first}{', ...' if n > 3 else ''})"
        return f"{self.what}: {_show(self.desired)} wanted, {_show(self.live)} live"

    def to_json(self) -> JSON:
        out: JSON = {"field": self.what, "desired": self.desired, "live": self.live}
        if self.paths:
            out["paths"] = [{"path": p, "desired": d, "live": v} for p, d, v in self.paths]
            out["morePaths"] = self.more
        return out


@dataclass(slots=True)
class InstanceDrift:
    key: str
    display_name: str
    findings: list[Finding] = field(default_factory=list)
    applied: JSON = field(default_factory=dict)  # what the live state amounts to
    error: str | None = None  # the reads failed: not known
    removed: bool = False  # in the ledger, no longer in the manifest
    was_drifted: bool = False  # the ledger's last drift record said so
    profile: str | None = None  # a ledger of a run across many tenants: the instance's

    @property
    def drifted(self) -> bool:
        return bool(self.findings)

    @property
    def fields(self) -> list[str]:
        return list(dict.fromkeys(f.what for f in self.findings))

    def message(self) -> str:
        if self.error:
            return f"not read: {self.error}"
        return "; ".join(f.describe() for f in self.findings) or "no drift"

    def to_json(self) -> JSON:
        return {
            "key": self.key,
            **({"profile": self.profile} if self.profile is not None else {}),
            "displayName": self.display_name,
            "drifted": self.drifted,
            "removed": self.removed,
            "fields": self.fields,
            "findings": [f.to_json() for f in self.findings],
            "error": self.error,
        }


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 3] + "..."


_MISSING = object()


def schema_paths(desired: Any, live: Any, path: str = "") -> list[tuple[str, str, str]]:
    """Every leaf path where the two (normalised) schemas differ: (path, desired, live), a
    value shown as JSON (``<absent>`` where one side has none)."""
    out: list[tuple[str, str, str]] = []
    _walk(desired, live, path, out)
    return out


def _walk(a: Any, b: Any, path: str, out: list[tuple[str, str, str]]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in dict.fromkeys([*a, *b]):
            _walk(a.get(k, _MISSING), b.get(k, _MISSING), f"{path}.{k}" if path else k, out)
    elif isinstance(a, list) and isinstance(b, list):
        for i in range(max(len(a), len(b))):
            _walk(
                a[i] if i < len(a) else _MISSING,
                b[i] if i < len(b) else _MISSING,
                f"{path}[{i}]",
                out,
            )
    elif a != b:

        def show(v: Any) -> str:
            return "<absent>" if v is _MISSING else _show(v)

        out.append((path, show(a), show(b)))


async def _get(read: Any) -> Any:
    """The answer of a read, or None for a 404 (the object is gone)."""
    try:
        return await read
    except GraphError as err:
        if err.status == 404:
            return None
        raise


class Checker:
    """Reads one instance's live state and compares it with its manifest line."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self._schemas: dict[str, JSON | str] = {}

    def _desired_schema(self, inst: Instance) -> JSON | str:
        path = inst.schema_file
        assert path is not None
        if str(path) not in self._schemas:
            try:
                self._schemas[str(path)] = schema_mod.normalise(schema_mod.load(path))
            except ValueError as exc:
                self._schemas[str(path)] = f"cannot read {path.name}: {exc}"
        return self._schemas[str(path)]

    async def check(self, inst: Instance, st: InstanceState) -> InstanceDrift:
        out = InstanceDrift(inst.key, inst.display_name, was_drifted=bool(st.drifted))
        try:
            await self._check(inst, st, out)
        except GraphError as err:
            out.error = f"Graph answered {err.status} {err.code} to {err.method} {err.path}"
        return out

    async def _check(self, inst: Instance, st: InstanceState, out: InstanceDrift) -> None:
        g, ids = self.graph, st.ids
        app_id, sp_id, job_id = (
            ids.get("applicationId"),
            ids.get("servicePrincipalId"),
            ids.get("jobId"),
        )
        names: list[str] = []
        for what, oid, read in (
            ("application", app_id, g.application),
            ("servicePrincipal", sp_id, g.service_principal),
        ):
            obj = await _get(read(oid)) if oid else None
            if obj is None:
                out.findings.append(Finding(what, "present", "missing"))
            else:
                names.append(str(obj.get("displayName")))
        if len(names) < 2 or sp_id is None:
            return  # no service principal: nothing of its synchronization to read
        other = [n for n in names if n != inst.display_name]
        if other:
            out.findings.append(Finding("displayName", inst.display_name, other[0]))
            out.applied["displayName"] = other[0]
        if job_id is not None:
            await self._job(inst, sp_id, job_id, out)
        if inst.credentials:
            await self._secrets(inst, st, sp_id, out)

    async def _job(self, inst: Instance, sp_id: str, job_id: str, out: InstanceDrift) -> None:
        job = await _get(self.graph.job(sp_id, job_id))
        if job is None:
            out.findings.append(Finding("job", "present", "missing"))
            return
        code = job.status.code or ""
        if inst.start and code == "Paused":
            out.findings.append(Finding("job", "running", code))
            out.applied["start"] = False
        elif not inst.start and code == "Active":
            out.findings.append(Finding("job", "paused", code))
            out.applied["start"] = True
        q = job.status.quarantine
        if code == "Quarantine" or q is not None:
            reason = (q.reason if q is not None else None) or "Quarantine"
            out.findings.append(Finding("quarantine", "none", reason))
        if inst.job_settings:
            live = dict(job.settings)
            differ = {n: v for n, v in inst.job_settings if live.get(n) != v}
            if differ:
                out.findings.append(
                    Finding("jobSettings", differ, {n: live.get(n) for n in differ})
                )
                out.applied["jobSettings"] = [[n, live.get(n)] for n, _v in inst.job_settings]
        if inst.schema_file is not None:
            await self._schema(inst, sp_id, job_id, out)

    async def _schema(self, inst: Instance, sp_id: str, job_id: str, out: InstanceDrift) -> None:
        desired = self._desired_schema(inst)
        if isinstance(desired, str):
            out.findings.append(Finding("schema", desired, "not compared"))
            return
        live = schema_mod.normalise(await self.graph.job_schema(sp_id, job_id))
        paths = schema_paths(desired, live)
        if paths:
            kept = tuple(paths[:PATHS_KEPT])
            out.findings.append(
                Finding("schema", "the manifest's", "other", kept, len(paths) - len(kept))
            )
            out.applied["schema"] = schema_state(live)

    async def _secrets(
        self, inst: Instance, st: InstanceState, sp_id: str, out: InstanceDrift
    ) -> None:
        saved = set(await self.graph.secret_keys(sp_id))
        wanted = [r.key for r in inst.credentials]
        missing = [k for k in wanted if k not in saved]
        if missing:
            out.findings.append(Finding("secrets", sorted(wanted), sorted(saved)))
            fps = st.applied.get("credentials")
            fps = fps if isinstance(fps, dict) else {}
            out.applied["credentials"] = {k: v for k, v in fps.items() if k in saved}


def set_up(st: InstanceState | None) -> bool:
    """An instance the ledger set up, whose live state drift can read."""
    return st is not None and st.finished and bool(st.ids.get("applicationId"))


async def check_all(
    graph: Graph | Mapping[str | None, Graph],
    replay: Replay,
    instances: Iterable[Instance],
    *,
    concurrency: int = 32,
    default_profile: str | None = None,
) -> tuple[list[InstanceDrift], int]:
    """The drift of every instance the ledger set up that the manifest lists, then of those
    it no longer lists (in the ledger's order), and how many the manifest lists that the
    ledger has not set up (a run would: not drift).

    ``graph`` is one Graph, or for a ledger of a run across many tenants profile -> Graph of
    the tenants to compare (each ``concurrency`` instances at a time, the tenants at once):
    an instance is read in the tenant the ledger has its objects in, one of another tenant
    is left out, and a row that names another profile now (``default_profile`` for a row
    naming none) than the ledger's is drift of its ``profile``."""
    graphs = graph if isinstance(graph, Mapping) else {None: graph}
    checkers = {p: Checker(g) for p, g in graphs.items()}
    limiters = {p: anyio.CapacityLimiter(max(1, concurrency)) for p in graphs}
    multi = isinstance(graph, Mapping)
    keys: set[str] = set()
    todo: list[tuple[Instance, InstanceState, str | None]] = []
    pending = 0
    # every tenant of the ledger compared: a row of a profile it does not know is one a run
    # would set up (with --tenant, another tenant's)
    everyone = not multi or set(replay.tenants) <= set(graphs)
    for inst in instances:
        keys.add(inst.key)
        st = replay.instances.get(inst.key)
        row = (inst.profile or default_profile) if multi else None
        where = (st.profile if st is not None and st.profile else row) if multi else None
        if st is not None and set_up(st) and where in graphs:
            todo.append((inst, st, where))
        elif where in graphs or (everyone and where not in replay.tenants):
            pending += 1
    results: list[InstanceDrift | None] = [None] * len(todo)

    async def one(i: int, inst: Instance, st: InstanceState, where: str | None) -> None:
        async with limiters[where]:
            out = results[i] = await checkers[where].check(inst, st)
        out.profile = where
        row = inst.profile or default_profile
        if multi and row != where:
            out.findings.append(Finding("profile", row, f"{where} (the ledger's)"))

    async with anyio.create_task_group() as tg:
        for i, (inst, st, where) in enumerate(todo):
            tg.start_soon(one, i, inst, st, where)
    out = [r for r in results if r is not None]
    for st in removed(replay, keys):
        if (st.profile if multi else None) not in graphs:
            continue
        gone = InstanceDrift(st.key, st.display_name or "", removed=True, profile=st.profile)
        # (a run across many tenants has no --prune: cleanup --tenant deletes a tenant's all)
        live = "present" if multi else "present (run --prune deletes it)"
        gone.findings.append(Finding("manifest", "absent", live))
        out.append(gone)
    return out, pending
