"""Typed Graph calls for the provisioning steps. Every id is checked and quoted before it is put
in a URL, and every OData string literal is escaped, so no value can reshape a request.

The answers the steps and the day-2 commands read field by field come back typed: a
:class:`Job` (with its :class:`JobStatus`, :class:`Quarantine` and :class:`Execution`) and a
:class:`ProvisioningEntry`. Each is parsed once, leniently as Graph's own clients are (a missing
or wrongly typed property reads as None); what Graph documents as required and an answer lacks
is an ``InvalidResponse`` naming the request (:func:`_parsed`). The ledger records the plain
JSON its readers make of them (``steps.monitor``, ``monitor.job_row``, ``run.LogCollector``)."""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import ParamSpec, TypeVar
from urllib.parse import quote

import structlog

from .client import GraphClient, Response
from .errors import GraphError, UnsafeRequest
from .ids import is_guid
from .jsontypes import JSON

log = structlog.get_logger("bulkprov.graph")

_TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,255}$")  # job and sync template ids


def guid(value: str, what: str) -> str:
    """``value`` if it is a GUID (an object id), else :class:`UnsafeRequest`."""
    if not is_guid(value):
        raise UnsafeRequest(f"{what} {value!r} is not a GUID; refusing to put it in a URL")
    return value


def token(value: str, what: str) -> str:
    """``value`` if it is a plain identifier (job or template id), quoted for a URL segment."""
    if not isinstance(value, str) or _TOKEN.fullmatch(value) is None or ".." in value:
        raise UnsafeRequest(
            f"{what} {value!r} is not a plain identifier; refusing to put it in a URL"
        )
    return quote(value, safe="")


def odata_string(value: str) -> str:
    """An OData string literal: single quotes doubled, the whole in single quotes."""
    return "'" + value.replace("'", "''") + "'"


def _lacking(obj: JSON, required: tuple[str, ...]) -> list[str]:
    """Which of the ``required`` string properties ``obj`` lacks (or has empty)."""
    return [k for k in required if not isinstance(obj.get(k), str) or not obj[k]]


def _entity(resp: Response, *required: str) -> JSON:
    """The object an answer is, with its ``required`` string properties."""
    body = resp.body
    if not isinstance(body, dict):
        raise resp.invalid("the answer lacks a JSON object")
    if missing := _lacking(body, required):
        raise resp.invalid(f"the answer lacks {', '.join(missing)}")
    return body


def _items(resp: Response, *required: str) -> list[JSON]:
    """The objects of a collection page, each with its ``required`` string properties."""
    items = resp.items()
    for item in items:
        if not isinstance(item, dict):
            raise resp.invalid("an item of the collection is not an object")
        if missing := _lacking(item, required):
            raise resp.invalid(f"an item of the collection lacks {', '.join(missing)}")
    return items


P = ParamSpec("P")
T = TypeVar("T")
READ_ATTEMPTS = 3  # a read whose answer lacks what Graph documents is asked again


def _reread(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """A read asked again when its answer parsed but lacks what Graph documents (an id, a
    collection's ``value``): safe to repeat, and usually a glitch of one answer."""

    @functools.wraps(fn)
    async def again(*args: P.args, **kwargs: P.kwargs) -> T:
        for attempt in range(1, READ_ATTEMPTS + 1):
            try:
                return await fn(*args, **kwargs)
            except GraphError as err:
                if err.code != "InvalidResponse" or attempt == READ_ATTEMPTS:
                    raise
                log.info("reading_again", path=err.path, reason=err.graph_message)
        raise AssertionError("unreachable")

    return again


# ---------------------------------------------------------------------- Graph's answers, typed
class Unparsable(ValueError):
    """A Graph object that lacks what Graph documents; :class:`Graph` raises it as
    ``InvalidResponse`` naming the request whose answer it was."""


def _text(obj: JSON, key: str) -> str | None:
    value = obj.get(key)
    return value if isinstance(value, str) else None


def _count(obj: JSON, key: str) -> int | None:
    value = obj.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _object(obj: JSON, key: str) -> JSON:
    """A nested object, or an empty one where Graph gives null (or anything but an object)."""
    value = obj.get(key)
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncError:
    """A synchronizationError: of a quarantine or of a task execution."""

    code: str | None = None
    message: str | None = None
    tenant_actionable: bool | None = None

    @classmethod
    def from_graph(cls, obj: object) -> SyncError | None:
        """None where Graph gives no error: null, or an empty object."""
        if not isinstance(obj, dict) or not obj:
            return None
        actionable = obj.get("tenantActionable")
        return cls(
            code=_text(obj, "code"),
            message=_text(obj, "message"),
            tenant_actionable=actionable if isinstance(actionable, bool) else None,
        )

    @property
    def stated(self) -> bool:
        """Whether it says anything: a code or a message."""
        return bool(self.code or self.message)


@dataclass(frozen=True, slots=True, kw_only=True)
class Execution:
    """A synchronizationTaskExecution: a job's last (or last successful) cycle."""

    state: str | None = None  # synchronizationTaskExecutionResult: Succeeded, Failed, ...
    time_began: str | None = None
    time_ended: str | None = None
    error: SyncError | None = None
    activity_identifier: str | None = None
    count_entitled: int | None = None
    count_imported: int | None = None
    count_exported: int | None = None
    count_escrowed: int | None = None

    @classmethod
    def from_graph(cls, obj: object) -> Execution | None:
        """None where Graph gives none (null)."""
        if not isinstance(obj, dict):
            return None
        return cls(
            state=_text(obj, "state"),
            time_began=_text(obj, "timeBegan"),
            time_ended=_text(obj, "timeEnded"),
            error=SyncError.from_graph(obj.get("error")),
            activity_identifier=_text(obj, "activityIdentifier"),
            count_entitled=_count(obj, "countEntitled"),
            count_imported=_count(obj, "countImported"),
            count_exported=_count(obj, "countExported"),
            count_escrowed=_count(obj, "countEscrowed"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Quarantine:
    """A synchronizationQuarantine: why a job is quarantined and when it is tried again."""

    reason: str | None = None  # quarantineReason, e.g. EncounteredQuarantineException
    error: SyncError | None = None
    current_began: str | None = None
    next_attempt: str | None = None
    series_began: str | None = None
    series_count: int | None = None

    @classmethod
    def from_graph(cls, obj: object) -> Quarantine | None:
        """None where Graph gives none (null)."""
        if not isinstance(obj, dict):
            return None
        return cls(
            reason=_text(obj, "reason"),
            error=SyncError.from_graph(obj.get("error")),
            current_began=_text(obj, "currentBegan"),
            next_attempt=_text(obj, "nextAttempt"),
            series_began=_text(obj, "seriesBegan"),
            series_count=_count(obj, "seriesCount"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class JobStatus:
    """A synchronizationStatus: the job's state (``code``: Active, Paused, Quarantine,
    NotConfigured, NotRun) and what its cycles came to."""

    code: str | None = None
    quarantine: Quarantine | None = None
    last_execution: Execution | None = None
    last_successful_execution: Execution | None = None
    steady_state_first_achieved: str | None = None
    steady_state_last_achieved: str | None = None
    successive_complete_failures: int | None = None

    @classmethod
    def from_graph(cls, obj: object) -> JobStatus:
        """The status of a job; an empty one where Graph gives none, :class:`Unparsable`
        where it gives something other than an object."""
        if not obj:
            return cls()
        if not isinstance(obj, dict):
            raise Unparsable("the job's status is not an object")
        return cls(
            code=_text(obj, "code"),
            quarantine=Quarantine.from_graph(obj.get("quarantine")),
            last_execution=Execution.from_graph(obj.get("lastExecution")),
            last_successful_execution=Execution.from_graph(obj.get("lastSuccessfulExecution")),
            steady_state_first_achieved=_text(obj, "steadyStateFirstAchievedTime"),
            steady_state_last_achieved=_text(obj, "steadyStateLastAchievedTime"),
            successive_complete_failures=_count(obj, "countSuccessiveCompleteFailures"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """A synchronizationJob: its id (required), template, schedule, settings and status."""

    id: str
    template_id: str | None = None
    schedule_state: str | None = None  # synchronizationScheduleState: Active, Disabled, ...
    schedule_interval: str | None = None  # an ISO 8601 duration, e.g. PT40M
    settings: tuple[tuple[str, str | None], ...] = ()  # synchronizationJobSettings
    status: JobStatus = JobStatus()

    @classmethod
    def from_graph(cls, obj: object) -> Job:
        if not isinstance(obj, dict):
            raise Unparsable("the job is not an object")
        job_id = _text(obj, "id")
        if not job_id:
            raise Unparsable("the job lacks id")
        schedule = _object(obj, "schedule")
        settings = obj.get("synchronizationJobSettings")
        return cls(
            id=job_id,
            template_id=_text(obj, "templateId"),
            schedule_state=_text(schedule, "state"),
            schedule_interval=_text(schedule, "interval"),
            settings=tuple(
                (s["name"], _text(s, "value"))
                for s in (settings if isinstance(settings, list) else ())
                if isinstance(s, dict) and isinstance(s.get("name"), str) and s["name"]
            ),
            status=JobStatus.from_graph(obj.get("status")),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ProvisioningEntry:
    """A provisioningObjectSummary: one object's provisioning in a cycle, and its outcome.

    Nothing of it is required: an entry is counted for its job whatever else it lacks (its
    own id included), as Graph's audit answers are read."""

    id: str | None = None
    at: str | None = None  # activityDateTime
    job_id: str | None = None
    cycle_id: str | None = None
    action: str | None = None  # provisioningAction: create, update, delete, ...
    status: str | None = None  # provisioningStatusInfo.status: success, failure, skipped...
    error_code: str | None = None  # provisioningStatusInfo.errorInformation
    reason: str | None = None
    error_category: str | None = None
    service_principal_id: str | None = None
    source_id: str | None = None
    source_name: str | None = None
    target_id: str | None = None
    target_name: str | None = None

    @classmethod
    def from_graph(cls, obj: object) -> ProvisioningEntry:
        if not isinstance(obj, dict):
            raise Unparsable("a provisioning log entry is not an object")
        info = _object(obj, "provisioningStatusInfo")
        error = _object(info, "errorInformation")
        source, target = _object(obj, "sourceIdentity"), _object(obj, "targetIdentity")
        return cls(
            id=_text(obj, "id"),
            at=_text(obj, "activityDateTime"),
            job_id=_text(obj, "jobId"),
            cycle_id=_text(obj, "cycleId"),
            action=_text(obj, "provisioningAction"),
            status=_text(info, "status"),
            error_code=_text(error, "errorCode"),
            reason=_text(error, "reason"),
            error_category=_text(error, "errorCategory"),
            service_principal_id=_text(_object(obj, "servicePrincipal"), "id"),
            source_id=_text(source, "id"),
            source_name=_text(source, "displayName"),
            target_id=_text(target, "id"),
            target_name=_text(target, "displayName"),
        )


def _parsed(resp: Response, parse: Callable[[JSON], T], obj: JSON) -> T:
    """``parse(obj)`` of an object of this answer; what it lacks is the answer's fault."""
    try:
        return parse(obj)
    except Unparsable as exc:
        raise resp.invalid(str(exc)) from None


class Graph:
    """The Graph operations bulkprov uses, over a :class:`GraphClient`."""

    def __init__(self, client: GraphClient) -> None:
        self.client = client

    async def collect(
        self,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        required: tuple[str, ...] = (),
        limit: int | None = None,
    ) -> list[JSON]:
        """The items of a collection, page after page: each an object with its ``required``
        string properties when any are named; reading stops once ``limit`` are had."""
        found: list[JSON] = []
        async for resp in self.client.answers(path, params=params):
            found.extend(_items(resp, *required) if required else resp.items())
            if limit is not None and len(found) >= limit:
                return found[:limit]
        return found

    async def collect_as(
        self,
        path: str,
        parse: Callable[[JSON], T],
        *,
        params: Mapping[str, str] | None = None,
        required: tuple[str, ...] = (),
        limit: int | None = None,
    ) -> list[T]:
        """:meth:`collect`, each item (an object) parsed: one that ``parse`` finds lacking is
        an ``InvalidResponse`` of the page it came in."""
        found: list[T] = []
        async for resp in self.client.answers(path, params=params):
            found.extend(_parsed(resp, parse, item) for item in _items(resp, *required))
            if limit is not None and len(found) >= limit:
                return found[:limit]
        return found

    # application templates
    @_reread
    async def find_templates(self, name_or_id: str) -> list[JSON]:
        if is_guid(name_or_id):
            try:
                return [await self.client.get(f"/applicationTemplates/{name_or_id}")]
            except GraphError as err:
                if err.status == 404:
                    return []
                raise
        params = {"$filter": f"displayName eq {odata_string(name_or_id)}"}
        return await self.collect(
            "/applicationTemplates", params=params, required=("id", "displayName")
        )

    async def instantiate(self, template_id: str, display_name: str) -> tuple[JSON, JSON]:
        resp = await self.client.request(
            "POST",
            f"/applicationTemplates/{guid(template_id, 'template id')}/instantiate",
            json={"displayName": display_name},
            idempotent=False,
        )
        body = resp.body if isinstance(resp.body, dict) else {}
        app, sp = body.get("application"), body.get("servicePrincipal")
        missing = [
            f"{name}.{k}"
            for name, o in (("application", app), ("servicePrincipal", sp))
            for k in ("id", "appId")
            if not isinstance(o, dict) or not isinstance(o.get(k), str) or not o[k]
        ]
        if missing:
            raise resp.invalid(f"instantiate answered without {', '.join(missing)}")
        assert isinstance(app, dict) and isinstance(sp, dict)
        return app, sp

    # directory
    @_reread
    async def find_applications(self, template_id: str, display_name: str) -> list[JSON]:
        flt = (
            f"applicationTemplateId eq {odata_string(template_id)} and "
            f"displayName eq {odata_string(display_name)}"
        )
        params = {
            "$filter": flt,
            "$select": "id,appId,displayName,applicationTemplateId,createdDateTime,tags",
        }
        return await self.collect("/applications", params=params, required=("id", "appId"))

    async def applications_named(self, display_name: str) -> list[JSON]:
        """Every application with this display name, whatever its template."""
        params = {
            "$filter": f"displayName eq {odata_string(display_name)}",
            "$select": "id,appId,displayName,applicationTemplateId,createdDateTime",
        }
        return await self.collect("/applications", params=params, required=("id", "appId"))

    async def some_service_principal(self, template_id: str) -> JSON | None:
        """One service principal of this gallery template, if the tenant has any."""
        params = {
            "$filter": f"applicationTemplateId eq {odata_string(template_id)}",
            "$select": "id,appId,displayName",
            "$top": "1",
        }
        items = _items(await self.client.request("GET", "/servicePrincipals", params=params), "id")
        return items[0] if items else None

    async def service_principals(self, template_id: str | None = None) -> list[JSON]:
        """The service principals of the tenant (of one gallery template, if given)."""
        params = {"$select": "id,appId,displayName,applicationTemplateId"}
        if template_id is not None:
            params["$filter"] = f"applicationTemplateId eq {odata_string(template_id)}"
        return await self.collect("/servicePrincipals", params=params)

    @_reread
    async def service_principal_by_app_id(self, app_id: str) -> JSON:
        path = f"/servicePrincipals(appId='{guid(app_id, 'appId')}')"
        resp = await self.client.request("GET", path, params={"$select": "id,appId,displayName"})
        return _entity(resp, "id", "appId")

    @_reread
    async def service_principal(self, sp_id: str) -> JSON:
        path = f"/servicePrincipals/{guid(sp_id, 'service principal id')}"
        resp = await self.client.request("GET", path, params={"$select": "id,appId,displayName"})
        return _entity(resp, "id")

    @_reread
    async def application(self, app_object_id: str) -> JSON:
        resp = await self.client.request(
            "GET",
            f"/applications/{guid(app_object_id, 'application id')}",
            params={"$select": "id,appId,displayName"},
        )
        return _entity(resp, "id", "appId")

    async def delete_application(self, app_object_id: str) -> None:
        await self.client.request(
            "DELETE", f"/applications/{guid(app_object_id, 'application id')}"
        )

    async def delete_service_principal(self, sp_id: str) -> None:
        await self.client.request(
            "DELETE", f"/servicePrincipals/{guid(sp_id, 'service principal id')}"
        )

    async def purge_deleted_item(self, object_id: str) -> None:
        """Permanently delete a soft-deleted application or service principal."""
        await self.client.request(
            "DELETE", f"/directory/deletedItems/{guid(object_id, 'deleted item id')}"
        )

    # synchronization
    def _sync(self, sp_id: str) -> str:
        return f"/servicePrincipals/{guid(sp_id, 'service principal id')}/synchronization"

    @_reread
    async def sync_templates(self, sp_id: str) -> list[JSON]:
        return await self.collect(f"{self._sync(sp_id)}/templates", required=("id",))

    @_reread
    async def jobs(self, sp_id: str) -> list[Job]:
        return await self.collect_as(f"{self._sync(sp_id)}/jobs", Job.from_graph, required=("id",))

    async def create_job(
        self, sp_id: str, template_id: str, settings: list[JSON] | None = None
    ) -> Job:
        path = f"{self._sync(sp_id)}/jobs"
        body: JSON = {"templateId": template_id}
        if settings:
            body["synchronizationJobSettings"] = settings
        resp = await self.client.request("POST", path, json=body, idempotent=False)
        return _parsed(resp, Job.from_graph, _entity(resp, "id"))

    async def job_schema(self, sp_id: str, job_id: str) -> JSON:
        resp = await self.client.request(
            "GET", f"{self._sync(sp_id)}/jobs/{token(job_id, 'job id')}/schema"
        )
        return _entity(resp)

    async def put_job_schema(self, sp_id: str, job_id: str, schema: JSON) -> None:
        await self.client.request(
            "PUT", f"{self._sync(sp_id)}/jobs/{token(job_id, 'job id')}/schema", json=schema
        )

    async def secret_keys(self, sp_id: str) -> list[str]:
        """The keys of the saved secrets (Graph never returns their values)."""
        resp = await self.client.request("GET", f"{self._sync(sp_id)}/secrets")
        body = resp.body if isinstance(resp.body, dict) else {}
        return [
            str(i["key"]) for i in body.get("value") or [] if isinstance(i, dict) and i.get("key")
        ]

    @_reread
    async def job(self, sp_id: str, job_id: str) -> Job:
        path = f"{self._sync(sp_id)}/jobs/{token(job_id, 'job id')}"
        resp = await self.client.request("GET", path)
        return _parsed(resp, Job.from_graph, _entity(resp, "id"))

    async def validate_credentials(self, sp_id: str, job_id: str, credentials: list[JSON]) -> None:
        await self.client.request(
            "POST",
            f"{self._sync(sp_id)}/jobs/{token(job_id, 'job id')}/validateCredentials",
            json={"credentials": credentials},
            idempotent=True,
        )

    async def put_secrets(self, sp_id: str, credentials: list[JSON]) -> None:
        await self.client.request(
            "PUT", f"{self._sync(sp_id)}/secrets", json={"value": credentials}
        )

    async def start_job(self, sp_id: str, job_id: str) -> None:
        await self.client.request(
            "POST", f"{self._sync(sp_id)}/jobs/{token(job_id, 'job id')}/start", idempotent=True
        )

    async def delete_job(self, sp_id: str, job_id: str) -> None:
        await self.client.request("DELETE", f"{self._sync(sp_id)}/jobs/{token(job_id, 'job id')}")

    async def restart_job(self, sp_id: str, job_id: str, reset_scope: str) -> None:
        """Restart a job; ``reset_scope`` as Graph's synchronizationJobRestartScope flags,
        e.g. ``"Watermark, Escrows, QuarantineState"``."""
        await self.client.request(
            "POST",
            f"{self._sync(sp_id)}/jobs/{token(job_id, 'job id')}/restart",
            json={"criteria": {"resetScope": reset_scope}},
            idempotent=True,
        )

    async def provisioning_failures(
        self, *, sp_ids: list[str] | None, since: str | None, limit: int, top: int = 999
    ) -> tuple[list[ProvisioningEntry], bool]:
        """Failed provisioning-log entries: of the given service principals (one filter for
        all of them), or of every service principal when ``sp_ids`` is None; at most
        ``limit`` of them, and whether more were left unread."""
        clauses = ["provisioningStatusInfo/status eq 'failure'"]
        if sp_ids:
            ors = " or ".join(
                f"servicePrincipal/id eq {odata_string(guid(i, 'service principal id'))}"
                for i in sp_ids
            )
            clauses.append(f"({ors})" if len(sp_ids) > 1 else ors)
        if since:
            clauses.append(f"activityDateTime ge {since}")
        params = {"$top": str(top), "$filter": " and ".join(clauses)}
        found = await self.collect_as(
            "/auditLogs/provisioning", ProvisioningEntry.from_graph, params=params, limit=limit
        )
        return found, len(found) >= limit

    async def provisioning_logs(
        self, *, since: str | None, top: int = 999
    ) -> list[ProvisioningEntry]:
        params = {"$top": str(top)}
        if since:
            params["$filter"] = f"activityDateTime ge {since}"
        return await self.collect_as(
            "/auditLogs/provisioning", ProvisioningEntry.from_graph, params=params
        )

    # on-premises provisioning agents (Graph beta; delegated permissions only)
    def _beta(self, path: str) -> str:
        return f"{self.client.conn.graph_url.rstrip('/')}/beta{path}"

    async def find_agent_groups(self, name_or_id: str) -> list[JSON]:
        """The provisioning agent groups with this id or display name."""
        base = "/onPremisesPublishingProfiles/provisioning/agentGroups"
        if is_guid(name_or_id):
            try:
                return [await self.client.get(self._beta(f"{base}/{name_or_id}"))]
            except GraphError as err:
                if err.status == 404:
                    return []
                raise
        params = {"$filter": f"displayName eq {odata_string(name_or_id)}"}
        return await self.collect(self._beta(base), params=params)

    async def assign_agent_group(self, app_object_id: str, group_id: str) -> None:
        """Assign the application to a provisioning agent group (PUT connectorGroup/$ref)."""
        app = guid(app_object_id, "application id")
        ref = self._beta(
            f"/onPremisesPublishingProfiles/provisioning/agentGroups/{guid(group_id, 'group id')}"
        )
        await self.client.request(
            "PUT", self._beta(f"/applications/{app}/connectorGroup/$ref"), json={"@odata.id": ref}
        )

    async def agent_group_of(self, app_object_id: str) -> JSON | None:
        """The agent (connector) group the application is assigned to, if any."""
        app = guid(app_object_id, "application id")
        try:
            resp = await self.client.request(
                "GET", self._beta(f"/applications/{app}/connectorGroup")
            )
        except GraphError as err:
            if err.status == 404:
                return None
            raise
        return _entity(resp, "id")

    # day 2: what an instance already set up is changed by
    async def patch_application(self, app_object_id: str, body: JSON) -> None:
        """PATCH /applications/{id} (e.g. ``{"displayName": ...}``): 204."""
        path = f"/applications/{guid(app_object_id, 'application id')}"
        await self.client.request("PATCH", path, json=body, idempotent=True)

    async def patch_service_principal(self, sp_id: str, body: JSON) -> None:
        """PATCH /servicePrincipals/{id} (e.g. ``{"displayName": ...}``): 204."""
        path = f"/servicePrincipals/{guid(sp_id, 'service principal id')}"
        await self.client.request("PATCH", path, json=body, idempotent=True)

    async def pause_job(self, sp_id: str, job_id: str) -> None:
        """POST .../jobs/{id}/pause: 204; the job keeps its progress for the next start."""
        await self.client.request(
            "POST", f"{self._sync(sp_id)}/jobs/{token(job_id, 'job id')}/pause", idempotent=True
        )

    async def patch_job(self, sp_id: str, job_id: str, body: JSON) -> None:
        """PATCH .../jobs/{id} (``{"synchronizationJobSettings": [{name, value}...]}``): 204."""
        path = f"{self._sync(sp_id)}/jobs/{token(job_id, 'job id')}"
        await self.client.request("PATCH", path, json=body, idempotent=True)
