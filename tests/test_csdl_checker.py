"""Unit tests for the CSDL conformance checker in tests/csdl.py: it must be able to fail."""

from __future__ import annotations

import copy
import gzip
import sys
from pathlib import Path
from typing import Any

import pytest

try:
    from tests.csdl import SHARED_CSDL, VENDORED_CSDL, Csdl, csdl_source, load_csdl
except ModuleNotFoundError:  # tests/ on sys.path rather than the repository root
    from csdl import SHARED_CSDL, VENDORED_CSDL, Csdl, csdl_source, load_csdl  # type: ignore[no-redef]

_ERROR = {
    "code": "SystemForCrossDomainIdentityManagementInvalidCredentials",
    "message": "Please provide a valid tenant URL for your application.",
    "tenantActionable": True,
}

# The synchronizationJob example of Microsoft's "Get synchronizationJob" documentation.
DOC_JOB: dict[str, Any] = {
    "id": "aWSSingleSignon.ff8bf889e03141ac8f7baedb059892ee.bfc8712e-0986-4d47-896b-6872713598c6",
    "templateId": "aWSSingleSignon",
    "schedule": {"expiration": None, "interval": "PT40M", "state": "Active"},
    "status": {
        "countSuccessiveCompleteFailures": 1,
        "escrowsPruned": False,
        "code": "Quarantine",
        "lastSuccessfulExecution": None,
        "lastSuccessfulExecutionWithExports": None,
        "steadyStateFirstAchievedTime": "0001-01-01T00:00:00Z",
        "steadyStateLastAchievedTime": "0001-01-01T00:00:00Z",
        "troubleshootingUrl": "",
        "lastExecution": {
            "activityIdentifier": "c3173f7b-9e67-4759-828c-cb499967be57",
            "countEntitled": 0,
            "countEntitledForProvisioning": 0,
            "countEscrowed": 0,
            "countEscrowedRaw": 0,
            "countExported": 0,
            "countExports": 0,
            "countImported": 0,
            "countImportedDeltas": 0,
            "countImportedReferenceDeltas": 0,
            "state": "Failed",
            "timeBegan": "2021-05-24T21:45:53.6330529Z",
            "timeEnded": "2021-05-24T21:45:54.5581273Z",
            "error": dict(_ERROR),
        },
        "progress": [],
        "quarantine": {
            "currentBegan": "2021-05-24T21:45:54.4981365Z",
            "nextAttempt": "2021-05-24T21:50:54.4981365Z",
            "reason": "EncounteredQuarantineException",
            "seriesBegan": "2021-05-24T21:45:54.4981365Z",
            "seriesCount": 1,
            "error": dict(_ERROR),
        },
        "synchronizedEntryCountByType": [],
    },
    "synchronizationJobSettings": [
        {"name": "AzureIngestionAttributeOptimization", "value": "False"}
    ],
}


@pytest.fixture(scope="module")
def csdl() -> Csdl:
    """The parsed v1.0 metadata, shared by the tests of this module."""
    return load_csdl()


@pytest.fixture
def job() -> dict[str, Any]:
    """A fresh deep copy of the documented job, free to mutate."""
    return copy.deepcopy(DOC_JOB)


# -- source files ---------------------------------------------------------------------------


def test_vendored_copy_is_identical_to_shared_file() -> None:
    """The vendored gzip copy decompresses to exactly the shared v1.0-Prod.csdl bytes."""
    if not SHARED_CSDL.is_file():
        pytest.skip(f"{SHARED_CSDL} not present")
    assert gzip.decompress(VENDORED_CSDL.read_bytes()) == SHARED_CSDL.read_bytes()


def test_loader_prefers_shared_file_else_vendored_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loader reads the shared file when it exists and the vendored gzip otherwise."""
    module = sys.modules[csdl_source.__module__]
    shared = tmp_path / "v1.0-Prod.csdl"
    monkeypatch.setattr(module, "SHARED_CSDL", shared)
    assert csdl_source() == VENDORED_CSDL  # no shared file
    shared.write_bytes(b"<edmx/>")
    assert csdl_source() == shared
    assert VENDORED_CSDL.is_file()


def test_load_csdl_is_cached_and_sees_all_namespaces(csdl: Csdl) -> None:
    """load_csdl returns one parsed instance that covers microsoft.graph and its sub-namespaces."""
    assert load_csdl() is csdl
    assert "microsoft.graph" in csdl.namespaces
    assert "microsoft.graph.security" in csdl.namespaces
    # The security schema refers to its own types through the alias "self".
    assert csdl.resolve("microsoft.graph.security.alert") == "microsoft.graph.security.alert"
    assert csdl.properties("microsoft.graph.security.alert")["evidence"] == (
        "Collection(microsoft.graph.security.alertEvidence)"
    )


# -- conformant payloads --------------------------------------------------------------------


def test_documented_job_conforms(csdl: Csdl, job: dict[str, Any]) -> None:
    """Microsoft's documented synchronizationJob example has no problems against v1.0."""
    assert csdl.check("synchronizationJob", job) == []
    assert csdl.check("microsoft.graph.synchronizationJob", job) == []


def test_inherited_properties_are_accepted(csdl: Csdl) -> None:
    """servicePrincipal accepts id (entity) and deletedDateTime (directoryObject) too."""
    sp = {
        "id": "00000000-0000-0000-0000-000000000001",
        "deletedDateTime": None,
        "appId": "11111111-1111-1111-1111-111111111111",
        "displayName": "AWS IAM Identity Center",
        "servicePrincipalType": "Application",
        "tags": ["WindowsAzureActiveDirectoryIntegratedApp"],
    }
    assert csdl.check("servicePrincipal", sp) == []
    assert csdl.base_chain("servicePrincipal") == [
        "microsoft.graph.servicePrincipal",
        "microsoft.graph.directoryObject",
        "microsoft.graph.entity",
    ]
    props = csdl.properties("servicePrincipal")
    assert props["id"] == "Edm.String"
    assert props["deletedDateTime"] == "Edm.DateTimeOffset"


def test_annotations_are_ignored(csdl: Csdl, job: dict[str, Any]) -> None:
    """@odata.* keys and <declared prop>@odata.* keys are allowed anywhere."""
    job["@odata.context"] = "https://graph.microsoft.com/v1.0/$metadata#servicePrincipals('x')/..."
    job["@odata.etag"] = 'W/"1"'
    job["schema@odata.context"] = "https://graph.microsoft.com/v1.0/$metadata#..."
    job["schema@odata.navigationLink"] = "servicePrincipals('x')/synchronization/jobs('y')/schema"
    job["status"]["@odata.type"] = "#microsoft.graph.synchronizationStatus"
    assert csdl.check("synchronizationJob", job) == []


def test_null_is_accepted_unless_strict(csdl: Csdl, job: dict[str, Any]) -> None:
    """null passes by default; strict_nulls reports it for a Nullable="false" single value."""
    job["status"]["code"] = None
    job["templateId"] = None
    assert csdl.check("synchronizationJob", job) == []
    assert csdl.check("synchronizationJob", job, strict_nulls=True) == [
        'synchronizationJob.status.code: null, but declared Nullable="false" '
        "(microsoft.graph.synchronizationStatusCode)"
    ]


# -- each kind of violation, exactly one problem ------------------------------------------------


def test_unknown_property_is_reported(csdl: Csdl, job: dict[str, Any]) -> None:
    """A key that no type in the base chain declares gives one 'not a property' problem."""
    job["runCount"] = 3
    assert csdl.check("synchronizationJob", job) == [
        "synchronizationJob.runCount: not a property of synchronizationJob"
    ]


def test_annotation_of_unknown_property_is_reported(csdl: Csdl, job: dict[str, Any]) -> None:
    """A <prop>@odata.* key whose <prop> is not declared is reported."""
    job["scheme@odata.context"] = "x"
    assert csdl.check("synchronizationJob", job) == [
        "synchronizationJob.scheme@odata.context: annotation of 'scheme', "
        "which is not a property of synchronizationJob"
    ]


def test_bad_enum_value_is_reported(csdl: Csdl, job: dict[str, Any]) -> None:
    """An enum value that is not a member name gives one problem naming the enum."""
    job["status"]["code"] = "Bogus"
    assert csdl.check("synchronizationJob", job) == [
        "synchronizationJob.status.code: 'Bogus' is not a member of synchronizationStatusCode"
    ]


def test_enum_member_names_are_case_sensitive(csdl: Csdl, job: dict[str, Any]) -> None:
    """A member name in the wrong case ('quarantine') is not a member."""
    job["status"]["code"] = "quarantine"
    assert csdl.check("synchronizationJob", job) == [
        "synchronizationJob.status.code: 'quarantine' is not a member of synchronizationStatusCode"
    ]


def test_wrong_primitive_type_is_reported(csdl: Csdl, job: dict[str, Any]) -> None:
    """A string where Edm.Int64 is declared gives one type problem."""
    job["status"]["countSuccessiveCompleteFailures"] = "1"
    assert csdl.check("synchronizationJob", job) == [
        "synchronizationJob.status.countSuccessiveCompleteFailures: "
        "expected Edm.Int64 (int), got str '1'"
    ]


def test_bool_is_not_an_integer(csdl: Csdl, job: dict[str, Any]) -> None:
    """True is rejected where Edm.Int64 is declared, although bool subclasses int in Python."""
    job["status"]["quarantine"]["seriesCount"] = True
    assert csdl.check("synchronizationJob", job) == [
        "synchronizationJob.status.quarantine.seriesCount: expected Edm.Int64 (int), got bool True"
    ]


def test_non_list_collection_is_reported(csdl: Csdl, job: dict[str, Any]) -> None:
    """A Collection(...) property given an object gives one 'expected a list' problem."""
    job["synchronizationJobSettings"] = {"name": "AzureIngestionAttributeOptimization"}
    assert csdl.check("synchronizationJob", job) == [
        "synchronizationJob.synchronizationJobSettings: expected a list for "
        "Collection(microsoft.graph.keyValuePair), got dict"
    ]


def test_bad_nested_complex_property_is_reported(csdl: Csdl, job: dict[str, Any]) -> None:
    """Problems deep inside complex values carry the full dotted path."""
    job["status"]["lastExecution"]["error"]["tenantActionable"] = "yes"
    job["status"]["quarantine"]["error"]["innerError"] = {}
    assert csdl.check("synchronizationJob", job) == [
        "synchronizationJob.status.lastExecution.error.tenantActionable: "
        "expected Edm.Boolean (bool), got str 'yes'",
        "synchronizationJob.status.quarantine.error.innerError: "
        "not a property of synchronizationError",
    ]


def test_collection_elements_are_checked_with_index(csdl: Csdl, job: dict[str, Any]) -> None:
    """Each element of a collection is checked and its path carries [index]."""
    job["synchronizationJobSettings"].append({"name": "x", "val": "y"})
    job["status"]["synchronizedEntryCountByType"] = [{"key": "user", "value": 1.5}]
    assert csdl.check("synchronizationJob", job) == [
        "synchronizationJob.status.synchronizedEntryCountByType[0].value: "
        "expected Edm.Int64 (int), got float 1.5",
        "synchronizationJob.synchronizationJobSettings[1].val: not a property of keyValuePair",
    ]


def test_complex_value_must_be_an_object(csdl: Csdl, job: dict[str, Any]) -> None:
    """A scalar where a complex type is declared is reported."""
    job["schedule"] = "PT40M"
    assert csdl.check("synchronizationJob", job) == [
        "synchronizationJob.schedule: expected an object of type synchronizationSchedule, got str"
    ]


def test_expanded_navigation_property_is_checked(csdl: Csdl, job: dict[str, Any]) -> None:
    """An expanded navigation property (job.schema) is checked as its entity type, recursively."""
    job["schema"] = {
        "id": "x",
        "version": "1",
        "synchronizationRules": [
            {
                "id": "r",
                "editable": True,
                "priority": 1,
                "objectMappings": [
                    {
                        "enabled": True,
                        "flowTypes": "Add, Update, Delete",
                        "attributeMappings": [
                            {
                                "flowBehavior": "FlowWhenChanged",
                                "flowType": "Always",
                                "source": {"type": "Function", "name": "Join"},
                                "targetAttributeName": "displayName",
                            }
                        ],
                    }
                ],
            }
        ],
        "directories": [{"id": "d", "name": "Azure Active Directory", "objects": []}],
    }
    assert csdl.check("synchronizationJob", job) == []
    mapping = job["schema"]["synchronizationRules"][0]["objectMappings"][0]["attributeMappings"][0]
    mapping["source"]["type"] = "Expression"
    assert csdl.check("synchronizationJob", job) == [
        "synchronizationJob.schema.synchronizationRules[0].objectMappings[0]"
        ".attributeMappings[0].source.type: 'Expression' is not a member of "
        "attributeMappingSourceType"
    ]


# -- @odata.type, open types, flags enums ---------------------------------------------------


def test_odata_type_selects_derived_type(csdl: Csdl) -> None:
    """With @odata.type the payload is checked against the derived type, not the declared one."""
    sp = {"@odata.type": "#microsoft.graph.servicePrincipal", "id": "1", "appId": "a"}
    assert csdl.check("directoryObject", sp) == []
    del sp["@odata.type"]
    assert csdl.check("directoryObject", sp) == [
        "directoryObject.appId: not a property of directoryObject"
    ]


def test_odata_type_must_derive_from_declared_type(csdl: Csdl) -> None:
    """An @odata.type that is unknown or unrelated to the declared type is reported."""
    assert csdl.check("servicePrincipal", {"@odata.type": "#microsoft.graph.user"}) == [
        "servicePrincipal.@odata.type: '#microsoft.graph.user' is not servicePrincipal "
        "or a type derived from it"
    ]
    assert csdl.check("servicePrincipal", {"@odata.type": "#microsoft.graph.nope"}) == [
        "servicePrincipal.@odata.type: unknown type '#microsoft.graph.nope'"
    ]


def test_open_types_reject_dynamic_properties_by_default(csdl: Csdl) -> None:
    """servicePrincipal is open (via directoryObject) yet rejects undeclared keys unless asked."""
    assert csdl.is_open("servicePrincipal")
    sp = {"id": "1", "appId": "a", "provisioningState": "x"}
    assert csdl.check("servicePrincipal", sp) == [
        "servicePrincipal.provisioningState: not a property of servicePrincipal"
    ]
    assert csdl.check("servicePrincipal", sp, allow_dynamic=True) == []
    assert csdl.check("synchronizationJob", {"x": 1}, allow_dynamic=True) == [
        "synchronizationJob.x: not a property of synchronizationJob"
    ]


def test_directory_extension_attributes_are_accepted(csdl: Csdl) -> None:
    """extension_<appId>_<name> keys pass on open directory objects such as application."""
    app = {"id": "1", "extension_5b6e2e9b1f3a4a8b9c0d1e2f3a4b5c6d_costCenter": "42"}
    assert csdl.check("application", app) == []


def test_property_bag_open_types_accept_dynamic_properties(csdl: Csdl) -> None:
    """Open types declaring no properties (detailsInfo) accept any keys inside them."""
    summary = {
        "id": "75b5b0d6",
        "activityDateTime": "2019-06-24T20:53:08Z",
        "provisioningAction": "update",
        "sourceIdentity": {
            "id": "5e6c9a1a",
            "displayName": "Self-service Pam",
            "identityType": "User",
            "details": {"anything": "goes"},
        },
        "initiatedBy": {
            "id": "",
            "displayName": "Azure AD Provisioning Service",
            "initiatorType": "system",
        },
        "provisioningSteps": [
            {
                "name": "EntryImport",
                "provisioningStepType": "import",
                "status": "success",
                "details": {},
            }
        ],
        "provisioningStatusInfo": {"status": "success", "errorInformation": None},
    }
    assert csdl.is_open("detailsInfo")
    assert not csdl.is_open("synchronizationJob")
    assert csdl.check("provisioningObjectSummary", summary) == []
    summary["provisioningAction"] = "Update"
    assert csdl.check("provisioningObjectSummary", summary) == [
        "provisioningObjectSummary.provisioningAction: 'Update' is not a member of "
        "provisioningAction"
    ]


def test_flags_enum_accepts_comma_separated_members(csdl: Csdl) -> None:
    """A flags enum (synchronizationJobRestartScope) takes 'A, B, C' and reports each bad part."""
    assert csdl.enum("synchronizationJobRestartScope").is_flags
    criteria = {"resetScope": "Watermark, Escrows, QuarantineState"}
    assert csdl.check("synchronizationJobRestartCriteria", criteria) == []
    assert csdl.check("synchronizationJobRestartCriteria", {"resetScope": "Full"}) == []
    criteria = {"resetScope": "Watermark,Bogus"}
    assert csdl.check("synchronizationJobRestartCriteria", criteria) == [
        "synchronizationJobRestartCriteria.resetScope: 'Bogus' is not a member of "
        "synchronizationJobRestartScope"
    ]


def test_non_flags_enum_rejects_comma_separated_members(csdl: Csdl, job: dict[str, Any]) -> None:
    """A plain enum does not accept a comma-separated list of members."""
    job["schedule"]["state"] = "Active, Paused"
    assert csdl.check("synchronizationJob", job) == [
        "synchronizationJob.schedule.state: 'Active, Paused' is not a member of "
        "synchronizationScheduleState"
    ]


def test_enum_value_must_be_a_string(csdl: Csdl, job: dict[str, Any]) -> None:
    """A numeric enum value is reported (Graph JSON uses member names)."""
    job["status"]["code"] = 4
    assert csdl.check("synchronizationJob", job) == [
        "synchronizationJob.status.code: expected a member name of synchronizationStatusCode, "
        "got int 4"
    ]


# -- primitive formats ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "2021-05-24T21:45:53.6330529Z",
        "0001-01-01T00:00:00Z",
        "2021-05-24T21:45:53+02:00",
        "2021-05-24T21:45Z",
        "2021-05-24T21:45:53.1Z",
    ],
)
def test_datetimeoffset_accepts_iso8601(csdl: Csdl, value: str) -> None:
    """ISO 8601 timestamps with an offset, 0-7+ fraction digits, and Z are accepted."""
    assert csdl.check("synchronizationSchedule", {"expiration": value}) == []


@pytest.mark.parametrize(
    "value", ["2021-05-24", "2021-05-24T21:45:53", "2021-13-24T21:45:53Z", "yesterday", ""]
)
def test_datetimeoffset_rejects_non_iso8601(csdl: Csdl, value: str) -> None:
    """Dates without time or offset, impossible dates and free text are rejected."""
    assert csdl.check("synchronizationSchedule", {"expiration": value}) == [
        f"synchronizationSchedule.expiration: {value!r} is not a valid Edm.DateTimeOffset"
    ]


@pytest.mark.parametrize("value", ["PT40M", "P10675199DT2H48M5.4775807S", "P1D", "PT0S", "-PT1H"])
def test_duration_accepts_iso8601(csdl: Csdl, value: str) -> None:
    """ISO 8601 day-time durations are accepted."""
    assert csdl.check("synchronizationSchedule", {"interval": value}) == []


@pytest.mark.parametrize("value", ["40", "PT", "P", "40M", "PT40X", "P1DT"])
def test_duration_rejects_garbage(csdl: Csdl, value: str) -> None:
    """Strings that are not ISO 8601 durations are rejected."""
    assert csdl.check("synchronizationSchedule", {"interval": value}) == [
        f"synchronizationSchedule.interval: {value!r} is not a valid Edm.Duration"
    ]


def test_guid_and_date_formats(csdl: Csdl) -> None:
    """Edm.Guid needs the 8-4-4-4-12 hex form and Edm.Date needs a real YYYY-MM-DD date."""
    good = {"id": "t", "applicationId": "8adf8e6e-67b2-4cf2-a259-e3dc5476c621"}
    assert csdl.check("synchronizationTemplate", good) == []
    assert csdl.check("synchronizationTemplate", {"applicationId": "8adf8e6e"}) == [
        "synchronizationTemplate.applicationId: '8adf8e6e' is not a valid Edm.Guid"
    ]
    assert csdl.check("applicationTemplate", {"deprecationDate": "2025-12-31"}) == []
    assert csdl.check("applicationTemplate", {"deprecationDate": "2025-02-30"}) == [
        "applicationTemplate.deprecationDate: '2025-02-30' is not a valid Edm.Date"
    ]


def test_floating_point_types_accept_int_and_float(csdl: Csdl) -> None:
    """Edm.Single accepts int and float but not bool or numeric strings."""
    assert csdl.check("applicationRiskScore", {"total": 5, "legal": 4.5}) == []
    assert csdl.check("applicationRiskScore", {"total": True, "legal": "4.5"}) == [
        "applicationRiskScore.total: expected Edm.Single (number), got bool True",
        "applicationRiskScore.legal: expected Edm.Single (number), got str '4.5'",
    ]


def test_int32_range_is_checked(csdl: Csdl) -> None:
    """An integer outside the Int32 range is reported for an Edm.Int32 property."""
    assert csdl.check("synchronizationRule", {"priority": 2**31}) == [
        "synchronizationRule.priority: 2147483648 is out of range for Edm.Int32"
    ]


# -- lookup helpers ---------------------------------------------------------------------------


def test_enum_members_and_properties_helpers(csdl: Csdl) -> None:
    """enum_members and properties return declared names with qualified type strings."""
    assert csdl.enum_members("synchronizationStatusCode") == [
        "NotConfigured",
        "NotRun",
        "Active",
        "Paused",
        "Quarantine",
    ]
    assert csdl.enum_members("microsoft.graph.synchronizationScheduleState") == [
        "Active",
        "Disabled",
        "Paused",
    ]
    assert csdl.properties("synchronizationJob") == {
        "id": "Edm.String",
        "schedule": "microsoft.graph.synchronizationSchedule",
        "status": "microsoft.graph.synchronizationStatus",
        "synchronizationJobSettings": "Collection(microsoft.graph.keyValuePair)",
        "templateId": "Edm.String",
        "bulkUpload": "microsoft.graph.bulkUpload",
        "schema": "microsoft.graph.synchronizationSchema",
    }


def test_unknown_type_name_raises(csdl: Csdl) -> None:
    """Asking about a type the CSDL does not declare is a KeyError, not a silent pass."""
    with pytest.raises(KeyError):
        csdl.check("synchronizationJobz", {})
    with pytest.raises(KeyError):
        csdl.enum_members("synchronizationJob")


def test_vendored_copy_parses_to_the_same_model(csdl: Csdl) -> None:
    """The vendored gzip copy alone yields the same types and enums (the CI fallback path)."""
    vendored = Csdl(gzip.decompress(VENDORED_CSDL.read_bytes()))
    assert vendored.types.keys() == csdl.types.keys()
    assert vendored.enums.keys() == csdl.enums.keys()
    assert vendored.properties("synchronizationJob") == csdl.properties("synchronizationJob")
