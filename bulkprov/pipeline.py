"""One instance through the seed's steps, each idempotent and resumable from the ledger.

    instantiate -> replicate -> [agent_group] -> sync_template -> job -> [schema] -> validate
        -> secrets -> start -> monitor -> logs

Before anything is created for an instance, the run takes ``planner.decide``'s decision
for it, the one ``plan`` shows: an instance it refuses fails at once, at the step that would
have failed later, and no application is made for it.

*agent_group* (on-premises apps: the manifest names an ``agentGroup``) assigns the application
to a provisioning agent group through Graph beta. Graph allows that with delegated permissions
only, so an instance with an agent group is refused before anything is created for it unless
the connection signs a user in (a device-code profile).

*sync_template* picks the synchronization template and checks that the manifest gives every
credential it needs (its ``configurationFields``). Graph lists those only under a service
principal of the gallery template, so the run reads them from one that exists at start-up, or
learns them from the first of its instances of the template that reaches this step. Until
then, instances whose credential keys match the first instance of their template go ahead at
once; the odd ones (other keys, another ``syncTemplate``) wait for the needs and are refused
before instantiate if they cannot meet them. The check in this step remains the last line of
defence (an instance that went ahead without known needs).

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

from . import planner
from . import schema as schema_mod
from .client import ThrottleWait, measure_throttle_wait
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
from .planner import TemplateNeeds
from .settings import RunSettings

log = structlog.get_logger("bulkprov.pipeline")
T = TypeVar("T")
JSON = dict[str, Any]

SETTLE_SAMPLES = 10  # replication delays seen before the wait after an unsure POST adapts
SETTLE_FLOOR = 60.0  # Graph seconds: the shortest such wait
MESSAGE_LIMIT = 4000  # characters of an error message kept in the ledger and the summary
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
    # the applications of the instance's display name the set-up gate just looked up
    named: list[JSON] | None = field(default=None, repr=False)
    # secret values registered with the redactor for this instance, released when it ends
    secrets: set[str] = field(default_factory=set, repr=False)
    # the gallery template whose needs this instance went ahead to learn (see ``_gate``)
    learning: str | None = None


@dataclass(slots=True)
class _Learning:
    """One gallery template whose credential needs are not known yet: the key set of its
    first instance, how many of its instances went ahead (each learns the needs at
    sync_template), and an event set whenever the needs are learned or none is left going."""

    first: tuple[str, frozenset[str]] | None = None
    going: int = 0
    changed: anyio.Event = field(default_factory=anyio.Event)

    def wake(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()


class Events:
    """Callbacks for progress displays: a step started, ended (ok or not); an instance's
    setup ended (ok: it reached its last setup step), an instance ended (its status)."""

    def step_started(self, step: str) -> None: ...
    def step_ended(self, step: str, ok: bool) -> None: ...
    def setup_ended(self, ok: bool) -> None: ...
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
        needs: dict[str, TemplateNeeds] | None = None,
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
        # instantiate POSTs in flight per shared display name, and who waits for them to end
        self._in_flight: dict[str, int] = {}
        self._idle: dict[str, anyio.Event] = {}
        # replication delays this run has seen (Graph seconds from instantiate's answer to the
        # first read of the service principal), as a count and the longest: they size the wait
        # after an unsure POST (a count, not a list: a 100k-instance run keeps no list of them)
        self._replication_count = 0
        self._replication_max = 0.0
        self.agent_groups: dict[str, str] = {}  # manifest agentGroup -> id (Runner resolves)
        # gallery template id -> what its synchronization templates need: read at start-up
        # from a service principal of it, or learned by the first instance at sync_template
        self.needs: dict[str, TemplateNeeds] = dict(needs or {})
        self._learning: dict[str, _Learning] = {}

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
        throttled = ThrottleWait()  # how long this step's requests waited on 429s
        try:
            with (
                measure_throttle_wait(throttled),
                anyio.fail_after(self.settings.step_deadline * self.scale),
            ):
                data = await fn()
        except TimeoutError:
            waited = throttled.describe(self.scale)
            self._fail(
                out,
                name,
                t0,
                f"did not finish within the step deadline of "
                f"{self.settings.step_deadline:.0f} Graph seconds"
                + (f"; {waited}" if waited else ""),
                None,
                "StepDeadline",
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
        message = self.redactor.shorten(message, MESSAGE_LIMIT)  # masked whole, then cut
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
        try:
            await self._gate(out)
            await self._setup_steps(out)
        finally:
            self._went(out)

    async def _setup_steps(self, out: Outcome) -> None:
        inst, state = out.inst, out.state
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

    async def _gate(self, out: Outcome) -> None:
        """Take ``planner.decide``'s decision before anything is created for the instance, and
        fail it now if it is refused: an ``agentGroup`` under an app-only credential, or
        credentials its synchronization template needs and it lacks, or an application of its
        name from another gallery template. Adopting and the conflicts among applications of
        its own template are left to ``instantiate``, which holds the claims.

        While the template's needs are unknown, an instance whose key set is the first one's
        of its template (or when none of the template's instances is on its way to learning
        them) goes ahead, and the others wait: this costs nothing when the keys agree."""
        inst, state = out.inst, out.state
        tid = self.templates[inst.template].id
        credential = self.graph.client.conn.credential

        def decide(apps: list[JSON] | None = None) -> planner.Decision:
            return planner.decide(
                inst,
                state,
                template_id=tid,
                needs=self.needs.get(tid),
                apps=apps,
                claimed=self._claimed_apps,
                on_existing=self.settings.on_existing,
                delegated=credential.delegated,
                credential_kind=credential.kind,
            )

        while True:
            decision = decide()
            if decision.action == "refuse":
                await self._refuse(out, decision)
            if not decision.needs_unknown:
                break
            learning = self._learning.setdefault(tid, _Learning())
            keys = planner.key_set(inst)
            if learning.first is None:
                learning.first = keys
            if decision.action == "resume" or keys == learning.first or not learning.going:
                learning.going += 1
                out.learning = tid
                break
            if self.stop.is_set():
                raise _Interrupted
            await learning.changed.wait()
        if decision.action != "lookup" or state.instantiate_attempts:
            return
        try:
            apps = await self.graph.applications_named(inst.display_name)
        except (GraphError, TransportError) as err:
            # instantiate looks again and fails at its step if Graph keeps failing
            log.info("gate_lookup_failed", instance=inst.key, error=str(err)[:200])
            return
        decision = decide(apps)
        if decision.action == "conflict" and decision.code == "OtherTemplate":
            await self._refuse(out, decision)
        out.named = apps  # instantiate's first lookup: those of its template among them

    async def _refuse(self, out: Outcome, decision: planner.Decision) -> None:
        step = decision.step or "instantiate"

        async def refused() -> JSON:
            raise StepError(out.inst.key, step, decision.note, code=decision.code)

        await self._step(out, step, refused)

    def _went(self, out: Outcome) -> None:
        """The instance ended its setup: one fewer of its template's that may learn its needs."""
        if out.learning is None:
            return
        learning = self._learning.get(out.learning)
        out.learning = None
        if learning is None:
            return
        learning.going -= 1
        if not learning.going:
            learning.wake()

    def _learn(self, template_id: str, needs: TemplateNeeds) -> None:
        if template_id in self.needs:
            return
        self.needs[template_id] = needs
        learning = self._learning.pop(template_id, None)
        if learning is not None:
            learning.wake()

    async def instantiate(self, out: Outcome) -> JSON:
        inst, state = out.inst, out.state
        template = self.templates[inst.template]
        if "applicationId" in state.ids and "servicePrincipalId" in state.ids:
            return {}
        since = time.monotonic()
        last = ""
        while True:
            named, out.named = out.named, None
            found = await self._find_mine(inst, template.id, state, named)
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
            name = self._shared(inst)
            self._posting(name, +1)
            try:
                app, sp = await self.graph.instantiate(template.id, inst.display_name)
            except (GraphError, TransportError) as err:
                self._posting(name, -1)
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
            except BaseException:
                self._posting(name, -1)
                raise
            # claimed before the POST counts as answered: while it was in flight no other
            # instance of the name took an application of it (see _find_mine)
            taken = not self._claim(app["id"], inst)
            self._posting(name, -1)
            if taken:
                raise StepError(
                    inst.key,
                    "instantiate",
                    f"the application Graph created ({app['id']}) is held by instance "
                    f"{self._claimed_apps[app['id']]!r}",
                    code="ClaimConflict",
                )
            state.instantiate_pending = False
            out.instantiated_at = time.monotonic()
            return {
                "applicationId": app["id"],
                "appId": app["appId"],
                "servicePrincipalId": sp["id"],
                "created": True,
            }

    def _shared(self, inst: Instance) -> str | None:
        """The casefolded display name if other instances of the run may share it, else None
        (only then can a lookup by name find another instance's application)."""
        name = inst.display_name.casefold()
        if self._shared_names is None or name in self._shared_names:
            return name
        return None

    def _claim(self, app_id: str, inst: Instance) -> bool:
        """Take ``app_id`` for ``inst``, unless another instance holds it (then False).

        Synchronous: a claim is decided in the same step of the event loop as the lookup that
        chose the application, so no interleaving lets two instances hold one."""
        holder = self._claimed_apps.get(app_id)
        if holder is not None and holder != inst.key:
            return False
        if self._shared(inst) is not None:
            self._claimed_apps[app_id] = inst.key
        return True

    def _posting(self, name: str | None, delta: int) -> None:
        """Count the instantiate POSTs in flight for a shared display name; waiters of
        :meth:`_posts_answered` wake when none is left."""
        if name is None:
            return
        n = self._in_flight.get(name, 0) + delta
        if n > 0:
            self._in_flight[name] = n
            return
        self._in_flight.pop(name, None)
        idle = self._idle.pop(name, None)
        if idle is not None:
            idle.set()

    async def _posts_answered(self, name: str) -> None:
        """Wait until no instantiate POST for ``name`` is in flight."""
        if name not in self._in_flight:
            return
        idle = self._idle.get(name)
        if idle is None:
            idle = self._idle[name] = anyio.Event()
        await idle.wait()

    async def _find_mine(
        self,
        inst: Instance,
        template_id: str,
        state: InstanceState,
        named: list[JSON] | None = None,
    ) -> JSON | None:
        """The application of this instance, if one exists (adopting or de-duplicating).
        ``named``: the applications of its display name, whatever their template, as a lookup
        just made found them (the first lookup is then not sent again)."""
        name = self._shared(inst)
        while True:
            if named is not None:
                tid = template_id.lower()
                apps = [a for a in named if str(a.get("applicationTemplateId")).lower() == tid]
                named = None
            else:
                apps = await self.graph.find_applications(template_id, inst.display_name)
            held = [a for a in apps if self._claimed_apps.get(a["id"]) == inst.key]
            free = [a for a in apps if a["id"] not in self._claimed_apps]
            if name is None or held or not free or name not in self._in_flight:
                break
            # another instance of this name has a POST in flight: a free application may be
            # the one it is about to be told of, so none is taken until those POSTs answer
            await self._posts_answered(name)
        if name is None:
            mine = held + free
        elif held:
            mine = held  # the free ones may be other instances' of this name
        else:
            free.sort(key=lambda a: (str(a.get("createdDateTime") or ""), a["id"]))
            # a shared name: applications that existed before go to one instance each
            mine = free[:1] if state.instantiate_attempts == 0 else free
        if not mine:
            return None
        for a in mine:
            self._claim(a["id"], inst)  # at once: nothing else may take them meanwhile
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
        needs = TemplateNeeds.read(templates)
        self._learn(self.templates[inst.template].id, needs)  # the instances waiting go on
        problem = planner.credential_problem(inst, needs)
        if problem is not None:
            raise StepError(inst.key, "sync_template", problem.message, code=problem.code)
        chosen = needs.chosen(inst.sync_template)
        assert chosen is not None  # credential_problem says when it is not offered
        return {"templateId": chosen[0], "fields": list(chosen[1])}

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
        got = await self._replicated(  # a replica may not have the job yet: 404, try again
            "the job (read the schema back)", lambda: self.graph.job_schema(sp_id, job_id), since
        )
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


_configuration_fields = planner.configuration_fields  # (export reads it from here)
