"""On-premises provisioning agents in the mock (Graph beta only).

Provisioning to an on-premises application goes through the provisioning agents a tenant
installed; an application is assigned to an agent group::

    GET    /beta/onPremisesPublishingProfiles/provisioning/agentGroups[/{id}]  ($filter displayName)
    GET    /beta/onPremisesPublishingProfiles/provisioning/agents[/{id}]
    PUT    /beta/applications/{id}/connectorGroup/$ref   {"@odata.id": ".../agentGroups/{id}"}
    GET    /beta/applications/{id}/connectorGroup[/$ref]
    DELETE /beta/applications/{id}/connectorGroup/$ref

Like Graph, these accept delegated tokens only (Directory.ReadWrite.All or
OnPremisesPublishingProfiles.ReadWrite.All, signed in with a device code): an app-only token gets
``403 Authorization_RequestDenied``, and v1.0 does not have them. The CSDL of v1.0 has no such
types; payloads follow the beta docs (onPremisesAgentGroup: id, displayName, isDefault,
publishingType; onPremisesAgent: id, machineName, externalIp, status,
supportedPublishingTypes; connectorGroup: id, name, connectorGroupType, isDefault, region).

Each tenant starts with three agent groups (the default one and two named ones) and three
agents. :class:`OnPremisesRoutes` is mixed into the Graph service; its handlers are found by
the names in :data:`ROUTES`.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from .odata import FilterSpec

if TYPE_CHECKING:
    from .graph import Ctx, GraphService, MockResponse

JSON = dict[str, Any]
PROFILE = "/onPremisesPublishingProfiles/provisioning"
APP = "/applications/{id}/connectorGroup"
#: (method, path template, route class, handler) - registered by the Graph service
ROUTES: tuple[tuple[str, str, str, str], ...] = (
    ("GET", PROFILE + "/agentGroups", "directory_read", "list_agent_groups"),
    ("GET", PROFILE + "/agentGroups/{groupId}", "directory_read", "get_agent_group"),
    ("GET", PROFILE + "/agents", "directory_read", "list_agents"),
    ("GET", PROFILE + "/agents/{agentId}", "directory_read", "get_agent"),
    ("GET", APP, "directory_read", "get_connector_group"),
    ("GET", APP + "/$ref", "directory_read", "get_connector_group_ref"),
    ("PUT", APP + "/$ref", "directory_write", "put_connector_group_ref"),
    ("DELETE", APP + "/$ref", "directory_write", "delete_connector_group_ref"),
)
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
SEED_GROUPS = (("Default", True), ("HR on-premises", False), ("Datacenter West", False))
SEED_AGENTS = (
    ("HR-SYNC-01.corp.contoso.com", "203.0.113.10", "active", ("Default", "HR on-premises")),
    ("HR-SYNC-02.corp.contoso.com", "203.0.113.11", "active", ("HR on-premises",)),
    ("DCW-PROV-01.corp.contoso.com", "198.51.100.20", "inactive", ("Datacenter West",)),
)


@dataclass(slots=True)
class AgentGroup:
    id: str
    display_name: str
    is_default: bool


@dataclass(slots=True)
class Agent:
    id: str
    machine_name: str
    external_ip: str
    status: str
    groups: tuple[str, ...]  # agent group ids


@dataclass(slots=True)
class OnPremises:
    """One tenant's agents, agent groups, and which application is assigned to which group."""

    groups: dict[str, AgentGroup] = field(default_factory=dict)
    agents: dict[str, Agent] = field(default_factory=dict)
    assignments: dict[str, str] = field(default_factory=dict)  # application id -> group id

    @classmethod
    def seeded(cls, tenant_id: str) -> OnPremises:
        out = cls()
        by_name: dict[str, str] = {}
        for name, default in SEED_GROUPS:
            gid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant_id}/agentGroups/{name}"))
            out.groups[gid] = AgentGroup(gid, name, default)
            by_name[name] = gid
        for machine, ip, status, groups in SEED_AGENTS:
            aid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant_id}/agents/{machine}"))
            out.agents[aid] = Agent(aid, machine, ip, status, tuple(by_name[g] for g in groups))
        return out


def render_group(g: AgentGroup) -> JSON:
    return {
        "id": g.id,
        "displayName": g.display_name,
        "isDefault": g.is_default,
        "publishingType": "provisioning",
    }


def render_agent(a: Agent) -> JSON:
    return {
        "id": a.id,
        "machineName": a.machine_name,
        "externalIp": a.external_ip,
        "status": a.status,
        "supportedPublishingTypes": ["provisioning"],
    }


def render_connector_group(g: AgentGroup) -> JSON:
    return {
        "id": g.id,
        "name": g.display_name,
        "connectorGroupType": "applicationProxy",
        "isDefault": g.is_default,
        "region": None,
    }


class OnPremisesRoutes:
    """The handlers of :data:`ROUTES`, mixed into :class:`~.graph.GraphService` (each one
    uses the service's helpers through ``svc``)."""

    _onprem: dict[str, OnPremises]

    def _onprem_of(self, ctx: Ctx, *, write: bool = False) -> OnPremises:
        """The tenant's on-premises state, after Graph's checks: beta only, delegated only."""
        from .graph import GraphError

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
                f"{' or '.join(sorted(WRITE_SCOPES if write else READ_SCOPES))}); "
                "application permissions are not supported.",
            )
        try:
            store = self._onprem
        except AttributeError:
            store = self._onprem = {}
        state = store.get(ctx.tenant.id)
        if state is None:
            state = store[ctx.tenant.id] = OnPremises.seeded(ctx.tenant.id)
        return state

    def _agent_group(self, state: OnPremises, group_id: str) -> AgentGroup:
        svc = cast("GraphService", self)
        from .graph import GraphError

        svc._check_guid(group_id)
        group = state.groups.get(group_id)
        if group is None:
            raise GraphError(
                404, "Request_ResourceNotFound", f"Agent group '{group_id}' does not exist."
            )
        return group

    async def h_list_agent_groups(self, ctx: Ctx) -> MockResponse:
        svc = cast("GraphService", self)
        state = svc._onprem_of(ctx)
        pred = svc._filter(ctx, AGENT_GROUP_FILTER, directory=False)
        items = [render_group(g) for g in state.groups.values()]
        return svc._page(
            ctx,
            [g for g in items if pred(g)],
            "onPremisesPublishingProfiles('provisioning')/agentGroups",
        )

    async def h_get_agent_group(self, ctx: Ctx, groupId: str) -> MockResponse:
        svc = cast("GraphService", self)
        from .graph import MockResponse

        group = svc._agent_group(svc._onprem_of(ctx), groupId)
        body = {
            "@odata.context": svc._context(
                ctx, "onPremisesPublishingProfiles('provisioning')/agentGroups/$entity"
            ),
            **svc._select(ctx, render_group(group)),
        }
        return MockResponse(200, body)

    async def h_list_agents(self, ctx: Ctx) -> MockResponse:
        svc = cast("GraphService", self)
        state = svc._onprem_of(ctx)
        items = [render_agent(a) for a in state.agents.values()]
        return svc._page(ctx, items, "onPremisesPublishingProfiles('provisioning')/agents")

    async def h_get_agent(self, ctx: Ctx, agentId: str) -> MockResponse:
        svc = cast("GraphService", self)
        from .graph import GraphError, MockResponse

        state = svc._onprem_of(ctx)
        svc._check_guid(agentId)
        agent = state.agents.get(agentId)
        if agent is None:
            raise GraphError(404, "Request_ResourceNotFound", f"Agent '{agentId}' does not exist.")
        body = {
            "@odata.context": svc._context(
                ctx, "onPremisesPublishingProfiles('provisioning')/agents/$entity"
            ),
            **svc._select(ctx, render_agent(agent)),
        }
        return MockResponse(200, body)

    def _assigned(self, ctx: Ctx, app_id: str) -> tuple[OnPremises, AgentGroup]:
        svc = cast("GraphService", self)
        from .graph import GraphError

        state = svc._onprem_of(ctx)
        svc._application(ctx, app_id)
        group_id = state.assignments.get(app_id)
        if group_id is None or group_id not in state.groups:
            raise GraphError(
                404,
                "Request_ResourceNotFound",
                f"Application '{app_id}' is not assigned to a connector group.",
            )
        return state, state.groups[group_id]

    async def h_get_connector_group(self, ctx: Ctx, id: str) -> MockResponse:
        svc = cast("GraphService", self)
        from .graph import MockResponse

        _state, group = svc._assigned(ctx, id)
        body = {
            "@odata.context": svc._context(ctx, "connectorGroups/$entity"),
            **svc._select(ctx, render_connector_group(group)),
        }
        return MockResponse(200, body)

    async def h_get_connector_group_ref(self, ctx: Ctx, id: str) -> MockResponse:
        svc = cast("GraphService", self)
        from .graph import MockResponse

        _state, group = svc._assigned(ctx, id)
        return MockResponse(
            200,
            {
                "@odata.context": svc._context(ctx, "$ref"),
                "@odata.id": f"{ctx.req.base_url}/beta{PROFILE}/agentGroups/{group.id}",
            },
        )

    async def h_put_connector_group_ref(self, ctx: Ctx, id: str) -> MockResponse:
        svc = cast("GraphService", self)
        from .graph import GraphError, MockResponse

        state = svc._onprem_of(ctx, write=True)
        body = svc._json_body(ctx)
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
        svc._application(ctx, id)
        group = svc._agent_group(state, match.group("id"))
        state.assignments[id] = group.id
        return MockResponse(204)

    async def h_delete_connector_group_ref(self, ctx: Ctx, id: str) -> MockResponse:
        svc = cast("GraphService", self)
        from .graph import MockResponse

        svc._onprem_of(ctx, write=True)
        state, _group = svc._assigned(ctx, id)
        del state.assignments[id]
        return MockResponse(204)
