"""*agent_group* (on-premises apps: the manifest names an ``agentGroup``): assign the
application to a provisioning agent group through Graph beta (an idempotent PUT $ref).

Graph allows that with delegated permissions only, so the set-up gate refuses an instance with
an agent group before anything is created for it unless the connection signs a user in (a
device-code profile)."""

from __future__ import annotations

import time

from ..errors import StepError
from ..manifest import Instance
from ..records import Step
from .base import BaseStep, Context, StepResult, need


class AgentGroup(BaseStep):
    name = Step.AGENT_GROUP
    needs = ("application_id",)

    def applies(self, inst: Instance) -> bool:
        return bool(inst.agent_group)

    async def run(self, ctx: Context) -> StepResult:
        inst, shared = ctx.inst, ctx.shared
        app_id = need(ctx.ids.application_id)
        assert inst.agent_group is not None
        group_id = shared.agent_groups.get(inst.agent_group)
        if group_id is None:
            found = await shared.graph.find_agent_groups(inst.agent_group)
            if len(found) != 1:
                raise StepError(
                    inst.key,
                    Step.AGENT_GROUP,
                    f"{len(found)} provisioning agent groups match {inst.agent_group!r}",
                    code="UnknownAgentGroup",
                )
            group_id = shared.agent_groups[inst.agent_group] = str(found[0]["id"])
        await shared.replicated(
            "the application (agent group)",
            lambda: shared.graph.assign_agent_group(app_id, group_id),
            time.monotonic(),
        )
        return StepResult(data={"agentGroupId": group_id})
