"""Graph's answers, typed: the parsers of synchronizationJob (with its synchronizationStatus,
synchronizationQuarantine and task executions) and of provisioningObjectSummary, on payloads
shaped as Graph v1.0's metadata and the mock render them; and the InvalidResponse that Graph
raises, naming the request, for an answer a parser finds lacking."""

from __future__ import annotations

from typing import Any

import pytest

from bulkprov.errors import GraphError
from bulkprov.graph import (
    Execution,
    Graph,
    Job,
    JobStatus,
    ProvisioningEntry,
    Quarantine,
    SyncError,
    Unparsable,
)
from bulkprov.mockgraph.catalog import SLACK
from bulkprov.mockgraph.render import render_job
from bulkprov.mockgraph.state import NULL_DATE
from bulkprov.mockgraph.state import Job as MockJob

from .test_client_transport import SP, Rig, json_answer

NOW, LATER, NEXT = "2024-05-01T10:00:00Z", "2024-05-01T10:20:00Z", "2024-05-01T11:00:00Z"
JOB_ID = "scim.0123456789abcdef0123456789abcdef.5f7c0b1e-7c2b-4e0e-9b1a-3d8b6b6c1a2f"


def _execution(state: str, error: Any = None, **counts: int) -> dict[str, Any]:
    """A synchronizationTaskExecution as the mock renders one (every property of the CSDL)."""
    body: dict[str, Any] = {
        "activityIdentifier": "7d7a6b0c-0000-4000-8000-000000000001",
        "countEntitled": 0,
        "countEntitledForProvisioning": 0,
        "countEscrowed": 0,
        "countEscrowedRaw": 0,
        "countExported": 0,
        "countExports": 0,
        "countImported": 0,
        "countImportedDeltas": 0,
        "countImportedReferenceDeltas": 0,
        "error": error,
        "state": state,
        "timeBegan": NOW,
        "timeEnded": LATER,
    }
    body.update(counts)
    return body


REJECTED_CODE = "SystemForCrossDomainIdentityManagementCredentialValidationFailure"
REJECTED = {
    "code": REJECTED_CODE,
    "message": "The token was rejected.",
    "tenantActionable": True,
}
QUARANTINE = {
    "currentBegan": LATER,
    "nextAttempt": NEXT,
    "reason": "EncounteredQuarantineException",
    "seriesBegan": NOW,
    "seriesCount": 2,
    "error": REJECTED,
}


def _status(code: str, **over: Any) -> dict[str, Any]:
    """A synchronizationStatus with every property of the CSDL."""
    body: dict[str, Any] = {
        "code": code,
        "countSuccessiveCompleteFailures": 0,
        "escrowsPruned": False,
        "lastExecution": None,
        "lastSuccessfulExecution": None,
        "lastSuccessfulExecutionWithExports": None,
        "progress": [],
        "quarantine": None,
        "steadyStateFirstAchievedTime": NULL_DATE,
        "steadyStateLastAchievedTime": NULL_DATE,
        "synchronizedEntryCountByType": [],
        "troubleshootingUrl": None,
    }
    body.update(over)
    return body


def _job(status: Any, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": JOB_ID,
        "templateId": "scim",
        "schedule": {"expiration": None, "interval": "PT40M", "state": "Active"},
        "status": status,
        "synchronizationJobSettings": [
            {"name": "QuarantineTooManyDeletesThreshold", "value": "500"}
        ],
    }
    body.update(over)
    return body


FAILED = _execution("Failed", REJECTED)
SUCCEEDED = _execution("Succeeded", countEntitled=7, countImported=7, countExported=7)

JOBS: list[tuple[str, Any, Job]] = [
    (
        "quarantined",
        _job(
            _status(
                "Quarantine",
                lastExecution=FAILED,
                quarantine=QUARANTINE,
                countSuccessiveCompleteFailures=2,
            )
        ),
        Job(
            id=JOB_ID,
            template_id="scim",
            schedule_state="Active",
            schedule_interval="PT40M",
            settings=(("QuarantineTooManyDeletesThreshold", "500"),),
            status=JobStatus(
                code="Quarantine",
                quarantine=Quarantine(
                    reason="EncounteredQuarantineException",
                    error=SyncError(
                        code=REJECTED_CODE,
                        message="The token was rejected.",
                        tenant_actionable=True,
                    ),
                    current_began=LATER,
                    next_attempt=NEXT,
                    series_began=NOW,
                    series_count=2,
                ),
                last_execution=Execution(
                    state="Failed",
                    time_began=NOW,
                    time_ended=LATER,
                    error=SyncError(
                        code=REJECTED_CODE,
                        message="The token was rejected.",
                        tenant_actionable=True,
                    ),
                    activity_identifier="7d7a6b0c-0000-4000-8000-000000000001",
                    count_entitled=0,
                    count_imported=0,
                    count_exported=0,
                    count_escrowed=0,
                ),
                steady_state_first_achieved=NULL_DATE,
                steady_state_last_achieved=NULL_DATE,
                successive_complete_failures=2,
            ),
        ),
    ),
    (
        "active, first cycle done",
        _job(
            _status(
                "Active",
                lastExecution=SUCCEEDED,
                lastSuccessfulExecution=SUCCEEDED,
                steadyStateLastAchievedTime=LATER,
            )
        ),
        Job(
            id=JOB_ID,
            template_id="scim",
            schedule_state="Active",
            schedule_interval="PT40M",
            settings=(("QuarantineTooManyDeletesThreshold", "500"),),
            status=JobStatus(
                code="Active",
                last_execution=(
                    ok := Execution(
                        state="Succeeded",
                        time_began=NOW,
                        time_ended=LATER,
                        activity_identifier="7d7a6b0c-0000-4000-8000-000000000001",
                        count_entitled=7,
                        count_imported=7,
                        count_exported=7,
                        count_escrowed=0,
                    )
                ),
                last_successful_execution=ok,
                steady_state_first_achieved=NULL_DATE,
                steady_state_last_achieved=LATER,
                successive_complete_failures=0,
            ),
        ),
    ),
    ("only an id: everything else unknown", {"id": "j"}, Job(id="j")),
    ("a null status is an empty one", {"id": "j", "status": None}, Job(id="j")),
    (
        "wrong types read as unknown",
        {
            "id": "j",
            "templateId": 5,
            "schedule": "PT40M",
            "synchronizationJobSettings": [
                {"name": ""},
                "x",
                {"name": "a", "value": None},
                {"value": "v"},
            ],
            "status": {
                "code": None,
                "quarantine": "yes",
                "lastExecution": [],
                "countSuccessiveCompleteFailures": True,
            },
        },
        Job(id="j", settings=(("a", None),), status=JobStatus()),
    ),
    (
        "an empty error is no error, one of only tenantActionable says nothing",
        {
            "id": "j",
            "status": {
                "quarantine": {"error": {}, "seriesCount": "2"},
                "lastExecution": {"error": {"tenantActionable": False}},
            },
        },
        Job(
            id="j",
            status=JobStatus(
                quarantine=Quarantine(),
                last_execution=Execution(error=SyncError(tenant_actionable=False)),
            ),
        ),
    ),
]


@pytest.mark.parametrize(("case", "payload", "expected"), JOBS, ids=[c[0] for c in JOBS])
def test_a_job_parses_as_graph_documents_it(case: str, payload: Any, expected: Job) -> None:
    assert Job.from_graph(payload) == expected, case


def test_a_job_as_the_mock_renders_it() -> None:
    """The mock's own rendering of a new job and of a quarantined one parse to what the mock
    holds."""
    template = SLACK.sync_templates[0]
    job = MockJob(
        id="slack.t.a",
        sp_id=SP,
        template=template,
        created=0.0,
        code="Paused",
        settings=[("Setting", "on")],
    )
    new = Job.from_graph(render_job(job))
    assert (new.id, new.template_id, new.schedule_state, new.schedule_interval) == (
        "slack.t.a",
        template.id,
        "Disabled",
        "PT40M",
    )
    assert new.settings == (("Setting", "on"),)
    assert new.status == JobStatus(
        code="Paused",
        steady_state_first_achieved=NULL_DATE,
        steady_state_last_achieved=NULL_DATE,
        successive_complete_failures=0,
    )
    job.code, job.quarantine, job.last_execution = "Quarantine", QUARANTINE, FAILED
    q = Job.from_graph(render_job(job)).status
    assert q.code == "Quarantine" and q.quarantine is not None
    assert q.quarantine.error == SyncError.from_graph(REJECTED) and q.quarantine.series_count == 2
    assert q.last_execution is not None and q.last_execution.state == "Failed"
    assert q.last_successful_execution is None


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ([], "the job is not an object"),
        (None, "the job is not an object"),
        ({"templateId": "scim"}, "the job lacks id"),
        ({"id": ""}, "the job lacks id"),
        ({"id": 5}, "the job lacks id"),
        ({"id": "j", "status": "broken"}, "the job's status is not an object"),
        ({"id": "j", "status": ["Active"]}, "the job's status is not an object"),
    ],
)
def test_a_job_lacking_what_graph_documents_is_unparsable(payload: Any, problem: str) -> None:
    with pytest.raises(Unparsable) as caught:
        Job.from_graph(payload)
    assert str(caught.value) == problem


FAILURE = {
    "id": "e-1",
    "activityDateTime": LATER,
    "tenantId": "t",
    "jobId": JOB_ID,
    "cycleId": "c-1",
    "changeId": "ch-1",
    "provisioningAction": "create",
    "durationInMilliseconds": 812,
    "initiatedBy": {
        "id": "",
        "displayName": "Azure AD Provisioning Service",
        "initiatorType": "system",
    },
    "servicePrincipal": {"id": SP, "displayName": "Slack k"},
    "sourceSystem": {"id": "s", "displayName": "Azure Active Directory", "details": {}},
    "targetSystem": {"id": "t", "displayName": "Slack", "details": {}},
    "sourceIdentity": {
        "id": "u-1",
        "displayName": "User 01",
        "identityType": "User",
        "details": {},
    },
    "targetIdentity": {"id": "", "displayName": "", "identityType": "User", "details": {}},
    "provisioningStatusInfo": {
        "status": "failure",
        "errorInformation": {
            "errorCode": "SlackEntryConflict",
            "reason": "The user exists already.",
            "additionalDetails": None,
            "errorCategory": "nonServiceFailure",
            "recommendedAction": None,
        },
    },
    "provisioningSteps": [],
    "modifiedProperties": [],
}

ENTRIES: list[tuple[str, Any, ProvisioningEntry]] = [
    (
        "a failure",
        FAILURE,
        ProvisioningEntry(
            id="e-1",
            at=LATER,
            job_id=JOB_ID,
            cycle_id="c-1",
            action="create",
            status="failure",
            error_code="SlackEntryConflict",
            reason="The user exists already.",
            error_category="nonServiceFailure",
            service_principal_id=SP,
            source_id="u-1",
            source_name="User 01",
            target_id="",
            target_name="",
        ),
    ),
    (
        "a success: no error information",
        {**FAILURE, "provisioningStatusInfo": {"status": "success", "errorInformation": None}},
        ProvisioningEntry(
            id="e-1",
            at=LATER,
            job_id=JOB_ID,
            cycle_id="c-1",
            action="create",
            status="success",
            service_principal_id=SP,
            source_id="u-1",
            source_name="User 01",
            target_id="",
            target_name="",
        ),
    ),
    (
        "ids stripped (a malformed answer): still its job's",
        {
            "jobId": JOB_ID,
            "servicePrincipal": {"displayName": "Slack k"},
            "provisioningStatusInfo": {"status": "skipped"},
        },
        ProvisioningEntry(job_id=JOB_ID, status="skipped"),
    ),
    ("nothing at all", {}, ProvisioningEntry()),
    (
        "wrong types read as unknown",
        {
            "id": 1,
            "jobId": None,
            "provisioningStatusInfo": "failure",
            "sourceIdentity": [],
            "servicePrincipal": {"id": 5},
        },
        ProvisioningEntry(),
    ),
]


@pytest.mark.parametrize(("case", "payload", "expected"), ENTRIES, ids=[c[0] for c in ENTRIES])
def test_a_provisioning_entry_parses_as_graph_documents_it(
    case: str, payload: Any, expected: ProvisioningEntry
) -> None:
    assert ProvisioningEntry.from_graph(payload) == expected, case


@pytest.mark.parametrize("payload", [None, "entry", [FAILURE]])
def test_a_provisioning_entry_that_is_no_object_is_unparsable(payload: Any) -> None:
    with pytest.raises(Unparsable, match="provisioning log entry is not an object"):
        ProvisioningEntry.from_graph(payload)


@pytest.mark.anyio
async def test_graph_returns_typed_jobs_and_entries() -> None:
    """jobs, create_job and provisioning_logs answer the typed results, page after page."""
    page2 = json_answer(200, {"value": [{**FAILURE, "id": "e-2"}]})
    rig = Rig(
        json_answer(200, {"value": [_job(_status("Paused")), {"id": "other"}]}),
        json_answer(201, _job(_status("NotConfigured"))),
        json_answer(
            200,
            {
                "value": [FAILURE],
                "@odata.nextLink": "https://graph.example.test/v1.0/auditLogs/"
                "provisioning?$skiptoken=2",
            },
        ),
        page2,
    )
    async with rig.client as c:
        graph = Graph(c)
        jobs = await graph.jobs(SP)
        created = await graph.create_job(SP, "scim")
        entries = await graph.provisioning_logs(since=NOW)
    assert [(j.id, j.status.code) for j in jobs] == [(JOB_ID, "Paused"), ("other", None)]
    assert created.status.code == "NotConfigured" and created.template_id == "scim"
    assert [e.id for e in entries] == ["e-1", "e-2"]
    assert {e.error_code for e in entries} == {"SlackEntryConflict"}


@pytest.mark.anyio
async def test_an_answer_a_parser_finds_lacking_is_an_invalid_response_of_its_request() -> None:
    """A created job whose status is not an object, and a log page holding an entry that is
    not an object, fail as InvalidResponse naming the request and the answer's ids."""
    rig = Rig(
        json_answer(201, {"id": "j", "status": "broken"}, **{"request-id": "rid-create"}),
        json_answer(200, {"value": [FAILURE, "oops"]}, **{"request-id": "rid-logs"}),
    )
    async with rig.client as c:
        graph = Graph(c)
        with pytest.raises(GraphError) as created:
            await graph.create_job(SP, "scim")
        with pytest.raises(GraphError) as logs:
            await graph.provisioning_logs(since=None)
    sent = rig.transport.ids()
    assert created.value.code == logs.value.code == "InvalidResponse"
    assert "status is not an object" in created.value.graph_message
    assert (created.value.method, created.value.path) == (
        "POST",
        f"/servicePrincipals/{SP}/synchronization/jobs",
    )
    assert (created.value.request_id, created.value.client_request_id) == ("rid-create", sent[0])
    assert "not an object" in logs.value.graph_message
    assert logs.value.path == "/auditLogs/provisioning" and logs.value.request_id == "rid-logs"
