"""*instantiate*: the instance's application and service principal, made from its gallery
template, or found.

It never re-POSTs blindly. Graph may answer 404 or time out although it created the
application (terraform-azuread #1406), so before every POST, and after every POST whose answer
was lost, it looks for the application this instance would have created: same gallery template,
same display name, not claimed by another instance of the ledger (see ``claims``). A
write-ahead ``attempt`` record in the ledger tells a resumed run that a POST may have taken
effect, so it waits for replication before concluding that nothing was created. If several
applications turn up for an instance that made several attempts, the oldest is kept and the
extras are deleted.
"""

from __future__ import annotations

import time

import structlog

from ..client import priority
from ..errors import GraphError, StepError, TransportError
from ..jsontypes import JSON
from ..limiter import FIRST, URGENT
from ..records import Event, Step
from .base import BaseStep, Context, Ids, StepResult

log = structlog.get_logger("bulkprov.pipeline")


class Instantiate(BaseStep):
    name = Step.INSTANTIATE

    async def run(self, ctx: Context) -> StepResult:
        ids, state, shared = ctx.ids, ctx.state, ctx.shared
        if ids.application_id is not None and ids.service_principal_id is not None:
            return StepResult()
        since = time.monotonic()
        last = ""
        while True:
            named, ctx.out.named = ctx.out.named, None
            found = await find_mine(ctx, named)
            if found is not None:
                return found
            if state.instantiate_pending:
                # a POST may have taken effect: give replication its time before another POST
                settle = shared.replication.settle_window(shared.settings.replication_deadline)
                if shared.elapsed(since) < settle:
                    await shared.sleep(shared.settings.poll_interval)
                    continue
                shared.ledger.step(
                    ctx.key,
                    Step.INSTANTIATE,
                    Event.ERROR,
                    settled=True,
                    message="no application appeared after the earlier attempt",
                )
                state.instantiate_pending = False
            if state.instantiate_attempts >= shared.settings.instantiate_attempts:
                raise StepError(
                    ctx.key,
                    Step.INSTANTIATE,
                    f"gave up after {state.instantiate_attempts} attempts"
                    + (f"; the last: {last}" if last else ""),
                )
            posted = await _post(ctx)
            if isinstance(posted, StepResult):
                return posted
            last = posted
            since = time.monotonic()  # look for what the lost POST may have created


async def _post(ctx: Context) -> StepResult | str:
    """POST instantiate once (after its write-ahead record): the new application, or the
    error of a POST whose answer was lost (it may have taken effect)."""
    inst, state, shared, claims = ctx.inst, ctx.state, ctx.shared, ctx.shared.claims
    template = ctx.template
    state.instantiate_attempts += 1
    state.instantiate_pending = True
    shared.ledger.step(
        inst.key,
        Step.INSTANTIATE,
        Event.ATTEMPT,
        attempt=state.instantiate_attempts,
        displayName=inst.display_name,
        templateId=template.id,
    )
    name = claims.shared(inst)
    claims.posting(name, +1)
    # the POST that may be lost goes before the steps of instances begun, and one made again
    # after a lost answer before the first ones: the wait after a lost answer (a minute at
    # least) is then over long before the run's end (see bulkprov.limiter.ScopePace.admit)
    level = FIRST if state.instantiate_attempts == 1 else URGENT
    try:
        with priority(level):
            app, sp = await shared.graph.instantiate(template.id, inst.display_name)
    except (GraphError, TransportError) as err:
        claims.posting(name, -1)
        status = getattr(err, "status", None)
        if status is not None and 400 <= status < 500 and status not in (404, 408, 429):
            state.instantiate_pending = False
            code = getattr(err, "code", None)
            shared.ledger.step(inst.key, Step.INSTANTIATE, Event.ERROR, settled=True, code=code)
            raise
        log.info("instantiate_unsure", error=shared.redactor.shorten(str(err), 200))
        return str(err)
    except BaseException:
        claims.posting(name, -1)
        raise
    # claimed before the POST counts as answered: while it was in flight no other
    # instance of the name took an application of it (see find_mine)
    taken = not claims.claim(app["id"], inst)
    claims.posting(name, -1)
    if taken:
        raise StepError(
            inst.key,
            Step.INSTANTIATE,
            f"the application Graph created ({app['id']}) is held by instance "
            f"{claims.holder(app['id'])!r}",
            code="ClaimConflict",
        )
    state.instantiate_pending = False
    ctx.out.instantiated_at = time.monotonic()
    return _found(app, sp, "created")


def _found(app: JSON, sp: JSON, how: str) -> StepResult:
    ids = Ids(application_id=app["id"], app_id=app["appId"], service_principal_id=sp["id"])
    return StepResult(ids, {how: True})


def _oldest_first(apps: list[JSON]) -> None:
    apps.sort(key=lambda a: (str(a.get("createdDateTime") or ""), a["id"]))


async def _lookup(ctx: Context, named: list[JSON] | None) -> tuple[list[JSON], list[JSON]]:
    """The applications of the instance's template and name it holds, and the free ones.

    ``named``: the applications of its display name, whatever their template, as a lookup
    just made found them (the first lookup is then not sent again). For a shared name, while
    another instance of it has a POST in flight and no application is held, a free
    application may be the one that POST is about to be told of: none is taken until those
    POSTs answer, and the lookup is made again."""
    inst, claims = ctx.inst, ctx.shared.claims
    template_id = ctx.template.id
    name = claims.shared(inst)
    while True:
        if named is not None:
            tid = template_id.lower()
            apps = [a for a in named if str(a.get("applicationTemplateId")).lower() == tid]
            named = None
        else:
            apps = await ctx.shared.graph.find_applications(template_id, inst.display_name)
        held = [a for a in apps if claims.holder(a["id"]) == inst.key]
        free = [a for a in apps if claims.holder(a["id"]) is None]
        if name is None or held or not free or not claims.in_flight(name):
            return held, free
        await claims.posts_answered(name)


async def find_mine(ctx: Context, named: list[JSON] | None = None) -> StepResult | None:
    """The application of this instance, if one exists (adopting or de-duplicating)."""
    inst, state, shared = ctx.inst, ctx.state, ctx.shared
    held, free = await _lookup(ctx, named)
    # from here to the claims below, no await: what the lookup found is claimed at once,
    # in the same step of the event loop, so nothing else may take it meanwhile
    if shared.claims.shared(inst) is None:
        mine = held + free
    elif held:
        mine = held  # the free ones may be other instances' of this name
    else:
        _oldest_first(free)
        # a shared name: applications that existed before go to one instance each
        mine = free[:1] if state.instantiate_attempts == 0 else free
    if not mine:
        return None
    for a in mine:
        shared.claims.claim(a["id"], inst)
    if len(mine) > 1:
        await _dedupe(ctx, mine)
    app = mine[0]
    if state.instantiate_attempts == 0 and shared.settings.on_existing == "fail":
        raise StepError(
            inst.key,
            Step.INSTANTIATE,
            f"an application named {inst.display_name!r} from this template "
            f"already exists ({app['id']}); pass --on-existing adopt to take it "
            "over",
            code="Exists",
        )
    sp = await shared.replicated(
        "the service principal of an existing application",
        lambda: shared.graph.service_principal_by_app_id(app["appId"]),
        time.monotonic(),
    )
    shared.claims.claim(app["id"], inst)
    state.instantiate_pending = False
    return _found(app, sp, "recovered" if state.instantiate_attempts else "adopted")


async def _dedupe(ctx: Context, mine: list[JSON]) -> None:
    """Several applications are the instance's: keep the oldest (``mine[0]`` after), delete
    the others; unless it never POSTed (then they existed before it: which is its own?)."""
    inst, shared = ctx.inst, ctx.shared
    if ctx.state.instantiate_attempts == 0:
        raise StepError(
            inst.key,
            Step.INSTANTIATE,
            f"{len(mine)} applications named {inst.display_name!r} from this "
            "template already exist; bulkprov cannot tell which belongs to "
            "this instance (rename them or remove the extras)",
            code="Conflict",
        )
    _oldest_first(mine)
    for extra in mine[1:]:
        log.warning("deleting_duplicate", application=extra["id"])
        try:
            await shared.graph.delete_application(extra["id"])
        except GraphError as err:
            if err.status != 404:
                raise
        shared.ledger.step(inst.key, Step.INSTANTIATE, Event.DEDUPE, removed=extra["id"])
