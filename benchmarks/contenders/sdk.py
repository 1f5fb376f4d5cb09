# ruff: noqa: E501 (the SDK's module paths are longer than a line)
"""The peer a Python user would pick: the official msgraph-sdk, instances run concurrently with
``asyncio.gather`` under a semaphore, with the SDK's default retry handling (Kiota's
RetryHandler: 429/503/504 retried 3 times, honouring Retry-After) and azure-identity's
ClientSecretCredential.

The mock compresses Graph's clock by its time scale, so the Retry-After values it sends are
Graph seconds; the SDK's sleep between retries is scaled by the same factor (nothing else of
its behaviour is changed).
"""

from __future__ import annotations

import asyncio
import sys
import types
from pathlib import Path
from typing import Any

import httpx
from azure.identity.aio import ClientSecretCredential
from kiota_abstractions.api_error import APIError
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from kiota_http.middleware import retry_handler
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.generated.application_templates.item.instantiate.instantiate_post_request_body import (
    InstantiatePostRequestBody,
)
from msgraph.generated.models.synchronization_job import SynchronizationJob
from msgraph.generated.models.synchronization_secret import SynchronizationSecret
from msgraph.generated.models.synchronization_secret_key_string_value_pair import (
    SynchronizationSecretKeyStringValuePair,
)
from msgraph.generated.service_principals.item.synchronization.jobs.item.validate_credentials.validate_credentials_post_request_body import (
    ValidateCredentialsPostRequestBody,
)
from msgraph.generated.service_principals.item.synchronization.secrets.secrets_put_request_body import (
    SecretsPutRequestBody,
)
from msgraph_core import GraphClientFactory

sys.path.insert(0, str(Path(__file__).resolve().parent))
import contextlib

import peerlib

SCALE = 1.0


async def _scaled_sleep(delay: float, *a: Any, **kw: Any) -> None:
    await _real_sleep(delay * SCALE, *a, **kw)


_real_sleep = asyncio.sleep
retry_handler.asyncio = types.SimpleNamespace(sleep=_scaled_sleep)  # type: ignore[attr-defined]


class Failed(Exception):
    pass


async def sleep(graph_seconds: float) -> None:
    await asyncio.sleep(graph_seconds * SCALE)


async def flap(call: Any) -> Any:
    """Retry a 404 (a replica that has not seen the new object yet) like a careful script."""
    for attempt in range(peerlib.FLAP_TRIES):
        try:
            return await call()
        except APIError as exc:
            if exc.response_status_code != 404 or attempt == peerlib.FLAP_TRIES - 1:
                raise
            await sleep(peerlib.POLL)
    raise AssertionError("unreachable")


def secrets(row: dict[str, str]) -> list[SynchronizationSecretKeyStringValuePair]:
    return [
        SynchronizationSecretKeyStringValuePair(
            key=SynchronizationSecret(c["key"]), value=c["value"]
        )
        for c in peerlib.credentials(row)
    ]


async def onboard(g: GraphServiceClient, template_id: str, row: dict[str, str]) -> None:
    created = await g.application_templates.by_application_template_id(
        template_id
    ).instantiate.post(InstantiatePostRequestBody(display_name=row["displayName"]))
    assert created is not None and created.service_principal is not None
    sp_id = created.service_principal.id
    assert sp_id is not None
    sp = g.service_principals.by_service_principal_id(sp_id)
    for _ in range(peerlib.POLL_TRIES):
        try:
            await sp.get()
            break
        except APIError as exc:
            if exc.response_status_code != 404:
                raise
            await sleep(peerlib.POLL)
    else:
        raise Failed("service principal never read back")
    sync = sp.synchronization
    templates = await flap(lambda: sync.templates.get())
    values = templates.value or []
    tmpl = next((t for t in values if t.additional_data.get("default") or False), values[0])
    job = await flap(lambda: sync.jobs.post(SynchronizationJob(template_id=tmpl.id)))
    job_rb = sync.jobs.by_synchronization_job_id(job.id)
    await flap(
        lambda: job_rb.validate_credentials.post(
            ValidateCredentialsPostRequestBody(
                use_saved_credentials=False, credentials=secrets(row)
            )
        )
    )
    await flap(lambda: sync.secrets.put(SecretsPutRequestBody(value=secrets(row))))
    await flap(lambda: job_rb.start.post())


async def main() -> None:
    global SCALE
    args = peerlib.parse_args(__doc__ or "")
    inf = peerlib.info(args.mock_info)
    SCALE = float(inf["time_scale"])
    rows = peerlib.load(args.manifest)
    timeline = peerlib.Timeline(args.events)
    credential = ClientSecretCredential(
        inf["tenant_id"],
        inf["client_id"],
        inf["client_secret"],
        authority=inf["authority_host"],
        disable_instance_discovery=True,
        connection_verify=inf["ca_file"],
    )
    host = httpx.URL(inf["graph_url"]).host
    auth = AzureIdentityAuthenticationProvider(
        credential, scopes=["https://graph.microsoft.com/.default"], allowed_hosts=[host]
    )
    http = httpx.AsyncClient(
        verify=inf["ca_file"],
        timeout=100 * SCALE + 5,
        limits=httpx.Limits(max_connections=args.concurrency),
    )
    http = GraphClientFactory.create_with_default_middleware(client=http)
    http.base_url = httpx.URL(inf["graph_url"] + "/v1.0/")
    g = GraphServiceClient(request_adapter=GraphRequestAdapter(auth, http))
    g.request_adapter.base_url = inf["graph_url"] + "/v1.0"

    found = await g.application_templates.get()  # the gallery; filter client-side
    template_id = next(t.id for t in found.value if t.display_name == peerlib.AWS)
    sem = asyncio.Semaphore(args.concurrency)

    async def one(row: dict[str, str]) -> None:
        async with sem:
            try:
                await onboard(g, template_id, row)
            except Exception as exc:
                timeline(row["key"], "failed", repr(exc))
            else:
                timeline(row["key"], "done")

    try:
        await asyncio.gather(*(one(r) for r in rows))
    finally:
        timeline.close()
        await credential.close()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
