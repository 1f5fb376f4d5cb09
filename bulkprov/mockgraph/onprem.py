"""On-premises provisioning agents of the mock's tenants (Graph beta only).

Provisioning to an on-premises application goes through the provisioning agents a tenant
installed; an application is assigned to an agent group. Each tenant starts with three agent
groups (the default one and two named ones) and three agents; the routes that read them and
assign applications are in :mod:`.handlers.onprem`. The CSDL of v1.0 has no such types;
payloads follow the beta docs (onPremisesAgentGroup: id, displayName, isDefault,
publishingType; onPremisesAgent: id, machineName, externalIp, status,
supportedPublishingTypes; connectorGroup: id, name, connectorGroupType, isDefault, region).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from ..jsontypes import JSON

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
