"""In-memory state of the mock's tenants: applications, service principals, jobs and logs.

Objects are compact records; their Graph JSON is rendered when asked for. Time is Graph time
from the :class:`~.clock.ScaledClock`. Synchronization jobs run lazily: each tenant keeps a heap
of the next cycle end of every running job and plays it forward whenever a request comes in,
so job status and provisioning logs are what they would be at that moment, with no background
task per job.
"""

from __future__ import annotations

import heapq
import random
import re
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..jsontypes import JSON
from .catalog import CredentialError, GalleryApp, SyncTemplate
from .clock import ScaledClock
from .settings import MockSettings

NULL_DATE = "0001-01-01T00:00:00Z"


def new_id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def iso_duration_seconds(text: str) -> float:
    """Seconds of an ISO 8601 duration such as ``PT40M`` or ``P10675199DT2H48M5.4775807S``."""
    m = re.fullmatch(
        r"P(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>[\d.]+)S)?)?", text
    )
    if m is None:
        raise ValueError(f"not an ISO 8601 duration: {text!r}")
    d, h, mi, s = (float(m.group(k) or 0) for k in ("d", "h", "m", "s"))
    return d * 86400 + h * 3600 + mi * 60 + s


@dataclass(slots=True)
class Visibility:
    """When a new object becomes readable: before ``visible_at`` it 404s; until ``stable_at``
    reads may still 404 with the flap probability."""

    visible_at: float = 0.0
    stable_at: float = 0.0


@dataclass(slots=True)
class Application:
    id: str
    app_id: str
    display_name: str
    template: GalleryApp
    created: float
    vis: Visibility
    tags: list[str] = field(default_factory=list)
    notes: str | None = None
    deleted: float | None = None
    sp_id: str | None = None


@dataclass(slots=True)
class Job:
    id: str
    sp_id: str
    template: SyncTemplate
    created: float
    code: str
    schedule_state: str = "Disabled"
    interval: str = "PT40M"
    settings: list[tuple[str, str]] = field(default_factory=list)
    schema: JSON = field(default_factory=dict)
    generation: int = 0  # bumps on start/pause/restart so stale heap events are ignored
    next_cycle_end: float | None = None
    cycles: int = 0
    successes: int = 0
    failures_in_a_row: int = 0
    last_execution: JSON | None = None
    last_success: JSON | None = None
    quarantine: JSON | None = None
    steady_first: str = NULL_DATE
    steady_last: str = NULL_DATE
    entry_counts: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class ServicePrincipal:
    id: str
    app_id: str
    display_name: str
    template: GalleryApp
    created: float
    vis: Visibility
    app_object_id: str
    tags: list[str] = field(default_factory=lambda: ["WindowsAzureActiveDirectoryIntegratedApp"])
    notes: str | None = None
    deleted: float | None = None
    secrets: dict[str, str] = field(default_factory=dict)
    jobs: dict[str, Job] = field(default_factory=dict)
    target_broken: bool = False  # a control knob: the target now rejects the saved secrets


class Tenant:
    """One directory: its objects, its running jobs and its provisioning log."""

    def __init__(
        self, tenant_id: str, settings: MockSettings, clock: ScaledClock, rng: random.Random
    ) -> None:
        self.id = tenant_id
        self.settings = settings
        self.clock = clock
        self.rng = rng
        self.applications: dict[str, Application] = {}
        self.service_principals: dict[str, ServicePrincipal] = {}
        self.sp_by_app_id: dict[str, ServicePrincipal] = {}
        self.app_order: list[Application] = []  # creation order, for stable paging
        self.sp_order: list[ServicePrincipal] = []
        # display name (casefolded) -> objects: a list filtered on displayName eq reads these
        # instead of every object of the tenant (Graph indexes it too)
        self.apps_by_name: dict[str, list[Application]] = {}
        self.sps_by_name: dict[str, list[ServicePrincipal]] = {}
        self.logs: list[JSON] = []  # provisioning log entries, oldest first
        self._events: list[tuple[float, int, str, str, int]] = []  # (t, seq, sp, job, generation)
        self._seq = 0
        self.created = Counter[str]()
        # ids of the objects changed since a kept tenant last journaled them (see .persist);
        # None: the tenant is not kept, nothing is tracked
        self.touched: set[str] | None = None

    # ------------------------------------------------------------------ visibility
    def new_visibility(self, now: float) -> Visibility:
        rep = self.settings.replication
        if not rep.enabled:
            return Visibility(now, now)
        delay = self.rng.uniform(rep.min_delay, rep.max_delay)
        return Visibility(now + delay, now + delay + rep.flap)

    def visible(self, vis: Visibility, now: float) -> bool:
        if now < vis.visible_at:
            return False
        if now < vis.stable_at:
            return self.rng.random() >= self.settings.replication.flap_probability
        return True

    # ------------------------------------------------------------------ objects
    def instantiate(
        self, app: GalleryApp, display_name: str, now: float
    ) -> tuple[Application, ServicePrincipal]:
        app_id = new_id(self.rng)
        application = Application(
            id=new_id(self.rng),
            app_id=app_id,
            display_name=display_name,
            template=app,
            created=now,
            vis=self.new_visibility(now),
        )
        sp = ServicePrincipal(
            id=new_id(self.rng),
            app_id=app_id,
            display_name=display_name,
            template=app,
            created=now,
            vis=self.new_visibility(now),
            app_object_id=application.id,
        )
        application.sp_id = sp.id
        self.add(application, sp)
        self.created["applications"] += 1
        self.created["servicePrincipals"] += 1
        return application, sp

    def touch(self, object_id: str) -> None:
        """Note that an object changed (a kept tenant journals it before answering)."""
        if self.touched is not None:
            self.touched.add(object_id)

    def add(self, application: Application | None, sp: ServicePrincipal | None) -> None:
        """File an application and/or service principal (new, or restored from disk)."""
        if application is not None:
            self.applications[application.id] = application
            self.app_order.append(application)
            self.apps_by_name.setdefault(application.display_name.casefold(), []).append(
                application
            )
            self.touch(application.id)
        if sp is not None:
            self.service_principals[sp.id] = sp
            self.sp_by_app_id[sp.app_id] = sp
            self.sp_order.append(sp)
            self.sps_by_name.setdefault(sp.display_name.casefold(), []).append(sp)
            self.touch(sp.id)

    def rename_application(self, application: Application, name: str) -> None:
        _unindex(self.apps_by_name, application.display_name, application)
        application.display_name = name
        self.apps_by_name.setdefault(name.casefold(), []).append(application)

    def rename_service_principal(self, sp: ServicePrincipal, name: str) -> None:
        _unindex(self.sps_by_name, sp.display_name, sp)
        sp.display_name = name
        self.sps_by_name.setdefault(name.casefold(), []).append(sp)

    def delete_application(self, application: Application, now: float) -> None:
        application.deleted = now
        self.touch(application.id)
        if application.sp_id is not None:
            sp = self.service_principals.get(application.sp_id)
            if sp is not None and sp.deleted is None:
                self.delete_service_principal(sp, now)

    def delete_service_principal(self, sp: ServicePrincipal, now: float) -> None:
        sp.deleted = now
        self.touch(sp.id)
        for job in sp.jobs.values():
            job.generation += 1
            job.next_cycle_end = None
        sp.jobs.clear()

    def purge(self, object_id: str) -> bool:
        """Permanently delete a soft-deleted object."""
        self.touch(object_id)
        application = self.applications.get(object_id)
        if application is not None and application.deleted is not None:
            del self.applications[object_id]
            self.app_order.remove(application)
            _unindex(self.apps_by_name, application.display_name, application)
            return True
        sp = self.service_principals.get(object_id)
        if sp is not None and sp.deleted is not None:
            del self.service_principals[object_id]
            self.sp_order.remove(sp)
            _unindex(self.sps_by_name, sp.display_name, sp)
            if self.sp_by_app_id.get(sp.app_id) is sp:
                del self.sp_by_app_id[sp.app_id]
            return True
        return False

    # ------------------------------------------------------------------ jobs
    def create_job(self, sp: ServicePrincipal, template: SyncTemplate, now: float) -> Job:
        tenant_hex = self.id.replace("-", "")
        job_id = f"{template.id}.{tenant_hex}.{sp.app_id}"
        if job_id in sp.jobs:  # Graph allows one job per template on a service principal
            job_id = f"{job_id}.{len(sp.jobs)}"
        schema = dict(template.schema)
        schema["id"] = job_id
        job = Job(
            id=job_id,
            sp_id=sp.id,
            template=template,
            created=now,
            code=template.initial_status,
            interval=template.interval,
            settings=list(template.job_settings),
            schema=schema,
        )
        if sp.secrets and job.code == "NotConfigured":
            job.code = "Paused"
        sp.jobs[job_id] = job
        self.touch(sp.id)
        self.created["jobs"] += 1
        return job

    def start_job(self, job: Job, now: float) -> None:
        job.generation += 1
        job.code = "Active"
        job.schedule_state = "Active"
        job.quarantine = None
        job.failures_in_a_row = 0
        js = self.settings.jobs
        duration = (
            js.initial_cycle_duration if job.successes == 0 else js.incremental_cycle_duration
        )
        self._schedule(job, now + js.first_cycle_delay + duration)

    def pause_job(self, job: Job) -> None:
        job.generation += 1
        job.next_cycle_end = None
        job.code = "Paused"
        job.schedule_state = "Paused"

    def restart_job(self, job: Job, now: float, reset_scope: str) -> None:
        scopes = {s.strip() for s in reset_scope.split(",") if s.strip()}
        if "Full" in scopes or "Watermark" in scopes:
            job.successes = 0
        self.start_job(job, now)

    def _schedule(self, job: Job, at: float) -> None:
        job.next_cycle_end = at
        self._seq += 1
        heapq.heappush(self._events, (at, self._seq, job.sp_id, job.id, job.generation))

    def reschedule(self) -> None:
        """Rebuild the heap of cycle ends from the jobs' ``next_cycle_end`` (after a restore)."""
        self._events.clear()
        jobs = [
            j
            for sp in self.sp_order
            for j in sp.jobs.values()
            if sp.deleted is None and j.next_cycle_end is not None
        ]
        for job in sorted(jobs, key=lambda j: j.next_cycle_end or 0.0):
            assert job.next_cycle_end is not None
            self._schedule(job, job.next_cycle_end)

    def advance(self, now: float) -> None:
        """Play every job cycle that ended by ``now``."""
        events = self._events
        while events and events[0][0] <= now:
            at, _seq, sp_id, job_id, generation = heapq.heappop(events)
            sp = self.service_principals.get(sp_id)
            job = sp.jobs.get(job_id) if sp is not None else None
            if sp is None or job is None or job.generation != generation:
                continue
            self._run_cycle(sp, job, at)

    def _interval(self, job: Job) -> float:
        seconds = iso_duration_seconds(job.interval)
        cap = self.settings.jobs.max_interval
        return min(seconds, cap) if cap is not None else seconds

    def _run_cycle(self, sp: ServicePrincipal, job: Job, end: float) -> None:
        js = self.settings.jobs
        initial = job.successes == 0
        duration = js.initial_cycle_duration if initial else js.incremental_cycle_duration
        began = end - duration
        job.cycles += 1
        activity = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        error = job.template.connector.judge(sp.secrets)
        if error is None and sp.target_broken:
            connector = job.template.connector
            error = CredentialError(code=connector.invalid_code, message=connector.invalid_message)
        execution: JSON = {
            "activityIdentifier": activity,
            "countEntitled": 0,
            "countEntitledForProvisioning": 0,
            "countEscrowed": 0,
            "countEscrowedRaw": 0,
            "countExported": 0,
            "countExports": 0,
            "countImported": 0,
            "countImportedDeltas": 0,
            "countImportedReferenceDeltas": 0,
            "error": None,
            "state": "Succeeded",
            "timeBegan": self.clock.iso(began),
            "timeEnded": self.clock.iso(end),
        }
        if error is not None:
            execution["state"] = "Failed"
            execution["error"] = {
                "code": error.code,
                "message": error.message,
                "tenantActionable": True,
            }
            job.failures_in_a_row += 1
            q = job.quarantine
            series_count = (q["seriesCount"] + 1) if q else 1
            retry = js.quarantine_retry * 2 ** (series_count - 1)
            job.quarantine = {
                "currentBegan": self.clock.iso(end),
                "nextAttempt": self.clock.iso(end + retry),
                "reason": "EncounteredQuarantineException",
                "seriesBegan": q["seriesBegan"] if q else self.clock.iso(end),
                "seriesCount": series_count,
                "error": execution["error"],
            }
            job.code = "Quarantine"
            job.last_execution = execution
            self._log_cycle_failure(sp, job, activity, end, error.code, error.message)
            self._schedule(job, end + retry + js.incremental_cycle_duration)
            return
        users, groups = job.template.entitled_users, job.template.entitled_groups
        if initial:
            execution.update(
                countEntitled=users + groups,
                countEntitledForProvisioning=users + groups,
                countExported=users + groups,
                countExports=users + groups,
                countImported=users + groups,
            )
            job.entry_counts = {"user": users, "group": groups}
        job.successes += 1
        job.failures_in_a_row = 0
        job.quarantine = None
        job.code = "Active"
        job.last_execution = execution
        job.last_success = execution
        if job.steady_first == NULL_DATE:
            job.steady_first = self.clock.iso(end)
        job.steady_last = self.clock.iso(end)
        if initial:
            self._log_initial_cycle(sp, job, activity, began, end)
        self._schedule(job, end + self._interval(job) + js.incremental_cycle_duration)

    # ------------------------------------------------------------------ provisioning logs
    def _log_entry(
        self,
        sp: ServicePrincipal,
        job: Job,
        cycle: str,
        at: float,
        *,
        action: str,
        identity_type: str,
        name: str,
        status: str,
        error: tuple[str, str] | None = None,
    ) -> JSON:
        source_id = new_id(self.rng)
        entry: JSON = {
            "id": new_id(self.rng),
            "activityDateTime": self.clock.iso(at),
            "tenantId": self.id,
            "jobId": job.id,
            "cycleId": cycle,
            "changeId": new_id(self.rng),
            "provisioningAction": action,
            "durationInMilliseconds": int(self.rng.uniform(300, 3000)),
            "initiatedBy": {
                "id": "",
                "displayName": "Azure AD Provisioning Service",
                "initiatorType": "system",
            },
        }
        entry.update(_log_systems(sp))
        entry["sourceIdentity"] = {
            "id": source_id,
            "displayName": name,
            "identityType": identity_type,
            "details": {},
        }
        entry["targetIdentity"] = {
            "id": "",
            "displayName": name if status == "success" else "",
            "identityType": identity_type,
            "details": {},
        }
        entry["provisioningStatusInfo"] = _log_status(status, error)
        entry["provisioningSteps"] = _log_steps(sp, identity_type, name, status)
        entry["modifiedProperties"] = [
            {"displayName": "objectId", "oldValue": None, "newValue": source_id},
            {"displayName": "displayName", "oldValue": None, "newValue": name},
        ]
        return entry

    def _log_initial_cycle(
        self, sp: ServicePrincipal, job: Job, cycle: str, began: float, end: float
    ) -> None:
        users, groups = job.template.entitled_users, job.template.entitled_groups
        total = users + groups
        # one entitled user in ten thousand-ish collides in the target: a realistic failure
        conflict = self.rng.random() < 0.05
        for i in range(total):
            at = began + (end - began) * (i + 1) / (total + 1)
            kind = "User" if i < users else "Group"
            name = f"{kind} {i + 1:02d} of {sp.display_name}"
            failed = conflict and i == 0
            self.logs.append(
                self._log_entry(
                    sp,
                    job,
                    cycle,
                    at,
                    action="create",
                    identity_type=kind,
                    name=name,
                    status="failure" if failed else "success",
                    error=(
                        "EntryConflict",
                        f"{sp.display_name} returned 409: a {kind.lower()} with the same "
                        "name already exists.",
                    )
                    if failed
                    else None,
                )
            )

    def _log_cycle_failure(
        self, sp: ServicePrincipal, job: Job, cycle: str, at: float, code: str, message: str
    ) -> None:
        self.logs.append(
            self._log_entry(
                sp,
                job,
                cycle,
                at,
                action="other",
                identity_type="Other",
                name="Test connection",
                status="failure",
                error=(code, message),
            )
        )

    # ------------------------------------------------------------------ stats
    def stats(self) -> JSON:
        live_apps = [a for a in self.applications.values() if a.deleted is None]
        live_sps = [s for s in self.service_principals.values() if s.deleted is None]
        names = Counter((a.template.id, a.display_name) for a in live_apps)
        duplicates = sum(n - 1 for n in names.values() if n > 1)
        orphan_apps = [
            a.id
            for a in live_apps
            if a.sp_id is None
            or a.sp_id not in self.service_principals
            or self.service_principals[a.sp_id].deleted is not None
        ]
        orphan_sps = [s.id for s in live_sps if not s.jobs]
        codes = Counter(j.code for s in live_sps for j in s.jobs.values())
        return {
            "applications": len(live_apps),
            "servicePrincipals": len(live_sps),
            "jobs": sum(len(s.jobs) for s in live_sps),
            "deletedApplications": len(self.applications) - len(live_apps),
            "created": dict(self.created),
            "duplicates": duplicates,
            "duplicateNames": sorted(f"{name}" for (_t, name), n in names.items() if n > 1)[:50],
            "orphanApplications": len(orphan_apps),
            "orphanServicePrincipals": len(orphan_sps),
            "jobStatus": dict(codes),
            "provisioningLogEntries": len(self.logs),
        }


def _unindex(index: dict[str, list[Any]], name: str, obj: object) -> None:
    objs = index.get(name.casefold())
    if objs is not None:
        objs[:] = [o for o in objs if o is not obj]
        if not objs:
            del index[name.casefold()]


# ---------------------------------------------------------------------- provisioning log parts
def _log_systems(sp: ServicePrincipal) -> JSON:
    """The service principal, source and target systems of a provisioning log entry."""
    return {
        "servicePrincipal": {"id": sp.id, "displayName": sp.display_name},
        "sourceSystem": {
            "id": "0404601d-a9c0-4ec7-bbcd-02660120d8c9",
            "displayName": "Azure Active Directory",
            "details": {},
        },
        "targetSystem": {
            "id": sp.id,
            "displayName": sp.display_name,
            "details": {
                "ApplicationId": sp.app_object_id,
                "ServicePrincipalId": sp.id,
                "ServicePrincipalDisplayName": sp.display_name,
            },
        },
    }


def _log_status(status: str, error: tuple[str, str] | None) -> JSON:
    info: JSON = {"status": status, "errorInformation": None}
    if error is not None:
        info["errorInformation"] = {
            "errorCode": error[0],
            "reason": error[1],
            "additionalDetails": None,
            "errorCategory": "nonServiceFailure",
            "recommendedAction": None,
        }
    return info


def _log_steps(sp: ServicePrincipal, identity_type: str, name: str, status: str) -> list[JSON]:
    """The import, matching and export steps of a created entry."""
    exported = (
        f"{identity_type} '{name}' was created in {sp.display_name}"
        if status == "success"
        else f"Failed to create {identity_type} '{name}' in {sp.display_name}"
    )
    return [
        {
            "name": "EntryImportAdd",
            "provisioningStepType": "import",
            "status": "success",
            "description": f"Received {identity_type} '{name}' change of type (Add) from "
            "Azure Active Directory",
            "details": {},
        },
        {
            "name": "EntrySynchronizationAdd",
            "provisioningStepType": "matching",
            "status": "success",
            "description": f"{identity_type} '{name}' will be created in {sp.display_name}",
            "details": {},
        },
        {
            "name": "EntryExportAdd",
            "provisioningStepType": "export",
            "status": status,
            "description": exported,
            "details": {},
        },
    ]
