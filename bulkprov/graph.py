"""Typed Graph calls for the provisioning steps. Every id is checked and quoted before it is put
in a URL, and every OData string literal is escaped, so no value can reshape a request."""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar
from urllib.parse import quote

import structlog

from .client import GraphClient, Response
from .errors import GraphError, UnsafeRequest

log = structlog.get_logger("bulkprov.graph")

JSON = dict[str, Any]
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,255}$")  # job and sync template ids


def guid(value: str, what: str) -> str:
    """``value`` if it is a GUID (an object id), else :class:`UnsafeRequest`."""
    # fullmatch: "$" would also accept a trailing newline
    if not isinstance(value, str) or _GUID.fullmatch(value) is None:
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


def _entity(resp: Response, *required: str, method: str = "", path: str = "") -> JSON:
    body = resp.body
    if not isinstance(body, dict):
        missing = "a JSON object"
    else:
        missing = ", ".join(k for k in required if not isinstance(body.get(k), str) or not body[k])
    if missing:
        raise GraphError(
            resp.status,
            "InvalidResponse",
            f"the answer lacks {missing}",
            method=method,
            path=path,
            request_id=resp.request_id,
            client_request_id=resp.client_request_id,
        )
    assert isinstance(body, dict)
    return body


def _items(items: list[Any], path: str, *required: str) -> list[JSON]:
    """The objects of a collection, each with its ``required`` string properties."""
    for item in items:
        if not isinstance(item, dict):
            raise GraphError(
                200,
                "InvalidResponse",
                "an item of the collection is not an object",
                method="GET",
                path=path,
            )
        missing = [k for k in required if not isinstance(item.get(k), str) or not item[k]]
        if missing:
            raise GraphError(
                200,
                "InvalidResponse",
                f"an item of the collection lacks {', '.join(missing)}",
                method="GET",
                path=path,
            )
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

    # application templates
    @_reread
    async def find_templates(self, name_or_id: str) -> list[JSON]:
        if _GUID.fullmatch(name_or_id):
            try:
                return [await self.client.get(f"/applicationTemplates/{name_or_id}")]
            except GraphError as err:
                if err.status == 404:
                    return []
                raise
        found: list[JSON] = []
        params = {"$filter": f"displayName eq {odata_string(name_or_id)}"}
        async for page in self.client.pages("/applicationTemplates", params=params):
            found.extend(page)
        return _items(found, "/applicationTemplates", "id", "displayName")

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
            raise GraphError(
                resp.status,
                "InvalidResponse",
                f"instantiate answered without {', '.join(missing)}",
                method="POST",
                path=f"/applicationTemplates/{template_id}/instantiate",
                request_id=resp.request_id,
                client_request_id=resp.client_request_id,
            )
        assert isinstance(app, dict) and isinstance(sp, dict)
        return app, sp

    # directory
    @_reread
    async def find_applications(self, template_id: str, display_name: str) -> list[JSON]:
        flt = (
            f"applicationTemplateId eq {odata_string(template_id)} and "
            f"displayName eq {odata_string(display_name)}"
        )
        found: list[JSON] = []
        params = {
            "$filter": flt,
            "$select": "id,appId,displayName,applicationTemplateId,createdDateTime,tags",
        }
        async for page in self.client.pages("/applications", params=params):
            found.extend(page)
        return _items(found, "/applications", "id", "appId")

    async def applications_named(self, display_name: str) -> list[JSON]:
        """Every application with this display name, whatever its template."""
        found: list[JSON] = []
        params = {
            "$filter": f"displayName eq {odata_string(display_name)}",
            "$select": "id,appId,displayName,applicationTemplateId,createdDateTime",
        }
        async for page in self.client.pages("/applications", params=params):
            found.extend(page)
        return _items(found, "/applications", "id", "appId")

    async def some_service_principal(self, template_id: str) -> JSON | None:
        """One service principal of this gallery template, if the tenant has any."""
        params = {
            "$filter": f"applicationTemplateId eq {odata_string(template_id)}",
            "$select": "id,appId,displayName",
            "$top": "1",
        }
        body = await self.client.get("/servicePrincipals", params=params)
        items = body.get("value") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise GraphError(
                200,
                "InvalidResponse",
                "a collection answer without 'value'",
                method="GET",
                path="/servicePrincipals",
            )
        return _items(items, "/servicePrincipals", "id")[0] if items else None

    async def service_principals(self, template_id: str | None = None) -> list[JSON]:
        """The service principals of the tenant (of one gallery template, if given)."""
        params = {"$select": "id,appId,displayName,applicationTemplateId"}
        if template_id is not None:
            params["$filter"] = f"applicationTemplateId eq {odata_string(template_id)}"
        found: list[JSON] = []
        async for page in self.client.pages("/servicePrincipals", params=params):
            found.extend(page)
        return found

    @_reread
    async def service_principal_by_app_id(self, app_id: str) -> JSON:
        path = f"/servicePrincipals(appId='{guid(app_id, 'appId')}')"
        resp = await self.client.request("GET", path, params={"$select": "id,appId,displayName"})
        return _entity(resp, "id", "appId", method="GET", path=path)

    @_reread
    async def service_principal(self, sp_id: str) -> JSON:
        path = f"/servicePrincipals/{guid(sp_id, 'service principal id')}"
        resp = await self.client.request("GET", path, params={"$select": "id,appId,displayName"})
        return _entity(resp, "id", method="GET", path=path)

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
        out: list[JSON] = []
        path = f"{self._sync(sp_id)}/templates"
        async for page in self.client.pages(path):
            out.extend(page)
        return _items(out, path, "id")

    @_reread
    async def jobs(self, sp_id: str) -> list[JSON]:
        out: list[JSON] = []
        path = f"{self._sync(sp_id)}/jobs"
        async for page in self.client.pages(path):
            out.extend(page)
        return _items(out, path, "id")

    async def create_job(
        self, sp_id: str, template_id: str, settings: list[JSON] | None = None
    ) -> JSON:
        path = f"{self._sync(sp_id)}/jobs"
        body: JSON = {"templateId": template_id}
        if settings:
            body["synchronizationJobSettings"] = settings
        resp = await self.client.request("POST", path, json=body, idempotent=False)
        return _entity(resp, "id", method="POST", path=path)

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
        job = _entity(resp, "id", method="GET", path=path)
        if not isinstance(job.get("status") or {}, dict):
            raise GraphError(
                resp.status,
                "InvalidResponse",
                "the job's status is not an object",
                method="GET",
                path=path,
                request_id=resp.request_id,
            )
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
        out: list[JSON] = []
        async for page in self.client.pages("/auditLogs/provisioning", params=params):
            out.extend(page)
            if len(out) >= limit:
                return out[:limit], True
        return out, False

    async def provisioning_logs(self, *, since: str | None, top: int = 999) -> list[JSON]:
        params = {"$top": str(top)}
        if since:
            params["$filter"] = f"activityDateTime ge {since}"
        out: list[JSON] = []
        async for page in self.client.pages("/auditLogs/provisioning", params=params):
            out.extend(page)
        return out

    # on-premises provisioning agents (Graph beta; delegated permissions only)
    def _beta(self, path: str) -> str:
        return f"{self.client.conn.graph_url.rstrip('/')}/beta{path}"

    async def find_agent_groups(self, name_or_id: str) -> list[JSON]:
        """The provisioning agent groups with this id or display name."""
        base = "/onPremisesPublishingProfiles/provisioning/agentGroups"
        if _GUID.fullmatch(name_or_id):
            try:
                return [await self.client.get(self._beta(f"{base}/{name_or_id}"))]
            except GraphError as err:
                if err.status == 404:
                    return []
                raise
        found: list[JSON] = []
        params = {"$filter": f"displayName eq {odata_string(name_or_id)}"}
        async for page in self.client.pages(self._beta(base), params=params):
            found.extend(page)
        return found

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
