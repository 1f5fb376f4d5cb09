"""Undo a run: delete the jobs, service principals and applications its ledger says it created.

What a run created is read from its ledger: an application the run instantiated (``created``,
or ``recovered`` after a lost answer) is deleted with its service principal and job; one it
adopted is kept, and only the job the run created on it is deleted, unless
``include_adopted``. An instance whose instantiate was sent but never answered has no ids in
the ledger: its application is looked up (same template and name, not claimed by another
instance) like a resumed run would.

Objects go in reverse order of creation (job, service principal, application; deleting the
application would take the other two with it, but each is deleted on its own so the ledger
shows each). A 404 means the object is already gone. Every deletion is recorded in the same
ledger (``cleanup`` records), and an instance whose objects are all deleted gets a
``removed`` instance record, so a second cleanup does nothing and an interrupted one finishes
the rest. Deleted applications and service principals stay restorable for 30 days in
``/directory/deletedItems``; ``purge`` deletes them from there too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field

import anyio
import structlog

from .errors import (
    STOPS_THE_COMMAND,
    BulkProvError,
    GraphError,
    TransportError,
    UnsafeRequest,
)
from .graph import Graph
from .jsontypes import JSON
from .ledger import InstanceState, Ledger, Replay, now_iso
from .pool import each
from .records import CleanupRecord, Event, InstanceRecord, Status
from .redact import shorten

log = structlog.get_logger("bulkprov.cleanup")

JOB, SP, APP, DELETED = "job", "servicePrincipal", "application", "deletedItem"
ORDER = (JOB, SP, APP)


@dataclass(slots=True)
class Target:
    """One instance's objects to delete."""

    key: str
    name: str
    service_principal_id: str | None  # the job's parent, for the job's URL
    objects: list[tuple[str, str]] = field(default_factory=list)  # (kind, id) in order
    purge: list[str] = field(default_factory=list)  # ids to delete from deletedItems
    closes: bool = False  # the application goes: a ``removed`` record ends the instance
    removed_ids: dict[str, str] = field(default_factory=dict)  # kind -> id, for that record
    lookup: tuple[str, str] | None = None  # (template id, display name) of a lost instantiate
    found: bool = False  # objects came from the lookup, not from the ledger's ids
    profile: str | None = None  # a ledger of a run across many tenants: the instance's profile

    def counts(self) -> Counter[str]:
        c = Counter(kind for kind, _id in self.objects)
        if self.purge:
            c[DELETED] += len(self.purge)
        return c


@dataclass(slots=True)
class Kept:
    key: str
    name: str
    application_id: str
    why: str


@dataclass(slots=True)
class CleanupPlan:
    targets: list[Target]
    kept: list[Kept]

    def counts(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for t in self.targets:
            total.update(t.counts())
        return total

    @property
    def lookups(self) -> int:
        return sum(1 for t in self.targets if t.lookup is not None)


@dataclass(slots=True)
class CleanupResult:
    deleted: Counter[str] = field(default_factory=Counter)  # kind -> deleted now
    gone: Counter[str] = field(default_factory=Counter)  # kind -> already gone (404)
    removed: int = 0  # instances closed with a ``removed`` record
    errors: list[JSON] = field(default_factory=list)
    interrupted: bool = False
    # a ledger of a run across many tenants: profile -> kind (and "removed", "errors") -> count
    tenants: dict[str, Counter[str]] = field(default_factory=dict)

    def count(self, profile: str | None, what: str) -> None:
        if profile is not None:
            self.tenants.setdefault(profile, Counter())[what] += 1

    @property
    def ok(self) -> bool:
        return not self.errors and not self.interrupted


def _name(st: InstanceState) -> str:
    name = st.record.display_name if st.record else None
    return str(name or st.attempt.get("displayName") or st.key)


def plan(
    replay: Replay,
    *,
    include_adopted: bool = False,
    purge: bool = False,
    profiles: Collection[str] | None = None,
) -> CleanupPlan:
    """What a cleanup of this ledger deletes, from the ledger alone; given ``profiles`` (a
    ledger of a run across many tenants), of the instances of those profiles only."""
    targets: list[Target] = []
    kept: list[Kept] = []
    for st in replay.instances.values():
        if profiles is not None and st.profile not in profiles:
            continue
        t, k = _plan_one(st, include_adopted=include_adopted, purge=purge)
        if t is not None:
            t.profile = st.profile
            targets.append(t)
        if k is not None:
            kept.append(k)
    if profiles is not None:  # tenant by tenant (each in ledger order)
        targets.sort(key=lambda t: str(t.profile))
    return CleanupPlan(targets, kept)


def _plan_removed(st: InstanceState, *, purge: bool) -> Target | None:
    """An instance already removed: what ``purge`` still deletes from deletedItems."""
    final = st.record
    ids = (final.removed_ids if final else None) or {}
    purged = final.purged if final else None
    if not purge or purged or not any(ids.get(k) for k in (SP, APP)):
        return None
    t = Target(st.key, _name(st), None, closes=True, removed_ids=dict(ids))
    t.purge = [ids[k] for k in (SP, APP) if ids.get(k) and (DELETED, ids[k]) not in st.removed]
    return t


def _plan_one(
    st: InstanceState, *, include_adopted: bool, purge: bool
) -> tuple[Target | None, Kept | None]:
    """One instance's objects to delete, and the application kept if it is not the run's."""
    key = st.key
    if st.status == Status.REMOVED:
        return _plan_removed(st, purge=purge), None
    ids = st.ids
    app_id, sp_id, job_id = (
        ids.get("applicationId"),
        ids.get("servicePrincipalId"),
        ids.get("jobId"),
    )
    if app_id is None:
        if st.instantiate_attempts and st.attempt.get("templateId"):
            # a POST was sent and its answer never recorded: its app may exist
            t = Target(key, _name(st), None, closes=True)
            t.lookup = (st.attempt["templateId"], st.attempt.get("displayName", ""))
            return t, None
        return None, None
    ours = st.origin in ("created", "recovered")
    delete_app = ours or (include_adopted and st.origin == "adopted")
    kept = None
    if not delete_app:
        why = "adopted" if st.origin == "adopted" else "origin not recorded"
        kept = Kept(key, _name(st), app_id, why)
    t = Target(key, _name(st), sp_id, closes=delete_app)
    if job_id and sp_id and (delete_app or not st.job_adopted):
        t.objects.append((JOB, job_id))
        t.removed_ids[JOB] = job_id
    if delete_app:
        if sp_id:
            t.objects.append((SP, sp_id))
            t.removed_ids[SP] = sp_id
        t.objects.append((APP, app_id))
        t.removed_ids[APP] = app_id
        if purge:
            t.purge = [i for i in (sp_id, app_id) if i]
    t.objects = [o for o in t.objects if o not in st.removed]
    t.purge = [i for i in t.purge if (DELETED, i) not in st.removed]
    return (t if t.objects or t.purge or t.closes else None), kept


async def resolve_lookups(
    graph: Graph | Mapping[str | None, Graph],
    cleanup: CleanupPlan,
    replay: Replay,
    *,
    purge: bool = False,
) -> None:
    """Find the applications of instantiates whose answer was lost (read-only), each in the
    tenant of its profile (``graph``: one Graph, or profile -> Graph)."""
    claimed = replay.claimed("applicationId")
    for t in list(cleanup.targets):
        if t.lookup is None:
            continue
        graph_t = _graph_of(graph, t)
        template_id, name = t.lookup
        found = await graph_t.find_applications(template_id, name)
        apps = [a for a in found if a["id"] not in claimed]
        if not apps:
            t.objects = []
        for app in apps:
            try:
                sp: JSON | None = await graph_t.service_principal_by_app_id(app["appId"])
            except GraphError as err:
                if err.status != 404:
                    raise
                sp = None
            if sp is not None:
                t.objects.append((SP, sp["id"]))
                t.removed_ids[SP] = sp["id"]
            t.objects.append((APP, app["id"]))
            t.removed_ids[APP] = app["id"]
            t.found = True
            claimed[app["id"]] = t.key
            if purge:
                t.purge.extend(i for kind, i in t.objects if kind in (SP, APP))


def _graph_of(graph: Graph | Mapping[str | None, Graph], t: Target) -> Graph:
    """The Graph a target's objects are in: the one given, or its profile's."""
    return graph[t.profile] if isinstance(graph, Mapping) else graph


class Cleaner:
    """Deletes a plan's objects, ``concurrency`` instances at a time (of each tenant, for a
    ledger of a run across many: the tenants at once), recording each."""

    def __init__(
        self,
        graph: Graph | Mapping[str | None, Graph],
        ledger: Ledger,
        *,
        concurrency: int = 16,
        on_deleted: Callable[[str, str, str], None] | None = None,
        on_target: Callable[[str, bool], None] | None = None,
    ) -> None:
        self.graph = graph
        self.ledger = ledger
        self.concurrency = max(1, concurrency)
        self.on_deleted = on_deleted  # (key, kind, "done" | "gone")
        # (key, ok): an instance's deletions all went through, or one of them failed
        self.on_target = on_target
        self.stop = anyio.Event()
        self.result = CleanupResult()

    def request_stop(self) -> None:
        """Drain: no new deletion starts; the ledger records what was done."""
        self.stop.set()

    async def run(self, cleanup: CleanupPlan) -> CleanupResult:
        async def one(target: Target) -> None:
            with structlog.contextvars.bound_contextvars(instance=target.key):
                ok = await self._one(target)
            if ok is not None and self.on_target is not None:
                self.on_target(target.key, ok)

        groups: dict[str | None, list[Target]] = {}
        for t in cleanup.targets:
            groups.setdefault(t.profile, []).append(t)
        async with anyio.create_task_group() as tg:
            for group in groups.values():
                tg.start_soon(self._each, one, group)
        self.result.interrupted = self.stop.is_set()
        return self.result

    async def _each(self, one: Callable[[Target], Awaitable[None]], group: list[Target]) -> None:
        await each(one, group, workers=self.concurrency, buffer=self.concurrency, stop=self.stop)

    async def _one(self, t: Target) -> bool | None:
        """Delete one instance's objects: True when all went, False when one failed, None
        when a stop came first."""
        for kind, object_id in t.objects:
            if self.stop.is_set():
                return None
            if not await self._delete(t, kind, object_id):
                return False
        for object_id in t.purge:
            if self.stop.is_set():
                return None
            if not await self._delete(t, DELETED, object_id):
                return False
        if t.closes:
            tenant = _graph_of(self.graph, t).client.conn.tenant_id if t.profile else None
            self.ledger.append(
                InstanceRecord(
                    key=t.key,
                    status=Status.REMOVED,
                    at=now_iso(),
                    display_name=t.name,
                    removed_ids=t.removed_ids,
                    purged=bool(t.purge) or not t.removed_ids,
                    profile=t.profile,
                    tenant=tenant,
                )
            )
            self.result.removed += 1
            self.result.count(t.profile, "removed")
        return True

    async def _delete(self, t: Target, kind: str, object_id: str) -> bool:
        graph = _graph_of(self.graph, t)
        try:
            if kind == JOB:
                assert t.service_principal_id is not None
                await graph.delete_job(t.service_principal_id, object_id)
            elif kind == SP:
                await graph.delete_service_principal(object_id)
            elif kind == APP:
                await graph.delete_application(object_id)
            else:
                await graph.purge_deleted_item(object_id)
            event = Event.DONE
        except GraphError as err:
            if err.status != 404:
                return self._error(t, kind, object_id, err.code, err.graph_message, err.request_id)
            event = Event.GONE
        except STOPS_THE_COMMAND:
            raise
        except (TransportError, UnsafeRequest, BulkProvError) as err:
            return self._error(t, kind, object_id, type(err).__name__, str(err), None)
        found = True if t.found else None
        self.ledger.append(
            CleanupRecord(
                key=t.key,
                kind=kind,
                object_id=object_id,
                event=event,
                found=found,
                profile=t.profile,
            )
        )
        (self.result.deleted if event == Event.DONE else self.result.gone)[kind] += 1
        if event == Event.DONE:
            self.result.count(t.profile, kind)
        if self.on_deleted is not None:
            self.on_deleted(t.key, kind, str(event))
        return True

    def _error(
        self, t: Target, kind: str, object_id: str, code: str, message: str, rid: str | None
    ) -> bool:
        self.ledger.append(
            CleanupRecord(
                key=t.key,
                kind=kind,
                object_id=object_id,
                event=Event.ERROR,
                code=code,
                message=shorten(message, 500, self.ledger.redactor),
                request_id=rid,
                profile=t.profile,
            )
        )
        self.result.count(t.profile, "errors")
        self.result.errors.append(
            {
                "key": t.key,
                **({"profile": t.profile} if t.profile is not None else {}),
                "object": kind,
                "id": object_id,
                "code": code,
                "message": self.ledger.redactor.text(message),
            }
        )
        log.warning("delete_failed", object=kind, id=object_id, code=code)
        return False
