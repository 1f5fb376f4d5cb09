"""Provisioning logs: ``GET /auditLogs/provisioning``, newest first.

The reports service meters these apart from the directory (5 requests per 10 s per app and
tenant, see :mod:`..throttle`). A page's ``$skiptoken`` is a position in the tenant's
append-only log, so paging stays stable while job cycles add entries.
"""

from __future__ import annotations

from ...jsontypes import JSON
from ..odata import FilterSpec
from ..rest import context, encode_token, filter_of, next_link, select, skiptoken, top
from ..wire import Ctx, MockResponse, Route, route

PROVISIONING_FILTER = FilterSpec(
    "provisioningObjectSummary",
    {
        "jobId": frozenset({"eq"}),
        "servicePrincipal/id": frozenset({"eq"}),
        "cycleId": frozenset({"eq"}),
        "activityDateTime": frozenset({"eq", "ge", "gt", "le", "lt"}),
        "provisioningAction": frozenset({"eq"}),
        "provisioningStatusInfo/status": frozenset({"eq"}),
        "tenantId": frozenset({"eq"}),
    },
)


class AuditLogs:
    """The provisioning-log route."""

    def routes(self) -> tuple[Route, ...]:
        return (route("GET", "/auditLogs/provisioning", "audit_logs", self.list_provisioning),)

    async def list_provisioning(self, ctx: Ctx) -> MockResponse:
        pred = filter_of(ctx, PROVISIONING_FILTER, directory=False)
        q = ctx.req.query
        size = top(ctx, 50)
        logs = ctx.tenant.logs
        end = skiptoken(q) if "$skiptoken" in q else len(logs)
        chunk: list[JSON] = []
        i = min(end, len(logs)) - 1
        while i >= 0 and len(chunk) < size:
            if pred(logs[i]):
                chunk.append(logs[i])
            i -= 1
        body: JSON = {
            "@odata.context": context(ctx, "auditLogs/provisioning"),
            "value": [select(ctx, e) for e in chunk],
        }
        if i >= 0 and any(pred(logs[j]) for j in range(i, -1, -1)):
            query = {k: v for k, v in q.items() if k != "$skiptoken"}
            query["$skiptoken"] = encode_token(i + 1)
            body["@odata.nextLink"] = next_link(ctx, query)
        return MockResponse(200, body)
