"""The update steps: what a run does to an instance it set up before whose manifest line now
asks for something else (``desired.diff``). Nothing is re-created; each step is recorded in
the ledger like the set-up steps, and its ``done`` record's ``applied`` data says what it
applied, so that a run stopped half-way (even by ``kill -9``) resumes with what still differs.

==================  ============  =================================================  ======
step                change        Graph                                              writes
==================  ============  =================================================  ======
rotate_validate     credentials   POST .../jobs/{id}/validateCredentials (the new    1
                                  values; skipped when already validated, or the
                                  instance has ``validate`` false)
rotate              credentials   PUT .../synchronization/secrets (the whole set);    1
                                  a quarantined job is then restarted with
                                  ``resetScope`` QuarantineState (+1 write): its
                                  next attempt may be a day away otherwise
schema_update       schema        GET, PUT .../jobs/{id}/schema, GET (read back);     1
                                  Graph runs a full initial cycle after a schema
                                  change by itself
job_settings        job settings  GET the job, PATCH it with its settings and the     1
                                  manifest's (applied from the job's next cycle)
rename              display name  PATCH /applications/{id}, PATCH                     2
                                  /servicePrincipals/{id}
job_start           start true    GET the job; POST start unless it is Active         0-1
job_pause           start false   GET the job; POST pause unless it is Paused         0-1
==================  ============  =================================================  ======
"""

from __future__ import annotations

import abc
import time
from collections.abc import Sequence
from enum import StrEnum
from typing import ClassVar

from ..desired import Change, Kind
from ..jsontypes import JSON
from ..records import Status, Step
from .base import Context, IdName, StepResult, need
from .credentials import Secrets, Validate, credentials
from .job import Schema

QUARANTINE_RESET = "QuarantineState"


class Update(StrEnum):
    """The names the ledger records the update steps by."""

    ROTATE_VALIDATE = "rotate_validate"
    ROTATE = "rotate"
    SCHEMA_UPDATE = "schema_update"
    JOB_SETTINGS = "job_settings"
    RENAME = "rename"
    JOB_START = "job_start"
    JOB_PAUSE = "job_pause"


class UpdateStep(abc.ABC):
    """A step of an instance set up before: taken when a change of its ``kind`` is wanted."""

    name: ClassVar[Update]
    kind: ClassVar[Kind]
    needs: ClassVar[tuple[IdName, ...]] = ("service_principal_id", "job_id")

    def wanted(self, ctx: Context, changes: Sequence[Change]) -> bool:
        return any(c.kind == self.kind for c in changes)

    @abc.abstractmethod
    async def run(self, ctx: Context) -> StepResult: ...

    def __repr__(self) -> str:
        return f"<update step {self.name}>"


def _fingerprints(ctx: Context, creds: list[JSON]) -> dict[str, str]:
    fingerprint = ctx.shared.ledger.fingerprint
    return {c["key"]: fingerprint(c["key"], c["value"]) for c in creds}


class RotateValidate(UpdateStep):
    name = Update.ROTATE_VALIDATE
    kind = "credentials"

    def wanted(self, ctx: Context, changes: Sequence[Change]) -> bool:
        if not ctx.inst.validate or not super().wanted(ctx, changes):
            return False
        validated = ctx.state.applied.get("validated")
        if not isinstance(validated, dict) or set(validated) != {
            r.key for r in ctx.inst.credentials
        }:
            return True
        compare = ctx.shared.ledger.compare_fingerprint
        creds = credentials(ctx, Step.VALIDATE)  # (masked from here on)
        return any(compare(str(validated[c["key"]]), c["key"], c["value"]) != "same" for c in creds)

    async def run(self, ctx: Context) -> StepResult:
        result = await Validate().run(ctx)
        creds = credentials(ctx, Step.VALIDATE)
        return StepResult(data={**result.data, "applied": {"validated": _fingerprints(ctx, creds)}})


class Rotate(UpdateStep):
    name = Update.ROTATE
    kind = "credentials"
    needs = ("service_principal_id",)

    async def run(self, ctx: Context) -> StepResult:
        result = await Secrets().run(ctx)
        data: JSON = {**result.data, "applied": {"credentials": result.data["fingerprints"]}}
        job_id = ctx.ids.job_id
        if ctx.state.status == Status.QUARANTINED and job_id is not None and ctx.inst.start:
            sp_id, shared = need(ctx.ids.service_principal_id), ctx.shared
            await shared.replicated(
                "the job (restart)",
                lambda: shared.graph.restart_job(sp_id, job_id, QUARANTINE_RESET),
                time.monotonic(),
            )
            data["restarted"] = QUARANTINE_RESET
        return StepResult(data=data)


class SchemaUpdate(UpdateStep):
    name = Update.SCHEMA_UPDATE
    kind = "schema"

    async def run(self, ctx: Context) -> StepResult:
        return await Schema().run(ctx)  # PUT, then read back; its data has "applied"


class JobSettings(UpdateStep):
    name = Update.JOB_SETTINGS
    kind = "job_settings"

    async def run(self, ctx: Context) -> StepResult:
        graph = ctx.shared.graph
        sp_id, job_id = need(ctx.ids.service_principal_id), need(ctx.ids.job_id)
        job = await graph.job(sp_id, job_id)
        merged: dict[str, str | None] = dict(job.settings)
        merged.update(ctx.inst.job_settings)
        body = {"synchronizationJobSettings": [{"name": n, "value": v} for n, v in merged.items()]}
        await graph.patch_job(sp_id, job_id, body)
        applied = {"jobSettings": [list(p) for p in ctx.inst.job_settings]}
        names = [n for n, _v in ctx.inst.job_settings]
        return StepResult(data={"names": names, "applied": applied})


class Rename(UpdateStep):
    name = Update.RENAME
    kind = "display_name"
    needs = ("application_id", "service_principal_id")

    async def run(self, ctx: Context) -> StepResult:
        graph, body = ctx.shared.graph, {"displayName": ctx.inst.display_name}
        await graph.patch_application(need(ctx.ids.application_id), body)
        await graph.patch_service_principal(need(ctx.ids.service_principal_id), body)
        return StepResult(data={"applied": {"displayName": ctx.inst.display_name}})


class _JobState(UpdateStep):
    kind = "start"
    start: ClassVar[bool]

    def wanted(self, ctx: Context, changes: Sequence[Change]) -> bool:
        return super().wanted(ctx, changes) and ctx.inst.start is self.start

    async def run(self, ctx: Context) -> StepResult:
        graph = ctx.shared.graph
        sp_id, job_id = need(ctx.ids.service_principal_id), need(ctx.ids.job_id)
        job = await graph.job(sp_id, job_id)
        code = job.status.code or ""
        data: JSON = {"was": code, "applied": {"start": self.start}}
        if self.start and code != "Active":
            await graph.start_job(sp_id, job_id)
            data["started"] = True
        elif not self.start and code != "Paused":
            await graph.pause_job(sp_id, job_id)
            data["paused"] = True
        return StepResult(data=data)


class JobStart(_JobState):
    name = Update.JOB_START
    start = True


class JobPause(_JobState):
    name = Update.JOB_PAUSE
    start = False


UPDATE_STEPS: tuple[UpdateStep, ...] = (
    RotateValidate(),
    Rotate(),
    SchemaUpdate(),
    JobSettings(),
    Rename(),
    JobStart(),
    JobPause(),
)
