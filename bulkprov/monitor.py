"""Day-2 monitoring: the state of every job a ledger recorded, and its latest failures.

Each job is read (``GET .../jobs/{id}``, ``concurrency`` at a time): its status code, its
quarantine (reason, error code and message, next attempt) and the errors of its last and last
successful executions. The provisioning logs fall under the reports quota (5 requests per
10 s), so, like the run's log collector, the failures are read for all instances at once:
one ``$filter`` naming every service principal when they are few, else one sweep of the
failures since the ledger began, bucketed per service principal. A quarantined job can be
restarted (``POST .../restart`` with ``criteria.resetScope``) once its credentials are fixed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import anyio
import structlog

from .errors import STOPS_THE_COMMAND, BulkProvError, GraphError
from .graph import Execution, Graph, Job, ProvisioningEntry, SyncError
from .jsontypes import JSON
from .ledger import Ledger, Replay
from .pool import each
from .records import Event, Status, Step
from .redact import Redactor, shorten

log = structlog.get_logger("bulkprov.monitor")

DEFAULT_RESET_SCOPE = "Watermark, Escrows, QuarantineState"
RESET_SCOPES = frozenset(
    {
        "None",
        "ConnectorDataStore",
        "Escrows",
        "Watermark",
        "QuarantineState",
        "Full",
        "ForceDeletes",
    }
)
QUARANTINE = "Quarantine"
UNREADABLE = ("missing", "error")  # a row whose job could not be read


def parse_reset_scope(text: str) -> str:
    """Graph's synchronizationJobRestartScope flags, checked: ``"Watermark, QuarantineState"``."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    bad = [p for p in parts if p not in RESET_SCOPES]
    if not parts or bad:
        raise ValueError(
            f"unknown reset scope {', '.join(bad) or repr(text)}; use a comma-separated list "
            f"of {', '.join(sorted(RESET_SCOPES))}"
        )
    return ", ".join(parts)


@dataclass(frozen=True, slots=True, kw_only=True)
class MonitorSettings:
    concurrency: int = 32  # jobs read at once
    logs: bool = True  # read the provisioning-log failures
    since: str | None = None  # failures at or after this date (default: the ledger's creation)
    failures_per_sp: int = 3  # latest failures shown per service principal
    logs_limit: int = 20_000  # failure entries read at most
    filter_ids: int = 15  # up to this many service principals: one $filter naming them all
    restart: bool = False  # restart quarantined jobs
    reset_scope: str = DEFAULT_RESET_SCOPE


def _error(e: SyncError | None) -> JSON | None:
    if e is None or not e.stated:
        return None
    return {"code": e.code, "message": e.message}


def _execution(e: Execution | None) -> JSON | None:
    if e is None:
        return None
    return {
        "state": e.state,
        "timeBegan": e.time_began,
        "timeEnded": e.time_ended,
        "error": _error(e.error),
    }


def job_row(job: Job) -> JSON:
    """The monitor's view of a synchronizationJob's status."""
    status = job.status
    q = status.quarantine
    quarantine = None
    if q is not None:
        err = _error(q.error) or {}
        quarantine = {
            "reason": q.reason,
            "code": err.get("code"),
            "message": err.get("message"),
            "currentBegan": q.current_began,
            "nextAttempt": q.next_attempt,
            "seriesCount": q.series_count,
        }
    last, last_ok = (
        _execution(status.last_execution),
        _execution(status.last_successful_execution),
    )
    codes = {
        c
        for c in (
            quarantine and quarantine.get("code"),
            last and (last["error"] or {}).get("code"),
            last_ok and (last_ok["error"] or {}).get("code"),
        )
        if c
    }
    return {
        "status": status.code,
        "quarantine": quarantine,
        "lastExecution": last,
        "lastSuccessfulExecution": last_ok,
        "steadyStateLastAchievedTime": status.steady_state_last_achieved,
        "errorCodes": sorted(str(c) for c in codes),
    }


class Monitor:
    """Reads every job of a ledger; restarts the quarantined ones when asked."""

    def __init__(
        self,
        graph: Graph,
        replay: Replay,
        settings: MonitorSettings,
        *,
        ledger: Ledger | None = None,
        profile: str | None = None,
    ) -> None:
        """``profile``: a ledger of a run across many tenants, whose instances of this
        profile alone ``graph`` reads (each row names it)."""
        if settings.restart and ledger is None:
            raise ValueError("restarting jobs needs the ledger open for writing")
        self.graph = graph
        self.replay = replay
        self.profile = profile
        self.settings = settings
        self.ledger = ledger
        self.redactor = ledger.redactor if ledger is not None else Redactor()
        self.log_queries = 0
        self.logs_truncated = False

    def instances(self) -> list[JSON]:
        """One row per instance that has a job, in ledger order."""
        rows = []
        for key, st in self.replay.instances.items():
            if st.status == Status.REMOVED or not st.ids.get("jobId"):
                continue
            if not st.ids.get("servicePrincipalId"):
                continue
            if self.profile is not None and st.profile != self.profile:
                continue
            name = st.record.display_name if st.record else None
            rows.append(
                {
                    "key": key,
                    **({"profile": self.profile} if self.profile is not None else {}),
                    "displayName": name or st.attempt.get("displayName"),
                    "servicePrincipalId": st.ids["servicePrincipalId"],
                    "jobId": st.ids["jobId"],
                    "ledgerStatus": st.status or "in progress",
                }
            )
        return rows

    async def run(self) -> list[JSON]:
        rows = self.instances()

        async def one(row: JSON) -> None:
            with structlog.contextvars.bound_contextvars(instance=row["key"]):
                await self._read(row)
                if self.settings.restart and row.get("status") == QUARANTINE:
                    await self._restart(row)

        await each(one, rows, workers=max(1, self.settings.concurrency))
        if self.settings.logs and rows:
            await self._failures(rows)
        return rows

    async def _read(self, row: JSON) -> None:
        try:
            job = await self.graph.job(row["servicePrincipalId"], row["jobId"])
        except GraphError as err:
            gone = err.status == 404
            row.update(
                status="missing" if gone else "error",
                error=self.redactor.shorten(f"{err.status} {err.code}: {err.graph_message}", 300),
                errorCodes=[err.code],
            )
            return
        except STOPS_THE_COMMAND:
            raise
        except BulkProvError as err:
            row.update(
                status="error",
                error=self.redactor.shorten(str(err), 300),
                errorCodes=[type(err).__name__],
            )
            return
        row.update(job_row(job))

    async def _restart(self, row: JSON) -> None:
        assert self.ledger is not None
        key, sp_id, job_id = row["key"], row["servicePrincipalId"], row["jobId"]
        scope = self.settings.reset_scope
        if self.profile is not None:  # its records name its profile, as a run's do
            self.ledger.profiles[key] = self.profile
        t0 = time.monotonic()
        self.ledger.step(key, Step.RESTART, Event.START, resetScope=scope)
        try:
            await self.graph.restart_job(sp_id, job_id, scope)
        except STOPS_THE_COMMAND:
            raise
        except BulkProvError as err:
            code = getattr(err, "code", type(err).__name__)
            message = self.redactor.shorten(str(err), 300)
            self.ledger.step(key, Step.RESTART, Event.ERROR, code=code, message=message)
            row["restartError"] = message
            log.warning("restart_failed", error=self.redactor.shorten(message, 200))
            return
        ms = int((time.monotonic() - t0) * 1000)
        self.ledger.step(key, Step.RESTART, Event.DONE, ms=ms, data={"resetScope": scope})
        row["restarted"] = True
        row["statusBeforeRestart"] = row.get("status")
        await self._read(row)

    async def _failures(self, rows: list[JSON]) -> None:
        """The latest provisioning failures of every row's service principal."""
        s = self.settings
        sp_ids = sorted({r["servicePrincipalId"] for r in rows})
        since = s.since or (self.replay.header.created if self.replay.header else None)
        try:
            entries, self.logs_truncated = await self.graph.provisioning_failures(
                sp_ids=sp_ids if len(sp_ids) <= s.filter_ids else None,
                since=str(since) if since else None,
                limit=s.logs_limit,
            )
            self.log_queries += 1
        except STOPS_THE_COMMAND:
            raise
        except BulkProvError as err:
            for r in rows:
                r["logs"] = {"error": self.redactor.shorten(str(err), 300)}
            return
        wanted = set(sp_ids)
        buckets: dict[str, list[ProvisioningEntry]] = {i: [] for i in sp_ids}
        for e in entries:
            sp_id = str(e.service_principal_id)
            if sp_id in wanted:
                buckets[sp_id].append(e)
        for r in rows:
            mine = sorted(
                buckets[r["servicePrincipalId"]],
                key=lambda e: str(e.at or ""),
                reverse=True,
            )
            r["logs"] = {
                "failures": len(mine),
                "since": since,
                "latest": [_failure(e) for e in mine[: s.failures_per_sp]],
            }


async def monitor_tenants(
    graphs: Mapping[str | None, Graph],
    replay: Replay,
    settings: MonitorSettings,
    *,
    ledger: Ledger | None = None,
) -> tuple[list[JSON], list[Monitor]]:
    """Every job of a ledger, each read with the Graph of its profile (``graphs``: profile ->
    Graph; ``{None: graph}`` for a ledger of one tenant), the tenants at once, each with its
    own ``concurrency`` and its own provisioning-log query; the rows by tenant (in the order
    of ``graphs``), each tenant's in ledger order."""
    monitors = [
        Monitor(graph, replay, settings, ledger=ledger, profile=profile)
        for profile, graph in graphs.items()
    ]
    parts: list[list[JSON]] = [[] for _ in monitors]

    async def one(i: int) -> None:
        parts[i] = await monitors[i].run()

    async with anyio.create_task_group() as tg:
        for i in range(len(monitors)):
            tg.start_soon(one, i)
    return [r for part in parts for r in part], monitors


def _failure(e: ProvisioningEntry) -> JSON:
    return {
        "at": e.at,
        "action": e.action,
        "identity": e.source_name,
        "errorCode": e.error_code,
        "reason": shorten(str(e.reason or ""), 300),
        "jobId": e.job_id,
    }


def exit_status(rows: list[JSON]) -> str:
    """``failed`` if a job could not be read, ``quarantined`` if one is in quarantine."""
    if any(r.get("status") in UNREADABLE for r in rows):
        return "failed"
    if any(r.get("status") == QUARANTINE for r in rows):
        return "quarantined"
    return "ok"
