"""*replicate*: read the new service principal back until ``confirm_reads`` reads in a row
work (Graph's replicas catch up at their own pace; the steps after it read and write the
service principal)."""

from __future__ import annotations

import time

from ..errors import GraphError, NotYetReplicated
from ..records import Step
from .base import BaseStep, Context, StepResult, need


class Replicate(BaseStep):
    name = Step.REPLICATE
    needs = ("service_principal_id",)

    async def run(self, ctx: Context) -> StepResult:
        shared, out, settings = ctx.shared, ctx.out, ctx.shared.settings
        sp_id = need(ctx.ids.service_principal_id)
        since = time.monotonic()
        streak = reads = 0
        while streak < settings.confirm_reads:
            reads += 1
            try:
                await shared.graph.service_principal(sp_id)
                if streak == 0 and out.instantiated_at is not None:
                    shared.replication.seen(shared.elapsed(out.instantiated_at))
                    out.instantiated_at = None  # the first read that worked, once
                streak += 1
                if streak < settings.confirm_reads:
                    await shared.sleep(1.0)
            except GraphError as err:
                if err.status != 404:
                    raise
                streak = 0
                if shared.elapsed(since) >= settings.replication_deadline:
                    raise NotYetReplicated(
                        f"service principal {sp_id}", shared.elapsed(since)
                    ) from err
                await shared.sleep(settings.poll_interval)
        return StepResult(data={"reads": reads, "waited": round(shared.elapsed(since), 1)})
