"""Typed Graph calls for the provisioning steps. Every id is checked and quoted before it is put
in a URL, and every OData string literal is escaped, so no value can reshape a request."""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable, Mapping
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
    async def jobs(self, sp_id: str) -> list[JSON]:
        return await self.collect(f"{self._sync(sp_id)}/jobs", required=("id",))

    async def create_job(
        self, sp_id: str, template_id: str, settings: list[JSON] | None = None
    ) -> JSON:
        path = f"{self._sync(sp_id)}/jobs"
        body: JSON = {"templateId": template_id}
        if settings:
            body["synchronizationJobSettings"] = settings
        resp = await self.client.request("POST", path, json=body, idempotent=False)
        return _entity(resp, "id")

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
    async def job(self, sp_id: str, job_id: str) -> JSON:
        path = f"{self._sync(sp_id)}/jobs/{token(job_id, 'job id')}"
        resp = await self.client.request("GET", path)
        job = _entity(resp, "id")
        if not isinstance(job.get("status") or {}, dict):
            raise resp.invalid("the job's status is not an object")
        return job

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
    ) -> tuple[list[JSON], bool]:
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
        found = await self.collect("/auditLogs/provisioning", params=params, limit=limit)
        return found, len(found) >= limit

    async def provisioning_logs(self, *, since: str | None, top: int = 999) -> list[JSON]:
        params = {"$top": str(top)}
        if since:
            params["$filter"] = f"activityDateTime ge {since}"
        return await self.collect("/auditLogs/provisioning", params=params)

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
