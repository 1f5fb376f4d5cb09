"""A service principal's synchronization: templates, secrets, jobs, their schema and
provision on demand.

Jobs run in the tenant (:meth:`~..state.Tenant.advance` plays their cycles); the handlers here
check what Graph checks, then change the job or answer with its state. Secrets read back are
masked, as Graph masks them.
"""

from __future__ import annotations

from typing import Any

import orjson

from ...graphenums import SYNCHRONIZATION_SECRETS
from ...jsontypes import JSON
from ..catalog import CredentialError, SyncTemplate, find_sync_template
from ..render import render_job, render_sync_template
from ..rest import context, json_body, page, select
from ..schemacheck import SchemaBodyError, check_schema
from ..state import Job, ServicePrincipal
from ..wire import Ctx, GraphError, MockResponse, Route, route
from .directory import service_principal

SECRET_KEYS = frozenset(SYNCHRONIZATION_SECRETS)
MASK = "*****"
SP = "/servicePrincipals/{id}/synchronization"


def _job(ctx: Ctx, sp_id: str, job_id: str) -> tuple[ServicePrincipal, Job]:
    sp = service_principal(ctx, sp_id)
    job = sp.jobs.get(job_id)
    if job is None:
        raise GraphError(
            404,
            "NotFound",
            f"The synchronization job '{job_id}' was not found on service principal '{sp_id}'.",
        )
    return sp, job


def _credentials(items: Any, field_name: str) -> dict[str, str]:
    if not isinstance(items, list):
        raise GraphError(400, "BadRequest", f"'{field_name}' must be an array of key/value pairs.")
    out: dict[str, str] = {}
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise GraphError(400, "BadRequest", f"Every item of '{field_name}' needs a key.")
        key = item["key"]
        if key not in SECRET_KEYS:
            raise GraphError(
                400,
                "BadRequest",
                f"The requested value '{key}' is not a member of the "
                "synchronizationSecret enumeration.",
            )
        value = item.get("value")
        if value is not None and not isinstance(value, str):
            raise GraphError(400, "BadRequest", f"The value of '{key}' must be a string.")
        out[key] = value or ""
    return out


def _validate(ctx: Ctx, sp: ServicePrincipal, template: SyncTemplate) -> None:
    """Test the connection with the body's credentials (and the saved ones, if asked)."""
    body = json_body(ctx)
    creds = _credentials(body.get("credentials", []), "credentials")
    if body.get("useSavedCredentials"):
        creds = {**sp.secrets, **creds}
    error = template.connector.judge(creds)
    if error is None and sp.target_broken:
        error = CredentialError(
            code=template.connector.invalid_code, message=template.connector.invalid_message
        )
    if error is not None:
        raise GraphError(
            400,
            "BadRequest",
            f"Test connection failed: {error.message}",
            details=[{"code": error.code, "message": error.message, "target": "credentials"}],
        )


def _template_of(sp: ServicePrincipal, template_id: object) -> SyncTemplate:
    t = find_sync_template(sp.template, str(template_id)) if template_id else None
    if t is None:
        raise GraphError(
            400,
            "BadRequest",
            f"The template id '{template_id}' is not valid for this application.",
        )
    return t


def _job_settings(body: JSON) -> list[JSON]:
    settings = body.get("synchronizationJobSettings")
    if settings is not None and (
        not isinstance(settings, list)
        or not all(
            isinstance(i, dict) and isinstance(i.get("name"), str) and "value" in i
            for i in settings
        )
    ):
        raise GraphError(
            400,
            "BadRequest",
            "The property 'synchronizationJobSettings' must be an array of name/value pairs.",
        )
    return settings or []


def _job_entity(ctx: Ctx, sp: ServicePrincipal) -> JSON:
    return {
        "@odata.context": context(ctx, f"servicePrincipals('{sp.id}')/synchronization/jobs/$entity")
    }


class Synchronization:
    """The synchronization routes of a service principal."""

    def routes(self) -> tuple[Route, ...]:
        return (
            route("GET", SP + "/templates", "sync_templates", self.list_sync_templates),
            route("GET", SP + "/templates/{templateId}", "sync_templates", self.get_sync_template),
            route("GET", SP + "/secrets", "sync_read", self.get_secrets),
            route("PUT", SP + "/secrets", "secrets", self.put_secrets),
            route("GET", SP + "/jobs", "sync_read", self.list_jobs),
            route("POST", SP + "/jobs", "job_create", self.create_job),
            route("POST", SP + "/jobs/validateCredentials", "validate", self.validate_collection),
            route("GET", SP + "/jobs/{jobId}", "sync_read", self.get_job),
            route("PATCH", SP + "/jobs/{jobId}", "job_control", self.patch_job),
            route("DELETE", SP + "/jobs/{jobId}", "job_control", self.delete_job),
            route("POST", SP + "/jobs/{jobId}/validateCredentials", "validate", self.validate_job),
            route("POST", SP + "/jobs/{jobId}/start", "job_control", self.start_job),
            route("POST", SP + "/jobs/{jobId}/pause", "job_control", self.pause_job),
            route("POST", SP + "/jobs/{jobId}/restart", "job_control", self.restart_job),
            route(
                "POST",
                SP + "/jobs/{jobId}/provisionOnDemand",
                "provision_on_demand",
                self.provision_on_demand,
            ),
            route("GET", SP + "/jobs/{jobId}/schema", "schema", self.get_schema),
            route("PUT", SP + "/jobs/{jobId}/schema", "schema", self.put_schema),
        )

    # templates
    async def list_sync_templates(self, ctx: Ctx, id: str) -> MockResponse:
        sp = service_principal(ctx, id)
        items = [render_sync_template(sp, t) for t in sp.template.sync_templates]
        return page(ctx, items, f"servicePrincipals('{sp.id}')/synchronization/templates")

    async def get_sync_template(self, ctx: Ctx, id: str, templateId: str) -> MockResponse:
        sp = service_principal(ctx, id)
        t = find_sync_template(sp.template, templateId)
        if t is None:
            raise GraphError(404, "NotFound", f"The template '{templateId}' was not found.")
        return MockResponse(200, render_sync_template(sp, t))

    # secrets
    async def get_secrets(self, ctx: Ctx, id: str) -> MockResponse:
        sp = service_principal(ctx, id)
        return MockResponse(
            200,
            {
                "@odata.context": context(
                    ctx, f"servicePrincipals('{sp.id}')/synchronization/secrets"
                ),
                "value": [{"key": k, "value": MASK} for k in sp.secrets],
            },
        )

    async def put_secrets(self, ctx: Ctx, id: str) -> MockResponse:
        sp = service_principal(ctx, id)
        body = json_body(ctx)
        sp.secrets = _credentials(body.get("value"), "value")
        for job in sp.jobs.values():
            if job.code == "NotConfigured" and sp.secrets:
                job.code = "Paused"
        return MockResponse(204)

    # jobs
    async def list_jobs(self, ctx: Ctx, id: str) -> MockResponse:
        sp = service_principal(ctx, id)
        items = [render_job(j) for j in sp.jobs.values()]
        return page(ctx, items, f"servicePrincipals('{sp.id}')/synchronization/jobs")

    async def create_job(self, ctx: Ctx, id: str) -> MockResponse:
        sp = service_principal(ctx, id)
        body = json_body(ctx)
        template_id = body.get("templateId")
        if not isinstance(template_id, str):
            raise GraphError(400, "BadRequest", "The property 'templateId' is required.")
        t = _template_of(sp, template_id)
        settings = _job_settings(body)
        job = ctx.tenant.create_job(sp, t, ctx.now)
        for item in settings:
            value = "" if item["value"] is None else str(item["value"])
            job.settings = [(n, v) for n, v in job.settings if n != item["name"]]
            job.settings.append((item["name"], value))
        answer = _job_entity(ctx, sp)
        answer.update(render_job(job))
        return MockResponse(201, answer)

    async def get_job(self, ctx: Ctx, id: str, jobId: str) -> MockResponse:
        sp, job = _job(ctx, id, jobId)
        answer = _job_entity(ctx, sp)
        answer.update(select(ctx, render_job(job)))
        return MockResponse(200, answer)

    async def patch_job(self, ctx: Ctx, id: str, jobId: str) -> MockResponse:
        """Graph's update of a job: ``synchronizationJobSettings`` replaces the collection
        (``schedule`` is not modelled: a body naming only it changes nothing)."""
        _sp, job = _job(ctx, id, jobId)
        body = json_body(ctx)
        unknown = sorted(set(body) - {"synchronizationJobSettings", "schedule"})
        if unknown:
            raise GraphError(
                400,
                "BadRequest",
                f"Property '{unknown[0]}' does not exist or cannot be updated on "
                "'microsoft.graph.synchronizationJob'.",
            )
        if "synchronizationJobSettings" in body:
            settings = _job_settings(body)
            job.settings = [
                (i["name"], "" if i["value"] is None else str(i["value"])) for i in settings
            ]
        return MockResponse(204)

    async def delete_job(self, ctx: Ctx, id: str, jobId: str) -> MockResponse:
        sp, job = _job(ctx, id, jobId)
        job.generation += 1
        del sp.jobs[job.id]
        return MockResponse(204)

    async def validate_job(self, ctx: Ctx, id: str, jobId: str) -> MockResponse:
        sp, job = _job(ctx, id, jobId)
        _validate(ctx, sp, job.template)
        return MockResponse(204)

    async def validate_collection(self, ctx: Ctx, id: str) -> MockResponse:
        sp = service_principal(ctx, id)
        t = _template_of(sp, json_body(ctx).get("templateId"))
        _validate(ctx, sp, t)
        return MockResponse(204)

    async def start_job(self, ctx: Ctx, id: str, jobId: str) -> MockResponse:
        _sp, job = _job(ctx, id, jobId)
        ctx.tenant.start_job(job, ctx.now)
        return MockResponse(204)

    async def pause_job(self, ctx: Ctx, id: str, jobId: str) -> MockResponse:
        _sp, job = _job(ctx, id, jobId)
        ctx.tenant.pause_job(job)
        return MockResponse(204)

    async def restart_job(self, ctx: Ctx, id: str, jobId: str) -> MockResponse:
        _sp, job = _job(ctx, id, jobId)
        scope = ""
        if ctx.req.body.strip():
            criteria = json_body(ctx).get("criteria") or {}
            scope = str(criteria.get("resetScope") or "") if isinstance(criteria, dict) else ""
        ctx.tenant.restart_job(job, ctx.now, scope)
        return MockResponse(204)

    async def provision_on_demand(self, ctx: Ctx, id: str, jobId: str) -> MockResponse:
        sp, job = _job(ctx, id, jobId)
        body = json_body(ctx)
        params = body.get("parameters")
        if not isinstance(params, list) or not params:
            raise GraphError(400, "BadRequest", "The property 'parameters' is required.")
        error = job.template.connector.judge(sp.secrets)
        status = "Failure" if error else "Success"
        details = {
            "provisioningSteps": [
                {
                    "name": "EntryExportAdd",
                    "type": "Export",
                    "status": status,
                    "description": error.message if error else "Entry was provisioned.",
                }
            ],
            "statusInfo": {
                "status": status,
                "errorInformation": ({"errorCode": error.code} if error else None),
            },
        }
        return MockResponse(
            200,
            {
                "@odata.context": context(ctx, "microsoft.graph.stringKeyStringValuePair"),
                "key": "Microsoft.Identity.Health.CPP.Common.DataContracts.SyncFabric.StatusInfo",
                "value": orjson.dumps([details]).decode(),
            },
        )

    # schema
    async def get_schema(self, ctx: Ctx, id: str, jobId: str) -> MockResponse:
        sp, job = _job(ctx, id, jobId)
        fragment = f"servicePrincipals('{sp.id}')/synchronization/jobs('{job.id}')/schema/$entity"
        answer: JSON = {"@odata.context": context(ctx, fragment)}
        answer.update(job.schema)
        return MockResponse(200, answer)

    async def put_schema(self, ctx: Ctx, id: str, jobId: str) -> MockResponse:
        _sp, job = _job(ctx, id, jobId)
        body = json_body(ctx)
        try:
            check_schema(body)
        except SchemaBodyError as exc:
            raise GraphError(400, "BadRequest", str(exc)) from None
        schema = {k: v for k, v in body.items() if "@odata." not in k}
        schema["id"] = job.id
        job.schema = schema
        return MockResponse(204)
