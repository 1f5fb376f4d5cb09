"""One instance through the seed's steps, each idempotent and resumable from the ledger.

    instantiate -> replicate -> [agent_group] -> sync_template -> job -> [schema] -> validate
        -> secrets -> start -> monitor -> logs

*agent_group* (on-premises apps: the manifest names an ``agentGroup``) assigns the application
to a provisioning agent group through Graph beta. Graph allows that with delegated permissions
only, so an instance with an agent group is refused before anything is created for it unless
the connection signs a user in (a device-code profile).

*schema* (only for an instance with a ``schema`` file, as ``bulkprov export`` writes them)
replaces the new job's synchronization schema before the job is validated or started, then
reads it back and fails the instance, naming the first differing path, unless Graph holds
exactly what the file says (ids Graph assigns aside). A PUT replaces the whole schema, so the
step is simply repeated on a resumed run.

*instantiate* never re-POSTs blindly. Graph may answer 404 or time out although it created the
application (terraform-azuread #1406), so before every POST, and after every POST whose answer
was lost, it looks for the application this instance would have created: same gallery template,
same display name, not claimed by another instance of the ledger. A write-ahead ``attempt``
record in the ledger tells a resumed run that a POST may have taken effect, so it waits for
replication before concluding that nothing was created. If several applications turn up for an
instance that made several attempts, the oldest is kept and the extras are deleted.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
import orjson
import structlog

from . import schema as schema_mod
from .errors import (
    AuthError,
    BulkProvError,
    GraphError,
    LedgerError,
    NotYetReplicated,
    StepError,
    TransportError,
    UnsafeRequest,
)
from .graph import Graph
from .ledger import InstanceState, Ledger, Redactor, Replay
from .manifest import Instance
from .settings import RunSettings

log = structlog.get_logger("bulkprov.pipeline")
T = TypeVar("T")
JSON = dict[str, Any]

SETTLE_SAMPLES = 10  # replication delays seen before the wait after an unsure POST adapts
SETTLE_FLOOR = 60.0  # Graph seconds: the shortest such wait
JOB_CREATE_ATTEMPTS = 5  # creations of a job whose answers are lost (each after listing)
SETUP_STEPS = (
    "instantiate",
    "replicate",
    "agent_group",
    "sync_template",
    "job",
    "schema",
    "validate",
    "secrets",
    "start",
)
ALL_STEPS = (*SETUP_STEPS, "monitor", "logs")


@dataclass(frozen=True, slots=True)
class ResolvedTemplate:
    id: str
    display_name: str


@dataclass(slots=True)
class Outcome:
    """Where an instance stands after setup, and what monitoring needs."""

    inst: Instance
    state: InstanceState
    started_at: float
    timings: dict[str, int] = field(default_factory=dict)
    job_status: JSON | None = None
    instantiated_at: float | None = None  # monotonic time instantiate answered, this run
    # secret values registered with the redactor for this instance, released when it ends
    secrets: set[str] = field(default_factory=set, repr=False)


class Events:
    """Callbacks for progress displays: a step started, ended (ok or not)."""

    def step_started(self, step: str) -> None: ...
    def step_ended(self, step: str, ok: bool) -> None: ...
    def instance_ended(self, status: str) -> None: ...


class Pipeline:
    def __init__(
        self,
        graph: Graph,
        ledger: Ledger,
        replay: Replay,
        settings: RunSettings,
        *,
        templates: dict[str, ResolvedTemplate],
        time_scale: float,
        redactor: Redactor,
        events: Events | None = None,
        stop: anyio.Event | None = None,
        shared_names: Collection[str] | None = None,
    ) -> None:
        self.graph = graph
        self.ledger = ledger
        self.replay = replay
        self.settings = settings
        self.templates = templates
        self.scale = time_scale
        self.redactor = redactor
        self.events = events or Events()
        self.stop = stop or anyio.Event()
        # application id -> the instance that holds it: the ledger's, and those this run makes
        # or adopts for a display name that several instances share (given ``shared_names``,
        # casefolded): only there can a lookup by name find another instance's application
        self._claimed_apps = replay.claimed("applicationId")
        self._shared_names = shared_names
        # replication delays this run has seen (Graph seconds from instantiate's answer to the
        # first read of the service principal), as a count and the longest: they size the wait
        # after an unsure POST (a count, not a list: a 100k-instance run keeps no list of them)
        self._replication_count = 0
        self._replication_max = 0.0
        self.agent_groups: dict[str, str] = {}  # manifest agentGroup -> id (Runner resolves)

    # ------------------------------------------------------------------ helpers
    async def sleep(self, graph_seconds: float) -> None:
        await anyio.sleep(graph_seconds * self.scale)

    def _elapsed(self, since: float) -> float:
        """Graph seconds since a time.monotonic() reading."""
        return (time.monotonic() - since) / self.scale

    async def _step(
        self, out: Outcome, name: str, fn: Callable[[], Awaitable[JSON | None]]
    ) -> JSON | None:
        key = out.inst.key
        self.ledger.step(key, name, "start")
        self.events.step_started(name)
        t0 = time.monotonic()
        try:
            with anyio.fail_after(self.settings.step_deadline * self.scale):
                data = await fn()
        except TimeoutError:
            self._fail(
                out,
                name,
                t0,
                f"did not finish within the step deadline of "
                f"{self.settings.step_deadline:.0f} Graph seconds",
                None,
            )
        except StepError as err:
            self._fail(out, name, t0, err.reason, err.request_id, err.code)
        except GraphError as err:
            to = f" to {err.method} {err.path}" if err.method and err.path else ""
            self._fail(
                out,
                name,
                t0,
                f"Graph answered {err.status} {err.code}{to}: {err.graph_message}",
                err.request_id,
                err.code,
            )
        except TransportError as err:
            self._fail(
                out,
                name,
                t0,
                f"no answer from Graph for {err.method} {err.path} ({err.reason})",
                None,
                "Transport",
            )
        except (NotYetReplicated, UnsafeRequest) as err:
            self._fail(out, name, t0, str(err), None, type(err).__name__)
        except (LedgerError, AuthError, _Interrupted):
            raise  # the run stops (no ledger, no token) or drains: not this instance's failure
        except Exception as err:  # one instance's surprise must not bring the pool down
            log.exception("step_crashed", instance=key, step=name)
            self._fail(out, name, t0, f"unexpected {type(err).__name__}: {err}", None, "Unexpected")
        ms = int((time.monotonic() - t0) * 1000)
        out.timings[name] = ms
        ids = {k: v for k, v in (data or {}).items() if k in _ID_KEYS}
        out.state.ids.update(ids)
        out.state.done.add(name)
        extra = {k: v for k, v in (data or {}).items() if k not in _ID_KEYS}
        self.ledger.step(key, name, "done", ms=ms, ids=ids or None, data=extra or None)
        self.events.step_ended(name, True)
        return data

    def _fail(
        self,
        out: Outcome,
        name: str,
        t0: float,
        message: str,
        request_id: str | None,
        code: str | None = None,
    ) -> None:
        message = self.redactor.text(message)
        ms = int((time.monotonic() - t0) * 1000)
        self.ledger.step(
            out.inst.key, name, "error", ms=ms, code=code, message=message, requestId=request_id
        )
        self.events.step_ended(name, False)
        log.warning(
            "step_failed",
            instance=out.inst.key,
            step=name,
            code=code,
            error=message,
            request_id=request_id,
        )
        raise StepError(out.inst.key, name, message, code=code, request_id=request_id)

    def settle_window(self) -> float:
        """Graph seconds to wait, after a POST instantiate whose answer was lost, for what it
        may have created to become readable before POSTing again.

        Graph publishes no replication bound, so until this run has seen enough new objects
        read back the whole ``replication_deadline`` applies (a resumed run starts there too).
        Then: three times the longest delay seen, at least ``SETTLE_FLOOR``, at most the
        deadline. An object that stays unreadable longer than that, after a POST whose answer
        was lost, would be created twice (an app of the instance's name no key claims)."""
        deadline = self.settings.replication_deadline
        if self._replication_count < SETTLE_SAMPLES:
            return deadline
        return min(deadline, max(SETTLE_FLOOR, 3.0 * self._replication_max))

    async def _replicated(self, what: str, call: Callable[[], Awaitable[T]], since: float) -> T:
        """``call()``, retried while Graph says the new object is not there yet (404), or
        refuses a sync call right after creation (403/409), up to the replication deadline."""
        transient = 0
        while True:
            try:
                return await call()
            except GraphError as err:
                waited = self._elapsed(since)
                if err.status == 404 or (err.status in (403, 409) and transient < 5):
                    if err.status != 404:
                        transient += 1
                    if waited >= self.settings.replication_deadline:
                        raise NotYetReplicated(what, waited) from err
                    await self.sleep(self.settings.poll_interval)
                    continue
                raise

    # ------------------------------------------------------------------ setup
    async def setup(self, out: Outcome) -> None:
        """Run the setup steps not yet done; raise StepError on the first that fails."""
        inst, state = out.inst, out.state
        if inst.agent_group and not self.graph.client.conn.credential.delegated:
            # refused before anything is created: Graph would answer 403 after instantiate
            await self._step(out, "agent_group", lambda: self.refuse_agent_group(out))
        steps: list[tuple[str, Callable[[], Awaitable[JSON | None]]]] = [
            ("instantiate", lambda: self.instantiate(out)),
            ("replicate", lambda: self.replicate(out)),
        ]
        if inst.agent_group:
            steps.append(("agent_group", lambda: self.agent_group(out)))
        steps += [
            ("sync_template", lambda: self.sync_template(out)),
            ("job", lambda: self.job(out)),
        ]
        if inst.schema_file is not None:
            steps.append(("schema", lambda: self.schema(out)))
        if inst.validate:
            steps.append(("validate", lambda: self.validate(out)))
        if inst.credentials:
            steps.append(("secrets", lambda: self.secrets(out)))
        if inst.start:
            steps.append(("start", lambda: self.start(out)))
        for name, fn in steps:
            if self.stop.is_set():
                raise _Interrupted
            if name in state.done:
                continue
            await self._step(out, name, fn)

    async def instantiate(self, out: Outcome) -> JSON:
        inst, state = out.inst, out.state
        template = self.templates[inst.template]
        if "applicationId" in state.ids and "servicePrincipalId" in state.ids:
            return {}
        since = time.monotonic()
        last = ""
        while True:
            found = await self._find_mine(inst, template.id, state)
            if found is not None:
                return found
            if state.instantiate_pending:
                # a POST may have taken effect: give replication its time before another POST
                if self._elapsed(since) < self.settle_window():
                    await self.sleep(self.settings.poll_interval)
                    continue
                self.ledger.step(
                    inst.key,
                    "instantiate",
                    "error",
                    settled=True,
                    message="no application appeared after the earlier attempt",
                )
                state.instantiate_pending = False
            if state.instantiate_attempts >= self.settings.instantiate_attempts:
                raise StepError(
                    inst.key,
                    "instantiate",
                    f"gave up after {state.instantiate_attempts} attempts"
                    + (f"; the last: {last}" if last else ""),
                )
            state.instantiate_attempts += 1
            state.instantiate_pending = True
            self.ledger.step(
                inst.key,
                "instantiate",
                "attempt",
                attempt=state.instantiate_attempts,
                displayName=inst.display_name,
                templateId=template.id,
            )
            try:
                app, sp = await self.graph.instantiate(template.id, inst.display_name)
            except (GraphError, TransportError) as err:
                status = getattr(err, "status", None)
                if status is not None and 400 <= status < 500 and status not in (404, 408, 429):
                    state.instantiate_pending = False
                    self.ledger.step(
                        inst.key,
                        "instantiate",
                        "error",
                        settled=True,
                        code=getattr(err, "code", None),
                    )
                    raise
                log.info(
                    "instantiate_unsure",
                    instance=inst.key,
                    error=self.redactor.shorten(str(err), 200),
                )
                last = str(err)
                since = time.monotonic()
                continue  # look for what the lost POST may have created
            state.instantiate_pending = False
            self._claim(app["id"], inst)
            out.instantiated_at = time.monotonic()
            return {
                "applicationId": app["id"],
                "appId": app["appId"],
                "servicePrincipalId": sp["id"],
                "created": True,
            }

    def _claim(self, app_id: str, inst: Instance) -> None:
        if self._shared_names is None or inst.display_name.casefold() in self._shared_names:
            self._claimed_apps[app_id] = inst.key

    async def _find_mine(
        self, inst: Instance, template_id: str, state: InstanceState
    ) -> JSON | None:
        """The application of this instance, if one exists (adopting or de-duplicating)."""
        apps = await self.graph.find_applications(template_id, inst.display_name)
        mine = [a for a in apps if self._claimed_apps.get(a["id"], inst.key) == inst.key]
        if not mine:
            return None
        if len(mine) > 1:
            if state.instantiate_attempts == 0:
                raise StepError(
                    inst.key,
                    "instantiate",
                    f"{len(mine)} applications named {inst.display_name!r} from this "
                    "template already exist; bulkprov cannot tell which belongs to "
                    "this instance (rename them or remove the extras)",
                    code="Conflict",
                )
            mine.sort(key=lambda a: (str(a.get("createdDateTime") or ""), a["id"]))
            for extra in mine[1:]:
                log.warning("deleting_duplicate", instance=inst.key, application=extra["id"])
                try:
                    await self.graph.delete_application(extra["id"])
                except GraphError as err:
                    if err.status != 404:
                        raise
                self.ledger.step(inst.key, "instantiate", "dedupe", removed=extra["id"])
        app = mine[0]
        if state.instantiate_attempts == 0 and self.settings.on_existing == "fail":
            raise StepError(
                inst.key,
                "instantiate",
                f"an application named {inst.display_name!r} from this template "
                f"already exists ({app['id']}); pass --on-existing adopt to take it "
                "over",
                code="Exists",
            )
        sp = await self._replicated(
            "the service principal of an existing application",
            lambda: self.graph.service_principal_by_app_id(app["appId"]),
            time.monotonic(),
        )
        self._claim(app["id"], inst)
        how = "recovered" if state.instantiate_attempts else "adopted"
        state.instantiate_pending = False
        return {
            "applicationId": app["id"],
            "appId": app["appId"],
            "servicePrincipalId": sp["id"],
            how: True,
        }

    async def replicate(self, out: Outcome) -> JSON:
        """Read the new service principal back until ``confirm_reads`` reads in a row work."""
        sp_id = out.state.ids["servicePrincipalId"]
        since = time.monotonic()
        streak = reads = 0
        while streak < self.settings.confirm_reads:
            reads += 1
            try:
                await self.graph.service_principal(sp_id)
                if streak == 0 and out.instantiated_at is not None:
                    self._replication_count += 1
                    self._replication_max = max(
                        self._replication_max, self._elapsed(out.instantiated_at)
                    )
                    out.instantiated_at = None  # the first read that worked, once
                streak += 1
                if streak < self.settings.confirm_reads:
                    await self.sleep(1.0)
            except GraphError as err:
                if err.status != 404:
                    raise
                streak = 0
                if self._elapsed(since) >= self.settings.replication_deadline:
                    raise NotYetReplicated(
                        f"service principal {sp_id}", self._elapsed(since)
                    ) from err
                await self.sleep(self.settings.poll_interval)
        return {"reads": reads, "waited": round(self._elapsed(since), 1)}

    async def refuse_agent_group(self, out: Outcome) -> JSON:
        kind = self.graph.client.conn.credential.kind
        raise StepError(
            out.inst.key,
            "agent_group",
            f"agentGroup {out.inst.agent_group!r} needs delegated permissions: Graph assigns "
            f"agent groups only for a signed-in user, and this run uses an app-only {kind} "
            "credential; run it with a device-code profile (--profile NAME with "
            'auth = "device_code")',
            code="DelegatedOnly",
        )

    async def agent_group(self, out: Outcome) -> JSON:
        """Assign the application to its provisioning agent group (idempotent PUT $ref)."""
        inst, app_id = out.inst, out.state.ids["applicationId"]
        assert inst.agent_group is not None
        group_id = self.agent_groups.get(inst.agent_group)
        if group_id is None:
            found = await self.graph.find_agent_groups(inst.agent_group)
            if len(found) != 1:
                raise StepError(
                    inst.key,
                    "agent_group",
                    f"{len(found)} provisioning agent groups match {inst.agent_group!r}",
                    code="UnknownAgentGroup",
                )
            group_id = self.agent_groups[inst.agent_group] = str(found[0]["id"])
        await self._replicated(
            "the application (agent group)",
            lambda: self.graph.assign_agent_group(app_id, group_id),
            time.monotonic(),
        )
        return {"agentGroupId": group_id}

    async def sync_template(self, out: Outcome) -> JSON:
        inst, sp_id = out.inst, out.state.ids["servicePrincipalId"]
        templates = await self._replicated(
            "synchronization templates", lambda: self.graph.sync_templates(sp_id), time.monotonic()
        )
        if not templates:
            raise StepError(
                inst.key,
                "sync_template",
                "the application has no synchronization template: its gallery app "
                "does not support provisioning",
                code="NoSyncTemplate",
            )
        if inst.sync_template:
            chosen = next((t for t in templates if t.get("id") == inst.sync_template), None)
            if chosen is None:
                ids = ", ".join(str(t.get("id")) for t in templates)
                raise StepError(
                    inst.key,
                    "sync_template",
                    f"synchronization template {inst.sync_template!r} not offered; "
                    f"the application has {ids}",
                    code="UnknownSyncTemplate",
                )
        else:
            chosen = next((t for t in templates if t.get("default")), templates[0])
        fields = _configuration_fields(chosen)
        given = {c.key.lower() for c in inst.credentials}
        missing = [f for f in fields if f.lower() not in given]
        if missing and (inst.validate or inst.start):
            raise StepError(
                inst.key,
                "sync_template",
                f"template {chosen.get('id')!r} needs credentials "
                f"{', '.join(fields)}; the manifest gives "
                f"{', '.join(sorted(c.key for c in inst.credentials)) or 'none'}",
                code="MissingCredentials",
            )
        return {"templateId": str(chosen["id"]), "fields": fields}

    async def job(self, out: Outcome) -> JSON:
        sp_id = out.state.ids["servicePrincipalId"]
        template_id = out.state.ids.get("templateId") or self._template_from_ledger(out)
        settings = [{"name": n, "value": v} for n, v in out.inst.job_settings] or None
        since = time.monotonic()
        last = ""
        for attempt in range(1, JOB_CREATE_ATTEMPTS + 1):
            if attempt > 1:
                await self.sleep(min(2.0**attempt, 30.0))  # let a 5xx spell pass
            jobs = await self._replicated(
                "synchronization jobs", lambda: self.graph.jobs(sp_id), since
            )
            existing = next((j for j in jobs if j.get("templateId") == template_id), None)
            if existing is not None:
                return {"jobId": existing["id"], "adopted": True}
            try:
                job = await self._replicated(
                    "the new service principal (create job)",
                    lambda: self.graph.create_job(sp_id, template_id, settings),
                    since,
                )
            except (TransportError, GraphError) as err:
                lost = isinstance(err, TransportError) or err.code == "InvalidResponse"
                if isinstance(err, GraphError) and err.status < 500 and not lost:
                    raise
                # the answer was lost or unreadable: list again before creating again
                log.info(
                    "job_create_unsure",
                    instance=out.inst.key,
                    error=self.redactor.shorten(str(err), 200),
                )
                last = str(err)
                continue
            return {"jobId": job["id"], "status": (job.get("status") or {}).get("code")}
        raise StepError(
            out.inst.key,
            "job",
            f"could not create the synchronization job in {JOB_CREATE_ATTEMPTS} attempts; "
            f"the last: {last}",
            code="JobCreateFailed",
        )

    async def schema(self, out: Outcome) -> JSON:
        """PUT the instance's schema file onto its job, then prove Graph holds the same."""
        inst = out.inst
        sp_id, job_id = out.state.ids["servicePrincipalId"], out.state.ids["jobId"]
        assert inst.schema_file is not None
        try:
            wanted = schema_mod.load(inst.schema_file)
        except ValueError as exc:
            raise StepError(inst.key, "schema", str(exc), code="BadSchemaFile") from None
        since = time.monotonic()
        current = await self._replicated(
            "the job (schema)", lambda: self.graph.job_schema(sp_id, job_id), since
        )
        body = schema_mod.for_put(wanted, current)
        await self._replicated(
            "the job (put schema)",
            lambda: self.graph.put_job_schema(sp_id, job_id, body),
            since,
        )
        got = await self.graph.job_schema(sp_id, job_id)
        diff = schema_mod.first_difference(schema_mod.normalise(wanted), schema_mod.normalise(got))
        if diff is not None:
            path, exported, actual = diff
            raise StepError(
                inst.key,
                "schema",
                f"the schema read back differs from {inst.schema_file.name} at {path}: "
                f"the file has {_short(exported)}, Graph has {_short(actual)}",
                code="SchemaMismatch",
            )
        return schema_mod.summary(wanted)

    def _template_from_ledger(self, out: Outcome) -> str:
        final = out.state.final or {}
        tid = final.get("templateId")
        if not tid:
            raise StepError(out.inst.key, "job", "the synchronization template is unknown")
        return str(tid)

    def _credentials(self, out: Outcome) -> list[JSON]:
        creds = []
        for ref in out.inst.credentials:
            try:
                value = ref.resolve().reveal()
            except LookupError as exc:
                raise StepError(
                    out.inst.key, "secrets", f"credential {ref.key}: {exc}", code="MissingSecret"
                ) from None
            if (ref.scheme != "literal" or ref.key not in ("BaseAddress", "Url", "Domain")) and (
                value not in out.secrets
            ):
                out.secrets.add(value)
                self.redactor.add(value)
            creds.append({"key": ref.key, "value": value})
        return creds

    async def validate(self, out: Outcome) -> JSON:
        sp_id, job_id = out.state.ids["servicePrincipalId"], out.state.ids["jobId"]
        creds = self._credentials(out)
        try:
            await self._replicated(
                "the job (validateCredentials)",
                lambda: self.graph.validate_credentials(sp_id, job_id, creds),
                time.monotonic(),
            )
        except GraphError as err:
            if err.status == 400:
                code = err.detail_codes[0] if err.detail_codes else err.code
                raise StepError(
                    out.inst.key,
                    "validate",
                    f"the target rejected the credentials: {err.graph_message}",
                    code=code,
                    request_id=err.request_id,
                ) from None
            raise
        return {"keys": [c["key"] for c in creds]}

    async def secrets(self, out: Outcome) -> JSON:
        sp_id = out.state.ids["servicePrincipalId"]
        creds = self._credentials(out)
        await self._replicated(
            "the service principal (secrets)",
            lambda: self.graph.put_secrets(sp_id, creds),
            time.monotonic(),
        )
        return {
            "keys": [c["key"] for c in creds],
            "fingerprints": {
                c["key"]: self.ledger.fingerprint(c["key"], c["value"]) for c in creds
            },
        }

    async def start(self, out: Outcome) -> JSON:
        sp_id, job_id = out.state.ids["servicePrincipalId"], out.state.ids["jobId"]
        await self._replicated(
            "the job (start)", lambda: self.graph.start_job(sp_id, job_id), time.monotonic()
        )
        return {}

    # ------------------------------------------------------------------ monitor
    async def monitor(self, out: Outcome) -> JSON:
        """Poll the job until steady state, quarantine, or the monitor deadline."""
        sp_id, job_id = out.state.ids["servicePrincipalId"], out.state.ids["jobId"]
        since = time.monotonic()
        polls = 0
        while True:
            polls += 1
            job = await self._replicated(
                "the job (monitor)", lambda: self.graph.job(sp_id, job_id), since
            )
            status = job.get("status") or {}
            out.job_status = status
            code = status.get("code")
            last = status.get("lastExecution") or {}
            if code == "Quarantine":
                q = status.get("quarantine") or {}
                err = q.get("error") or last.get("error") or {}
                return {
                    "jobStatus": code,
                    "quarantine": {
                        "reason": q.get("reason"),
                        "code": err.get("code"),
                        "message": err.get("message"),
                        "nextAttempt": q.get("nextAttempt"),
                        "seriesCount": q.get("seriesCount"),
                    },
                    "polls": polls,
                }
            if code == "Active" and last.get("state") in ("Succeeded", "EntryLevelErrors"):
                return {
                    "jobStatus": code,
                    "lastExecution": last.get("state"),
                    "timeEnded": last.get("timeEnded"),
                    "timeBegan": last.get("timeBegan"),
                    "polls": polls,
                }
            if code in ("Paused", "NotConfigured") and polls > 3:
                return {"jobStatus": code, "polls": polls}
            if self._elapsed(since) >= self.settings.monitor_deadline:
                raise StepError(
                    out.inst.key,
                    "monitor",
                    f"job still {code} after {self.settings.monitor_deadline:.0f} Graph seconds",
                    code="MonitorDeadline",
                )
            if self.stop.is_set():
                raise _Interrupted
            await self.sleep(self.settings.monitor_interval)


def _short(value: Any) -> str:
    text = orjson.dumps(value).decode() if not isinstance(value, str) else repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


class _Interrupted(BulkProvError):
    """The run is draining: stop this instance between steps."""


Interrupted = _Interrupted
_ID_KEYS = frozenset({"applicationId", "appId", "servicePrincipalId", "jobId", "templateId"})


def _configuration_fields(template: JSON) -> list[str]:
    """The credential keys a synchronization template asks for (its ConfigurationFields)."""
    for item in template.get("metadata") or []:
        if str(item.get("key", "")).lower() == "configurationfields":
            try:
                fields = orjson.loads(str(item.get("value") or "[]"))
            except orjson.JSONDecodeError:
                return []
            names = [str(f.get("name")) for f in fields if isinstance(f, dict) and f.get("name")]
            return [_SECRET_KEY_CASE.get(n.lower(), n) for n in names]
    return []


def _secret_key_case() -> dict[str, str]:
    from .manifest import SECRET_KEYS

    return {k.lower(): k for k in SECRET_KEYS}


_SECRET_KEY_CASE = _secret_key_case()
