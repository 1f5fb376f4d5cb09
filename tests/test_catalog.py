"""Tests of the mock Graph's gallery catalog (bulkprov/mockgraph/catalog.py)."""

from __future__ import annotations

import json
import re

import pytest

from bulkprov.mockgraph.catalog import (
    GALLERY,
    SECRET_KEYS,
    GalleryApp,
    default_sync_template,
    find_app,
    find_sync_template,
)

try:
    from tests.csdl import load_csdl
except ModuleNotFoundError:  # tests/ on sys.path rather than the repository root
    from csdl import load_csdl  # type: ignore[no-redef]

GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
AWS_ID = "8b1025e4-1dd2-430b-a150-2ef79cd700f5"
AWS_SSO_ID = "21ed01d2-ec13-4e9e-86c1-cd546719ebc4"
GOOD_AWS_KEYS = {
    "ClientSecret": "AKIAIOSFODNN7EXAMPLE",
    "SecretToken": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
}

APPS = pytest.mark.parametrize("app", GALLERY, ids=lambda a: a.display_name)


def _metadata(sync_template) -> dict[str, str]:
    return dict(sync_template.metadata)


def test_gallery_has_at_least_eight_apps() -> None:
    """The gallery holds at least eight provisioning-enabled apps."""
    assert len(GALLERY) >= 8
    assert all(app.template["supportedProvisioningTypes"] == ["sync"] for app in GALLERY)


def test_template_ids_are_unique_guids() -> None:
    """Every applicationTemplate id is a lowercase GUID and no two apps share one."""
    ids = [app.id for app in GALLERY]
    assert all(GUID.match(i) for i in ids), ids
    assert len(set(ids)) == len(ids)
    assert len({app.display_name for app in GALLERY}) == len(GALLERY)


@APPS
def test_exactly_one_default_sync_template(app: GalleryApp) -> None:
    """Each app marks exactly one synchronization template as default, and ids are unique."""
    assert sum(t.default for t in app.sync_templates) == 1
    assert len({t.id for t in app.sync_templates}) == len(app.sync_templates)
    assert default_sync_template(app).default


def test_some_app_has_two_sync_templates() -> None:
    """At least one app offers a second, non-default synchronization template."""
    assert any(len(app.sync_templates) >= 2 for app in GALLERY)


@APPS
def test_configuration_fields_match_connector(app: GalleryApp) -> None:
    """configurationFields parses as JSON and lists exactly the connector's required keys."""
    for sync_template in app.sync_templates:
        fields = json.loads(_metadata(sync_template)["ConfigurationFields"])
        required = sync_template.connector.required
        assert [f["name"] for f in fields] == [key.lower() for key in required]
        for f, key in zip(fields, required, strict=True):
            assert f.get("secret", False) is (key in SECRET_KEYS)


@APPS
def test_sync_template_metadata_names_the_app(app: GalleryApp) -> None:
    """Sync template metadata carries the gallery app's id and a gallery key."""
    for sync_template in app.sync_templates:
        metadata = _metadata(sync_template)
        assert metadata["GalleryApplicationIdentifier"] == app.id
        assert metadata["GalleryApplicationKey"]
        assert len(dict(sync_template.metadata)) == len(sync_template.metadata)


@APPS
def test_template_conforms_to_csdl(app: GalleryApp) -> None:
    """The applicationTemplate dict uses only applicationTemplate properties of the v1.0 CSDL."""
    assert load_csdl().check("applicationTemplate", app.template, strict_nulls=False) == []


@APPS
def test_schema_conforms_to_csdl(app: GalleryApp) -> None:
    """Every synchronization schema conforms to synchronizationSchema in the v1.0 CSDL."""
    for sync_template in app.sync_templates:
        schema = sync_template.schema
        assert "id" not in schema
        assert load_csdl().check("synchronizationSchema", schema) == []


@APPS
def test_schema_is_consistent(app: GalleryApp) -> None:
    """Mappings read and write attributes that the schema's directories define."""
    for sync_template in app.sync_templates:
        schema = sync_template.schema
        directories = {d["name"]: d for d in schema["directories"]}
        for rule in schema["synchronizationRules"]:
            assert GUID.match(rule["id"])
            source = directories[rule["sourceDirectoryName"]]
            target = directories[rule["targetDirectoryName"]]
            for mapping in rule["objectMappings"]:
                flows = mapping["attributeMappings"]
                assert sum(m["matchingPriority"] == 1 for m in flows) == 1
                src = next(o for o in source["objects"] if o["name"] == mapping["sourceObjectName"])
                dst = next(o for o in target["objects"] if o["name"] == mapping["targetObjectName"])
                dst_names = {a["name"] for a in dst["attributes"]}
                src_names = {a["name"] for a in src["attributes"]}
                for flow in flows:
                    assert flow["targetAttributeName"] in dst_names
                    if flow["source"]["type"] == "Attribute":
                        assert flow["source"]["name"] in src_names


def test_find_app_and_sync_template() -> None:
    """find_app and find_sync_template locate entries and return None for unknown ids."""
    app = find_app(AWS_ID)
    assert app is not None and app.display_name == "AWS Single-Account Access"
    assert find_app(AWS_SSO_ID.upper()) is find_app(AWS_SSO_ID)
    assert find_app("00000000-0000-0000-0000-000000000000") is None
    assert find_sync_template(app, "aws") is app.sync_templates[0]
    assert find_sync_template(app, "AWS") is app.sync_templates[0]
    assert find_sync_template(app, "aWSSingleSignon") is None
    for gallery_app in GALLERY:
        assert find_app(gallery_app.id) is gallery_app
        for sync_template in gallery_app.sync_templates:
            assert find_sync_template(gallery_app, sync_template.id) is sync_template


def test_aws_single_account_matches_seed_000() -> None:
    """AWS Single-Account Access carries seed 000's template and job defaults."""
    app = find_app(AWS_ID)
    assert app is not None
    assert app.template["homePageUrl"] == "http://aws.amazon.com/"
    assert app.template["publisher"] == "Amazon"
    assert app.template["supportedSingleSignOnModes"] == ["password", "saml", "external"]
    sync_template = default_sync_template(app)
    assert (sync_template.id, sync_template.factory_tag) == ("aws", "aws")
    assert sync_template.initial_status == "NotConfigured"
    assert sync_template.interval == "P10675199DT2H48M5.4775807S"
    assert ("QuarantineTooManyDeletesThreshold", "500") in sync_template.job_settings


def test_aws_single_account_connector_accepts_example_keys() -> None:
    """The AWS Single-Account Access connector accepts AWS's documented example key pair."""
    app = find_app(AWS_ID)
    assert app is not None
    assert default_sync_template(app).connector.judge(GOOD_AWS_KEYS) is None


@pytest.mark.parametrize(
    "credentials",
    [
        {**GOOD_AWS_KEYS, "ClientSecret": "XKIAIOSFODNN7EXAMPLE"},
        {**GOOD_AWS_KEYS, "ClientSecret": "AKIAIOSFODNN7EXAMPL"},
        {"ClientSecret": GOOD_AWS_KEYS["ClientSecret"]},
        {**GOOD_AWS_KEYS, "SecretToken": ""},
    ],
    ids=["bad-prefix", "too-short", "no-secret-token", "empty-secret-token"],
)
def test_aws_single_account_connector_rejects_bad_keys(credentials: dict[str, str]) -> None:
    """The AWS Single-Account Access connector rejects a bad key id or a missing SecretToken."""
    app = find_app(AWS_ID)
    assert app is not None
    connector = default_sync_template(app).connector
    error = connector.judge(credentials)
    assert error is not None
    assert error.code == connector.invalid_code


def test_aws_sso_matches_seed_001() -> None:
    """AWS Single Sign-on carries seed 001's template, sync template and job defaults."""
    app = find_app(AWS_SSO_ID)
    assert app is not None
    assert app.template == {
        "id": AWS_SSO_ID,
        "displayName": "AWS Single Sign-on",
        "homePageUrl": "https://aws.amazon.com/",
        "supportedSingleSignOnModes": ["saml", "external"],
        "supportedProvisioningTypes": ["sync"],
        "logoUrl": "https://az495088.vo.msecnd.net/app-logo/awssinglesignon_215.png",
        "categories": ["developerServices", "itInfrastructure", "security", "New"],
        "publisher": "Amazon Web Services, Inc.",
        "description": app.template["description"],
    }
    assert "IAM Identity Center" in app.template["description"]
    sync_template = default_sync_template(app)
    assert (sync_template.id, sync_template.factory_tag) == ("aWSSingleSignon", "aWSSingleSignon")
    assert sync_template.metadata == (
        ("GalleryApplicationIdentifier", AWS_SSO_ID),
        ("GalleryApplicationKey", "awssinglesignon"),
        ("IsSynchronizationInPreview", "true"),
        ("ConfigurationFields", '[{"name":"baseaddress"},{"name":"secrettoken","secret":true}]'),
    )
    assert (sync_template.initial_status, sync_template.interval) == ("Paused", "PT40M")
    assert sync_template.job_settings == (("AzureIngestionAttributeOptimization", "False"),)
    rule = sync_template.schema["synchronizationRules"][0]
    assert rule["id"] == "03f7d90d-bf71-41b1-bda6-aaf0ddbee5d8"
    assert rule["name"] == "USERGROUP_OUTBOUND_USERGROUP"
    assert rule["targetDirectoryName"] == "AWSSingleSignon"
    assert sync_template.schema["version"] == "6.0"
    assert [m["sourceObjectName"] for m in rule["objectMappings"]] == ["Group", "User"]
    assert {r["displayName"] for r in app.app_roles} == {"User", "msiam_access"}


def test_aws_sso_connector_rejects_example_com() -> None:
    """The AWS SSO connector rejects https://example.com as tenant URL, with seed 001's error."""
    app = find_app(AWS_SSO_ID)
    assert app is not None
    connector = default_sync_template(app).connector
    error = connector.judge({"BaseAddress": "https://example.com", "SecretToken": "token"})
    assert error is not None
    assert error.code == "SystemForCrossDomainIdentityManagementInvalidCredentials"
    assert error.message == "Please provide a valid tenant URL for your application."


def test_aws_sso_connector_accepts_scim_endpoint() -> None:
    """The AWS SSO connector accepts an IAM Identity Center SCIM endpoint and a token."""
    app = find_app(AWS_SSO_ID)
    assert app is not None
    connector = default_sync_template(app).connector
    url = "https://scim.us-east-1.amazonaws.com/a1b2c3d4-e5f6-7890-abcd-ef1234567890/scim/v2/"
    assert connector.judge({"BaseAddress": url, "SecretToken": "token"}) is None
    assert connector.judge({"BaseAddress": url}) is not None
