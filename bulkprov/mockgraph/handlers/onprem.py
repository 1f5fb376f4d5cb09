"""On-premises provisioning agents and agent groups (Graph beta only)::

    GET    /beta/onPremisesPublishingProfiles/provisioning/agentGroups[/{id}]  ($filter displayName)
    GET    /beta/onPremisesPublishingProfiles/provisioning/agents[/{id}]
    PUT    /beta/applications/{id}/connectorGroup/$ref   {"@odata.id": ".../agentGroups/{id}"}
    GET    /beta/applications/{id}/connectorGroup[/$ref]
    DELETE /beta/applications/{id}/connectorGroup/$ref

Like Graph, these accept delegated tokens only (Directory.ReadWrite.All or
OnPremisesPublishingProfiles.ReadWrite.All, signed in with a device code): an app-only token gets
``403 Authorization_RequestDenied``, and v1.0 does not have them. The agents themselves are in
:mod:`..onprem`.
"""

from __future__ import annotations

import re

from ..odata import FilterSpec
from ..onprem import (
    AgentGroup,
    OnPremises,
    render_agent,
    render_connector_group,
    render_group,
)
from ..rest import check_guid, context, entity, filter_of, json_body, page
from ..wire import Ctx, GraphError, MockResponse, Route, route
from .directory import application

PROFILE = "/onPremisesPublishingProfiles/provisioning"
APP = "/applications/{id}/connectorGroup"
#: Delegated permissions that allow assigning agent groups (either one).
WRITE_SCOPES = frozenset({"Directory.ReadWrite.All", "OnPremisesPublishingProfiles.ReadWrite.All"})
READ_SCOPES = WRITE_SCOPES | {"Directory.Read.All", "Policy.Read.HybridAuthentication"}
AGENT_GROUP_FILTER = FilterSpec(
    "onPremisesAgentGroup",
    {
        "displayName": frozenset({"eq", "ne", "startswith"}),
        "id": frozenset({"eq"}),
        "isDefault": frozenset({"eq"}),
    },
)
_REF_RE = re.compile(
    r"/onPremisesPublishingProfiles/provisioning/agentGroups/"
    r"(?P<id>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})/?$"
)
_PROFILE_CONTEXT = "onPremisesPublishingProfiles('provisioning')"


class OnPremisesAgents:
    """The on-premises routes, and each tenant's agents (seeded on first use)."""

    def __init__(self) -> None:
        self.tenants: dict[str, OnPremises] = {}

    def routes(self) -> tuple[Route, ...]:
        return (
            route("GET", PROFILE + "/agentGroups", "directory_read", self.list_agent_groups),
            route(
                "GET", PROFILE + "/agentGroups/{groupId}", "directory_read", self.get_agent_group
            ),
            route("GET", PROFILE + "/agents", "directory_read", self.list_agents),
            route("GET", PROFILE + "/agents/{agentId}", "directory_read", self.get_agent),
            route("GET", APP, "directory_read", self.get_connector_group),
            route("GET", APP + "/$ref", "directory_read", self.get_connector_group_ref),
            route("PUT", APP + "/$ref", "directory_write", self.put_connector_group_ref),
            route("DELETE", APP + "/$ref", "directory_write", self.delete_connector_group_ref),
        )

    def _state(self, ctx: Ctx, *, write: bool = False) -> OnPremises:
        """The tenant's on-premises state, after Graph's checks: beta only, delegated only."""
        if ctx.req.version != "beta":
            segment = ctx.req.path.strip("/").split("/")[0]
            if segment == "applications":
                segment = "connectorGroup"
            raise GraphError(400, "BadRequest", f"Resource not found for the segment '{segment}'.")
        claims = ctx.claims
        allowed = WRITE_SCOPES if write else READ_SCOPES
        if not claims.delegated or not allowed & set(claims.scopes):
            raise GraphError(
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation. This operation supports "
                "delegated permissions only (a signed-in user with "
                f"{' or '.join(sorted(allowed))}); "
                "application permissions are not supported.",
            )
        state = self.tenants.get(ctx.tenant.id)
        if state is None:
            state = self.tenants[ctx.tenant.id] = OnPremises.seeded(ctx.tenant.id)
        return state

    @staticmethod
    def _group(state: OnPremises, group_id: str) -> AgentGroup:
        check_guid(group_id)
        group = state.groups.get(group_id)
        if group is None:
            raise GraphError(
                404, "Request_ResourceNotFound", f"Agent group '{group_id}' does not exist."
            )
        return group

    def _assigned(self, ctx: Ctx, app_id: str) -> tuple[OnPremises, AgentGroup]:
        state = self._state(ctx)
        application(ctx, app_id)
        group_id = state.assignments.get(app_id)
        if group_id is None or group_id not in state.groups:
            raise GraphError(
                404,
                "Request_ResourceNotFound",
                f"Application '{app_id}' is not assigned to a connector group.",
            )
        return state, state.groups[group_id]

    async def list_agent_groups(self, ctx: Ctx) -> MockResponse:
        state = self._state(ctx)
        pred = filter_of(ctx, AGENT_GROUP_FILTER, directory=False)
        items = [render_group(g) for g in state.groups.values()]
        return page(ctx, [g for g in items if pred(g)], f"{_PROFILE_CONTEXT}/agentGroups")

    async def get_agent_group(self, ctx: Ctx, groupId: str) -> MockResponse:
        group = self._group(self._state(ctx), groupId)
        return entity(ctx, f"{_PROFILE_CONTEXT}/agentGroups/$entity", render_group(group))

    async def list_agents(self, ctx: Ctx) -> MockResponse:
        state = self._state(ctx)
        items = [render_agent(a) for a in state.agents.values()]
        return page(ctx, items, f"{_PROFILE_CONTEXT}/agents")

    async def get_agent(self, ctx: Ctx, agentId: str) -> MockResponse:
        state = self._state(ctx)
        check_guid(agentId)
        agent = state.agents.get(agentId)
        if agent is None:
            raise GraphError(404, "Request_ResourceNotFound", f"Agent '{agentId}' does not exist.")
        return entity(ctx, f"{_PROFILE_CONTEXT}/agents/$entity", render_agent(agent))

    async def get_connector_group(self, ctx: Ctx, id: str) -> MockResponse:
        _state, group = self._assigned(ctx, id)
        return entity(ctx, "connectorGroups/$entity", render_connector_group(group))

    async def get_connector_group_ref(self, ctx: Ctx, id: str) -> MockResponse:
        _state, group = self._assigned(ctx, id)
        return MockResponse(
            200,
            {
                "@odata.context": context(ctx, "$ref"),
                "@odata.id": f"{ctx.req.base_url}/beta{PROFILE}/agentGroups/{group.id}",
            },
        )

    async def put_connector_group_ref(self, ctx: Ctx, id: str) -> MockResponse:
        state = self._state(ctx, write=True)
        body = json_body(ctx)
        ref = body.get("@odata.id")
        match = _REF_RE.search(ref) if isinstance(ref, str) else None
        if match is None:
            raise GraphError(
                400,
                "Request_BadRequest",
                'The request body must be {"@odata.id": '
                '"https://graph.microsoft.com/beta/onPremisesPublishingProfiles/provisioning/'
                'agentGroups/{id}"}.',
            )
        application(ctx, id)
        group = self._group(state, match.group("id"))
        state.assignments[id] = group.id
        return MockResponse(204)

    async def delete_connector_group_ref(self, ctx: Ctx, id: str) -> MockResponse:
        self._state(ctx, write=True)
        state, _group = self._assigned(ctx, id)
        del state.assignments[id]
        return MockResponse(204)
