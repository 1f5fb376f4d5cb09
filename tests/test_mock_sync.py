"""Synchronization templates, jobs (create, credentials, start, quarantine, pause, restart,
schema, provisionOnDemand) and provisioning logs, over real HTTPS against the mock."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson
import pytest

from bulkprov.mockgraph import JobSettings, MockGraph, MockSettings
from bulkprov.mockgraph.catalog import AWS_SINGLE_SIGN_ON

from .graphclient import PlainGraph

pytestmark = pytest.mark.anyio

AWS = "8b1025e4-1dd2-430b-a150-2ef79cd700f5"
AWS_SSO = "21ed01d2-ec13-4e9e-86c1-cd546719ebc4"
AWS_GOOD = [
    {"key": "ClientSecret", "value": "AKIAIOSFODNN7EXAMPLE"},
    {"key": "SecretToken", "value": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"},
]
AWS_BAD = [
    {"key": "ClientSecret", "value": "not-an-access-key"},
    {"key": "SecretToken", "value": "short"},
]
SSO_GOOD = [
    {"key": "BaseAddress", "value": "https://scim.us-east-1.amazonaws.com/a1b2c3d4-5678/scim/v2"},
    {"key": "SecretToken", "value": "scim-bearer-token"},
]
SSO_BAD = [
    {"key": "BaseAddress", "value": "https://example.com"},
    {"key": "SecretToken", "value": "scim-bearer-token"},
]

# 2 Graph s to the first cycle, then 40 Graph s for it: 0.21 s real at time_scale 0.005
TIME_SCALE = 0.005
FIRST_CYCLE = 2.0
INITIAL_CYCLE = 40.0


@pytest.fixture
def mock_settings() -> MockSettings:
    return MockSettings.quiet(
        time_scale=TIME_SCALE,
        jobs=JobSettings(first_cycle_delay=FIRST_CYCLE, initial_cycle_duration=INITIAL_CYCLE),
    )


async def new_sp(graph: PlainGraph, template: str, name: str) -> str:
    r = await graph.post(f"/applicationTemplates/{template}/instantiate", {"displayName": name})
    assert r.status == 201, r.body
    return str(r.body["servicePrincipal"]["id"])


async def new_job(graph: PlainGraph, sp: str, template_id: str) -> str:
    r = await graph.post(
        f"/servicePrincipals/{sp}/synchronization/jobs", {"templateId": template_id}
    )
    assert r.status == 201, r.body
    return str(r.body["id"])


async def wait_job(
    graph: PlainGraph,
    sp: str,
    job: str,
    until: Callable[[dict[str, Any]], bool],
    patience: float = 3.0,
) -> dict[str, Any]:
    """Poll the job until ``until(job)`` holds (real seconds)."""
    deadline = time.monotonic() + patience
    while True:
        r = await graph.get(f"/servicePrincipals/{sp}/synchronization/jobs/{job}")
        assert r.status == 200, r.body
        body: dict[str, Any] = r.body
        if until(body):
            return body
        assert time.monotonic() < deadline, f"job never reached the state: {body['status']}"
        await asyncio.sleep(0.02)


def cycle_done(job: dict[str, Any]) -> bool:
    return job["status"]["lastExecution"] is not None


def graph_date(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def started_sso_job(
    graph: PlainGraph, name: str, secrets: list[dict[str, str]]
) -> tuple[str, str]:
    sp = await new_sp(graph, AWS_SSO, name)
    job = await new_job(graph, sp, "aWSSingleSignon")
    assert (
        await graph.put(f"/servicePrincipals/{sp}/synchronization/secrets", {"value": secrets})
    ).status == 204
    assert (
        await graph.post(f"/servicePrincipals/{sp}/synchronization/jobs/{job}/start")
    ).status == 204
    return sp, job


# ----------------------------------------------------------------------- templates and jobs


async def test_synchronization_templates(graph: PlainGraph) -> None:
    """The synchronization templates of an instance have id, factoryTag, default, metadata
    with ConfigurationFields, and a schema."""
    sp = await new_sp(graph, AWS_SSO, "Templates")
    r = await graph.get(f"/servicePrincipals/{sp}/synchronization/templates")
    assert r.status == 200
    (tpl,) = r.body["value"]
    assert tpl["id"] == "aWSSingleSignon" and tpl["factoryTag"] == "aWSSingleSignon"
    assert tpl["default"] is True
    meta = {m["key"]: m["value"] for m in tpl["metadata"]}
    assert meta["GalleryApplicationIdentifier"] == AWS_SSO
    fields = orjson.loads(meta["ConfigurationFields"])
    assert [f["name"] for f in fields] == ["baseaddress", "secrettoken"]
    assert tpl["schema"]["synchronizationRules"][0]["id"] == (
        "03f7d90d-bf71-41b1-bda6-aaf0ddbee5d8"
    )
    r = await graph.get(f"/servicePrincipals/{sp}/synchronization/templates/aWSSingleSignon")
    assert r.status == 200 and r.body["id"] == "aWSSingleSignon"


@pytest.mark.parametrize(
    ("template", "template_id", "code", "interval"),
    [
        (AWS, "aws", "NotConfigured", "P10675199DT2H48M5.4775807S"),
        (AWS_SSO, "aWSSingleSignon", "Paused", "PT40M"),
    ],
)
async def test_job_create_initial_status(
    graph: PlainGraph, mock: MockGraph, template: str, template_id: str, code: str, interval: str
) -> None:
    """A new job is NotConfigured for AWS Single-Account Access and Paused for AWS Single
    Sign-on, with schedule.state Disabled, as seeds 000 and 001 show."""
    sp = await new_sp(graph, template, "Job")
    r = await graph.post(
        f"/servicePrincipals/{sp}/synchronization/jobs", {"templateId": template_id}
    )
    assert r.status == 201
    job = r.body
    assert mock.info is not None
    app_id = (await graph.get(f"/servicePrincipals/{sp}")).body["appId"]
    assert job["id"] == f"{template_id}.{mock.info.tenant_id.replace('-', '')}.{app_id}"
    assert job["templateId"] == template_id
    assert job["status"]["code"] == code
    assert job["status"]["lastExecution"] is None and job["status"]["quarantine"] is None
    assert job["status"]["steadyStateFirstAchievedTime"] == "0001-01-01T00:00:00Z"
    assert job["schedule"] == {"expiration": None, "interval": interval, "state": "Disabled"}


async def test_job_list_get_delete(graph: PlainGraph) -> None:
    """Jobs are listed and read by id; DELETE removes the job, which then 404s."""
    sp = await new_sp(graph, AWS_SSO, "Jobs")
    job = await new_job(graph, sp, "aWSSingleSignon")
    base = f"/servicePrincipals/{sp}/synchronization/jobs"
    r = await graph.get(base)
    assert r.status == 200 and [j["id"] for j in r.body["value"]] == [job]
    r = await graph.get(f"{base}/{job}")
    assert r.status == 200 and r.body["id"] == job
    assert (await graph.delete(f"{base}/{job}")).status == 204
    assert (await graph.get(f"{base}/{job}")).status == 404
    assert (await graph.get(base)).body["value"] == []
    r = await graph.post(base, {"templateId": "noSuchTemplate"})
    assert r.status == 400


async def test_validate_credentials_job_and_collection_forms(graph: PlainGraph) -> None:
    """validateCredentials answers 204 for good credentials and 400 for bad ones, in the job
    form and in the collection form with templateId."""
    sp = await new_sp(graph, AWS, "Validate")
    job = await new_job(graph, sp, "aws")
    base = f"/servicePrincipals/{sp}/synchronization/jobs"
    r = await graph.post(f"{base}/{job}/validateCredentials", {"credentials": AWS_GOOD})
    assert r.status == 204
    r = await graph.post(f"{base}/{job}/validateCredentials", {"credentials": AWS_BAD})
    assert r.status == 400 and r.error_code == "BadRequest"
    assert r.body["error"]["details"][0]["code"] == "AWSInvalidCredentials"
    r = await graph.post(
        f"{base}/validateCredentials", {"templateId": "aws", "credentials": AWS_GOOD}
    )
    assert r.status == 204
    r = await graph.post(
        f"{base}/validateCredentials", {"templateId": "aws", "credentials": AWS_BAD}
    )
    assert r.status == 400
    sp2 = await new_sp(graph, AWS_SSO, "Validate SSO")
    r = await graph.post(
        f"/servicePrincipals/{sp2}/synchronization/jobs/validateCredentials",
        {"templateId": "aWSSingleSignon", "credentials": SSO_BAD},
    )
    assert r.status == 400
    assert (
        r.body["error"]["details"][0]["code"]
        == "SystemForCrossDomainIdentityManagementInvalidCredentials"
    )


async def test_secrets_put_replaces_whole_set_and_get_masks(graph: PlainGraph) -> None:
    """PUT secrets replaces the whole set; GET returns the keys with masked values only."""
    sp = await new_sp(graph, AWS_SSO, "Secrets")
    job = await new_job(graph, sp, "aWSSingleSignon")
    url = f"/servicePrincipals/{sp}/synchronization/secrets"
    assert (await graph.put(url, {"value": SSO_GOOD})).status == 204
    r = await graph.get(url)
    assert r.status == 200
    assert sorted(s["key"] for s in r.body["value"]) == ["BaseAddress", "SecretToken"]
    clear = {s["value"] for s in SSO_GOOD}
    assert all(s["value"] not in clear for s in r.body["value"])
    assert (await graph.put(url, {"value": [SSO_GOOD[1]]})).status == 204
    r = await graph.get(url)
    assert [s["key"] for s in r.body["value"]] == ["SecretToken"]
    # the saved set lacks BaseAddress now: validating with the saved credentials fails
    r = await graph.post(
        f"/servicePrincipals/{sp}/synchronization/jobs/{job}/validateCredentials",
        {"credentials": [], "useSavedCredentials": True},
    )
    assert r.status == 400
    r = await graph.put(url, {"value": [{"key": "NotASecretKey", "value": "x"}]})
    assert r.status == 400


async def test_start_reaches_steady_state(graph: PlainGraph) -> None:
    """start -> Active at once; after the scaled first cycle, lastExecution Succeeded and
    steadyStateFirstAchievedTime set, the cycle spanning 40 Graph seconds."""
    sp, job = await started_sso_job(graph, "Steady", SSO_GOOD)
    r = await graph.get(f"/servicePrincipals/{sp}/synchronization/jobs/{job}")
    assert r.body["status"]["code"] == "Active"
    assert r.body["schedule"]["state"] == "Active"
    body = await wait_job(graph, sp, job, cycle_done)
    status = body["status"]
    assert status["code"] == "Active"
    assert status["lastExecution"]["state"] == "Succeeded"
    assert status["lastSuccessfulExecution"] == status["lastExecution"]
    assert status["steadyStateFirstAchievedTime"] != "0001-01-01T00:00:00Z"
    assert status["steadyStateFirstAchievedTime"] == status["lastExecution"]["timeEnded"]
    assert status["lastExecution"]["countExported"] == 4  # 3 users + 1 group
    ex = status["lastExecution"]
    assert (graph_date(ex["timeEnded"]) - graph_date(ex["timeBegan"])).total_seconds() == (
        pytest.approx(INITIAL_CYCLE, abs=1e-3)
    )
    assert {e["key"]: e["value"] for e in status["synchronizedEntryCountByType"]} == {
        "user": 3,
        "group": 1,
    }


async def test_bad_tenant_url_quarantines_like_seed_001(graph: PlainGraph) -> None:
    """Saved credentials with BaseAddress https://example.com put an AWS SSO job in Quarantine
    (EncounteredQuarantineException, SystemForCrossDomainIdentityManagementInvalidCredentials),
    and lastExecution spans the 40 Graph s cycle although the run was compressed."""
    t_real = time.monotonic()
    sp, job = await started_sso_job(graph, "Quarantined", SSO_BAD)
    body = await wait_job(graph, sp, job, cycle_done)
    real = time.monotonic() - t_real
    status = body["status"]
    assert status["code"] == "Quarantine"
    assert body["schedule"]["state"] == "Active"
    assert status["countSuccessiveCompleteFailures"] == 1
    q = status["quarantine"]
    assert q["reason"] == "EncounteredQuarantineException"
    assert q["seriesCount"] == 1
    code = "SystemForCrossDomainIdentityManagementInvalidCredentials"
    assert q["error"]["code"] == code and q["error"]["tenantActionable"] is True
    assert (graph_date(q["nextAttempt"]) - graph_date(q["currentBegan"])).total_seconds() == (
        pytest.approx(300, abs=1e-3)
    )
    ex = status["lastExecution"]
    assert ex["state"] == "Failed" and ex["error"]["code"] == code
    assert ex["error"]["message"].startswith("Please provide a valid tenant URL")
    span = (graph_date(ex["timeEnded"]) - graph_date(ex["timeBegan"])).total_seconds()
    assert span == pytest.approx(INITIAL_CYCLE, abs=1e-3)
    assert real < span  # compressed: far less than 40 real seconds
    assert status["lastSuccessfulExecution"] is None


async def test_start_clears_quarantine_after_fixing_secrets(graph: PlainGraph) -> None:
    """After the secrets are fixed, start clears the quarantine at once and the next cycle
    succeeds."""
    sp, job = await started_sso_job(graph, "Fixed", SSO_BAD)
    await wait_job(graph, sp, job, lambda j: j["status"]["code"] == "Quarantine")
    assert (
        await graph.put(f"/servicePrincipals/{sp}/synchronization/secrets", {"value": SSO_GOOD})
    ).status == 204
    assert (
        await graph.post(f"/servicePrincipals/{sp}/synchronization/jobs/{job}/start")
    ).status == 204
    r = await graph.get(f"/servicePrincipals/{sp}/synchronization/jobs/{job}")
    assert r.body["status"]["code"] == "Active"
    assert r.body["status"]["quarantine"] is None
    assert r.body["status"]["countSuccessiveCompleteFailures"] == 0
    body = await wait_job(
        graph, sp, job, lambda j: j["status"]["lastExecution"]["state"] == "Succeeded"
    )
    assert body["status"]["code"] == "Active" and body["status"]["quarantine"] is None


async def test_pause_and_restart(graph: PlainGraph) -> None:
    """pause -> Paused; restart with criteria resetScope -> Active and a new initial cycle
    runs."""
    sp, job = await started_sso_job(graph, "Pausable", SSO_GOOD)
    first = await wait_job(graph, sp, job, cycle_done)
    base = f"/servicePrincipals/{sp}/synchronization/jobs/{job}"
    assert (await graph.post(f"{base}/pause")).status == 204
    r = await graph.get(base)
    assert r.body["status"]["code"] == "Paused" and r.body["schedule"]["state"] == "Paused"
    r = await graph.post(
        f"{base}/restart", {"criteria": {"resetScope": "Watermark, Escrows, QuarantineState"}}
    )
    assert r.status == 204
    r = await graph.get(base)
    assert r.body["status"]["code"] == "Active" and r.body["schedule"]["state"] == "Active"
    old = first["status"]["lastExecution"]["activityIdentifier"]
    again = await wait_job(
        graph, sp, job, lambda j: j["status"]["lastExecution"]["activityIdentifier"] != old
    )
    assert again["status"]["lastExecution"]["state"] == "Succeeded"
    assert again["status"]["lastExecution"]["countExported"] == 4  # a full (initial) cycle


async def test_schema_get_put_get(graph: PlainGraph) -> None:
    """GET schema, PUT a modified schema (204), and GET returns the modification."""
    sp = await new_sp(graph, AWS_SSO, "Schema")
    job = await new_job(graph, sp, "aWSSingleSignon")
    url = f"/servicePrincipals/{sp}/synchronization/jobs/{job}/schema"
    r = await graph.get(url)
    assert r.status == 200 and r.body["id"] == job
    schema = {k: v for k, v in r.body.items() if not k.startswith("@odata")}
    mappings = schema["synchronizationRules"][0]["objectMappings"]
    user_mapping = next(m for m in mappings if m["sourceObjectName"] == "User")
    before = len(user_mapping["attributeMappings"])
    user_mapping["attributeMappings"] = [
        a for a in user_mapping["attributeMappings"] if a["targetAttributeName"] != "externalId"
    ]
    mappings[0]["enabled"] = False
    assert (await graph.put(url, schema)).status == 204
    r = await graph.get(url)
    got = r.body["synchronizationRules"][0]["objectMappings"]
    assert got[0]["enabled"] is False
    user_got = next(m for m in got if m["sourceObjectName"] == "User")
    assert len(user_got["attributeMappings"]) == before - 1
    assert "externalId" not in {a["targetAttributeName"] for a in user_got["attributeMappings"]}
    r = await graph.put(url, {**schema, "bogus": 1})
    assert r.status == 400


async def test_provision_on_demand(graph: PlainGraph) -> None:
    """provisionOnDemand answers 200 with a key/value pair whose value is a JSON status."""
    sp = await new_sp(graph, AWS_SSO, "On demand")
    job = await new_job(graph, sp, "aWSSingleSignon")
    await graph.put(f"/servicePrincipals/{sp}/synchronization/secrets", {"value": SSO_GOOD})
    rule_id = AWS_SINGLE_SIGN_ON.sync_templates[0].schema["synchronizationRules"][0]["id"]
    r = await graph.post(
        f"/servicePrincipals/{sp}/synchronization/jobs/{job}/provisionOnDemand",
        {
            "parameters": [
                {
                    "ruleId": rule_id,
                    "subjects": [
                        {
                            "objectId": "9bb0f679-a3a0-4e1f-9b5e-0f9f1f1f1f1f",
                            "objectTypeName": "User",
                        }
                    ],
                }
            ]
        },
    )
    assert r.status == 200
    assert set(r.body) >= {"key", "value"}
    details = orjson.loads(r.body["value"])
    assert details[0]["statusInfo"]["status"] == "Success"
    r = await graph.post(
        f"/servicePrincipals/{sp}/synchronization/jobs/{job}/provisionOnDemand", {}
    )
    assert r.status == 400


# ----------------------------------------------------------------------- provisioning logs


async def collect_logs(graph: PlainGraph, flt: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    r = await graph.get("/auditLogs/provisioning", params={"$filter": flt, "$top": "1"})
    while True:
        assert r.status == 200, r.body
        assert len(r.body["value"]) <= 1
        items.extend(r.body["value"])
        link = r.body.get("@odata.nextLink")
        if link is None:
            return items
        assert len(items) < 100
        r = await graph.get(link)


async def test_provisioning_logs_filter_and_paging(graph: PlainGraph) -> None:
    """After the first cycles, /auditLogs/provisioning filtered on jobId or servicePrincipal/id
    and paged with $top=1 through the whole nextLink returns exactly the job's entries
    (entitled users + groups), without duplicates."""
    sp1, job1 = await started_sso_job(graph, "Logs One", SSO_GOOD)
    sp2, job2 = await started_sso_job(graph, "Logs Two", SSO_GOOD)
    await wait_job(graph, sp1, job1, cycle_done)
    await wait_job(graph, sp2, job2, cycle_done)
    tpl = AWS_SINGLE_SIGN_ON.sync_templates[0]
    expected = tpl.entitled_users + tpl.entitled_groups
    by_job = await collect_logs(graph, f"jobId eq '{job1}'")
    assert len(by_job) == expected
    assert len({e["id"] for e in by_job}) == expected
    assert {e["jobId"] for e in by_job} == {job1}
    by_sp = await collect_logs(graph, f"servicePrincipal/id eq '{sp1}'")
    assert {e["id"] for e in by_sp} == {e["id"] for e in by_job}
    other = await collect_logs(graph, f"jobId eq '{job2}'")
    assert len(other) == expected and not {e["id"] for e in other} & {e["id"] for e in by_job}
    kinds = sorted(e["sourceIdentity"]["identityType"] for e in by_job)
    assert kinds == ["Group"] + ["User"] * tpl.entitled_users
    dates = [e["activityDateTime"] for e in by_job]
    assert dates == sorted(dates, reverse=True)  # newest first
    r = await graph.get("/auditLogs/provisioning", params={"$filter": "bogus eq 'x'"})
    assert r.status == 400


async def test_provisioning_logs_record_quarantine_failure(graph: PlainGraph) -> None:
    """A quarantined cycle leaves one failure entry with the connector's error code."""
    sp, job = await started_sso_job(graph, "Logs Failure", SSO_BAD)
    await wait_job(graph, sp, job, cycle_done)
    entries = await collect_logs(graph, f"jobId eq '{job}'")
    assert len(entries) == 1
    info = entries[0]["provisioningStatusInfo"]
    assert info["status"] == "failure"
    assert (
        info["errorInformation"]["errorCode"]
        == "SystemForCrossDomainIdentityManagementInvalidCredentials"
    )


@pytest.mark.parametrize(
    "mock_settings",
    # real-time clock so the reports bucket (5 per 10 s) cannot refill during the burst
    [MockSettings.quiet(time_scale=1.0).evolve(throttle=MockSettings().throttle)],
)
async def test_provisioning_logs_reports_throttling(graph: PlainGraph) -> None:
    """With Graph's reports limit (5 requests per 10 s) the 6th quick request to
    /auditLogs/provisioning is 429 with the reports throttle scope."""
    statuses = [(await graph.get("/auditLogs/provisioning")).status for _ in range(5)]
    assert statuses == [200] * 5
    r = await graph.get("/auditLogs/provisioning")
    assert r.status == 429
    assert r.error_code == "TooManyRequests"
    assert int(r.headers["Retry-After"]) >= 1
    assert r.headers["x-ms-throttle-scope"].startswith("Tenant_Application/Reports/")
    # the identity and access service is another bucket: it still answers
    assert (await graph.get("/applicationTemplates")).status == 200
