"""Application templates, applications, service principals and deleted items.

``POST /applicationTemplates/{id}/instantiate`` creates an application and its service
principal (both replicate with a delay, see :class:`~..settings.ReplicationSettings`); the
lookups here (:func:`application`, :func:`service_principal`) answer 404 for an object that
has not replicated yet, as Graph does, and the other resources use them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeVar

from ...jsontypes import JSON
from ..catalog import GALLERY, GalleryApp, find_app
from ..faults import FaultInjector
from ..odata import FilterSpec
from ..render import (
    render_application,
    render_deleted,
    render_service_principal,
    render_template,
)
from ..rest import check_guid, context, entity, filter_of, json_body, page
from ..state import Application, ServicePrincipal
from ..wire import Ctx, GraphError, MockResponse, Route, not_found, route

TEMPLATE_FILTER = FilterSpec(
    "applicationTemplate",
    {
        "displayName": frozenset({"eq", "ne", "contains", "startswith"}),
        "categories": frozenset({"any"}),
        "publisher": frozenset({"eq", "contains", "startswith"}),
        "id": frozenset({"eq"}),
    },
)
DIRECTORY_PROPS = {
    "displayName": frozenset({"eq", "ne", "startswith"}),
    "appId": frozenset({"eq"}),
    "id": frozenset({"eq"}),
    "applicationTemplateId": frozenset({"eq"}),
    "tags": frozenset({"any"}),
}
APPLICATION_FILTER = FilterSpec("Application", DIRECTORY_PROPS)
SP_FILTER = FilterSpec("ServicePrincipal", DIRECTORY_PROPS)
PATCHABLE_APPLICATION = frozenset({"displayName", "tags", "notes"})
PATCHABLE_SP = frozenset(
    {"displayName", "tags", "notes", "appRoleAssignmentRequired", "accountEnabled"}
)


# ---------------------------------------------------------------------- lookups
def gallery_app(template_id: str) -> GalleryApp:
    app = find_app(template_id)
    if app is None:
        raise GraphError(
            404, "Request_ResourceNotFound", f"Resource '{template_id}' does not exist."
        )
    return app


def application(ctx: Ctx, object_id: str) -> Application:
    """A live, replicated application of the tenant, or Graph's 404."""
    check_guid(object_id)
    a = ctx.tenant.applications.get(object_id)
    if a is None or a.deleted is not None or not ctx.tenant.visible(a.vis, ctx.now):
        raise not_found(object_id)
    return a


def service_principal(ctx: Ctx, object_id: str) -> ServicePrincipal:
    """A live, replicated service principal of the tenant, or Graph's 404."""
    check_guid(object_id)
    sp = ctx.tenant.service_principals.get(object_id)
    if sp is None or sp.deleted is not None or not ctx.tenant.visible(sp.vis, ctx.now):
        raise not_found(object_id)
    return sp


def _deleted(ctx: Ctx, object_id: str) -> Application | ServicePrincipal:
    check_guid(object_id)
    obj: Application | ServicePrincipal | None = ctx.tenant.applications.get(object_id)
    if obj is None:
        obj = ctx.tenant.service_principals.get(object_id)
    if obj is None or obj.deleted is None:
        raise not_found(object_id)
    return obj


def _visible(ctx: Ctx, objs: list[Any]) -> list[Any]:
    t = ctx.tenant
    return [o for o in objs if o.deleted is None and t.visible(o.vis, ctx.now)]


def _patch_body(ctx: Ctx, allowed: frozenset[str], type_name: str) -> JSON:
    body = json_body(ctx)
    for key, value in body.items():
        if key not in allowed:
            raise GraphError(
                400,
                "Request_BadRequest",
                f"Property '{key}' is read-only or does not exist on type "
                f"'microsoft.graph.{type_name}'.",
            )
        if key == "displayName" and (not isinstance(value, str) or not value.strip()):
            raise GraphError(
                400, "Request_BadRequest", "Invalid value specified for property 'displayName'."
            )
        if key == "tags" and (
            not isinstance(value, list)
            or not all(isinstance(t, str) and len(t) <= 256 for t in value)
        ):
            raise GraphError(
                400, "Request_BadRequest", "Invalid value specified for property 'tags'."
            )
    return body


def _instantiate_name(body: JSON) -> str:
    name = body.get("displayName")
    if not isinstance(name, str) or not name.strip():
        raise GraphError(
            400,
            "Request_BadRequest",
            "Property 'displayName' is required and must be a non-empty string.",
        )
    if len(name) > 256:
        raise GraphError(
            400,
            "Request_BadRequest",
            "Invalid value specified for property 'displayName' of resource 'Application'.",
        )
    unknown = set(body) - {"displayName", "serviceManagementReference"}
    if unknown:
        raise GraphError(
            400,
            "BadRequest",
            f"Property '{sorted(unknown)[0]}' does not exist on type "
            "'microsoft.graph.applicationTemplate.instantiate'.",
        )
    return name


# ---------------------------------------------------------------------- the display-name index
T = TypeVar("T", Application, ServicePrincipal)
_LITERAL = re.compile(r"'(?:[^']|'')*'")
_NAME_EQ_BEFORE = re.compile(r"(?:^|[\s(])displayName\s+eq\s*$", re.IGNORECASE)
_OR_NOT = re.compile(r"\b(?:or|not)\b", re.IGNORECASE)


def name_in_filter(text: str | None) -> str | None:
    """The display name a ``$filter`` requires (``displayName eq '..'`` in a conjunction), or
    None when the filter does not pin one (no filter, an ``or``, a ``not``)."""
    if not text:
        return None
    found: str | None = None
    bare: list[str] = []
    pos = 0
    for m in _LITERAL.finditer(text):
        before = text[pos : m.start()]
        bare.append(before)
        if found is None and _NAME_EQ_BEFORE.search(before):
            found = m.group(0)[1:-1].replace("''", "'")
        pos = m.end()
    bare.append(text[pos:])
    if found is None or _OR_NOT.search(" ".join(bare)):
        return None
    return found


def _by_name(ctx: Ctx, ordered: list[T], index: Mapping[str, list[T]]) -> list[T]:
    """The objects a list must look at: those of the filter's display name, in creation
    order, or all of them. The filter itself is still applied to what this returns."""
    name = name_in_filter(ctx.req.query.get("$filter"))
    if name is None:
        return ordered
    return sorted(index.get(name.casefold(), ()), key=lambda o: o.created)


# ---------------------------------------------------------------------- the handlers
class Directory:
    """The directory's routes; ``faults`` plays the instantiate that fails after creating."""

    def __init__(self, faults: FaultInjector) -> None:
        self.faults = faults

    def routes(self) -> tuple[Route, ...]:
        return (
            route("GET", "/applicationTemplates", "templates", self.list_templates),
            route("GET", "/applicationTemplates/{id}", "templates", self.get_template),
            route(
                "POST", "/applicationTemplates/{id}/instantiate", "instantiate", self.instantiate
            ),
            route("GET", "/applications", "directory_read", self.list_applications, ru=2),
            route(
                "GET",
                "/applications(appId='{appId}')",
                "directory_read",
                self.get_application_by_app_id,
            ),
            route("GET", "/applications/{id}", "directory_read", self.get_application),
            route("PATCH", "/applications/{id}", "directory_write", self.patch_application),
            route("DELETE", "/applications/{id}", "directory_write", self.delete_application),
            route("GET", "/servicePrincipals", "directory_read", self.list_service_principals),
            route(
                "GET",
                "/servicePrincipals(appId='{appId}')",
                "directory_read",
                self.get_sp_by_app_id,
            ),
            route("GET", "/servicePrincipals/{id}", "directory_read", self.get_service_principal),
            route(
                "PATCH", "/servicePrincipals/{id}", "directory_write", self.patch_service_principal
            ),
            route(
                "DELETE",
                "/servicePrincipals/{id}",
                "directory_write",
                self.delete_service_principal,
            ),
            route("GET", "/directory/deletedItems/{id}", "directory_read", self.get_deleted_item),
            route(
                "DELETE", "/directory/deletedItems/{id}", "directory_write", self.purge_deleted_item
            ),
            route(
                "POST",
                "/directory/deletedItems/{id}/restore",
                "directory_write",
                self.restore_deleted_item,
            ),
        )

    # application templates
    async def list_templates(self, ctx: Ctx) -> MockResponse:
        pred = filter_of(ctx, TEMPLATE_FILTER, directory=False)
        items = [render_template(a) for a in GALLERY]
        items = [t for t in items if pred(t)]
        orderby = ctx.req.query.get("$orderby")
        if orderby:
            field_, _, direction = orderby.partition(" ")
            if field_ not in ("displayName", "publisher"):
                raise GraphError(400, "BadRequest", f"OrderBy not supported for '{field_}'.")
            items.sort(
                key=lambda t: str(t.get(field_) or "").lower(),
                reverse=direction.strip().lower() == "desc",
            )
        return page(ctx, items, "applicationTemplates")

    async def get_template(self, ctx: Ctx, id: str) -> MockResponse:
        return entity(ctx, "applicationTemplates/$entity", render_template(gallery_app(id)))

    async def instantiate(self, ctx: Ctx, id: str) -> MockResponse:
        app = gallery_app(id)
        name = _instantiate_name(json_body(ctx))
        created, sp = ctx.tenant.instantiate(app, name, ctx.now)
        await self.faults.instantiated(id)
        return MockResponse(
            201,
            {
                "@odata.context": context(ctx, "microsoft.graph.applicationServicePrincipal"),
                "application": render_application(ctx, created),
                "servicePrincipal": render_service_principal(ctx, sp),
            },
        )

    # applications
    async def list_applications(self, ctx: Ctx) -> MockResponse:
        pred = filter_of(ctx, APPLICATION_FILTER, directory=True)
        objs = _by_name(ctx, ctx.tenant.app_order, ctx.tenant.apps_by_name)
        items = [render_application(ctx, a) for a in _visible(ctx, objs)]
        return page(ctx, [i for i in items if pred(i)], "applications")

    async def get_application(self, ctx: Ctx, id: str) -> MockResponse:
        a = application(ctx, id)
        return entity(ctx, "applications/$entity", render_application(ctx, a))

    async def get_application_by_app_id(self, ctx: Ctx, appId: str) -> MockResponse:
        for a in ctx.tenant.app_order:
            if a.app_id == appId and a.deleted is None and ctx.tenant.visible(a.vis, ctx.now):
                return await self.get_application(ctx, a.id)
        raise not_found(appId)

    async def patch_application(self, ctx: Ctx, id: str) -> MockResponse:
        a = application(ctx, id)
        body = _patch_body(ctx, PATCHABLE_APPLICATION, "application")
        if "displayName" in body:
            ctx.tenant.rename_application(a, body["displayName"])
        if "tags" in body:
            a.tags = list(body["tags"])
        if "notes" in body:
            a.notes = body["notes"]
        return MockResponse(204)

    async def delete_application(self, ctx: Ctx, id: str) -> MockResponse:
        ctx.tenant.delete_application(application(ctx, id), ctx.now)
        return MockResponse(204)

    # service principals
    async def list_service_principals(self, ctx: Ctx) -> MockResponse:
        pred = filter_of(ctx, SP_FILTER, directory=True)
        objs = _by_name(ctx, ctx.tenant.sp_order, ctx.tenant.sps_by_name)
        items = [render_service_principal(ctx, s) for s in _visible(ctx, objs)]
        return page(ctx, [i for i in items if pred(i)], "servicePrincipals")

    async def get_service_principal(self, ctx: Ctx, id: str) -> MockResponse:
        sp = service_principal(ctx, id)
        return entity(ctx, "servicePrincipals/$entity", render_service_principal(ctx, sp))

    async def get_sp_by_app_id(self, ctx: Ctx, appId: str) -> MockResponse:
        sp = ctx.tenant.sp_by_app_id.get(appId)
        if sp is None or sp.deleted is not None or not ctx.tenant.visible(sp.vis, ctx.now):
            raise not_found(appId)
        return await self.get_service_principal(ctx, sp.id)

    async def patch_service_principal(self, ctx: Ctx, id: str) -> MockResponse:
        sp = service_principal(ctx, id)
        body = _patch_body(ctx, PATCHABLE_SP, "servicePrincipal")
        if "displayName" in body:
            ctx.tenant.rename_service_principal(sp, body["displayName"])
        if "tags" in body:
            sp.tags = list(body["tags"])
        if "notes" in body:
            sp.notes = body["notes"]
        return MockResponse(204)

    async def delete_service_principal(self, ctx: Ctx, id: str) -> MockResponse:
        ctx.tenant.delete_service_principal(service_principal(ctx, id), ctx.now)
        return MockResponse(204)

    # deleted items
    async def get_deleted_item(self, ctx: Ctx, id: str) -> MockResponse:
        return MockResponse(200, render_deleted(ctx, _deleted(ctx, id)))

    async def purge_deleted_item(self, ctx: Ctx, id: str) -> MockResponse:
        _deleted(ctx, id)
        ctx.tenant.purge(id)
        return MockResponse(204)

    async def restore_deleted_item(self, ctx: Ctx, id: str) -> MockResponse:
        obj = _deleted(ctx, id)
        obj.deleted = None
        return MockResponse(200, render_deleted(ctx, obj))
