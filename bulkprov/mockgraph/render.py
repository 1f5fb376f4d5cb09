"""The Graph JSON of the mock's objects: templates, applications, service principals, jobs.

Objects are kept as compact records (:mod:`.state`); these render them as Graph v1.0 returns
them, every property of the type present (``null`` where the mock has no value), so that the
payloads conform to Graph's metadata.
"""

from __future__ import annotations

import uuid

from ..jsontypes import JSON
from .catalog import GalleryApp, SyncTemplate
from .state import Application, Job, ServicePrincipal
from .wire import Ctx

_NO_PUBLISHER: JSON = {"displayName": None, "verifiedPublisherId": None, "addedDateTime": None}
_NO_INFO: JSON = {
    "logoUrl": None,
    "marketingUrl": None,
    "privacyStatementUrl": None,
    "supportUrl": None,
    "termsOfServiceUrl": None,
}


def render_template(app: GalleryApp) -> JSON:
    return dict(app.template)


def _date(ctx: Ctx, at: float | None) -> str | None:
    return ctx.tenant.clock.iso(at)[:19] + "Z" if at else None


def render_application(ctx: Ctx, a: Application) -> JSON:
    tpl = a.template
    return {
        "id": a.id,
        "appId": a.app_id,
        "applicationTemplateId": tpl.id,
        "createdDateTime": ctx.tenant.clock.iso(a.created)[:19] + "Z",
        "deletedDateTime": _date(ctx, a.deleted),
        "displayName": a.display_name,
        "description": None,
        "groupMembershipClaims": None,
        "identifierUris": [],
        "isFallbackPublicClient": False,
        "notes": a.notes,
        "signInAudience": "AzureADMyOrg",
        "tags": list(a.tags),
        "tokenEncryptionKeyId": None,
        "defaultRedirectUri": None,
        "optionalClaims": None,
        "verifiedPublisher": dict(_NO_PUBLISHER),
        "addIns": [],
        "api": {
            "acceptMappedClaims": None,
            "knownClientApplications": [],
            "requestedAccessTokenVersion": None,
            "oauth2PermissionScopes": [permission_scope(a.display_name)],
            "preAuthorizedApplications": [],
        },
        "appRoles": [dict(r) for r in tpl.app_roles],
        "info": dict(_NO_INFO),
        "keyCredentials": [],
        "parentalControlSettings": {
            "countriesBlockedForMinors": [],
            "legalAgeGroupRule": "Allow",
        },
        "passwordCredentials": [],
        "publicClient": {"redirectUris": []},
        "requiredResourceAccess": [],
        "web": {"homePageUrl": tpl.home_page_url, "redirectUris": [], "logoutUrl": None},
    }


def render_service_principal(ctx: Ctx, sp: ServicePrincipal) -> JSON:
    tpl = sp.template
    return {
        "id": sp.id,
        "deletedDateTime": _date(ctx, sp.deleted),
        "accountEnabled": True,
        "appId": sp.app_id,
        "applicationTemplateId": tpl.id,
        "appDisplayName": sp.display_name,
        "alternativeNames": [],
        "appOwnerOrganizationId": ctx.tenant.id,
        "displayName": sp.display_name,
        "appRoleAssignmentRequired": True,
        "loginUrl": None,
        "logoutUrl": None,
        "homepage": tpl.home_page_url,
        "notes": sp.notes,
        "notificationEmailAddresses": [],
        "preferredSingleSignOnMode": None,
        "preferredTokenSigningKeyThumbprint": None,
        "replyUrls": [],
        "servicePrincipalNames": [sp.app_id],
        "servicePrincipalType": "Application",
        "tags": list(sp.tags),
        "tokenEncryptionKeyId": None,
        "samlSingleSignOnSettings": None,
        "verifiedPublisher": dict(_NO_PUBLISHER),
        "addIns": [],
        "appRoles": [dict(r) for r in tpl.app_roles],
        "info": dict(_NO_INFO),
        "keyCredentials": [],
        "oauth2PermissionScopes": [permission_scope(sp.display_name)],
        "passwordCredentials": [],
    }


def render_deleted(ctx: Ctx, obj: Application | ServicePrincipal) -> JSON:
    """A directory object as deletedItems returns it: typed with ``@odata.type``."""
    if isinstance(obj, Application):
        body = render_application(ctx, obj)
        body["@odata.type"] = "#microsoft.graph.application"
    else:
        body = render_service_principal(ctx, obj)
        body["@odata.type"] = "#microsoft.graph.servicePrincipal"
    return body


def render_sync_template(sp: ServicePrincipal, t: SyncTemplate) -> JSON:
    schema = dict(t.schema)
    schema["id"] = f"{t.id}.00000000000000000000000000000000"
    return {
        "id": t.id,
        "applicationId": sp.template.id,
        "default": t.default,
        "description": t.description,
        "discoverable": t.discoverable,
        "factoryTag": t.factory_tag,
        "metadata": [{"key": k, "value": v} for k, v in t.metadata],
        "schema": schema,
    }


def render_job(j: Job) -> JSON:
    counts = [{"key": k, "value": v} for k, v in j.entry_counts.items()]
    status: JSON = {
        "code": j.code,
        "countSuccessiveCompleteFailures": j.failures_in_a_row,
        "escrowsPruned": False,
        "lastExecution": j.last_execution,
        "lastSuccessfulExecution": j.last_success,
        "lastSuccessfulExecutionWithExports": j.last_success,
        "progress": [],
        "quarantine": j.quarantine,
        "steadyStateFirstAchievedTime": j.steady_first,
        "steadyStateLastAchievedTime": j.steady_last,
        "synchronizedEntryCountByType": counts,
        "troubleshootingUrl": None,
    }
    return {
        "id": j.id,
        "templateId": j.template.id,
        "schedule": {"expiration": None, "interval": j.interval, "state": j.schedule_state},
        "status": status,
        "synchronizationJobSettings": [{"name": n, "value": v} for n, v in j.settings],
    }


def permission_scope(name: str) -> JSON:
    return {
        "adminConsentDescription": f"Allow the application to access {name} on behalf of the "
        "signed-in user.",
        "adminConsentDisplayName": f"Access {name}",
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, name)),
        "isEnabled": True,
        "type": "User",
        "userConsentDescription": f"Allow the application to access {name} on your behalf.",
        "userConsentDisplayName": f"Access {name}",
        "value": "user_impersonation",
    }
