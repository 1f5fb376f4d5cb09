"""The set-up gate: before anything is created for an instance, the run takes
``planner.decide``'s decision for it, the one ``plan`` shows. An instance it refuses fails at
once, at the step that would have failed later, and no application is made for it.

While its template's needs are unknown (see ``needs``), an instance whose key set is the first
one's of its template (or when none of the template's instances is on its way to learning them)
goes ahead, and the others wait: this costs nothing when the keys agree.
"""

from __future__ import annotations

import structlog

from .. import planner
from ..errors import GraphError, TransportError
from ..jsontypes import JSON
from .base import Context, Interrupted

log = structlog.get_logger("bulkprov.pipeline")


def _decide(ctx: Context, apps: list[JSON] | None = None) -> planner.Decision:
    shared = ctx.shared
    credential = shared.graph.client.conn.credential
    tid = ctx.template.id
    return planner.decide(
        ctx.inst,
        ctx.state,
        template_id=tid,
        needs=shared.needs.get(tid),
        apps=apps,
        claimed=shared.claims.claimed,
        on_existing=shared.settings.on_existing,
        delegated=credential.delegated,
        credential_kind=credential.kind,
    )


async def admit(ctx: Context) -> planner.Decision | None:
    """Wait until the instance may go ahead (None), or answer the decision refusing it (the
    caller fails the instance at the decision's step). The applications of the instance's
    display name looked up here are left in ``ctx.out.named`` for instantiate."""
    inst, state, out = ctx.inst, ctx.state, ctx.out
    tid = ctx.template.id
    while True:
        decision = _decide(ctx)
        if decision.action == "refuse":
            return decision
        if not decision.needs_unknown:
            break
        learning = ctx.shared.needs.learning(tid)
        keys = planner.key_set(inst)
        if learning.first is None:
            learning.first = keys
        if decision.action == "resume" or keys == learning.first or not learning.going:
            learning.going += 1
            out.learning = tid
            break
        if ctx.shared.stop.is_set():
            raise Interrupted
        await learning.changed.wait()
    if decision.action != "lookup" or state.instantiate_attempts:
        return None
    try:
        apps = await ctx.shared.graph.applications_named(inst.display_name)
    except (GraphError, TransportError) as err:
        # instantiate looks again and fails at its step if Graph keeps failing
        log.info("gate_lookup_failed", error=str(err)[:200])
        return None
    decision = _decide(ctx, apps)
    if decision.action == "conflict" and decision.code == "OtherTemplate":
        return decision
    out.named = apps  # instantiate's first lookup: those of its template among them
    return None


def went(ctx: Context) -> None:
    """The instance ended its setup: one fewer of its template's that may learn its needs."""
    out = ctx.out
    if out.learning is None:
        return
    tid, out.learning = out.learning, None
    ctx.shared.needs.went(tid)
