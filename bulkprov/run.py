"""A run: the manifest streamed through a pool of workers, every step recorded in the ledger.

Two stages, each a pool of workers (:mod:`bulkprov.pool`), the first feeding the second:

    manifest --> [setup workers x concurrency] --> [monitor workers x monitor_concurrency]

Setup takes an instance from instantiate to start; monitoring (polling the job until steady
state or quarantine, then its provisioning logs) holds no setup worker, so the writes that set
instances up keep flowing while earlier jobs run their first cycle. Provisioning logs are
fetched by one :class:`LogCollector` for all jobs (the reports quota is 5 requests per 10 s:
one query per job would make it the bottleneck).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import anyio
import structlog

from .client import GraphClient, wait_out_throttling
from .errors import BulkProvError, GraphError, ManifestError, Problem, StepError, TransportError
from .graph import Graph
from .jsontypes import JSON
from .ledger import InstanceState, Ledger, Redactor
from .manifest import Instance, Lines, ManifestSummary, iter_instances, validate
from .pipeline import Events, Interrupted, Outcome, Pipeline, ResolvedTemplate
from .planner import TemplateNeeds
from .pool import Pool, open_pool
from .records import InstanceError, InstanceRecord, Status, Step
from .refs import DEFAULT_RULES, RefRules
from .settings import RunSettings
from .tenancy import TenantRef

log = structlog.get_logger("bulkprov.run")
T = TypeVar("T")


@dataclass(slots=True)
class RunResult:
    total: int = 0
    skipped: int = 0  # already finished in the ledger
    # by status, skipped instances included (a re-run of a finished run: all "done")
    statuses: Counter[str] = field(default_factory=Counter)
    skipped_statuses: Counter[str] = field(default_factory=Counter)  # the skipped ones only
    failures: list[JSON] = field(default_factory=list)  # the first few, for the summary
    elapsed: float = 0.0
    interrupted: bool = False
    # a run across many tenants: each profile's part (empty for a run of one tenant)
    tenants: dict[str, TenantResult] = field(default_factory=dict)

    @property
    def this_run(self) -> Counter[str]:
        """By status, the instances this run took through (the skipped ones left out)."""
        return self.statuses - self.skipped_statuses

    @property
    def failed(self) -> int:
        return self.statuses["failed"] + self.statuses["timeout"]

    @property
    def ok(self) -> bool:
        return self.failed == 0 and not self.interrupted and not self.statuses["interrupted"]


def _at_lines(
    summary: ManifestSummary, lines: Lines, column: str, message: str, name: str
) -> list[Problem]:
    """One problem per line using ``name`` (the first few), and one saying how many more."""
    where = str(summary.path)
    problems = [Problem(where, line, column, message) for line in lines.first]
    if lines.count > len(lines.first):
        more = lines.count - len(lines.first)
        problems.append(Problem(where, None, column, f"... and {more} more lines use {name!r}"))
    return problems


def _moved(inst: Instance, was: str | None, now: str | None) -> Problem:
    """The problem of a row whose instance the ledger set up in another tenant."""
    where = f"profile {was!r}" if was is not None else "the run's one tenant"
    return Problem(
        inst.file,
        inst.line,
        "profile",
        f"instance {inst.key!r} was set up with {where} (the ledger has its objects there), "
        f"not {now!r}: restore the row's profile, or `bulkprov cleanup` it first",
        inst.key,
    )


def _search_word(name: str) -> str:
    """A word of a template name to search for (its first: a vendor, often), for a shell."""
    import shlex

    words = name.split()
    return shlex.quote(words[0] if words else name)


async def resolve_templates(graph: Graph, summary: ManifestSummary) -> dict[str, ResolvedTemplate]:
    """One Graph lookup per distinct template; unknown or ambiguous ones are manifest problems
    naming every line that uses them."""

    def missing(name: str) -> str:
        return (
            f"no gallery application template {name!r} (`bulkprov templates "
            f"{_search_word(name)}` lists the templates whose names contain its first word)"
        )

    return await _resolve_names(
        summary,
        summary.templates,
        graph.find_templates,
        lambda t: ResolvedTemplate(str(t["id"]), str(t["displayName"])),
        column="template",
        plural="gallery templates",
        missing=missing,
    )


async def resolve_agent_groups(graph: Graph, summary: ManifestSummary) -> dict[str, str]:
    """Each distinct ``agentGroup`` of the manifest -> its id (a delegated connection only);
    unknown or ambiguous ones are manifest problems naming the lines that use them."""
    return await _resolve_names(
        summary,
        summary.agent_groups,
        graph.find_agent_groups,
        lambda g: str(g["id"]),
        column="agentGroup",
        plural="agent groups",
        missing=lambda name: f"no provisioning agent group {name!r} in the tenant",
    )


async def _resolve_names(
    summary: ManifestSummary,
    names: Mapping[str, Lines],
    find: Callable[[str], Awaitable[list[JSON]]],
    make: Callable[[JSON], T],
    *,
    column: str,
    plural: str,
    missing: Callable[[str], str],
) -> dict[str, T]:
    """Each of ``names`` (a manifest column's distinct values) -> what the one object ``find``
    finds of it gives; none or several found is a problem on every line that uses the name."""
    resolved: dict[str, T] = {}
    problems: list[Problem] = []
    for name, lines in names.items():
        with wait_out_throttling():  # giving up on a 429 storm here would end the run
            found = await find(name)
        if len(found) == 1:
            resolved[name] = make(found[0])
            continue
        if not found:
            message = missing(name)
        else:
            ids = ", ".join(str(f.get("id")) for f in found[:5])
            message = f"{len(found)} {plural} are named {name!r} ({ids}); use the id"
        problems.extend(_at_lines(summary, lines, column, message, name))
    if problems:
        raise ManifestError(problems)
    return resolved


async def read_needs(
    graph: Graph, templates: dict[str, ResolvedTemplate]
) -> dict[str, TemplateNeeds]:
    """What the synchronization templates of each gallery template need, read from one service
    principal of it that the tenant already has (two requests a template). A template with none,
    or whose service principal cannot be read, is left out: its needs are unknown until the
    first application of it exists."""
    needs: dict[str, TemplateNeeds] = {}
    for tid in sorted({t.id for t in templates.values()}):
        try:
            sp = await graph.some_service_principal(tid)
            if sp is None:
                continue
            needs[tid] = TemplateNeeds.read(await graph.sync_templates(str(sp["id"])))
        except (GraphError, TransportError) as err:
            log.info("needs_unread", template=tid, error=str(err)[:200])
    return needs


class LogCollector:
    """Reads the provisioning logs for every job of the run with as few requests as it can.

    A monitor that saw its job's first cycle end calls :meth:`summary`; the collector then runs
    one sweep (``activityDateTime ge`` the oldest cycle start among the waiters) and hands each
    waiting job the counts of its entries.
    """

    def __init__(
        self,
        graph: Graph,
        *,
        interval: float,
        time_scale: float,
        redactor: Redactor | None = None,
    ) -> None:
        self.graph = graph
        self.redactor = redactor or Redactor()
        self.interval = interval
        self.scale = time_scale
        self._waiting: dict[str, tuple[str, anyio.Event, list[JSON]]] = {}
        self._wake = anyio.Event()
        self._closed = False

    async def summary(self, job_id: str, since: str) -> JSON:
        event = anyio.Event()
        box: list[JSON] = []
        self._waiting[job_id] = (since, event, box)
        self._wake.set()
        await event.wait()
        return box[0] if box else {"entries": 0}

    def close(self) -> None:
        self._closed = True
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            if not self._waiting:
                if self._closed:
                    return
                continue
            await anyio.sleep(self.interval * self.scale)  # let more waiters join the sweep
            batch, self._waiting = self._waiting, {}
            since = min(s for s, _e, _b in batch.values())
            counts: dict[str, JSON] = {j: {"entries": 0, "byStatus": {}} for j in batch}
            try:
                entries = await self.graph.provisioning_logs(since=since)
            except (BulkProvError, OSError) as err:
                for job_id, (_s, event, box) in batch.items():
                    box.append({"error": self.redactor.shorten(str(err), 300)})
                    event.set()
                    del job_id
                continue
            for e in entries:
                summary = counts.get(str(e.job_id))
                if summary is None:
                    continue
                summary["entries"] += 1
                status = str(e.status)
                summary["byStatus"][status] = summary["byStatus"].get(status, 0) + 1
                if status == "failure" and "lastFailure" not in summary:
                    summary["lastFailure"] = {
                        "errorCode": e.error_code,
                        "reason": self.redactor.shorten(str(e.reason or ""), 300),
                        "at": e.at,
                    }
            for job_id, (_s, event, box) in batch.items():
                box.append(counts[job_id])
                event.set()


@dataclass(frozen=True, slots=True)
class Tenant:
    """One tenant of a run: the client connected to it, the Graph the ledger records for it,
    and, in a run across many tenants, the profile the manifest's rows name it by."""

    client: GraphClient
    ledger_graph: str
    profile: str | None = None

    @property
    def ref(self) -> TenantRef:
        assert self.profile is not None
        return TenantRef(self.profile, self.ledger_graph, self.client.conn.tenant_id)


@dataclass(slots=True)
class TenantResult:
    """How one tenant of a run across many went: by status (skipped ones included), how many
    were skipped, and the real seconds until its last instance ended."""

    profile: str
    tenant: str
    total: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    skipped: int = 0
    elapsed: float = 0.0
    # plain counts a progress display's thread may read while the run adds to them
    ended: int = 0
    failed: int = 0


@dataclass(slots=True)
class _TenantRun:
    """What one tenant's part of a run works with."""

    tenant: Tenant
    graph: Graph
    result: TenantResult
    pipeline: Pipeline | None = None
    collector: LogCollector | None = None


class Runner:
    """Runs one manifest against one Graph, writing one ledger; given ``tenants``, against
    each of them at once (a manifest whose rows name profiles), each with its own client, its
    own workers and its own template look-ups, so that one tenant slowed by throttling slows
    only itself."""

    def __init__(
        self,
        *,
        manifest: Path,
        ledger_path: Path,
        client: GraphClient | None = None,
        settings: RunSettings,
        allow_inline_secrets: bool = False,
        events: Events | None = None,
        redactor: Redactor | None = None,
        on_result: Callable[[JSON], None] | None = None,
        rules: RefRules = DEFAULT_RULES,
        summary: ManifestSummary | None = None,
        ledger_graph: str | None = None,
        tenants: Sequence[Tenant] | None = None,
        default_profile: str | None = None,
    ) -> None:
        """``summary``: what :func:`validate` found in the manifest, if the caller validated
        it already (with the same ``rules``); otherwise :meth:`run` validates it first.
        ``tenants``: one per profile the manifest's rows name (``client`` and
        ``ledger_graph`` are then not given); a row naming none is ``default_profile``'s."""
        self.manifest = manifest
        self.rules = rules
        self.summary = summary
        if tenants is None:
            assert client is not None
            # the Graph the ledger records (default: the base URL; the embedded mock's kept
            # tenant has a random port, so it is recorded as mockgraph.cli.MOCK_GRAPH)
            tenants = [Tenant(client, ledger_graph or client.conn.base_url)]
        self.tenants = list(tenants)
        self.multi = self.tenants[0].profile is not None
        self.default_profile = default_profile
        self.ledger_path = ledger_path
        self.client = self.tenants[0].client
        self.settings = settings
        self.allow_inline = allow_inline_secrets
        self.events = events or Events()
        self.redactor = redactor or Redactor()
        self.on_result = on_result
        self.stop = anyio.Event()
        self.result = RunResult()
        # each tenant's part, made now: a progress display's thread reads the mapping, which
        # must not grow while it does
        for t in self.tenants:
            if t.profile is not None:
                self.result.tenants[t.profile] = TenantResult(t.profile, t.client.conn.tenant_id)
        self._t0 = 0.0

    def request_stop(self) -> None:
        """Drain: no new instance starts; in-flight ones stop after their current step."""
        self.stop.set()

    def _profile(self, inst: Instance) -> str | None:
        """The profile an instance runs with (None: a run of one tenant)."""
        return (inst.profile or self.default_profile) if self.multi else None

    def _names(self, ledger: Ledger) -> Callable[[Collection[str]], dict[str, str]]:
        """key -> display name of the manifest's instances among ``keys`` (the ledger's), for
        :meth:`Ledger.prepare`; an instance the ledger has under another profile than its row
        names now is a problem of that row (its objects are in the other tenant)."""

        def names(keys: Collection[str]) -> dict[str, str]:
            out: dict[str, str] = {}
            problems: list[Problem] = []
            for i in iter_instances(
                self.manifest, allow_inline_secrets=self.allow_inline, rules=self.rules
            ):
                if i.key not in keys:
                    continue
                out[i.key] = i.display_name
                st = ledger.replay.instances.get(i.key)
                was, now = (st.profile if st is not None else None), self._profile(i)
                if st is not None and st.ids and was != now:
                    problems.append(_moved(i, was, now))
            if problems:
                raise ManifestError(problems)
            return out

        return names

    async def run(self) -> RunResult:
        self._t0 = t0 = time.monotonic()
        summary = self.summary
        if summary is None:
            summary = validate(
                self.manifest, allow_inline_secrets=self.allow_inline, rules=self.rules
            )
        if summary.problems:
            raise ManifestError(summary.problems)
        ledger = Ledger(self.ledger_path, redactor=self.redactor, fsync=self.settings.fsync)
        graphs = {t.ledger_graph for t in self.tenants}
        # locked and checked before any Graph call, written only once the templates resolve:
        # a run refused for its manifest or its ledger leaves no ledger behind
        replay = ledger.prepare(
            manifest=self.manifest.name,
            graph=graphs.pop() if len(graphs) == 1 else "",
            tenant=self.client.conn.tenant_id,
            instances=self._names(ledger),
            tenants={t.ref.profile: t.ref for t in self.tenants} if self.multi else None,
        )
        runs = [self._tenant_run(t, summary) for t in self.tenants]
        try:
            await self._prepare_all(runs, ledger, replay, summary)
            ledger.begin()
            async with anyio.create_task_group() as tg:
                for r in runs:
                    tg.start_soon(self._pool, r, ledger)
        finally:
            ledger.close()
        self.result.elapsed = time.monotonic() - t0
        self.result.interrupted = self.stop.is_set()
        return self.result

    def _tenant_run(self, tenant: Tenant, summary: ManifestSummary) -> _TenantRun:
        profile = tenant.profile
        count = summary.count_of([profile] if profile is not None else [], self.default_profile)
        result = self.result.tenants.get(profile) if profile is not None else None
        if result is None:  # a run of one tenant
            result = TenantResult("", tenant.client.conn.tenant_id)
        result.total = count
        return _TenantRun(tenant, Graph(tenant.client), result)

    async def _prepare_all(
        self, runs: list[_TenantRun], ledger: Ledger, replay: Any, summary: ManifestSummary
    ) -> None:
        """Each tenant's templates, agent groups and needs, all tenants at once; the problems
        of all of them together (each once: a template unknown in every tenant is one)."""
        problems: list[Problem] = []

        async def one(r: _TenantRun) -> None:
            try:
                await self._prepare(r, ledger, replay, summary)
            except ManifestError as err:
                problems.extend(p for p in err.problems if p not in problems)

        async with anyio.create_task_group() as tg:
            for r in runs:
                tg.start_soon(one, r)
        if problems:
            raise ManifestError(problems)

    async def _prepare(
        self, r: _TenantRun, ledger: Ledger, replay: Any, summary: ManifestSummary
    ) -> None:
        graph, client = r.graph, r.tenant.client
        templates = await resolve_templates(graph, summary)
        groups: dict[str, str] = {}
        if summary.agent_groups and client.conn.credential.delegated:
            groups = await resolve_agent_groups(graph, summary)
        finished = sum(1 for st in replay.instances.values() if st.finished)
        # a re-run of a finished ledger sets nothing up: it has no need to know the needs
        needs = await read_needs(graph, templates) if finished < summary.count else {}
        r.collector = LogCollector(
            graph, interval=5.0, time_scale=client.settings.time_scale, redactor=self.redactor
        )
        r.pipeline = Pipeline(
            graph,
            ledger,
            replay,
            self.settings,
            templates=templates,
            time_scale=client.settings.time_scale,
            redactor=self.redactor,
            events=self.events,
            stop=self.stop,
            shared_names=summary.shared_names,
            needs=needs,
            agent_groups=groups,
            logs=r.collector,
        )

    async def _pool(self, r: _TenantRun, ledger: Ledger) -> None:
        """Set-up workers hand each started instance to a monitor worker (the module
        docstring); the log collector serves the monitors until the last one is done."""
        s = self.settings
        pipeline, collector = r.pipeline, r.collector
        assert pipeline is not None and collector is not None
        self.result.total += r.result.total
        n = max(1, r.result.total)

        # each item's work binds its instance (and tenant): the log events it causes name it
        where = {"tenant": r.tenant.profile} if r.tenant.profile is not None else {}

        async def monitor(out: Outcome) -> None:
            with structlog.contextvars.bound_contextvars(instance=out.inst.key, **where):
                await self._monitor(r, ledger, out)

        async with anyio.create_task_group() as tg:
            tg.start_soon(collector.run)
            async with open_pool(
                monitor, workers=min(s.monitor_concurrency, n), buffer=s.monitor_concurrency
            ) as monitors:

                async def setup(inst: Instance) -> None:
                    with structlog.contextvars.bound_contextvars(instance=inst.key, **where):
                        await self._setup(r, ledger, monitors, inst)

                async with open_pool(
                    setup, workers=min(s.concurrency, n), buffer=s.concurrency
                ) as setups:
                    await setups.feed(self._to_set_up(r), stop=self.stop)
            collector.close()
        r.result.elapsed = time.monotonic() - self._t0

    def _to_set_up(self, r: _TenantRun) -> Iterator[Instance]:
        """The manifest's instances (of this tenant) the ledger does not record as finished,
        or whose desired state changed since; the finished, unchanged ones are counted as
        skipped."""
        pipeline = r.pipeline
        assert pipeline is not None
        replay = pipeline.replay
        for inst in iter_instances(
            self.manifest,
            allow_inline_secrets=self.allow_inline,
            rules=self.rules,
            profile=r.tenant.profile,
            default_profile=self.default_profile,
        ):
            st = replay.instances.get(inst.key)
            if st is not None and st.finished and not pipeline.changes(inst, st):
                status = st.status or "done"
                self.result.skipped += 1
                self.result.statuses[status] += 1
                self.result.skipped_statuses[status] += 1
                r.result.skipped += 1
                r.result.ended += 1
                r.result.statuses[status] += 1
                self.events.instance_ended("skipped")
                continue
            yield inst

    async def _setup(
        self, r: _TenantRun, ledger: Ledger, monitors: Pool[Outcome], inst: Instance
    ) -> None:
        """Take one instance through its set-up steps, then to a monitor worker (if it is
        started and monitored) or to its final record."""
        pipeline = r.pipeline
        assert pipeline is not None
        replay = pipeline.replay
        state = replay.instances.get(inst.key)
        if state is None:
            state = replay.instances[inst.key] = InstanceState(inst.key)
        if r.tenant.profile is not None:  # every record of it names its profile
            ledger.profiles[inst.key] = state.profile = r.tenant.profile
        out = Outcome(inst=inst, state=state, started_at=time.monotonic())
        was = state.status if state.finished else None  # set up before: day 2
        try:
            if was is None:
                await pipeline.setup(out)
            # what its desired state still needs (nothing for most instances)
            changes = pipeline.changes(inst, state, finished_only=False)
            taken = await pipeline.update(out, changes)
        except StepError as err:
            self.events.setup_ended(False)
            self._final(r, ledger, inst, state, "failed", error=err, out=out)
            return
        except Interrupted:
            self.events.setup_ended(False)
            self._final(r, ledger, inst, state, "interrupted", out=out)
            return
        self.events.setup_ended(True)
        if was is not None:
            self._updated(r, ledger, out, was, taken)
        elif inst.start and self.settings.monitor:
            await monitors.put(out)
        else:
            self._final(r, ledger, inst, state, "done", out=out)

    async def _monitor(self, r: _TenantRun, ledger: Ledger, out: Outcome) -> None:
        pipeline = r.pipeline
        assert pipeline is not None
        inst, state = out.inst, out.state
        try:
            data = await pipeline.step(out, Step.MONITOR)
        except StepError as err:
            status = "timeout" if err.code == "MonitorDeadline" else "failed"
            self._final(r, ledger, inst, state, status, error=err, out=out)
            return
        except Interrupted:
            self._final(r, ledger, inst, state, "interrupted", out=out)
            return
        logs: JSON | None = None
        if self.settings.collect_logs and data.get("timeBegan"):
            try:
                logs = await pipeline.step(out, Step.LOGS)
            except StepError:
                logs = None
        status = "quarantined" if data.get("jobStatus") == "Quarantine" else "done"
        self._final(r, ledger, inst, state, status, out=out, monitor=data, logs=logs)

    def _updated(
        self, r: _TenantRun, ledger: Ledger, out: Outcome, was: str, taken: list[str]
    ) -> None:
        """The instance record of an instance set up before that took update steps: its job's
        state as last monitored, done once a start or restart cleared a quarantine."""
        rec, state = out.state.record, out.state
        cleared = any(step in ("rotate", "job_start") for step in taken)
        status = "done" if was == Status.DONE or cleared else was
        job: JSON = {}
        if rec is not None:
            job = {"jobStatus": rec.job_status, "lastExecution": rec.last_execution}
            if status == Status.QUARANTINED:
                job["quarantine"] = rec.quarantine
        self._final(r, ledger, out.inst, state, status, out=out, monitor=job)

    def _final(
        self,
        r: _TenantRun,
        ledger: Ledger,
        inst: Instance,
        state: Any,
        status: str,
        *,
        error: StepError | None = None,
        out: Outcome | None = None,
        monitor: JSON | None = None,
        logs: JSON | None = None,
    ) -> None:
        failure: JSON | None = None
        if error is not None:
            failure = self.redactor.value(
                {
                    "step": error.step,
                    "code": error.code,
                    "message": error.reason,
                    "requestId": error.request_id,
                }
            )
            if len(self.result.failures) < 20:
                where = {"tenant": r.tenant.profile} if r.tenant.profile is not None else {}
                self.result.failures.append(
                    {"key": inst.key, "where": inst.where, **where, **failure}
                )
        job = monitor or {}
        record = InstanceRecord(
            key=inst.key,
            status=Status(status),
            t=round(time.time(), 3),
            display_name=inst.display_name,
            template=inst.template,
            ids=dict(state.ids),
            template_id=state.ids.get("templateId") or None,
            job_status=job.get("jobStatus"),
            quarantine=job.get("quarantine") or None,
            last_execution=job.get("lastExecution") or None,
            logs=logs or None,
            error=InstanceError.from_json(failure) if failure is not None else None,
            timings=dict(out.timings) if out is not None else None,
            seconds=round(time.monotonic() - out.started_at, 3) if out is not None else None,
            profile=r.tenant.profile,
            tenant=r.tenant.client.conn.tenant_id if r.tenant.profile is not None else None,
        )
        state.status = status
        state.record = record
        ledger.append(record)
        # its record is written and the manifest's keys are unique: nothing of this run reads
        # the instance's state again, so memory stays flat however long the manifest is
        ledger.replay.instances.pop(inst.key, None)
        ledger.profiles.pop(inst.key, None)
        self.result.statuses[status] += 1
        r.result.statuses[status] += 1
        r.result.ended += 1
        r.result.failed += status in ("failed", "timeout")
        self.events.instance_ended(status)
        if self.on_result is not None:
            self.on_result(record.to_json())
        if status not in ("done", "quarantined", "interrupted"):
            log.warning(
                "instance_failed",
                status=status,
                step=error.step if error else None,
                error=failure["message"] if failure else None,
            )
        if out is not None:
            # nothing of this instance is written or logged any more: its secrets need no
            # masking now, and a long run holds those of the instances in flight only
            for value in out.secrets:
                self.redactor.discard(value)
            out.secrets.clear()
