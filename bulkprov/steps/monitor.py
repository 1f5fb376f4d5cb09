"""After set-up: *monitor* polls the job until steady state, quarantine, or the monitor
deadline; *logs* then counts the provisioning log entries of its first cycle (read by one
collector for all jobs of the run, ``run.LogCollector``: the reports quota is 5 requests per
10 s, one query per job would make it the bottleneck)."""

from __future__ import annotations

import time

from ..errors import StepError
from ..graph import Execution, JobStatus, Quarantine, SyncError
from ..jsontypes import JSON
from ..manifest import Instance
from ..records import Step
from .base import BaseStep, Context, Interrupted, StepResult, need


def _settled(status: JobStatus, polls: int) -> JSON | None:
    """What the monitor records of a job status that ends its watch, else None."""
    code = status.code
    last = status.last_execution or Execution()
    if code == "Quarantine":
        q = status.quarantine or Quarantine()
        err = q.error or last.error or SyncError()
        return {
            "jobStatus": code,
            "quarantine": {
                "reason": q.reason,
                "code": err.code,
                "message": err.message,
                "nextAttempt": q.next_attempt,
                "seriesCount": q.series_count,
            },
            "polls": polls,
        }
    if code == "Active" and last.state in ("Succeeded", "EntryLevelErrors"):
        return {
            "jobStatus": code,
            "lastExecution": last.state,
            "timeEnded": last.time_ended,
            "timeBegan": last.time_began,
            "polls": polls,
        }
    if code in ("Paused", "NotConfigured") and polls > 3:
        return {"jobStatus": code, "polls": polls}
    return None


class Monitor(BaseStep):
    """Poll the job until steady state, quarantine, or the monitor deadline."""

    name = Step.MONITOR
    stage = "monitor"
    needs = ("service_principal_id", "job_id")

    def applies(self, inst: Instance) -> bool:
        return inst.start

    async def run(self, ctx: Context) -> StepResult:
        shared, out, settings = ctx.shared, ctx.out, ctx.shared.settings
        sp_id, job_id = need(ctx.ids.service_principal_id), need(ctx.ids.job_id)
        since = time.monotonic()
        polls = 0
        while True:
            polls += 1
            job = await shared.replicated(
                "the job (monitor)", lambda: shared.graph.job(sp_id, job_id), since
            )
            status = job.status
            out.job_status = status
            settled = _settled(status, polls)
            if settled is not None:
                began = settled.get("timeBegan")
                out.cycle_began = str(began) if began else None
                return StepResult(data=settled)
            if shared.elapsed(since) >= settings.monitor_deadline:
                raise StepError(
                    ctx.key,
                    Step.MONITOR,
                    f"job still {status.code} after {settings.monitor_deadline:.0f} Graph seconds",
                    code="MonitorDeadline",
                )
            if shared.stop.is_set():
                raise Interrupted
            await shared.sleep(settings.monitor_interval)


class Logs(BaseStep):
    """The provisioning log entries of the job's first cycle, counted by status."""

    name = Step.LOGS
    stage = "monitor"
    needs = ("job_id",)

    def applies(self, inst: Instance) -> bool:
        return inst.start

    async def run(self, ctx: Context) -> StepResult:
        source = ctx.shared.logs
        since = ctx.out.cycle_began
        if source is None or since is None:
            raise StepError(ctx.key, Step.LOGS, "no first cycle of the job to read the logs of")
        return StepResult(data=await source.summary(need(ctx.ids.job_id), since))
