"""What a report shows, read from one or more ledgers: a small typed model.

:func:`read_ledger` is the report's one reader of a ledger: it reads the file once, a line at
a time, through :func:`bulkprov.ledger.replay_lines` (whose :class:`~bulkprov.ledger.Replay` the
``--live`` reads of ``monitor`` need), which parses each line once into a
:mod:`bulkprov.records` record and hands it to the model's fold too. Nothing else in the package
opens a ledger.

Times are the ledger's: ``t`` (epoch seconds) on step and instance records, ``at`` (ISO) on run
records, ``ms`` (real milliseconds) on a step's ``done`` and ``error`` records.

A ``drift`` record (``bulkprov drift`` writes one) is read when a ledger has
one; the report shows a drift column only for ledgers that hold such records.

A ledger of a run across many tenants names each instance's profile in its records, and the
tenant of each profile in its header and run lines (:mod:`bulkprov.tenancy`): each instance
has its profile and its tenant's id. Given profiles (``--tenant``), only their instances are
read: the records of the others are left out of instances, runs and step samples alike.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from .. import ledger as ledger_mod
from ..errors import ConfigError, LedgerError, ManifestError
from ..jsontypes import JSON
from ..records import (
    CleanupRecord,
    DriftRecord,
    Event,
    Header,
    InstanceRecord,
    Record,
    RunStart,
    Status,
    Step,
    StepRecord,
)
from ..tenancy import TenantRef, describe, refs_of, selected

#: The categories an instance's status falls in, in the headline's order.
DONE, QUARANTINED, FAILED, NOT_DONE, REMOVED = (
    "done",
    "quarantined",
    "failed",
    "not yet done",
    "removed",
)
CATEGORY: dict[str, str] = {
    Status.DONE: DONE,
    Status.QUARANTINED: QUARANTINED,
    Status.FAILED: FAILED,
    Status.TIMEOUT: FAILED,
    Status.REMOVED: REMOVED,
}
IN_PROGRESS = "in progress"  # no final record (yet)
#: The steps that set an instance up (each run takes them in this order), before monitor.
SETUP_STEPS = frozenset(
    {
        Step.INSTANTIATE,
        Step.REPLICATE,
        Step.AGENT_GROUP,
        Step.SYNC_TEMPLATE,
        Step.JOB,
        Step.SCHEMA,
        Step.VALIDATE,
        Step.SECRETS,
        Step.START,
    }
)
#: Steps that send one write to Graph each time they end (done or error). Instantiate's
#: writes are its ``attempt`` records, the job's a ``done`` that did not adopt one.
WRITE_STEPS = frozenset(
    {Step.AGENT_GROUP, Step.SCHEMA, Step.VALIDATE, Step.SECRETS, Step.START, Step.RESTART}
)


@dataclass(frozen=True, slots=True)
class Failure:
    """Where and why an instance failed (its final record's ``error``, or a step's error)."""

    step: str | None
    code: str | None
    message: str
    request_id: str | None


@dataclass(frozen=True, slots=True)
class Quarantine:
    reason: str | None
    code: str | None
    message: str | None
    next_attempt: str | None
    series_count: int | None


@dataclass(frozen=True, slots=True)
class Drift:
    drifted: bool
    fields: tuple[str, ...]
    message: str | None
    t: float | None


@dataclass(frozen=True, slots=True)
class Live:
    """A job's state as ``monitor`` read it for ``--live``."""

    status: str  # the job's status code, or "missing" / "error" when it could not be read
    detail: str | None  # quarantine reason and code, or why it could not be read
    code: str | None  # the quarantine's error code, or why the job could not be read
    reason: str | None  # the quarantine's reason, or the error reading the job
    next_attempt: str | None
    last_execution: str | None
    failures: int | None  # provisioning-log failures since the ledger began


@dataclass(frozen=True, slots=True)
class StepSample:
    step: str
    ms: int
    ok: bool
    key: str


@dataclass(slots=True)
class Instance:
    key: str
    tenant: str
    ledger: int  # index of its ledger in :attr:`Report.ledgers`
    display_name: str | None = None
    template: str | None = None
    template_id: str | None = None
    status: str = IN_PROGRESS
    started: float | None = None  # first step record
    ended: float | None = None  # its final record
    seconds: float | None = None  # as its final record says
    run: int | None = None  # the run (index in its ledger's runs) that wrote its final record
    job_status: str | None = None
    error: Failure | None = None  # the final record's
    last_error: Failure | None = None  # the latest step error (an unfinished instance's)
    quarantine: Quarantine | None = None
    step_errors: int = 0
    origin: str | None = None  # created, recovered or adopted
    where: str | None = None  # manifest file:line, when the manifest was found
    drift: Drift | None = None
    live: Live | None = None
    profile: str | None = None  # a run across many tenants: the profile it was set up with

    @property
    def category(self) -> str:
        return CATEGORY.get(self.status, NOT_DONE)


@dataclass(slots=True)
class Run:
    """One ``run`` of a ledger: from its run record to the next command's."""

    index: int
    at: str | None
    start: float | None  # epoch seconds (from ``at``, else its first record)
    end: float | None = None  # its last record
    writes: int = 0  # writes its steps sent (as the ledger tells them)
    finished: list[tuple[float, str]] = field(default_factory=list)  # (t, status)
    # key -> when its last setup step (instantiate ... start) ended in this run, for the
    # instances whose setup this run completed: what the write quota bounds
    set_up: dict[str, float] = field(default_factory=dict)
    keys: set[str] = field(default_factory=set)  # the instances it wrote a record of


@dataclass(slots=True)
class LedgerModel:
    path: Path
    header: JSON
    runs: list[Run]
    commands: dict[str, int]  # other commands that wrote to it
    torn: bool
    drift_records: int
    replay: ledger_mod.Replay
    manifest: Path | None = None  # the manifest whose lines are shown
    manifest_note: str | None = None  # why no manifest lines are shown, if not
    # a run across many tenants: the profiles the report shows (--tenant; default all)
    profiles: list[str] = field(default_factory=list)
    only: frozenset[str] | None = None  # the profiles --tenant named, if it did

    @property
    def tenants(self) -> dict[str, TenantRef]:
        """A run across many tenants: profile -> its Graph and tenant ({}: one tenant's)."""
        return self.replay.tenants

    @property
    def tenant(self) -> str:
        """The tenant, or for a ledger of many, which of them the report shows."""
        if self.tenants:
            of = f" of {len(self.tenants)}" if len(self.profiles) < len(self.tenants) else ""
            return describe(self.profiles) + of
        return str(self.header.get("tenant") or "?")

    def tenant_of(self, profile: str | None) -> str:
        """The tenant id of an instance of ``profile`` (the header's for a one-tenant ledger)."""
        ref = self.tenants.get(profile) if profile is not None else None
        return ref.tenant if ref is not None else self.tenant if not self.tenants else "?"


@dataclass(frozen=True, slots=True)
class ClientTotals:
    """Requests and 429s as a run's ``--summary-json`` recorded them (the ledger does not)."""

    requests: int
    throttled: int
    retries: int


@dataclass(slots=True)
class Report:
    ledgers: list[LedgerModel]
    instances: list[Instance]
    samples: list[StepSample]
    client: ClientTotals | None = None
    live_at: str | None = None  # when --live read the jobs
    notes: list[str] = field(default_factory=list)

    @property
    def tenants(self) -> list[str]:
        """The ids of the tenants shown (a ledger of many tenants: the profiles shown)."""
        ids = {i.tenant for i in self.instances}
        for m in self.ledgers:
            ids |= {m.tenants[p].tenant for p in m.profiles} if m.tenants else {m.tenant}
        return sorted(ids)

    @property
    def many_tenants(self) -> bool:
        """Whether a ledger of a run across many tenants is among the ledgers."""
        return any(m.tenants for m in self.ledgers)

    @property
    def has_drift(self) -> bool:
        return any(m.drift_records for m in self.ledgers)


def _epoch(iso: Any) -> float | None:
    if not isinstance(iso, str):
        return None
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _failure(
    step: str | None, code: str | None, message: str | None, request_id: str | None
) -> Failure:
    return Failure(step=step, code=code, message=message or "", request_id=request_id)


def _quarantine(q: JSON | None) -> Quarantine | None:
    if q is None:
        return None
    count = q.get("seriesCount")
    return Quarantine(
        reason=_text(q.get("reason")),
        code=_text(q.get("code")),
        message=_text(q.get("message")),
        next_attempt=_text(q.get("nextAttempt")),
        series_count=count if isinstance(count, int) else None,
    )


class _Fold:
    """Folds a ledger's records, in order, into instances, runs and step samples."""

    def __init__(
        self, index: int, tenant: str, report: Report, only: Collection[str] | None = None
    ) -> None:
        self.index = index
        self.tenant = tenant
        self.report = report
        self.only = frozenset(only) if only else None  # --tenant: these profiles' records
        self.refs: dict[str, TenantRef] = {}  # a run across many tenants: profile -> tenant
        self.skipped: set[str] = set()  # keys of the instances of profiles not shown
        self.instances: dict[str, Instance] = {}
        self.runs: list[Run] = []
        self.run: Run | None = None  # the run the records belong to (None: another command)
        self.drift = 0

    def record(self, rec: Record) -> None:
        """One record of the ledger, in the ledger's order."""
        match rec:
            case Header():
                self.tenant = rec.tenant or "?"
                self.refs.update(refs_of(rec.tenants))
            case RunStart():
                self.refs.update(refs_of(rec.tenants))
                self._run(rec)
            case StepRecord() if not self._skip(rec.key, rec.profile):
                self._step(self._of_profile(rec.key, rec.t, rec.profile, None), rec)
            case InstanceRecord() if not self._skip(rec.key, rec.profile):
                self._final(self._of_profile(rec.key, rec.t, rec.profile, rec.tenant), rec)
            case DriftRecord() if not self._skip(rec.key, None):
                self._drift(self._instance_of(rec.key, rec.t), rec)
            case CleanupRecord() if not self._skip(rec.key, None):
                self._instance_of(rec.key, None)

    def _skip(self, key: str, profile: str | None) -> bool:
        """Whether a record of ``key`` (naming ``profile``, if it does) is of an instance of a
        profile the report does not show."""
        if self.only is None:
            return False
        if profile is not None and profile not in self.only:
            self.skipped.add(key)
        return key in self.skipped or (profile is None and key not in self.instances)

    def _of_profile(
        self, key: str, t: float | None, profile: str | None, tenant: str | None
    ) -> Instance:
        """:meth:`_instance_of`, given its profile and tenant id as the record names them."""
        inst = self._instance_of(key, t)
        if profile is not None:
            inst.profile = profile
            ref = self.refs.get(profile)
            inst.tenant = tenant or (ref.tenant if ref is not None else inst.tenant)
        return inst

    def _instance_of(self, key: str, t: float | None) -> Instance:
        """The instance a record of ``key`` at ``t`` is of; the record is the current run's."""
        if self.run is not None:
            if t is not None:
                self.run.end = float(t)
                if self.run.start is None:
                    self.run.start = float(t)
            self.run.keys.add(key)
        inst = self.instances.get(key)
        if inst is None:
            inst = self.instances[key] = Instance(key, self.tenant, self.index)
        return inst

    def _run(self, rec: RunStart) -> None:
        if rec.command != "run":
            self.run = None
            return
        self.run = Run(len(self.runs), rec.at, _epoch(rec.at))
        self.runs.append(self.run)

    def _step(self, inst: Instance, rec: StepRecord) -> None:
        t = rec.t
        if inst.started is None and t is not None:
            inst.started = float(t)
        step, event = str(rec.step), str(rec.event)
        if rec.display_name is not None:
            inst.display_name = rec.display_name
        data = rec.data or {}
        if event in (Event.DONE, Event.ERROR):
            if rec.ms is not None and rec.ms >= 0:
                ok = event == Event.DONE
                self.report.samples.append(StepSample(step, rec.ms, ok, inst.key))
            if step == Step.INSTANTIATE and event == Event.DONE:
                for how in ("created", "recovered", "adopted"):
                    if data.get(how):
                        inst.origin = how
        if event == Event.ERROR:
            inst.step_errors += 1
            inst.last_error = _failure(_text(rec.step), rec.code, rec.message, rec.request_id)
        self._set_up(inst.key, step, event, t)
        self._writes(step, event, data)

    def _set_up(self, key: str, step: str, event: str, t: float | None) -> None:
        if self.run is None or event != Event.DONE or t is None:
            return
        if step in SETUP_STEPS:
            self.run.set_up[key] = float(t)

    def _writes(self, step: str, event: str, data: JSON) -> None:
        if self.run is None:
            return
        if step == Step.INSTANTIATE and event in (Event.ATTEMPT, Event.DEDUPE):
            self.run.writes += 1  # a POST, or the DELETE of a duplicate
        elif (step == Step.JOB and event == Event.DONE and not data.get("adopted")) or (
            step in WRITE_STEPS and event in (Event.DONE, Event.ERROR)
        ):
            self.run.writes += 1

    def _final(self, inst: Instance, rec: InstanceRecord) -> None:
        inst.status = str(rec.status or IN_PROGRESS)
        if rec.display_name is not None:
            inst.display_name = rec.display_name
        if rec.template is not None:
            inst.template = rec.template
        inst.template_id = rec.template_id or inst.template_id
        inst.ended = float(rec.t) if rec.t is not None else inst.ended
        inst.seconds = float(rec.seconds) if rec.seconds is not None else inst.seconds
        inst.job_status = rec.job_status or inst.job_status
        error = rec.error
        inst.error = (
            None
            if error is None
            else _failure(error.step, error.code, error.message, error.request_id)
        )
        inst.quarantine = _quarantine(rec.quarantine)
        if self.run is not None and inst.status != Status.REMOVED:
            inst.run = self.run.index
            if inst.error is not None and inst.error.step in SETUP_STEPS:
                self.run.set_up.pop(inst.key, None)  # its setup did not complete
            if rec.t is not None:
                self.run.finished.append((float(rec.t), inst.status))

    def _drift(self, inst: Instance, rec: DriftRecord) -> None:
        self.drift += 1
        inst.drift = Drift(
            drifted=rec.drifted is not False,
            fields=rec.fields or (),
            message=rec.message,
            t=float(rec.t) if rec.t is not None else None,
        )


def read_ledger(path: Path, report: Report, only: Collection[str] | None = None) -> LedgerModel:
    """Read the ledger at ``path`` into ``report`` (its instances and step samples) and give
    what it says of itself; given profiles (``only``), those of their instances alone. A file
    that is not a ledger is a one-line :class:`LedgerError`."""
    if not path.exists():
        raise LedgerError(f"no ledger at {path}")
    if not path.is_file():
        what = "a directory" if path.is_dir() else "not a regular file"
        raise LedgerError(f"ledger {path} is {what}: give the path of a ledger file")
    fold = _Fold(len(report.ledgers), "?", report, only)
    replay = ledger_mod.read(path, tap=fold.record)
    if replay.header is None:
        raise LedgerError(f"{path} is not a bulkprov ledger (no header line)")
    header = {k: v for k, v in replay.header.to_json().items() if k != "salt"}
    model = LedgerModel(
        path=path,
        header=header,
        runs=fold.runs,
        commands=dict(replay.commands),
        torn=replay.torn,
        drift_records=fold.drift,
        replay=replay,
        profiles=sorted(set(replay.tenants) & set(only) if only else replay.tenants),
        only=frozenset(only) if only else None,
    )
    report.ledgers.append(model)
    report.instances.extend(fold.instances.values())
    return model


def read(paths: Iterable[Path], only: Collection[str] | None = None) -> Report:
    """The report of these ledgers (one per tenant of a multi-tenant onboarding, or of runs
    across many tenants); given profiles (``only``, ``--tenant``), of their instances alone,
    each of which some ledger must know (a LedgerError if not)."""
    report = Report(ledgers=[], instances=[], samples=[])
    for path in paths:
        read_ledger(path, report, only)
    if only:
        _check_selected(report, only)
    return report


def _check_selected(report: Report, only: Collection[str]) -> None:
    """Refuse --tenant with a ledger of one tenant, and a profile no ledger knows."""
    for m in report.ledgers:
        if not m.tenants:
            selected(m.path, {}, list(only))  # refuses: a run of one tenant
    if len(report.ledgers) == 1:
        selected(report.ledgers[0].path, report.ledgers[0].tenants, list(only))
        return
    known = {p for m in report.ledgers for p in m.tenants}
    unknown = sorted(set(only) - known)
    if unknown:
        raise LedgerError(
            f"no ledger given has a tenant of profile {unknown[0]!r}; their profiles: "
            f"{', '.join(sorted(known))}"
        )


# ---------------------------------------------------------------------- manifest lines
def manifest_candidates(model: LedgerModel, given: Path | None) -> list[Path]:
    """Where the manifest of a ledger may be: ``given``, else the name its header records,
    as given, beside the ledger, and one directory up (``runs/x.jsonl`` beside ``m.csv``)."""
    if given is not None:
        return [given]
    name = model.header.get("manifest")
    if not isinstance(name, str) or not name:
        return []
    recorded = Path(name)
    if recorded.is_absolute():
        return [recorded]
    return [recorded, model.path.parent / recorded, model.path.parent.parent / recorded]


@dataclass(frozen=True, slots=True)
class ManifestLine:
    where: str  # file:line
    display_name: str
    template: str
    profile: str | None = None  # a manifest of many tenants: the row's profile


def manifest_lines(path: Path) -> dict[str, ManifestLine]:
    """key -> where, display name and template of every instance of a manifest. Its
    references are not read (no secret is needed, none is touched)."""
    from ..manifest import iter_instances

    return {
        inst.key: ManifestLine(
            f"{path.name}:{inst.line}", inst.display_name, inst.template, inst.profile
        )
        for inst in iter_instances(path, allow_inline_secrets=True)
    }


def attach_lines(report: Report, given: Path | None = None) -> None:
    """Give each instance its manifest file and line, from the manifest its ledger names when
    it is found and is that ledger's (every display name the ledger recorded matches); the
    manifest's instances the ledger never saw are added, not yet done."""
    for index, model in enumerate(report.ledgers):
        path = next((p for p in manifest_candidates(model, given) if p.is_file()), None)
        if path is None:
            model.manifest_note = "its manifest was not found (--manifest names it): no lines"
            continue
        try:
            lines = manifest_lines(path)
        except (ManifestError, OSError, UnicodeDecodeError):
            model.manifest_note = f"{path} could not be read as a manifest: no lines"
            continue
        mine = {i.key: i for i in report.instances if i.ledger == index}
        if any(
            i.display_name and key in lines and lines[key].display_name != i.display_name
            for key, i in mine.items()
        ):
            model.manifest_note = f"{path} is not this ledger's manifest: no lines"
            continue
        model.manifest = path
        for key, line in lines.items():
            inst = mine.get(key)
            if inst is None:
                if model.only is not None and line.profile not in model.only:
                    continue  # another tenant's (--tenant)
                tenant = model.tenant_of(line.profile)
                inst = Instance(key, tenant, index, line.display_name, line.template)
                inst.profile = line.profile if model.tenants else None
                report.instances.append(inst)
            inst.where = line.where
            inst.template = inst.template or line.template


# ---------------------------------------------------------------------- live state
def _object(value: Any) -> JSON:
    return value if isinstance(value, dict) else {}


def live_state(row: JSON) -> Live:
    """A ``monitor`` row (see :func:`bulkprov.monitor.job_row`) as the report shows it."""
    q = _object(row.get("quarantine"))
    last = _object(row.get("lastExecution"))
    detail = _text(row.get("error"))
    if q:
        detail = ": ".join(str(x) for x in (q.get("reason"), q.get("code")) if x)
    code = _object(last.get("error")).get("code")
    last_text = " ".join(str(x) for x in (last.get("state"), code) if x) or None
    failures = _object(row.get("logs")).get("failures")
    codes = row.get("errorCodes") if isinstance(row.get("errorCodes"), list) else []
    return Live(
        status=str(row.get("status") or "unknown"),
        detail=detail,
        code=_text(q.get("code")) if q else (_text(codes[0]) if codes else None),
        reason=_text(q.get("reason")) if q else _text(row.get("error")),
        next_attempt=_text(q.get("nextAttempt")),
        last_execution=last_text,
        failures=failures if isinstance(failures, int) else None,
    )


def attach_live(report: Report, ledger: int, rows: Iterable[JSON], at: str) -> None:
    """Give the instances of ledger ``ledger`` the live state ``monitor`` read of their jobs."""
    by_key = {i.key: i for i in report.instances if i.ledger == ledger}
    for row in rows:
        inst = by_key.get(str(row.get("key")))
        if inst is not None:
            inst.live = live_state(row)
    report.live_at = at


def read_client_totals(paths: Iterable[Path]) -> ClientTotals | None:
    """Requests, 429s and retries summed over runs' ``--summary-json`` files."""
    totals = [0, 0, 0]
    seen = False
    for path in paths:
        try:
            data = orjson.loads(path.read_bytes())
            client = data["client"]
            values = [int(client[k]) for k in ("requests", "throttled", "retries")]
        except OSError as exc:
            raise ConfigError(f"cannot read the run summary {path}: {exc.strerror}") from None
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            raise ConfigError(
                f"{path} is not a run summary (bulkprov run --summary-json writes one)"
            ) from None
        totals = [a + b for a, b in zip(totals, values, strict=True)]
        seen = True
    return ClientTotals(*totals) if seen else None
