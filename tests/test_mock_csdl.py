"""Conformance of the mock's real payloads with the Microsoft Graph v1.0 metadata (CSDL)."""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable
from typing import Any

import pytest

from bulkprov.mockgraph import JobSettings, MockSettings

from .csdl import load_csdl
from .graphclient import PlainGraph

pytestmark = pytest.mark.anyio

AWS = "8b1025e4-1dd2-430b-a150-2ef79cd700f5"
AWS_SSO = "21ed01d2-ec13-4e9e-86c1-cd546719ebc4"
AWS_GOOD = [
    {"key": "ClientSecret", "value": "AKIAIOSFODNN7EXAMPLE"},
    {"key": "SecretToken", "value": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"},
]
SSO_GOOD = [
    {"key": "BaseAddress", "value": "https://scim.us-east-1.amazonaws.com/a1b2c3d4-5678/scim/v2"},
    {"key": "SecretToken", "value": "scim-bearer-token"},
]
SSO_BAD = [
    {"key": "BaseAddress", "value": "https://example.com"},
    {"key": "SecretToken", "value": "scim-bearer-token"},
]


@pytest.fixture
def mock_settings() -> MockSettings:
    return MockSettings.quiet(time_scale=0.005, jobs=JobSettings(first_cycle_delay=2))


def conforms(type_name: str, payload: dict[str, Any]) -> None:
    problems = load_csdl().check(type_name, payload)
    assert problems == [], f"{type_name}: {problems}"


async def instantiate(graph: PlainGraph, template: str, name: str) -> dict[str, Any]:
    r = await graph.post(f"/applicationTemplates/{template}/instantiate", {"displayName": name})
    assert r.status == 201, r.body
    body: dict[str, Any] = r.body
    return body


async def job_when(
    graph: PlainGraph, sp: str, job: str, until: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    deadline = time.monotonic() + 3
    while True:
        r = await graph.get(f"/servicePrincipals/{sp}/synchronization/jobs/{job}")
        assert r.status == 200
        body: dict[str, Any] = r.body
        if until(body):
            return body
        assert time.monotonic() < deadline, body["status"]
        await asyncio.sleep(0.02)


async def test_checker_ignores_odata_context() -> None:
    """The checker already ignores @odata.context, so payloads are checked as the mock sends
    them."""
    assert (
        load_csdl().check(
            "applicationTemplate", {"@odata.context": "https://x/v1.0/$metadata#a", "id": AWS}
        )
        == []
    )


async def test_checker_flags_a_bogus_property_in_a_mock_payload(graph: PlainGraph) -> None:
    """The checker is not blind: a bogus property or enum value slipped into a real mock
    payload is reported."""
    body = await instantiate(graph, AWS, "Negative")
    sp = copy.deepcopy(body["servicePrincipal"])
    sp["bogusProperty"] = 1
    assert any("bogusProperty" in p for p in load_csdl().check("servicePrincipal", sp))
    r = await graph.post(
        f"/servicePrincipals/{body['servicePrincipal']['id']}/synchronization/jobs",
        {"templateId": "aws"},
    )
    job = copy.deepcopy(r.body)
    job["status"]["code"] = "Sleeping"
    assert any("Sleeping" in p for p in load_csdl().check("synchronizationJob", job))


async def test_application_templates_conform(graph: PlainGraph) -> None:
    """Every applicationTemplate the mock lists, and one read by id, conforms."""
    r = await graph.get("/applicationTemplates")
    assert len(r.body["value"]) >= 10
    for tpl in r.body["value"]:
        conforms("applicationTemplate", tpl)
    conforms("applicationTemplate", (await graph.get(f"/applicationTemplates/{AWS_SSO}")).body)


async def test_application_and_service_principal_conform(graph: PlainGraph) -> None:
    """The application and servicePrincipal of instantiate, of GET by id, of lists and of
    deletedItems conform."""
    body = await instantiate(graph, AWS_SSO, "CSDL Contoso")
    app, sp = body["application"], body["servicePrincipal"]
    conforms("application", app)
    conforms("servicePrincipal", sp)
    conforms("application", (await graph.get(f"/applications/{app['id']}")).body)
    conforms("servicePrincipal", (await graph.get(f"/servicePrincipals/{sp['id']}")).body)
    for item in (await graph.get("/applications")).body["value"]:
        conforms("application", item)
    for item in (await graph.get("/servicePrincipals")).body["value"]:
        conforms("servicePrincipal", item)
    await graph.delete(f"/applications/{app['id']}")
    deleted = (await graph.get(f"/directory/deletedItems/{app['id']}")).body
    conforms("directoryObject", deleted)  # @odata.type switches to application
    deleted_sp = (await graph.get(f"/directory/deletedItems/{sp['id']}")).body
    conforms("directoryObject", deleted_sp)


@pytest.mark.parametrize("template", [AWS, AWS_SSO, "9c9818d2-2900-49e8-8ba4-22688be7c675"])
async def test_synchronization_templates_and_schema_conform(
    graph: PlainGraph, template: str
) -> None:
    """synchronizationTemplates conform, their schema as a synchronizationSchema too."""
    sp = (await instantiate(graph, template, "CSDL templates"))["servicePrincipal"]["id"]
    r = await graph.get(f"/servicePrincipals/{sp}/synchronization/templates")
    assert r.body["value"]
    for tpl in r.body["value"]:
        conforms("synchronizationTemplate", tpl)
        conforms("synchronizationSchema", tpl["schema"])
        one = await graph.get(f"/servicePrincipals/{sp}/synchronization/templates/{tpl['id']}")
        conforms("synchronizationTemplate", one.body)


async def test_jobs_in_every_state_conform(graph: PlainGraph) -> None:
    """synchronizationJob conforms in every state reached: NotConfigured, Paused, Active
    before and after its first cycle (steady state), Quarantine, and after pause; the job
    schema and the masked secrets conform too."""
    seen: set[str] = set()

    def check_job(job: dict[str, Any]) -> None:
        conforms("synchronizationJob", job)
        seen.add(job["status"]["code"])

    # NotConfigured (AWS Single-Account Access), then Paused once secrets are saved
    sp = (await instantiate(graph, AWS, "CSDL aws"))["servicePrincipal"]["id"]
    base = f"/servicePrincipals/{sp}/synchronization"
    r = await graph.post(f"{base}/jobs", {"templateId": "aws"})
    check_job(r.body)
    assert r.body["status"]["code"] == "NotConfigured"
    job = r.body["id"]
    await graph.put(f"{base}/secrets", {"value": AWS_GOOD})
    for s in (await graph.get(f"{base}/secrets")).body["value"]:
        conforms("synchronizationSecretKeyStringValuePair", s)
    r = await graph.get(f"{base}/jobs/{job}")
    check_job(r.body)
    assert r.body["status"]["code"] == "Paused"
    conforms("synchronizationSchema", (await graph.get(f"{base}/jobs/{job}/schema")).body)
    # Active, then steady state
    await graph.post(f"{base}/jobs/{job}/start")
    check_job((await graph.get(f"{base}/jobs/{job}")).body)
    steady = await job_when(graph, sp, job, lambda j: j["status"]["lastExecution"] is not None)
    assert steady["status"]["lastExecution"]["state"] == "Succeeded"
    check_job(steady)
    for item in (await graph.get(f"{base}/jobs")).body["value"]:
        check_job(item)
    await graph.post(f"{base}/jobs/{job}/pause")
    check_job((await graph.get(f"{base}/jobs/{job}")).body)
    # Quarantine (seed 001)
    sp2 = (await instantiate(graph, AWS_SSO, "CSDL sso"))["servicePrincipal"]["id"]
    base2 = f"/servicePrincipals/{sp2}/synchronization"
    r = await graph.post(f"{base2}/jobs", {"templateId": "aWSSingleSignon"})
    check_job(r.body)
    job2 = r.body["id"]
    await graph.put(f"{base2}/secrets", {"value": SSO_BAD})
    await graph.post(f"{base2}/jobs/{job2}/start")
    q = await job_when(graph, sp2, job2, lambda j: j["status"]["code"] == "Quarantine")
    assert q["status"]["quarantine"] is not None and q["status"]["lastExecution"] is not None
    check_job(q)
    conforms("synchronizationSchema", (await graph.get(f"{base2}/jobs/{job2}/schema")).body)
    assert seen == {"NotConfigured", "Paused", "Active", "Quarantine"}


async def test_provisioning_log_entries_conform(graph: PlainGraph) -> None:
    """provisioningObjectSummary entries conform, for successes and for failures."""
    sp_ok = (await instantiate(graph, AWS_SSO, "CSDL ok"))["servicePrincipal"]["id"]
    sp_bad = (await instantiate(graph, AWS_SSO, "CSDL bad"))["servicePrincipal"]["id"]
    jobs = {}
    for sp, secrets in ((sp_ok, SSO_GOOD), (sp_bad, SSO_BAD)):
        base = f"/servicePrincipals/{sp}/synchronization"
        job = (await graph.post(f"{base}/jobs", {"templateId": "aWSSingleSignon"})).body["id"]
        await graph.put(f"{base}/secrets", {"value": secrets})
        await graph.post(f"{base}/jobs/{job}/start")
        jobs[sp] = job
    for sp, job in jobs.items():
        await job_when(graph, sp, job, lambda j: j["status"]["lastExecution"] is not None)
    r = await graph.get("/auditLogs/provisioning")
    entries = r.body["value"]
    statuses = {e["provisioningStatusInfo"]["status"] for e in entries}
    assert {"success", "failure"} <= statuses
    for entry in entries:
        conforms("provisioningObjectSummary", entry)
