"""The synchronization job: its template, the job, and (optionally) its schema.

*sync_template* picks the synchronization template and checks that the manifest gives every
credential it needs (its ``configurationFields``). Graph lists those only under a service
principal of the gallery template, so the run reads them from one that exists at start-up, or
learns them from the first of its instances of the template that reaches this step (see
``needs``). The check here remains the last line of defence (an instance that went ahead
without known needs).

*job* creates the job from that template, or adopts the one there is; an answer lost on the
way is followed by a listing before any new creation.

*schema* (only for an instance with a ``schema`` file, as ``bulkprov export`` writes them)
replaces the new job's synchronization schema before the job is validated or started, then
reads it back and fails the instance, naming the first differing path, unless Graph holds
exactly what the file says (ids Graph assigns aside). A PUT replaces the whole schema, so the
step is simply repeated on a resumed run.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
import structlog

from .. import desired, planner
from .. import schema as schema_mod
from ..errors import GraphError, StepError, TransportError
from ..manifest import Instance
from ..planner import TemplateNeeds
from ..records import Step
from ..retry import doubling
from .base import BaseStep, Context, Ids, StepResult, need

log = structlog.get_logger("bulkprov.pipeline")

JOB_CREATE_ATTEMPTS = 5  # creations of a job whose answers are lost (each after listing)


class SyncTemplate(BaseStep):
    name = Step.SYNC_TEMPLATE
    needs = ("service_principal_id",)

    async def run(self, ctx: Context) -> StepResult:
        inst, shared = ctx.inst, ctx.shared
        sp_id = need(ctx.ids.service_principal_id)
        templates = await shared.replicated(
            "synchronization templates",
            lambda: shared.graph.sync_templates(sp_id),
            time.monotonic(),
        )
        needs = TemplateNeeds.read(templates)
        shared.needs.learn(ctx.template.id, needs)  # the instances waiting go on
        problem = planner.credential_problem(inst, needs)
        if problem is not None:
            raise StepError(inst.key, Step.SYNC_TEMPLATE, problem.message, code=problem.code)
        chosen = needs.chosen(inst.sync_template)
        assert chosen is not None  # credential_problem says when it is not offered
        return StepResult(Ids(template_id=chosen[0]), {"fields": list(chosen[1])})


class Job(BaseStep):
    name = Step.JOB
    needs = ("service_principal_id",)  # and the template: sync_template's, or the ledger's

    async def run(self, ctx: Context) -> StepResult:
        shared = ctx.shared
        ids = ctx.ids
        sp_id = need(ids.service_principal_id)
        template_id = ids.template_id or _template_from_ledger(ctx)
        settings = [{"name": n, "value": v} for n, v in ctx.inst.job_settings] or None
        since = time.monotonic()
        last = ""
        for attempt in range(1, JOB_CREATE_ATTEMPTS + 1):
            if attempt > 1:
                await shared.sleep(doubling(attempt + 1, 1.0, 30.0))  # let a 5xx spell pass
            jobs = await shared.replicated(
                "synchronization jobs", lambda: shared.graph.jobs(sp_id), since
            )
            existing = next((j for j in jobs if j.template_id == template_id), None)
            if existing is not None:
                return StepResult(Ids(job_id=existing.id), {"adopted": True})
            try:
                job = await shared.replicated(
                    "the new service principal (create job)",
                    lambda: shared.graph.create_job(sp_id, template_id, settings),
                    since,
                )
            except (TransportError, GraphError) as err:
                lost = isinstance(err, TransportError) or err.code == "InvalidResponse"
                if isinstance(err, GraphError) and err.status < 500 and not lost:
                    raise
                # the answer was lost or unreadable: list again before creating again
                log.info("job_create_unsure", error=shared.redactor.shorten(str(err), 200))
                last = str(err)
                continue
            applied = {"jobSettings": [list(p) for p in ctx.inst.job_settings], "start": False}
            return StepResult(Ids(job_id=job.id), {"status": job.status.code, "applied": applied})
        raise StepError(
            ctx.key,
            Step.JOB,
            f"could not create the synchronization job in {JOB_CREATE_ATTEMPTS} attempts; "
            f"the last: {last}",
            code="JobCreateFailed",
        )


def _template_from_ledger(ctx: Context) -> str:
    tid = ctx.state.record.template_id if ctx.state.record else None
    if not tid:
        raise StepError(ctx.key, Step.JOB, "the synchronization template is unknown")
    return str(tid)


class Schema(BaseStep):
    """PUT the instance's schema file onto its job, then prove Graph holds the same."""

    name = Step.SCHEMA
    needs = ("service_principal_id", "job_id")

    def applies(self, inst: Instance) -> bool:
        return inst.schema_file is not None

    async def run(self, ctx: Context) -> StepResult:
        inst, shared, graph = ctx.inst, ctx.shared, ctx.shared.graph
        sp_id, job_id = need(ctx.ids.service_principal_id), need(ctx.ids.job_id)
        assert inst.schema_file is not None
        try:
            wanted = schema_mod.load(inst.schema_file)
        except ValueError as exc:
            raise StepError(inst.key, Step.SCHEMA, str(exc), code="BadSchemaFile") from None
        since = time.monotonic()
        current = await shared.replicated(
            "the job (schema)", lambda: graph.job_schema(sp_id, job_id), since
        )
        body = schema_mod.for_put(wanted, current)
        await shared.replicated(
            "the job (put schema)", lambda: graph.put_job_schema(sp_id, job_id, body), since
        )
        got = await shared.replicated(  # a replica may not have the job yet: 404, try again
            "the job (read the schema back)", lambda: graph.job_schema(sp_id, job_id), since
        )
        diff = schema_mod.first_difference(schema_mod.normalise(wanted), schema_mod.normalise(got))
        if diff is not None:
            path, exported, actual = diff
            raise StepError(
                inst.key,
                Step.SCHEMA,
                f"the schema read back differs from {inst.schema_file.name} at {path}: "
                f"the file has {_short(exported)}, Graph has {_short(actual)}",
                code="SchemaMismatch",
            )
        applied = {"schema": desired.schema_state(wanted)}
        return StepResult(data={**schema_mod.summary(wanted), "applied": applied})


def _short(value: Any) -> str:
    text = orjson.dumps(value).decode() if not isinstance(value, str) else repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
