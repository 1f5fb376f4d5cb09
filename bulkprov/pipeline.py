"""One instance through its steps (``bulkprov.steps``), each idempotent and resumable from the
ledger.

:class:`Pipeline` holds what one run's instances share (:class:`~bulkprov.steps.base.Shared`)
and runs an instance's steps: first the set-up gate (``steps.gate``: ``planner.decide``'s
decision, the one ``plan`` shows), then the set-up steps of :data:`~bulkprov.steps.STEPS` that
apply to it and are not done yet, in order; ``Runner`` then has it run ``monitor`` and ``logs``
(:meth:`Pipeline.step`). The step runner gives every step the same frame: a ``start`` record,
the step deadline, the measure of its 429 waits, a ``done`` record with its ids and data or an
``error`` record with what went wrong, the progress events, and the instance and step bound to
every log line it writes.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass

import anyio
import structlog

from .client import ThrottleWait, measure_throttle_wait
from .desired import Change, SchemaFiles
from .errors import (
    AuthError,
    GraphError,
    LedgerError,
    NotYetReplicated,
    StepError,
    TransportError,
    UnsafeRequest,
)
from .graph import Graph
from .jsontypes import JSON
from .ledger import InstanceState, Ledger, Redactor, Replay, fold_applied
from .manifest import Instance
from .planner import Decision, TemplateNeeds
from .records import Event, Step
from .settings import RunSettings
from .steps import ALL_STEPS, BY_NAME, SETUP, SETUP_STEPS, STEPS, gate
from .steps.base import (
    BaseStep,
    Context,
    Events,
    IdName,
    Interrupted,
    LogSource,
    Outcome,
    ResolvedTemplate,
    Shared,
    StepResult,
)
from .steps.claims import Claims
from .steps.needs import NeedsBook
from .steps.update import UPDATE_STEPS
from .updates import changes_of

log = structlog.get_logger("bulkprov.pipeline")

MESSAGE_LIMIT = 4000  # characters of an error message kept in the ledger and the summary

__all__ = [
    "ALL_STEPS",
    "SETUP_STEPS",
    "STEPS",
    "Events",
    "Interrupted",
    "Outcome",
    "Pipeline",
    "ResolvedTemplate",
]


@dataclass(frozen=True, slots=True)
class _Failure:
    message: str
    request_id: str | None
    code: str | None


def _failure(err: Exception, deadline: float, throttled: ThrottleWait, scale: float) -> _Failure:
    """What the ledger records of an error that failed a step (not one that stops the run)."""
    if isinstance(err, TimeoutError):
        waited = throttled.describe(scale)
        return _Failure(
            f"did not finish within the step deadline of {deadline:.0f} Graph seconds"
            + (f"; {waited}" if waited else ""),
            None,
            "StepDeadline",
        )
    if isinstance(err, StepError):
        return _Failure(err.reason, err.request_id, err.code)
    if isinstance(err, GraphError):
        to = f" to {err.method} {err.path}" if err.method and err.path else ""
        return _Failure(
            f"Graph answered {err.status} {err.code}{to}: {err.graph_message}",
            err.request_id,
            err.code,
        )
    if isinstance(err, TransportError):
        return _Failure(
            f"no answer from Graph for {err.method} {err.path} ({err.reason})", None, "Transport"
        )
    if isinstance(err, NotYetReplicated | UnsafeRequest):
        return _Failure(str(err), None, type(err).__name__)
    return _Failure(f"unexpected {type(err).__name__}: {err}", None, "Unexpected")


_EXPECTED = (TimeoutError, StepError, GraphError, TransportError, NotYetReplicated, UnsafeRequest)


class Pipeline:
    """Runs the steps of one run's instances: :meth:`setup` for each, then :meth:`step` for
    its monitor and logs (``Runner`` decides which instances are monitored)."""

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
        agent_groups: dict[str, str] | None = None,
        logs: LogSource | None = None,
    ) -> None:
        """``shared_names``: the casefolded display names several instances share (None: any
        may be); ``needs``: gallery template id -> what its synchronization templates need, as
        read at start-up; ``agent_groups``: manifest agentGroup -> id, as resolved at start-up;
        ``logs``: where the logs step reads provisioning logs."""
        self.replay = replay
        self.events = events or Events()
        self.shared = Shared(
            graph=graph,
            ledger=ledger,
            settings=settings,
            templates=templates,
            scale=time_scale,
            redactor=redactor,
            stop=stop or anyio.Event(),
            # the ledger's claims, and those this run makes or adopts for shared names
            claims=Claims(replay.claimed("applicationId"), shared_names),
            needs=NeedsBook(needs),
            agent_groups=dict(agent_groups or {}),
            logs=logs,
        )
        self._schemas: SchemaFiles | None = None

    @property
    def ledger(self) -> Ledger:
        return self.shared.ledger

    def context(self, out: Outcome) -> Context:
        """What the steps of the instance ``out`` run with."""
        return Context(self.shared, out)

    # ------------------------------------------------------------------ set-up
    async def setup(self, out: Outcome) -> None:
        """Run the set-up steps not yet done; raise StepError on the first that fails (or
        Interrupted if the run drains in between)."""
        ctx = self.context(out)
        with structlog.contextvars.bound_contextvars(instance=out.inst.key):
            try:
                refused = await gate.admit(ctx)
                if refused is not None:
                    await self._refuse(ctx, refused)
                for step in SETUP:
                    if not step.applies(out.inst):
                        continue
                    if self.shared.stop.is_set():
                        raise Interrupted
                    if step.name in out.state.done:
                        continue
                    await self._run(ctx, step)
            finally:
                gate.went(ctx)

    # ------------------------------------------------------------------ day 2
    def changes(
        self, inst: Instance, state: InstanceState | None, *, finished_only: bool = True
    ) -> list[Change]:
        """What differs between what the ledger says was applied to ``inst`` and its manifest
        line (``finished_only``: nothing for an instance not finished yet)."""
        if self._schemas is None:
            self._schemas = SchemaFiles()
        return changes_of(
            state, inst, self.ledger.compare_fingerprint, self._schemas, finished_only=finished_only
        )

    async def update(self, out: Outcome, changes: list[Change]) -> list[str]:
        """Take the update steps ``changes`` need (``steps.update``), in order: the names of
        those taken. Raises StepError on the first that fails, Interrupted if the run drains."""
        ctx = self.context(out)
        taken: list[str] = []
        with structlog.contextvars.bound_contextvars(instance=out.inst.key):
            for step in UPDATE_STEPS:
                if not step.wanted(ctx, changes):
                    continue
                if self.shared.stop.is_set():
                    raise Interrupted
                await self._framed(ctx, step.name, step.needs, step.run)
                taken.append(step.name)
        return taken

    async def step(self, out: Outcome, name: Step) -> JSON:
        """Run the step ``name`` (monitor, logs) for the instance: what its ``done`` record
        holds as data. Raises StepError if it fails, Interrupted if the run drains."""
        ctx = self.context(out)
        return (await self._run(ctx, BY_NAME[name])).data

    async def _refuse(self, ctx: Context, decision: Decision) -> None:
        """Fail the instance at the step the gate's decision names."""
        name = Step(decision.step or Step.INSTANTIATE)

        async def refused(ctx: Context) -> StepResult:
            raise StepError(ctx.key, name, decision.note, code=decision.code)

        await self._framed(ctx, name, (), refused)

    # ------------------------------------------------------------------ the step runner
    async def _run(self, ctx: Context, step: BaseStep) -> StepResult:
        return await self._framed(ctx, step.name, step.needs, step.run)

    async def _framed(
        self,
        ctx: Context,
        name: Step | str,
        needs: tuple[IdName, ...],
        run: Callable[[Context], Awaitable[StepResult]],
    ) -> StepResult:
        """``run(ctx)`` as the step ``name``, in the frame every step has (module docstring)."""
        with structlog.contextvars.bound_contextvars(instance=ctx.key, step=str(name)):
            key, out, settings = ctx.key, ctx.out, self.shared.settings
            self.ledger.step(key, name, Event.START)
            self.events.step_started(name)
            t0 = time.monotonic()
            throttled = ThrottleWait()  # how long this step's requests waited on 429s
            try:
                with (
                    measure_throttle_wait(throttled),
                    anyio.fail_after(settings.step_deadline * self.shared.scale),
                ):
                    missing = ctx.ids.missing(needs)
                    if missing:
                        raise StepError(
                            key, name, f"the ledger holds no {', '.join(missing)} for it"
                        )
                    result = await run(ctx)
            except (LedgerError, AuthError, Interrupted):
                raise  # the run stops (no ledger, no token) or drains: not this instance's
            except Exception as err:  # one instance's surprise must not bring the pool down
                if not isinstance(err, _EXPECTED):
                    log.exception("step_crashed")
                failure = _failure(err, settings.step_deadline, throttled, self.shared.scale)
                self._fail(ctx, name, t0, failure)
            ms = int((time.monotonic() - t0) * 1000)
            out.timings[str(name)] = ms
            ids = result.ids.to_ledger()
            out.state.ids.update(ids)
            out.state.done.add(name)
            data = result.data
            fold_applied(out.state, name, data)
            self.ledger.step(key, name, Event.DONE, ms=ms, ids=ids or None, data=data or None)
            self.events.step_ended(name, True)
            return result

    def _fail(self, ctx: Context, name: Step | str, t0: float, failure: _Failure) -> None:
        message = self.shared.redactor.shorten(failure.message, MESSAGE_LIMIT)  # masked, cut
        code, request_id = failure.code, failure.request_id
        ms = int((time.monotonic() - t0) * 1000)
        self.ledger.step(
            ctx.key, name, Event.ERROR, ms=ms, code=code, message=message, requestId=request_id
        )
        self.events.step_ended(name, False)
        log.warning("step_failed", code=code, error=message, request_id=request_id)
        raise StepError(ctx.key, name, message, code=code, request_id=request_id)
