"""The step contract, and what a step is given to run.

A step is an object of a subclass of :class:`BaseStep`: its ``name`` (a
:class:`~bulkprov.records.Step`, the very string the ledger records), whether it ``applies`` to
an instance, the ids it ``needs`` (the step runner checks they are known before it runs), and
``run``, which does the work and answers a :class:`StepResult`: the ids it learned and what
else the ledger keeps of it.

``run`` is given a :class:`Context`: the instance (its manifest line, what the ledger knows of it,
this run's :class:`Outcome` of it) and what every instance's steps share in one run
(:class:`Shared`: the Graph, the ledger, the settings, the claims of shared display names...).
A step raises :class:`~bulkprov.errors.StepError` (or lets a Graph or transport error through)
to fail; the step runner (``bulkprov.pipeline``) writes the ledger, the events and the log.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import ClassVar, Literal, Protocol, TypeVar

import anyio

from ..errors import BulkProvError, GraphError, NotYetReplicated
from ..graph import Graph, JobStatus
from ..jsontypes import JSON
from ..ledger import InstanceState, Ledger, Redactor
from ..manifest import Instance
from ..records import Step
from ..settings import RunSettings
from .claims import Claims
from .needs import NeedsBook

T = TypeVar("T")

SETTLE_SAMPLES = 10  # replication delays seen before the wait after an unsure POST adapts
SETTLE_FLOOR = 60.0  # Graph seconds: the shortest such wait

IdName = Literal["application_id", "app_id", "service_principal_id", "job_id", "template_id"]


@dataclass(slots=True)
class Ids:
    """The Graph ids an instance has so far: the ledger's ``ids`` dict, typed."""

    application_id: str | None = None  # the application's object id
    app_id: str | None = None  # the application (client) id
    service_principal_id: str | None = None
    job_id: str | None = None  # the synchronization job
    template_id: str | None = None  # the synchronization template the job is made from

    @classmethod
    def from_ledger(cls, ids: Mapping[str, str]) -> Ids:
        return cls(**{name: ids.get(key) for name, key in LEDGER_KEYS.items()})

    def to_ledger(self) -> dict[str, str]:
        """The ids that are known, under the ledger's names (``applicationId``, ...)."""
        return {
            key: value
            for name, key in LEDGER_KEYS.items()
            if (value := getattr(self, name)) is not None
        }

    def missing(self, names: tuple[IdName, ...]) -> list[str]:
        """The ledger's names of those of ``names`` that are not known."""
        return [LEDGER_KEYS[n] for n in names if getattr(self, n) is None]


LEDGER_KEYS: dict[str, str] = {
    "application_id": "applicationId",
    "app_id": "appId",
    "service_principal_id": "servicePrincipalId",
    "job_id": "jobId",
    "template_id": "templateId",
}
assert set(LEDGER_KEYS) == {f.name for f in fields(Ids)}


def need(value: str | None) -> str:
    """An id a step declared in its ``needs`` (the runner checked it is known)."""
    if value is None:
        raise LookupError("a step read an id it does not declare in its needs")
    return value


@dataclass(frozen=True, slots=True)
class StepResult:
    """What a step answers: the ids it learned (added to the instance's) and what else the
    ledger records of it (its ``done`` record's ``data``)."""

    ids: Ids = field(default_factory=Ids)
    data: JSON = field(default_factory=dict)


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
    job_status: JobStatus | None = None
    instantiated_at: float | None = None  # monotonic time instantiate answered, this run
    # the applications of the instance's display name the set-up gate just looked up
    named: list[JSON] | None = field(default=None, repr=False)
    # secret values registered with the redactor for this instance, released when it ends
    secrets: set[str] = field(default_factory=set, repr=False)
    # the gallery template whose needs this instance went ahead to learn (see ``gate``)
    learning: str | None = None
    # when the job's first cycle began, as the monitor step saw it (the logs step reads it)
    cycle_began: str | None = None


class Events:
    """Callbacks for progress displays: a step started, ended (ok or not); an instance's
    setup ended (ok: it reached its last setup step), an instance ended (its status)."""

    def step_started(self, step: str) -> None: ...
    def step_ended(self, step: str, ok: bool) -> None: ...
    def setup_ended(self, ok: bool) -> None: ...
    def instance_ended(self, status: str) -> None: ...


class Interrupted(BulkProvError):
    """The run is draining: stop this instance between steps."""


class LogSource(Protocol):
    """Where the logs step reads a job's provisioning logs from (``run.LogCollector``)."""

    async def summary(self, job_id: str, since: str) -> JSON: ...


@dataclass(slots=True)
class Replication:
    """The replication delays this run has seen (Graph seconds from instantiate's answer to the
    first read of the service principal), as a count and the longest: they size the wait after
    an unsure POST (a count, not a list: a 100k-instance run keeps no list of them)."""

    count: int = 0
    longest: float = 0.0

    def seen(self, delay: float) -> None:
        self.count += 1
        self.longest = max(self.longest, delay)

    def settle_window(self, deadline: float) -> float:
        """Graph seconds to wait, after a POST instantiate whose answer was lost, for what it
        may have created to become readable before POSTing again.

        Graph publishes no replication bound, so until this run has seen enough new objects
        read back the whole ``deadline`` (``replication_deadline``) applies (a resumed run
        starts there too). Then: three times the longest delay seen, at least
        ``SETTLE_FLOOR``, at most the deadline. An object that stays unreadable longer than
        that, after a POST whose answer was lost, would be created twice (an app of the
        instance's name no key claims)."""
        if self.count < SETTLE_SAMPLES:
            return deadline
        return min(deadline, max(SETTLE_FLOOR, 3.0 * self.longest))


@dataclass(slots=True, eq=False)
class Shared:
    """What the steps of every instance share in one run."""

    graph: Graph
    ledger: Ledger
    settings: RunSettings
    templates: dict[str, ResolvedTemplate]
    scale: float  # real seconds per Graph second
    redactor: Redactor
    stop: anyio.Event
    claims: Claims  # applications held by instances of a shared display name
    needs: NeedsBook  # what each gallery template's synchronization templates need
    agent_groups: dict[str, str]  # manifest agentGroup -> id (resolved at start-up or here)
    logs: LogSource | None = None
    replication: Replication = field(default_factory=Replication)

    async def sleep(self, graph_seconds: float) -> None:
        await anyio.sleep(graph_seconds * self.scale)

    def elapsed(self, since: float) -> float:
        """Graph seconds since a time.monotonic() reading."""
        return (time.monotonic() - since) / self.scale

    async def replicated(self, what: str, call: Callable[[], Awaitable[T]], since: float) -> T:
        """``call()``, retried while Graph says the new object is not there yet (404), or
        refuses a sync call right after creation (403/409), up to the replication deadline."""
        transient = 0
        while True:
            try:
                return await call()
            except GraphError as err:
                waited = self.elapsed(since)
                if err.status == 404 or (err.status in (403, 409) and transient < 5):
                    if err.status != 404:
                        transient += 1
                    if waited >= self.settings.replication_deadline:
                        raise NotYetReplicated(what, waited) from err
                    await self.sleep(self.settings.poll_interval)
                    continue
                raise


@dataclass(slots=True, eq=False)
class Context:
    """What a step runs with: one instance, and what the run shares."""

    shared: Shared
    out: Outcome

    @property
    def inst(self) -> Instance:
        return self.out.inst

    @property
    def key(self) -> str:
        return self.out.inst.key

    @property
    def state(self) -> InstanceState:
        return self.out.state

    @property
    def ids(self) -> Ids:
        """The instance's ids, read from what the ledger holds (the ledger's dict stays the
        record; a step's new ids reach it through its :class:`StepResult`)."""
        return Ids.from_ledger(self.out.state.ids)

    @property
    def template(self) -> ResolvedTemplate:
        """The gallery template of the instance."""
        return self.shared.templates[self.out.inst.template]


Stage = Literal["setup", "monitor"]


class BaseStep(abc.ABC):
    """One step of an instance (see the module's docstring)."""

    name: ClassVar[Step]
    stage: ClassVar[Stage] = "setup"  # set-up (instantiate..start) or after (monitor, logs)
    needs: ClassVar[tuple[IdName, ...]] = ()  # the ids it reads, known before it runs

    def applies(self, inst: Instance) -> bool:
        """Whether an instance takes this step (set-up skips the steps that do not apply)."""
        return True

    @abc.abstractmethod
    async def run(self, ctx: Context) -> StepResult:
        """Do the step's work; raise StepError (or let a Graph error through) to fail."""

    def __repr__(self) -> str:
        return f"<step {self.name}>"
