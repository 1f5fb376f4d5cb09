"""The mock Graph's application gallery: templates, synchronization templates and connectors.

Each :class:`GalleryApp` is one provisioning-enabled application template of the Microsoft Entra
gallery, as ``GET /applicationTemplates`` returns it, with the synchronization template(s) that
``GET /servicePrincipals/{id}/synchronization/templates`` returns on an instance of it, and the
rule its connector uses to judge credentials (``validateCredentials`` and job cycles).

Property names follow the Graph v1.0 metadata (``applicationTemplate``,
``synchronizationTemplate``, ``synchronizationSchema``); the test suite checks them against it.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..jsontypes import JSON


@dataclass(frozen=True, slots=True, kw_only=True)
class CredentialError:
    """What a connector says when the target system rejects the credentials."""

    code: str
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Connector:
    """How a target system judges the credentials handed to it.

    ``required`` are the synchronizationSecret keys the target needs; ``patterns`` optional
    regular expressions each value must match in full (e.g. an AWS access key id).
    """

    required: tuple[str, ...]
    patterns: Mapping[str, str] = field(default_factory=dict)
    invalid_code: str = "SystemForCrossDomainIdentityManagementInvalidCredentials"
    invalid_message: str = "Please provide a valid tenant URL for your application."

    def judge(self, credentials: Mapping[str, str]) -> CredentialError | None:
        """Return None when the target accepts ``credentials``, else the error it reports."""
        for key in self.required:
            value = credentials.get(key, "")
            if not value:
                return CredentialError(
                    code=self.invalid_code,
                    message=f"{self.invalid_message} The {key} credential is missing.",
                )
            pattern = self.patterns.get(key)
            if pattern is not None and not _matches(pattern, value):
                return CredentialError(code=self.invalid_code, message=self.invalid_message)
        return None


class KeptSecret(str):
    """A saved credential restored from a kept demo tenant (:mod:`.persist`): its value was
    never written down, only which of the catalog's patterns for its key it matched, so the
    connectors judge it as they judged the value."""

    matches: frozenset[str]

    def __new__(cls, matches: frozenset[str]) -> KeptSecret:
        self = super().__new__(cls, "(kept)")
        self.matches = matches
        return self


def _matches(pattern: str, value: str) -> bool:
    if isinstance(value, KeptSecret):
        return pattern in value.matches
    return re.fullmatch(pattern, value) is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncTemplate:
    """One synchronizationTemplate of a gallery app, and how its jobs behave."""

    id: str
    factory_tag: str
    default: bool = True
    description: str | None = None
    discoverable: bool = True
    metadata: tuple[tuple[str, str], ...] = ()  # (key, value): synchronizationMetadata members
    schema: JSON = field(default_factory=dict)  # synchronizationSchema (without id)
    connector: Connector
    initial_status: str = "Paused"  # status.code of a new job: Paused or NotConfigured
    interval: str = "PT40M"  # schedule.interval of a new job
    job_settings: tuple[tuple[str, str], ...] = ()  # synchronizationJobSettings (name, value)
    # users and groups the target receives in a steady-state cycle (drives log entries)
    entitled_users: int = 3
    entitled_groups: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class GalleryApp:
    """One provisioning-enabled gallery application template."""

    template: JSON  # applicationTemplate as Graph returns it (id, displayName, ...)
    sync_templates: tuple[SyncTemplate, ...]
    home_page_url: str | None = None  # web.homePageUrl of instantiated applications
    app_roles: tuple[JSON, ...] = ()  # appRoles of instantiated applications

    @property
    def id(self) -> str:
        return str(self.template["id"])

    @property
    def display_name(self) -> str:
        return str(self.template["displayName"])


# --- Building blocks --------------------------------------------------------------------------
# Where an identifier could not be verified against a public source it is a stable uuid5 of a
# name (``_synthetic_id``), and the app's comment says so.

_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/bulkprov/mockgraph/catalog")
AAD = "Azure Active Directory"  # sourceDirectoryName of every outbound rule
SCIM_USER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
SCIM_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
# synchronizationSecret keys the admin center treats as secret (masked, write-only).
SECRET_KEYS = frozenset({"SecretToken", "Password", "ClientSecret", "Oauth2ClientSecret"})
# What the provisioning service reports when a SCIM endpoint rejects the bearer token.
SCIM_TOKEN_REJECTED = "SystemForCrossDomainIdentityManagementCredentialValidationFailure"

# objectMapping metadata of seed 001 (keys are objectMappingMetadata members).
_OBJECT_MAPPING_METADATA = (
    ("IsCustomerDefined", "false"),
    ("DisableMonitoringForChanges", "false"),
    ("Disposition", '"Normal"'),
    ("ExcludeFromReporting", "false"),
    ("EscrowBehavior", '"Default"'),
    ("Unsynchronized", "false"),
)

# An attribute mapping: (Entra ID source attribute, target attribute, matchingPriority). The
# source "!active" stands for Entra's Switch([IsSoftDeleted], ...) expression: active unless
# soft-deleted.
Flow = tuple[str, str, int]


def _synthetic_id(name: str) -> str:
    """A stable GUID for ``name``, used where the real identifier is not published."""
    return str(uuid.uuid5(_ID_NAMESPACE, name))


def configuration_fields(required: Sequence[str]) -> str:
    """The ``configurationFields`` metadata value for ``required`` secrets (seed 001 format)."""
    fields: list[dict[str, Any]] = []
    for key in required:
        entry: dict[str, Any] = {"name": key.lower()}
        if key in SECRET_KEYS:
            entry["secret"] = True
        fields.append(entry)
    return json.dumps(fields, separators=(",", ":"))


def _kv(pairs: Sequence[tuple[str, str]]) -> list[JSON]:
    return [{"key": k, "value": v} for k, v in pairs]


def _source(name: str, kind: str = "Attribute") -> JSON:
    expression = f"[{name}]" if kind == "Attribute" else f'"{name}"'
    return {"expression": expression, "name": name, "type": kind, "parameters": []}


def _active_source() -> JSON:
    """``Switch([IsSoftDeleted], , "False", "True", "True", "False")`` as Graph spells it."""
    args = [("source", "IsSoftDeleted", "Attribute"), ("defaultValue", "", "Constant")]
    args += [(k, v, "Constant") for k, v in (("key", "False"), ("value", "True"))]
    args += [(k, v, "Constant") for k, v in (("key", "True"), ("value", "False"))]
    return {
        "expression": 'Switch([IsSoftDeleted], , "False", "True", "True", "False")',
        "name": "Switch",
        "type": "Function",
        "parameters": [{"key": k, "value": _source(v, kind)} for k, v, kind in args],
    }


def _attribute_mapping(source: str, target: str, matching_priority: int) -> JSON:
    return {
        "defaultValue": None,
        "exportMissingReferences": False,
        "flowBehavior": "FlowWhenChanged",
        "flowType": "Always",
        "matchingPriority": matching_priority,
        "targetAttributeName": target,
        "source": _active_source() if source == "!active" else _source(source),
    }


def _object_mapping(source_object: str, target_object: str, flows: Sequence[Flow]) -> JSON:
    joining = next(src for src, _, priority in flows if priority == 1)
    metadata = (*_OBJECT_MAPPING_METADATA, ("OriginalJoiningProperty", joining))
    return {
        "enabled": True,
        "flowTypes": "Add,Update,Delete",
        "name": f"Provision Azure Active Directory {source_object}s",
        "sourceObjectName": source_object,
        "targetObjectName": target_object,
        "scope": None,
        "attributeMappings": [_attribute_mapping(*flow) for flow in flows],
        "metadata": _kv(metadata),
    }


def _attribute(name: str, kind: str = "String", **overrides: Any) -> JSON:
    definition = {
        "name": name,
        "type": kind,
        "multivalued": False,
        "mutability": "ReadWrite",
        "required": False,
        "anchor": False,
        "caseExact": False,
        "flowNullValues": False,
        "metadata": [],
        "referencedObjects": [],
        "apiExpressions": [],
    }
    definition.update(overrides)
    return definition


def _object(name: str, flows: Sequence[Flow], *, target: bool) -> JSON:
    """The objectDefinition that ``flows`` read from (source side) or write to (target side)."""
    attributes = [] if target else [_attribute("objectId", anchor=True, caseExact=True)]
    for source, dest, priority in flows:
        attr = dest if target else ("IsSoftDeleted" if source == "!active" else source)
        if any(a["name"] == attr for a in attributes):
            continue
        if attr == "members":
            ref = {"referencedObjectName": name, "referencedProperty": None}
            attributes.append(
                _attribute(attr, "Reference", multivalued=True, referencedObjects=[ref])
            )
        elif source in ("!active", "IsSoftDeleted"):
            attributes.append(_attribute(attr, "Boolean"))
        else:
            attributes.append(_attribute(attr, required=target and priority == 1))
    return {"name": name, "attributes": attributes, "metadata": [], "supportedApis": []}


def _directory(name: str, version: str, objects: list[JSON]) -> JSON:
    return {
        "id": _synthetic_id(f"directory/{name}"),
        "name": name,
        "discoverabilities": "AttributeNames",
        "readOnly": False,
        "version": version,
        "objects": objects,
    }


def _schema(
    target_directory: str,
    users: tuple[str, Sequence[Flow]],
    groups: tuple[str, Sequence[Flow]] | None = None,
    *,
    rule_name: str = "USERGROUP_OUTBOUND_USERGROUP",
    version: str = "1.0",
    rule_id: str | None = None,
) -> JSON:
    """A synchronizationSchema without id: one outbound rule from Entra ID to the target.

    ``users`` and ``groups`` are (target object name, flows); groups come first, as in the
    Entra admin center and seed 001.
    """
    pairs = ([("Group", *groups)] if groups else []) + [("User", *users)]
    rule = {
        "id": rule_id or _synthetic_id(f"rule/{target_directory}/{rule_name}"),
        "name": rule_name,
        "sourceDirectoryName": AAD,
        "targetDirectoryName": target_directory,
        "editable": True,
        "priority": 1,
        "metadata": _kv([("supportsProvisionOnDemand", "true")]),
        "objectMappings": [_object_mapping(src, dst, flows) for src, dst, flows in pairs],
    }
    source_objects = [_object(src, flows, target=False) for src, _, flows in pairs]
    target_objects = [_object(dst, flows, target=True) for _, dst, flows in pairs]
    return {
        "version": version,
        "synchronizationRules": [rule],
        "directories": [
            _directory(AAD, "1.0", source_objects),
            _directory(target_directory, version, target_objects),
        ],
    }


# Entra's default SCIM 2.0 flows.
SCIM_USER_FLOWS: tuple[Flow, ...] = (
    ("userPrincipalName", "userName", 1),
    ("!active", "active", 0),
    ("displayName", "displayName", 0),
    ("givenName", "name.givenName", 0),
    ("surname", "name.familyName", 0),
    ("mail", 'emails[type eq "work"].value', 0),
    ("objectId", "externalId", 0),
)
SCIM_GROUP_FLOWS: tuple[Flow, ...] = (("displayName", "displayName", 1), ("members", "members", 0))


def _scim_schema(
    target_directory: str, user_flows: Sequence[Flow] = SCIM_USER_FLOWS, **kw: Any
) -> JSON:
    groups = (SCIM_GROUP, SCIM_GROUP_FLOWS)
    return _schema(target_directory, (SCIM_USER, user_flows), groups, **kw)


def _app_roles(key: str) -> tuple[JSON, ...]:
    """The appRoles of seed 001 (User, msiam_access): seed ids for AWS SSO, uuid5 elsewhere."""
    seed_ids = {
        "User": "8774f594-1d59-4279-b9d9-59ef09a23530",
        "msiam_access": "e7f1a7f3-9eda-48e0-9963-bd67bf531afd",
    }
    return tuple(
        {
            "allowedMemberTypes": ["User"],
            "displayName": name,
            "id": role_id if key == "awssinglesignon" else _synthetic_id(f"appRole/{key}/{name}"),
            "isEnabled": True,
            "description": name,
            "value": None,
            "origin": "Application",
        }
        for name, role_id in seed_ids.items()
    )


def _template(
    app_id: str,
    name: str,
    key: str,
    home: str,
    publisher: str,
    categories: list[str],
    description: str | None,
    sso: tuple[str, ...] = ("password", "saml", "external"),
    logo: str | None = None,
) -> JSON:
    """An applicationTemplate (only properties of the Graph v1.0 metadata)."""
    return {
        "id": app_id,
        "displayName": name,
        "homePageUrl": home,
        "supportedSingleSignOnModes": list(sso),
        "supportedProvisioningTypes": ["sync"],
        "logoUrl": logo or f"https://az495088.vo.msecnd.net/app-logo/{key}_215.png",
        "categories": categories,
        "publisher": publisher,
        "description": description,
    }


def _sync(
    sync_id: str, template: JSON, key: str, connector: Connector, schema: JSON, **kw: Any
) -> SyncTemplate:
    """A SyncTemplate with the standard metadata (factoryTag defaults to the id)."""
    metadata = [("GalleryApplicationIdentifier", template["id"]), ("GalleryApplicationKey", key)]
    if kw.pop("preview", False):
        metadata.append(("IsSynchronizationInPreview", "true"))
    metadata.append(("ConfigurationFields", configuration_fields(connector.required)))
    kw.setdefault("factory_tag", sync_id)
    return SyncTemplate(
        id=sync_id, metadata=tuple(metadata), schema=schema, connector=connector, **kw
    )


def _app(template: JSON, key: str, home: str, *sync_templates: SyncTemplate) -> GalleryApp:
    return GalleryApp(
        template=template,
        sync_templates=sync_templates,
        home_page_url=home if "://" in home else f"https://{home}/?metadata={key}|ISV9.1|primary|z",
        app_roles=_app_roles(key),
    )


# Credential formats the targets accept (full-match regular expressions).
AWS_ACCESS_KEY_ID = r"(AKIA|ASIA)[A-Z0-9]{16}"
AWS_SECRET_ACCESS_KEY = r"[A-Za-z0-9/+]{40}"
AWS_SCIM_URL = r"https://scim\.[a-z]{2}(-gov)?-[a-z]+-\d\.amazonaws\.com/[A-Za-z0-9_-]+/scim/v2/?"
DATABRICKS_SCIM_URL = (
    r"https://(adb-\d+\.\d+\.azuredatabricks\.net/api/2\.0/preview/scim"
    r"|accounts\.azuredatabricks\.net/api/2\.0/accounts/[0-9a-f-]{36}/scim/v2)/?"
)
GITHUB_EMU_SCIM_URL = r"https://api\.github\.com/scim/v2/enterprises/[A-Za-z0-9-]+/?"
DROPBOX_SCIM_URL = r"https://www\.dropbox\.com/scim/v2/?"
GOOGLE_DIRECTORY_URL = r"https://admin\.googleapis\.com/admin/directory/v1/?"
SERVICENOW_INSTANCE = r"[a-z0-9][a-z0-9-]{1,62}"  # <name> of https://<name>.service-now.com
NON_EMPTY = r"\S.*"

# --- The gallery ------------------------------------------------------------------------------

# 1. AWS Single-Account Access. Template, sync template "aws", NotConfigured status, interval
#    and job settings: seed 000. The real "aws" connector imports IAM roles and the seed shows an
#    empty schema; the mock gives it a small user mapping so schema features have data.
#    invalid_code/message: synthetic (no published code found).
_AWS = _template(
    "8b1025e4-1dd2-430b-a150-2ef79cd700f5", "AWS Single-Account Access", "aws",
    "http://aws.amazon.com/", "Amazon", ["developerServices"],
    "Federate to a single AWS account and use SAML claims to authorize access to AWS IAM roles. "
    "If you have many AWS accounts, consider using the AWS Single Sign-On gallery application "
    "instead.",
)  # fmt: skip
_AWS_CONNECTOR = Connector(
    required=("ClientSecret", "SecretToken"),
    patterns={"ClientSecret": AWS_ACCESS_KEY_ID, "SecretToken": AWS_SECRET_ACCESS_KEY},
    invalid_code="AWSInvalidCredentials",
    invalid_message="The AWS access key ID or secret access key is not valid. Provide the "
    "access key of an IAM user that may list roles.",
)
_AWS_USER_FLOWS = (("userPrincipalName", "userName", 1), ("!active", "active", 0),
                   ("displayName", "displayName", 0), ("mail", "email", 0))  # fmt: skip
AWS_SINGLE_ACCOUNT = _app(
    _AWS, "aws", "https://signin.aws.amazon.com/saml?metadata=aws|ISV9.1|primary|z",
    _sync("aws", _AWS, "aws", _AWS_CONNECTOR,
          _schema("AWS", ("User", _AWS_USER_FLOWS), rule_name="USER_OUTBOUND_USER"),
          initial_status="NotConfigured", interval="P10675199DT2H48M5.4775807S",
          job_settings=(("QuarantineTooManyDeletesThreshold", "500"),),
          entitled_users=2, entitled_groups=0),
)  # fmt: skip

# 2. AWS Single Sign-on, now AWS IAM Identity Center: template, sync template, its metadata
#    (keys as the v1.0 synchronizationMetadata enum spells them), rule id and name, group
#    mapping, job status/interval/settings and the bad-tenant-URL error are seed 001's. The
#    seed's truncated rule metadata "defaultSourceObjectMappings" is left out; the user mapping
#    and the directories complete the schema with Entra's SCIM defaults.
_AWS_SSO = _template(
    "21ed01d2-ec13-4e9e-86c1-cd546719ebc4", "AWS Single Sign-on", "awssinglesignon",
    "https://aws.amazon.com/", "Amazon Web Services, Inc.",
    ["developerServices", "itInfrastructure", "security", "New"],
    "Federate once to AWS SSO & use it to manage access centrally to multiple AWS accounts. "
    "Provision users via SCIM & get Azure AD single sign-in access to the AWS Console, CLI, & "
    "AWS SSO integrated apps. (AWS SSO is now AWS IAM Identity Center.)",
    sso=("saml", "external"),
)  # fmt: skip
_AWS_SSO_CONNECTOR = Connector(
    required=("BaseAddress", "SecretToken"),
    patterns={"BaseAddress": AWS_SCIM_URL, "SecretToken": NON_EMPTY},
    invalid_code="SystemForCrossDomainIdentityManagementInvalidCredentials",
    invalid_message="Please provide a valid tenant URL for your application.",
)
AWS_SINGLE_SIGN_ON = _app(
    _AWS_SSO, "awssinglesignon",
    "https://*.signin.aws.amazon.com/platform/saml/acs/*?metadata=awssinglesignon|ISV9.1|primary|z",
    SyncTemplate(
        id="aWSSingleSignon",
        factory_tag="aWSSingleSignon",
        metadata=(
            ("GalleryApplicationIdentifier", _AWS_SSO["id"]),
            ("GalleryApplicationKey", "awssinglesignon"),
            ("IsSynchronizationInPreview", "true"),
            ("ConfigurationFields", configuration_fields(_AWS_SSO_CONNECTOR.required)),
        ),
        schema=_scim_schema("AWSSingleSignon", version="6.0",
                            rule_id="03f7d90d-bf71-41b1-bda6-aaf0ddbee5d8"),
        connector=_AWS_SSO_CONNECTOR,
        initial_status="Paused",
        interval="PT40M",
        job_settings=(("AzureIngestionAttributeOptimization", "False"),),
    ),
)  # fmt: skip

# 3. Azure Databricks SCIM Provisioning Connector: template id and sync template "dataBricks"
#    with BaseAddress + SecretToken from manicminer/hamilton (msgraph synchronization test) and
#    hashicorp/terraform-provider-azuread acceptance tests. Publisher, categories, homepage:
#    synthetic. The non-default "dataBricksPreview" template is SYNTHETIC: the app with two
#    synchronization templates.
_DATABRICKS = _template(
    "9c9818d2-2900-49e8-8ba4-22688be7c675", "Azure Databricks SCIM Provisioning Connector",
    "databricks", "https://azure.microsoft.com/services/databricks/", "Databricks",
    ["dataServices", "developerServices"],
    "Provision users and groups from Microsoft Entra ID to Azure Databricks workspaces and "
    "accounts with SCIM.",
    sso=("external",),
)  # fmt: skip
_DATABRICKS_CONNECTOR = Connector(
    required=("BaseAddress", "SecretToken"),
    patterns={"BaseAddress": DATABRICKS_SCIM_URL, "SecretToken": r"dapi[0-9a-f]{32}(-\d+)?"},
)
DATABRICKS = _app(
    _DATABRICKS, "databricks", "accounts.azuredatabricks.net",
    _sync("dataBricks", _DATABRICKS, "databricks", _DATABRICKS_CONNECTOR,
          _scim_schema("Databricks"), entitled_users=5, entitled_groups=2),
    _sync("dataBricksPreview", _DATABRICKS, "databricks", _DATABRICKS_CONNECTOR,
          _scim_schema("Databricks", SCIM_USER_FLOWS[:4], rule_name="GROUP_OUTBOUND_GROUP"),
          factory_tag="dataBricks", default=False, preview=True, entitled_users=5,
          entitled_groups=2,
          description="Preview: groups and their members, with minimal user attributes."),
)  # fmt: skip

# 4. Google Cloud / G Suite Connector by Microsoft: template id, name, publisher, categories
#    and logo from Graph docs (beta "List applicationTemplates"); sync template
#    "google2provisioningV2" and BaseAddress + SecretToken from third-party Google Workspace
#    onboarding code. Homepage, description, invalid_code: synthetic.
_GOOGLE = _template(
    "01303a13-8322-4e06-bee5-80d612907131", "Google Cloud / G Suite Connector by Microsoft",
    "googleapps", "https://workspace.google.com/", "Microsoft",
    ["collaboration", "productivity", "topApps"],
    "Provision users and groups to Google Cloud / Google Workspace and sign in with Microsoft "
    "Entra ID.",
    logo="https://galleryapplogos1.azureedge.net/app-logo/googleapps_CF07EA93_215.png",
)  # fmt: skip
_GOOGLE_CONNECTOR = Connector(
    required=("BaseAddress", "SecretToken"),
    patterns={"BaseAddress": GOOGLE_DIRECTORY_URL, "SecretToken": NON_EMPTY},
    invalid_code="GoogleAppsInvalidCredentials",
    invalid_message="Google rejected the credentials. Authorize a super admin account.",
)
_GOOGLE_USER_FLOWS = (("userPrincipalName", "primaryEmail", 1), ("IsSoftDeleted", "suspended", 0),
                      ("givenName", "name.givenName", 0), ("surname", "name.familyName", 0),
                      ("objectId", 'externalIds[type eq "custom"].value', 0))  # fmt: skip
_GOOGLE_GROUP_FLOWS = (("mail", "email", 1), ("members", "members", 0))
GOOGLE = _app(
    _GOOGLE, "googleapps", "www.google.com",
    _sync("google2provisioningV2", _GOOGLE, "googleapps", _GOOGLE_CONNECTOR,
          _schema("Google Apps", ("user", _GOOGLE_USER_FLOWS), ("group", _GOOGLE_GROUP_FLOWS)),
          entitled_users=8, entitled_groups=2),
)  # fmt: skip

# 5. Salesforce: template (id, name, homePageUrl as published, modes, logo, categories,
#    publisher) from Graph docs v1.0 "List applicationTemplates"; factoryTag "SfOutDelta" from
#    the Graph docs synchronizationTemplate resource. Description, credentials (admin user
#    name, password, security token) and invalid_code: synthetic.
_SALESFORCE = _template(
    "cd3ed3de-93ee-400b-8b19-b61ef44a0f29", "Salesforce", "salesforce.com",
    "https://www.microsoft.com/", "Microsoft", ["crm", "topApps"],
    "Salesforce customer relationship management: provision users and profiles from Microsoft "
    "Entra ID.",
)  # fmt: skip
_SALESFORCE_CONNECTOR = Connector(
    required=("UserName", "Password", "SecretToken"),
    patterns={"UserName": r"[^@\s]+@[^@\s]+\.[^@\s]+"},
    invalid_code="SalesforceInvalidCredentials",
    invalid_message="Salesforce rejected the admin credentials. Check the user name, password "
    "and security token.",
)
_SALESFORCE_FLOWS = (("userPrincipalName", "Username", 1), ("mail", "Email", 0),
                     ("givenName", "FirstName", 0), ("surname", "LastName", 0),
                     ("mailNickname", "Alias", 0), ("!active", "IsActive", 0))  # fmt: skip
SALESFORCE = _app(
    _SALESFORCE, "salesforce.com", "login.salesforce.com",
    _sync("SfOutDelta", _SALESFORCE, "salesforce.com", _SALESFORCE_CONNECTOR,
          _schema("salesforce.com", ("User", _SALESFORCE_FLOWS), rule_name="USER_OUTBOUND_USER",
                  version="2.0"),
          entitled_users=4, entitled_groups=0),
)  # fmt: skip

# 6. Dropbox Business: template id, key "dropbox", sync template "DropboxSCIMOutDelta" and the
#    fixed SCIM base address from admin-center traffic quoted in a 2019 Microsoft Docs draft
#    ("Configure automatic provisioning user MS Graph APIs"). Dropbox authorizes through OAuth;
#    the mock takes the access token as SecretToken. Name, publisher, categories, homepage,
#    invalid_code: synthetic.
_DROPBOX = _template(
    "97e0a159-74ec-4db1-918a-c03a9c3b6b81", "Dropbox Business", "dropbox",
    "https://www.dropbox.com/business", "Dropbox",
    ["collaboration", "contentManagement", "productivity"],
    "Dropbox Business keeps team files in sync. Provision users and groups with SCIM.",
    sso=("saml", "external"),
)  # fmt: skip
_DROPBOX_CONNECTOR = Connector(
    required=("BaseAddress", "SecretToken"),
    patterns={"BaseAddress": DROPBOX_SCIM_URL, "SecretToken": NON_EMPTY},
    invalid_code=SCIM_TOKEN_REJECTED,
    invalid_message="Dropbox rejected the access token. Authorize access to Dropbox again.",
)
DROPBOX = _app(
    _DROPBOX, "dropbox", "www.dropbox.com",
    _sync("DropboxSCIMOutDelta", _DROPBOX, "dropbox", _DROPBOX_CONNECTOR,
          _scim_schema("Dropbox", SCIM_USER_FLOWS[:6])),
)  # fmt: skip

# 7. Box: sync template "BoxOutDelta" from the Graph docs (synchronizationJob examples; seed
#    001's provisioning log shows its job id). Template id: SYNTHETIC. Box authorizes through
#    OAuth; the mock takes the access token as SecretToken. invalid_code: synthetic.
_BOX = _template(
    _synthetic_id("Box"), "Box", "box", "https://www.box.com/", "Box",
    ["contentManagement", "collaboration", "topApps"],
    "Box cloud content management: provision users and groups from Microsoft Entra ID.",
)  # fmt: skip
_BOX_CONNECTOR = Connector(
    required=("SecretToken",),
    patterns={"SecretToken": r"[A-Za-z0-9]{32}"},
    invalid_code="BoxInvalidCredentials",
    invalid_message="Box rejected the access token. Authorize access to Box again.",
)
_BOX_USER_FLOWS = (("userPrincipalName", "login", 1), ("displayName", "name", 0),
                   ("!active", "status", 0), ("jobTitle", "job_title", 0))  # fmt: skip
BOX = _app(
    _BOX, "box", "app.box.com",
    _sync("BoxOutDelta", _BOX, "box", _BOX_CONNECTOR,
          _schema("Box", ("User", _BOX_USER_FLOWS), ("Group", SCIM_GROUP_FLOWS))),
)  # fmt: skip

# 8. Slack: sync template id "Slack" with factoryTag "CustomSCIM" from the Graph docs
#    synchronizationTemplate examples. Template id: SYNTHETIC. Slack authorizes through OAuth;
#    the mock takes the token as SecretToken.
_SLACK = _template(
    _synthetic_id("Slack"), "Slack", "slack", "https://slack.com/", "Slack Technologies",
    ["collaboration", "productivity", "topApps"],
    "Slack is a messaging app for teams. Provision users and user groups with SCIM.",
)  # fmt: skip
_SLACK_CONNECTOR = Connector(
    required=("SecretToken",),
    patterns={"SecretToken": r"xox[bp]-[A-Za-z0-9-]+"},
    invalid_code=SCIM_TOKEN_REJECTED,
    invalid_message="Slack rejected the token. Authorize access to Slack again.",
)
SLACK = _app(
    _SLACK, "slack", "slack.com",
    _sync("Slack", _SLACK, "slack", _SLACK_CONNECTOR, _scim_schema("Slack", SCIM_USER_FLOWS[:6]),
          factory_tag="CustomSCIM", entitled_users=6),
)  # fmt: skip

# 9. ServiceNow: InstanceName + UserName + Password. Template id, sync template id and
#    invalid_code: SYNTHETIC.
_SERVICENOW = _template(
    _synthetic_id("ServiceNow"), "ServiceNow", "servicenow", "https://www.servicenow.com/",
    "ServiceNow", ["itInfrastructure", "businessManagement", "topApps"],
    "ServiceNow digital workflows: provision users and groups from Microsoft Entra ID.",
)  # fmt: skip
_SERVICENOW_CONNECTOR = Connector(
    required=("InstanceName", "UserName", "Password"),
    patterns={"InstanceName": SERVICENOW_INSTANCE},
    invalid_code="ServiceNowInvalidCredentials",
    invalid_message="ServiceNow rejected the admin credentials. Check the instance name, user "
    "name and password.",
)
_SERVICENOW_FLOWS = (("userPrincipalName", "user_name", 1), ("givenName", "first_name", 0),
                     ("surname", "last_name", 0), ("mail", "email", 0),
                     ("!active", "active", 0))  # fmt: skip
SERVICENOW = _app(
    _SERVICENOW, "servicenow", "service-now.com",
    _sync("serviceNowOutDelta", _SERVICENOW, "servicenow", _SERVICENOW_CONNECTOR,
          _schema("ServiceNow", ("User", _SERVICENOW_FLOWS), ("Group", SCIM_GROUP_FLOWS[:1])),
          entitled_users=7, entitled_groups=2),
)  # fmt: skip

# 10. GitHub Enterprise Managed User: BaseAddress (the enterprise's SCIM URL) + SecretToken.
#     Template id and sync template id: SYNTHETIC.
_GITHUB = _template(
    _synthetic_id("GitHub Enterprise Managed User"), "GitHub Enterprise Managed User",
    "githubenterprisemanageduser", "https://github.com/enterprise", "GitHub, Inc.",
    ["developerServices", "collaboration"],
    "Provision and control the accounts of a GitHub enterprise with managed users from "
    "Microsoft Entra ID (SAML and SCIM).",
    sso=("saml", "external"),
)  # fmt: skip
_GITHUB_CONNECTOR = Connector(
    required=("BaseAddress", "SecretToken"),
    patterns={"BaseAddress": GITHUB_EMU_SCIM_URL, "SecretToken": r"gh[po]_[A-Za-z0-9]{36}"},
)
GITHUB_EMU = _app(
    _GITHUB, "githubenterprisemanageduser", "github.com",
    _sync("gitHubEnterpriseManagedUser", _GITHUB, "githubenterprisemanageduser",
          _GITHUB_CONNECTOR, _scim_schema("GitHubEnterpriseManagedUser"),
          entitled_users=10, entitled_groups=3),
)  # fmt: skip

GALLERY: tuple[GalleryApp, ...] = (
    AWS_SINGLE_ACCOUNT,
    AWS_SINGLE_SIGN_ON,
    DATABRICKS,
    GOOGLE,
    SALESFORCE,
    DROPBOX,
    BOX,
    SLACK,
    SERVICENOW,
    GITHUB_EMU,
)


# --- Lookups ----------------------------------------------------------------------------------


def find_app(template_id: str) -> GalleryApp | None:
    """The app whose applicationTemplate id is ``template_id`` (GUID case ignored), or None."""
    wanted = template_id.strip().lower()
    return next((app for app in GALLERY if app.id.lower() == wanted), None)


def find_sync_template(app: GalleryApp, template_id: str) -> SyncTemplate | None:
    """The synchronization template ``template_id`` of ``app``, or None.

    An exact match wins; otherwise ids compare case-insensitively, as Graph keys do.
    """
    for sync_template in app.sync_templates:
        if sync_template.id == template_id:
            return sync_template
    wanted = template_id.casefold()
    return next((t for t in app.sync_templates if t.id.casefold() == wanted), None)


def matching_patterns(key: str, value: str) -> frozenset[str]:
    """The catalog's patterns for credential ``key`` that ``value`` matches in full: what a
    :class:`KeptSecret` remembers of a value."""
    return frozenset(
        pattern
        for app in GALLERY
        for t in app.sync_templates
        if (pattern := t.connector.patterns.get(key)) is not None and _matches(pattern, value)
    )


def default_sync_template(app: GalleryApp) -> SyncTemplate:
    """The synchronization template ``app`` marks as default (else its first one)."""
    return next((t for t in app.sync_templates if t.default), app.sync_templates[0])
