"""The seed sequence walked over real HTTPS against the mock, as the tutorial does it."""

from __future__ import annotations

import pytest

from bulkprov.mockgraph import MockGraph

from .graphclient import PlainGraph

pytestmark = pytest.mark.anyio

AWS = "8b1025e4-1dd2-430b-a150-2ef79cd700f5"
GOOD = [
    {"key": "ClientSecret", "value": "AKIAIOSFODNN7EXAMPLE"},
    {"key": "SecretToken", "value": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"},
]


async def test_seed_sequence_reaches_steady_state(mock: MockGraph, graph: PlainGraph) -> None:
    """Template lookup, instantiate, job, credentials, start: the job ends Active/Succeeded."""
    r = await graph.get(
        "/applicationTemplates", params={"$filter": "displayName eq 'AWS Single-Account Access'"}
    )
    assert r.status == 200 and [t["id"] for t in r.body["value"]] == [AWS]
    r = await graph.post(f"/applicationTemplates/{AWS}/instantiate", {"displayName": "AWS Contoso"})
    assert r.status == 201
    sp = r.body["servicePrincipal"]["id"]
    r = await graph.get(f"/servicePrincipals/{sp}/synchronization/templates")
    assert [t["id"] for t in r.body["value"]] == ["aws"]
    r = await graph.post(f"/servicePrincipals/{sp}/synchronization/jobs", {"templateId": "aws"})
    assert r.status == 201 and r.body["status"]["code"] == "NotConfigured"
    job = r.body["id"]
    base = f"/servicePrincipals/{sp}/synchronization"
    assert (
        await graph.post(f"{base}/jobs/{job}/validateCredentials", {"credentials": GOOD})
    ).status == 204
    assert (await graph.put(f"{base}/secrets", {"value": GOOD})).status == 204
    assert (await graph.post(f"{base}/jobs/{job}/start")).status == 204
    # 20 s to the first cycle and 40 s for it: 60 Graph s = 0.6 s at time_scale 0.01
    import anyio

    await anyio.sleep(0.8)
    r = await graph.get(f"{base}/jobs/{job}")
    assert r.body["status"]["code"] == "Active"
    assert r.body["status"]["lastExecution"]["state"] == "Succeeded"
    stats = mock.stats()
    assert stats["duplicates"] == 0 and stats["orphanServicePrincipals"] == 0
