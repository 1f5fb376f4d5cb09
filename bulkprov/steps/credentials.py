"""The credentials and the start: *validate* has Graph test the manifest's credentials against
the target, *secrets* stores them on the service principal, *start* starts the job.

A credential's value is read (``refs``) when a step needs it and registered with the redactor
at once, so that no log, ledger record or error shows it; the ledger keeps a keyed
fingerprint of each stored secret (``Ledger.fingerprint``), never the value.
"""

from __future__ import annotations

import time

from ..errors import GraphError, StepError
from ..jsontypes import JSON
from ..manifest import Instance
from ..records import Step
from .base import BaseStep, Context, StepResult, need

PLAIN_KEYS = ("BaseAddress", "Url", "Domain")  # literal values that are addresses, not secrets


def credentials(ctx: Context, step: Step) -> list[JSON]:
    """The instance's credentials, resolved, each value masked from here on."""
    out, redactor = ctx.out, ctx.shared.redactor
    creds = []
    for ref in out.inst.credentials:
        try:
            value = ref.resolve().reveal()
        except LookupError as exc:
            raise StepError(
                out.inst.key, step, f"credential {ref.key}: {exc}", code="MissingSecret"
            ) from None
        if (ref.scheme != "literal" or ref.key not in PLAIN_KEYS) and value not in out.secrets:
            out.secrets.add(value)
            redactor.add(value)
        creds.append({"key": ref.key, "value": value})
    return creds


class Validate(BaseStep):
    name = Step.VALIDATE
    needs = ("service_principal_id", "job_id")

    def applies(self, inst: Instance) -> bool:
        return inst.validate

    async def run(self, ctx: Context) -> StepResult:
        shared = ctx.shared
        sp_id, job_id = need(ctx.ids.service_principal_id), need(ctx.ids.job_id)
        creds = credentials(ctx, Step.VALIDATE)
        try:
            await shared.replicated(
                "the job (validateCredentials)",
                lambda: shared.graph.validate_credentials(sp_id, job_id, creds),
                time.monotonic(),
            )
        except GraphError as err:
            if err.status == 400:
                code = err.detail_codes[0] if err.detail_codes else err.code
                raise StepError(
                    ctx.key,
                    Step.VALIDATE,
                    f"the target rejected the credentials: {err.graph_message}",
                    code=code,
                    request_id=err.request_id,
                ) from None
            raise
        return StepResult(data={"keys": [c["key"] for c in creds]})


class Secrets(BaseStep):
    name = Step.SECRETS
    needs = ("service_principal_id",)

    def applies(self, inst: Instance) -> bool:
        return bool(inst.credentials)

    async def run(self, ctx: Context) -> StepResult:
        shared = ctx.shared
        sp_id = need(ctx.ids.service_principal_id)
        creds = credentials(ctx, Step.SECRETS)
        await shared.replicated(
            "the service principal (secrets)",
            lambda: shared.graph.put_secrets(sp_id, creds),
            time.monotonic(),
        )
        fingerprint = shared.ledger.fingerprint
        return StepResult(
            data={
                "keys": [c["key"] for c in creds],
                "fingerprints": {c["key"]: fingerprint(c["key"], c["value"]) for c in creds},
            }
        )


class Start(BaseStep):
    name = Step.START
    needs = ("service_principal_id", "job_id")

    def applies(self, inst: Instance) -> bool:
        return inst.start

    async def run(self, ctx: Context) -> StepResult:
        shared = ctx.shared
        sp_id, job_id = need(ctx.ids.service_principal_id), need(ctx.ids.job_id)
        await shared.replicated(
            "the job (start)", lambda: shared.graph.start_job(sp_id, job_id), time.monotonic()
        )
        return StepResult()
