"""A mock tenant kept on disk, so that the commands after a ``--mock`` run find what it set up.

``bulkprov run MANIFEST --mock --ledger runs/x.jsonl`` keeps the tenant of its embedded mock in
``runs/x.mock/`` (:func:`beside`; mode 700, every file 600), and ``status``, ``monitor``,
``cleanup`` and a second ``run`` with ``--mock`` and that ledger serve the same tenant again:

- ``tenant.json``, the snapshot: the clock (Graph seconds since the tenant was made, and the
  date it was made), the tenant ids, every application, service principal and job (status,
  schedule, executions, quarantine, settings, the schema where it differs from the
  template's), the newest :data:`LOG_KEEP` provisioning-log entries and the counters;
- ``journal.jsonl``: after every write request, and before it is answered, the objects it
  changed (each whole, one numbered line, one ``write(2)``);
- ``tls/``: the CA, the server certificate and its key, kept while they are valid;
- ``lock``: held while a mock serves the tenant, so that two commands do not fork it.

A snapshot records the number of the last journal line it includes; the journal is then
emptied, and on restore only the lines after that number are applied (a crash between the two
re-applies nothing older). A snapshot is written when the tenant is opened, every few seconds
while requests come in, and when the mock stops (then with ``fsync``). So a ``kill -9`` loses
no object that a ledger could have heard of (an application is journaled before its
``instantiate`` is answered); it loses the job cycles and provisioning-log entries played
since the last snapshot, which play again from the saved schedule.

Credential values are never written: for each saved secret key, whether it was set and which
of the catalog's patterns for that key it matched (:class:`~.catalog.KeptSecret`), which is
all a connector judges, so bad credentials still quarantine a restored job.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import orjson

from ..jsontypes import JSON
from .catalog import (
    GalleryApp,
    KeptSecret,
    SyncTemplate,
    find_app,
    find_sync_template,
    matching_patterns,
)
from .clock import ScaledClock
from .state import NULL_DATE, Application, Job, ServicePrincipal, Tenant, Visibility

VERSION = 1
SNAPSHOT = "tenant.json"
JOURNAL = "journal.jsonl"
LOCK = "lock"
LOG_KEEP = 5_000  # provisioning-log entries a snapshot keeps (the newest)
PERIOD = 2.0  # real seconds between snapshots while requests come in


class KeepError(Exception):
    """A kept tenant that cannot be served: missing, in use, or unreadable."""


def beside(ledger: Path) -> Path:
    """Where the tenant of a ``--mock`` ledger is kept: ``runs/x.jsonl`` -> ``runs/x.mock``."""
    kept = ledger.with_suffix(".mock")
    return kept if kept != ledger else ledger.with_name(ledger.name + ".tenant")


def exists(directory: Path) -> bool:
    return (directory / SNAPSHOT).is_file()


@dataclass(slots=True)
class Saved:
    """A kept tenant as read back: the clock, and each tenant's objects as JSON."""

    now: float
    wall0: datetime
    seq: int
    tenants: list[JSON] = field(default_factory=list)


class Keeper:
    """Keeps the tenants of one mock in ``directory``: lock, restore, journal, snapshot."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.seq = 0
        self._lock_fd: int | None = None
        self._journal_fd: int | None = None

    # ------------------------------------------------------------------ open and close
    def open(self, *, create: bool) -> Saved | None:
        """Lock the directory and read the kept tenant back; None for a new one (``create``)."""
        d = self.directory
        if not exists(d) and not create:
            raise KeepError(f"{d} holds no kept mock tenant")
        try:
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
            d.chmod(0o700)
            self._lock_fd = os.open(d / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise KeepError(f"cannot use {d}: {exc.strerror}") from None
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.release()
            raise KeepError(
                f"the mock tenant in {d} is in use by another bulkprov command; let it finish"
            ) from None
        try:
            saved = read(d) if exists(d) else None
            self._journal_fd = os.open(d / JOURNAL, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except BaseException:
            self.release()
            raise
        if saved is not None:
            self.seq = saved.seq
        return saved

    def private(self, directory: Path) -> None:
        """Make ``directory`` (inside the kept one, e.g. ``tls/``) and its files owner-only."""
        directory.chmod(0o700)
        for f in directory.iterdir():
            f.chmod(0o600)

    def close(self, tenants: list[Tenant], clock: ScaledClock) -> None:
        """The last snapshot (synced to disk), then unlock."""
        try:
            if self._journal_fd is not None:
                self.snapshot(tenants, clock, fsync=True)
        finally:
            self.release()

    def release(self) -> None:
        """Unlock without saving."""
        for name in ("_journal_fd", "_lock_fd"):
            fd = getattr(self, name)
            if fd is not None:
                setattr(self, name, None)
                os.close(fd)  # closing the lock file releases the lock

    # ------------------------------------------------------------------ writing
    def journal(self, tenant: Tenant) -> None:
        """Append the objects ``tenant`` changed since the last call (one numbered line)."""
        touched = tenant.touched
        if not touched or self._journal_fd is None:
            return
        put: dict[str, JSON] = {}
        gone: list[str] = []
        for object_id in touched:
            app = tenant.applications.get(object_id)
            sp = tenant.service_principals.get(object_id)
            if app is None and sp is None:
                gone.append(object_id)
                continue
            if sp is None and app is not None and app.sp_id is not None:
                sp = tenant.service_principals.get(app.sp_id)
            if app is None and sp is not None:
                app = tenant.applications.get(sp.app_object_id)
            if app is not None:
                put[app.id] = {"application": application_json(app)}
            if sp is not None:
                put[sp.id] = {"servicePrincipal": service_principal_json(sp)}
        touched.clear()
        self.seq += 1
        line = {
            "seq": self.seq,
            "t": round(tenant.clock.now(), 3),
            "tenant": tenant.id,
            "put": list(put.values()),
            "gone": gone,
            "created": dict(tenant.created),
        }
        os.write(self._journal_fd, orjson.dumps(line) + b"\n")

    def snapshot(self, tenants: list[Tenant], clock: ScaledClock, *, fsync: bool = False) -> None:
        """Write every tenant whole (atomically: a temporary file renamed over the last
        snapshot), then empty the journal."""
        for t in tenants:
            if t.touched is not None:
                t.touched.clear()  # the snapshot holds them whole
        doc = {
            "version": VERSION,
            "seq": self.seq,
            "now": round(clock.now(), 3),
            "wall0": clock.wall0.isoformat(),
            "tenants": [tenant_json(t) for t in tenants],
        }
        path = self.directory / SNAPSHOT
        tmp = path.with_name(SNAPSHOT + ".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, orjson.dumps(doc))
                if fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except OSError as exc:
            raise KeepError(f"cannot save the mock tenant in {path}: {exc.strerror}") from None
        if fsync:
            with contextlib.suppress(OSError):
                dfd = os.open(self.directory, os.O_RDONLY)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)
        if self._journal_fd is not None:
            os.ftruncate(self._journal_fd, 0)


# ---------------------------------------------------------------------- reading
def read(directory: Path) -> Saved:
    """The snapshot of ``directory`` with the journal lines written after it applied."""
    path = directory / SNAPSHOT
    try:
        doc = orjson.loads(path.read_bytes())
        if doc.get("version") != VERSION:
            raise KeepError(f"{path} is a version {doc.get('version')} mock tenant")
        saved = Saved(
            now=float(doc["now"]),
            wall0=datetime.fromisoformat(doc["wall0"]),
            seq=int(doc["seq"]),
            tenants=list(doc["tenants"]),
        )
    except OSError as exc:
        raise KeepError(f"cannot read {path}: {exc.strerror}") from None
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise KeepError(f"{path} is not a kept mock tenant ({exc})") from None
    by_id = {t["id"]: _Indexed(t) for t in saved.tenants}
    for line in _journal_lines(directory / JOURNAL):
        if int(line["seq"]) <= saved.seq:
            continue  # already in the snapshot (written just before the journal was emptied)
        saved.seq = int(line["seq"])
        saved.now = max(saved.now, float(line["t"]))
        indexed = by_id.get(line["tenant"])
        if indexed is None:
            raise KeepError(f"{directory / JOURNAL} names tenant {line['tenant']}, not kept")
        indexed.apply(line)
    for t, indexed in zip(saved.tenants, by_id.values(), strict=True):
        t["applications"] = list(indexed.apps.values())
        t["servicePrincipals"] = list(indexed.sps.values())
        t["created"] = indexed.created
    return saved


def _journal_lines(path: Path) -> Iterator[JSON]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise KeepError(f"cannot read {path}: {exc.strerror}") from None
    lines = data.split(b"\n")
    for n, raw in enumerate(lines, start=1):
        if not raw:
            continue
        try:
            yield orjson.loads(raw)
        except orjson.JSONDecodeError:
            if n == len(lines):  # a torn last line: the process died writing it
                return
            raise KeepError(f"{path}:{n} is not a journal line") from None


class _Indexed:
    """One tenant's objects by id, in order, while journal lines are applied."""

    def __init__(self, t: JSON) -> None:
        self.apps: dict[str, JSON] = {a["id"]: a for a in t.get("applications", [])}
        self.sps: dict[str, JSON] = {s["id"]: s for s in t.get("servicePrincipals", [])}
        self.created: dict[str, int] = dict(t.get("created", {}))

    def apply(self, line: JSON) -> None:
        for item in line.get("put", []):
            if "application" in item:
                self.apps[item["application"]["id"]] = item["application"]
            if "servicePrincipal" in item:
                self.sps[item["servicePrincipal"]["id"]] = item["servicePrincipal"]
        for object_id in line.get("gone", []):
            self.apps.pop(object_id, None)
            self.sps.pop(object_id, None)
        if "created" in line:
            self.created = dict(line["created"])


# ---------------------------------------------------------------------- objects as JSON
def tenant_json(t: Tenant) -> JSON:
    return {
        "id": t.id,
        "created": dict(t.created),
        "applications": [application_json(a) for a in t.app_order],
        "servicePrincipals": [service_principal_json(s) for s in t.sp_order],
        "logs": t.logs[-LOG_KEEP:],
    }


def application_json(a: Application) -> JSON:
    return {
        "id": a.id,
        "appId": a.app_id,
        "displayName": a.display_name,
        "template": a.template.id,
        "created": a.created,
        "visibility": [a.vis.visible_at, a.vis.stable_at],
        "tags": a.tags,
        "notes": a.notes,
        "deleted": a.deleted,
        "spId": a.sp_id,
    }


def service_principal_json(sp: ServicePrincipal) -> JSON:
    return {
        "id": sp.id,
        "appId": sp.app_id,
        "displayName": sp.display_name,
        "template": sp.template.id,
        "created": sp.created,
        "visibility": [sp.vis.visible_at, sp.vis.stable_at],
        "applicationObjectId": sp.app_object_id,
        "tags": sp.tags,
        "notes": sp.notes,
        "deleted": sp.deleted,
        "targetBroken": sp.target_broken,
        # no value: whether it was set, and the catalog patterns it matched
        "secrets": [
            {
                "key": key,
                "set": bool(value),
                "matches": sorted(
                    value.matches
                    if isinstance(value, KeptSecret)
                    else matching_patterns(key, value)
                ),
            }
            for key, value in sp.secrets.items()
        ],
        "jobs": [job_json(j) for j in sp.jobs.values()],
    }


def job_json(j: Job) -> JSON:
    default = dict(j.template.schema, id=j.id)
    return {
        "id": j.id,
        "template": j.template.id,
        "created": j.created,
        "code": j.code,
        "scheduleState": j.schedule_state,
        "interval": j.interval,
        "settings": [list(pair) for pair in j.settings],
        "schema": None if j.schema == default else j.schema,
        "generation": j.generation,
        "nextCycleEnd": j.next_cycle_end,
        "cycles": j.cycles,
        "successes": j.successes,
        "failuresInARow": j.failures_in_a_row,
        "lastExecution": j.last_execution,
        "lastSuccess": j.last_success,
        "quarantine": j.quarantine,
        "steadyFirst": j.steady_first,
        "steadyLast": j.steady_last,
        "entryCounts": j.entry_counts,
    }


# ---------------------------------------------------------------------- JSON to objects
def restore(tenant: Tenant, data: JSON) -> None:
    """Fill an empty ``tenant`` with the objects of ``data`` (see :func:`tenant_json`)."""
    try:
        tenant.created.update(data.get("created", {}))
        for raw in data["applications"]:
            tenant.add(_application(raw), None)
        for raw in data["servicePrincipals"]:
            tenant.add(None, _service_principal(raw))
        tenant.logs = list(data.get("logs", []))
    except (KeyError, TypeError, ValueError) as exc:
        raise KeepError(f"tenant {tenant.id} cannot be restored: {exc!r}") from None
    tenant.reschedule()
    if tenant.touched is not None:
        tenant.touched.clear()


def _gallery_app(template_id: str) -> GalleryApp:
    app = find_app(template_id)
    if app is None:
        raise ValueError(f"application template {template_id} is not in the catalog")
    return app


def _application(raw: JSON) -> Application:
    return Application(
        id=raw["id"],
        app_id=raw["appId"],
        display_name=raw["displayName"],
        template=_gallery_app(raw["template"]),
        created=float(raw["created"]),
        vis=Visibility(*map(float, raw["visibility"])),
        tags=list(raw.get("tags") or []),
        notes=raw.get("notes"),
        deleted=raw.get("deleted"),
        sp_id=raw.get("spId"),
    )


def _service_principal(raw: JSON) -> ServicePrincipal:
    app = _gallery_app(raw["template"])
    sp = ServicePrincipal(
        id=raw["id"],
        app_id=raw["appId"],
        display_name=raw["displayName"],
        template=app,
        created=float(raw["created"]),
        vis=Visibility(*map(float, raw["visibility"])),
        app_object_id=raw["applicationObjectId"],
        tags=list(raw.get("tags") or []),
        notes=raw.get("notes"),
        deleted=raw.get("deleted"),
        target_broken=bool(raw.get("targetBroken")),
    )
    sp.secrets = {
        s["key"]: KeptSecret(frozenset(s.get("matches", []))) if s.get("set") else ""
        for s in raw.get("secrets", [])
    }
    for j in raw.get("jobs", []):
        job = _job(j, sp.id, app)
        sp.jobs[job.id] = job
    return sp


def _job(raw: JSON, sp_id: str, app: GalleryApp) -> Job:
    template: SyncTemplate | None = find_sync_template(app, raw["template"])
    if template is None:
        raise ValueError(f"synchronization template {raw['template']} is not in the catalog")
    schema = raw.get("schema")
    return Job(
        id=raw["id"],
        sp_id=sp_id,
        template=template,
        created=float(raw["created"]),
        code=raw["code"],
        schedule_state=raw["scheduleState"],
        interval=raw["interval"],
        settings=[(str(n), str(v)) for n, v in raw.get("settings", [])],
        schema=dict(schema) if schema else dict(template.schema, id=raw["id"]),
        generation=int(raw.get("generation", 0)),
        next_cycle_end=raw.get("nextCycleEnd"),
        cycles=int(raw.get("cycles", 0)),
        successes=int(raw.get("successes", 0)),
        failures_in_a_row=int(raw.get("failuresInARow", 0)),
        last_execution=raw.get("lastExecution"),
        last_success=raw.get("lastSuccess"),
        quarantine=raw.get("quarantine"),
        steady_first=raw.get("steadyFirst", NULL_DATE),
        steady_last=raw.get("steadyLast", NULL_DATE),
        entry_counts=dict(raw.get("entryCounts") or {}),
    )
