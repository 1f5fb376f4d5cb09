"""Changes to a tenant's state behind bulkprov's back, for drift tests:
``POST /_mock/control {"action": "drift", "servicePrincipalId": ..., "change": ...}`` or
:func:`apply` in process.

=================  ==========================================================
change             what it does
=================  ==========================================================
``pause``          pauses the service principal's jobs (as a click in the portal)
``schema``         replaces its jobs' schema with ``schema`` (a portal edit)
``rename``         renames its application and service principal to ``displayName``
``secret``         sets the saved secret ``key`` to ``value`` (invisible to reads)
``settings``       replaces its jobs' synchronizationJobSettings with ``settings``
=================  ==========================================================
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .state import Tenant

CHANGES = ("pause", "schema", "rename", "secret", "settings")


def apply(tenants: Iterable[Tenant], body: Mapping[str, Any]) -> Tenant:
    """Apply the change ``body`` describes; the tenant it was applied in (KeyError: no such
    service principal; ValueError: no such change)."""
    sp_id, change = str(body["servicePrincipalId"]), body["change"]
    if change not in CHANGES:
        raise ValueError(f"unknown drift change {change!r}; one of {', '.join(CHANGES)}")
    for tenant in tenants:
        sp = tenant.service_principals.get(sp_id)
        if sp is None:
            continue
        if change == "pause":
            for job in sp.jobs.values():
                tenant.pause_job(job)
        elif change == "schema":
            for job in sp.jobs.values():
                job.schema = {**dict(body["schema"]), "id": job.id}
        elif change == "rename":
            name = str(body["displayName"])
            tenant.rename_service_principal(sp, name)
            app = tenant.applications.get(sp.app_object_id)
            if app is not None:
                tenant.rename_application(app, name)
        elif change == "secret":
            sp.secrets = {**sp.secrets, str(body["key"]): str(body["value"])}
        else:
            for job in sp.jobs.values():
                job.settings = [(str(i["name"]), str(i["value"])) for i in body["settings"]]
        tenant.touch(sp.id)
        return tenant
    raise KeyError(sp_id)
