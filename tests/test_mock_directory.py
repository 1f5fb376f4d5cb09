"""applicationTemplates, instantiate, applications and servicePrincipals, deleted items,
directory stats and replication delay, over real HTTPS against the mock."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bulkprov.mockgraph import MockGraph, MockSettings, ReplicationSettings
from bulkprov.mockgraph.catalog import GALLERY
from bulkprov.mockgraph.odata import quote

from .graphclient import PlainGraph

pytestmark = pytest.mark.anyio

AWS = "8b1025e4-1dd2-430b-a150-2ef79cd700f5"
AWS_SSO = "21ed01d2-ec13-4e9e-86c1-cd546719ebc4"
DATABRICKS = "9c9818d2-2900-49e8-8ba4-22688be7c675"


async def instantiate(graph: PlainGraph, template: str, name: str) -> dict[str, Any]:
    r = await graph.post(f"/applicationTemplates/{template}/instantiate", {"displayName": name})
    assert r.status == 201, r.body
    body: dict[str, Any] = r.body
    return body


async def collect(graph: PlainGraph, path: str, params: dict[str, str]) -> list[dict[str, Any]]:
    """Every item of a list, following the whole @odata.nextLink until it is absent."""
    items: list[dict[str, Any]] = []
    r = await graph.get(path, params=params)
    pages = 0
    while True:
        assert r.status == 200, r.body
        items.extend(r.body["value"])
        pages += 1
        assert pages < 100
        link = r.body.get("@odata.nextLink")
        if link is None:
            return items
        r = await graph.get(link)


# ----------------------------------------------------------------------- applicationTemplates


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ("displayName eq 'AWS Single-Account Access'", {AWS}),
        ("displayName eq 'aws single sign-on'", {AWS_SSO}),  # Graph compares case-insensitively
        ("contains(displayName, 'Databricks')", {DATABRICKS}),
        ("startswith(displayName, 'AWS')", {AWS, AWS_SSO}),
    ],
)
async def test_template_filters(graph: PlainGraph, flt: str, expected: set[str]) -> None:
    """$filter on displayName with eq, contains and startswith selects exactly the matching
    gallery templates."""
    r = await graph.get("/applicationTemplates", params={"$filter": flt})
    assert r.status == 200
    assert {t["id"] for t in r.body["value"]} == expected
    assert r.body["@odata.context"].endswith("/v1.0/$metadata#applicationTemplates")


async def test_template_filter_escaped_quote_parses(graph: PlainGraph) -> None:
    """An OData literal with a doubled quote ('O''Brien') parses and matches nothing."""
    assert quote("O'Brien") == "'O''Brien'"
    r = await graph.get(
        "/applicationTemplates", params={"$filter": "displayName eq " + quote("O'Brien")}
    )
    assert r.status == 200
    assert r.body["value"] == []


async def test_template_filter_unescaped_quote_is_400(graph: PlainGraph) -> None:
    """An unescaped quote inside a literal ('O'Brien') is a malformed filter: 400."""
    r = await graph.get("/applicationTemplates", params={"$filter": "displayName eq 'O'Brien'"})
    assert r.status == 400
    assert r.error_code == "BadRequest"


async def test_template_paging_collects_the_whole_catalog(graph: PlainGraph) -> None:
    """$top=3 and following the whole @odata.nextLink until absent returns every gallery
    template exactly once."""
    r = await graph.get("/applicationTemplates", params={"$top": "3"})
    assert len(r.body["value"]) == 3 and "@odata.nextLink" in r.body
    items = await collect(graph, "/applicationTemplates", {"$top": "3"})
    ids = [t["id"] for t in items]
    assert len(ids) == len(set(ids))
    assert set(ids) == {app.id for app in GALLERY}


async def test_template_categories_orderby_and_skip(graph: PlainGraph) -> None:
    """categories/any(...) filters on a category; $orderby sorts by displayName; $skip skips."""
    r = await graph.get("/applicationTemplates", params={"$filter": "categories/any(c:c eq 'crm')"})
    assert r.status == 200 and [t["displayName"] for t in r.body["value"]] == ["Salesforce"]
    r = await graph.get("/applicationTemplates", params={"$orderby": "displayName desc"})
    names = [t["displayName"] for t in r.body["value"]]
    assert names == sorted(names, key=str.lower, reverse=True) and len(names) == len(GALLERY)
    r = await graph.get(
        "/applicationTemplates", params={"$orderby": "displayName", "$skip": "2", "$top": "2"}
    )
    assert [t["displayName"] for t in r.body["value"]] == sorted(names, key=str.lower)[2:4]


async def test_get_one_template_and_unknown_is_404(graph: PlainGraph) -> None:
    """GET /applicationTemplates/{id} returns that template; an unknown id is 404."""
    r = await graph.get(f"/applicationTemplates/{AWS}")
    assert r.status == 200
    assert r.body["displayName"] == "AWS Single-Account Access"
    assert r.body["supportedProvisioningTypes"] == ["sync"]
    r = await graph.get("/applicationTemplates/00000000-0000-0000-0000-000000000000")
    assert r.status == 404
    assert r.error_code == "Request_ResourceNotFound"


# ----------------------------------------------------------------------- instantiate


async def test_instantiate_creates_application_and_service_principal(
    graph: PlainGraph,
    mock: MockGraph,
) -> None:
    """instantiate answers 201 with the application and service principal in seed 001's
    shape, and both read back by id."""
    body = await instantiate(graph, AWS_SSO, "AWS Contoso")
    assert body["@odata.context"].endswith("$metadata#microsoft.graph.applicationServicePrincipal")
    app, sp = body["application"], body["servicePrincipal"]
    assert app["displayName"] == "AWS Contoso" and app["applicationTemplateId"] == AWS_SSO
    assert app["signInAudience"] == "AzureADMyOrg" and app["deletedDateTime"] is None
    assert [r["displayName"] for r in app["appRoles"]] == ["User", "msiam_access"]
    assert app["api"]["oauth2PermissionScopes"][0]["value"] == "user_impersonation"
    assert sp["appId"] == app["appId"] and sp["servicePrincipalNames"] == [app["appId"]]
    assert sp["appDisplayName"] == "AWS Contoso" and sp["displayName"] == "AWS Contoso"
    assert sp["applicationTemplateId"] == AWS_SSO
    assert sp["tags"] == ["WindowsAzureActiveDirectoryIntegratedApp"]
    assert sp["appRoleAssignmentRequired"] is True
    assert sp["homepage"] == app["web"]["homePageUrl"]
    assert mock.info is not None and sp["appOwnerOrganizationId"] == mock.info.tenant_id
    r = await graph.get(f"/applications/{app['id']}")
    assert r.status == 200 and r.body["appId"] == app["appId"]
    r = await graph.get(f"/servicePrincipals/{sp['id']}")
    assert r.status == 200 and r.body["appId"] == app["appId"]


async def test_service_principal_by_app_id(graph: PlainGraph) -> None:
    """GET /servicePrincipals(appId='...') finds the service principal by its appId."""
    body = await instantiate(graph, AWS, "By appId")
    app_id = body["application"]["appId"]
    r = await graph.get(f"/servicePrincipals(appId='{app_id}')")
    assert r.status == 200
    assert r.body["id"] == body["servicePrincipal"]["id"]
    r = await graph.get(f"/applications(appId='{app_id}')")
    assert r.status == 200 and r.body["id"] == body["application"]["id"]
    r = await graph.get("/servicePrincipals(appId='00000000-0000-0000-0000-000000000000')")
    assert r.status == 404 and r.error_code == "Request_ResourceNotFound"


async def test_directory_list_filters(graph: PlainGraph) -> None:
    """Listing applications and servicePrincipals filters on displayName, appId,
    applicationTemplateId and their combination."""
    a = await instantiate(graph, AWS, "Filter One")
    b = await instantiate(graph, AWS_SSO, "Filter Two")
    app_a, sp_b = a["application"], b["servicePrincipal"]

    async def ids(path: str, flt: str) -> set[str]:
        r = await graph.get(path, params={"$filter": flt})
        assert r.status == 200, r.body
        return {o["id"] for o in r.body["value"]}

    assert await ids("/applications", "displayName eq 'Filter One'") == {app_a["id"]}
    assert await ids("/applications", f"appId eq '{app_a['appId']}'") == {app_a["id"]}
    assert await ids("/applications", f"applicationTemplateId eq '{AWS_SSO}'") == {
        b["application"]["id"]
    }
    assert (
        await ids(
            "/applications", f"applicationTemplateId eq '{AWS}' and displayName eq 'Filter Two'"
        )
        == set()
    )
    assert await ids("/applications", "startswith(displayName, 'Filter')") == {
        app_a["id"],
        b["application"]["id"],
    }
    assert await ids("/servicePrincipals", "displayName eq 'Filter Two'") == {sp_b["id"]}
    assert await ids("/servicePrincipals", f"appId eq '{sp_b['appId']}'") == {sp_b["id"]}
    assert await ids("/servicePrincipals", f"applicationTemplateId eq '{AWS}'") == {
        a["servicePrincipal"]["id"]
    }


async def test_filtered_paging_with_quotes(graph: PlainGraph) -> None:
    """A filtered list paged with $top=1 keeps its filter (quotes and spaces included) in the
    nextLink, and an escaped quote matches a display name containing a quote."""
    for n in range(3):
        await instantiate(graph, AWS, f"O'Brien {n}")
    await instantiate(graph, AWS, "Someone else")
    items = await collect(
        graph,
        "/applications",
        {"$filter": "startswith(displayName, " + quote("O'Brien") + ")", "$top": "1"},
    )
    assert sorted(a["displayName"] for a in items) == ["O'Brien 0", "O'Brien 1", "O'Brien 2"]
    r = await graph.get(
        "/servicePrincipals", params={"$filter": "displayName eq " + quote("O'Brien 1")}
    )
    assert [s["displayName"] for s in r.body["value"]] == ["O'Brien 1"]


async def test_tags_any_filter_after_patch(graph: PlainGraph) -> None:
    """After a PATCH of tags, tags/any(t:t eq '...') finds the object, and only it."""
    a = await instantiate(graph, AWS, "Tagged")
    await instantiate(graph, AWS, "Untagged")
    app_id, sp_id = a["application"]["id"], a["servicePrincipal"]["id"]
    flt = "tags/any(t:t eq 'bulkprov:instance-7')"
    r = await graph.get("/applications", params={"$filter": flt})
    assert r.status == 200 and r.body["value"] == []
    r = await graph.patch(f"/applications/{app_id}", {"tags": ["bulkprov:instance-7"]})
    assert r.status == 204
    r = await graph.get("/applications", params={"$filter": flt})
    assert [o["id"] for o in r.body["value"]] == [app_id]
    r = await graph.patch(
        f"/servicePrincipals/{sp_id}",
        {"tags": ["WindowsAzureActiveDirectoryIntegratedApp", "bulkprov:instance-7"]},
    )
    assert r.status == 204
    r = await graph.get("/servicePrincipals", params={"$filter": flt})
    assert [o["id"] for o in r.body["value"]] == [sp_id]


async def test_patch_display_name_and_notes(graph: PlainGraph) -> None:
    """PATCH of displayName and notes answers 204 and a later GET shows the new values."""
    a = await instantiate(graph, AWS, "Before")
    app_id, sp_id = a["application"]["id"], a["servicePrincipal"]["id"]
    r = await graph.patch(f"/applications/{app_id}", {"displayName": "After", "notes": "n1"})
    assert r.status == 204 and r.body is None
    r = await graph.get(f"/applications/{app_id}")
    assert r.body["displayName"] == "After" and r.body["notes"] == "n1"
    r = await graph.patch(f"/servicePrincipals/{sp_id}", {"notes": "sp-note"})
    assert r.status == 204
    r = await graph.get(f"/servicePrincipals/{sp_id}")
    assert r.body["notes"] == "sp-note"
    r = await graph.patch(f"/applications/{app_id}", {"appId": "nope"})
    assert r.status == 400


async def test_delete_soft_deletes(graph: PlainGraph) -> None:
    """DELETE soft-deletes: the object then 404s and is listed no more, while
    GET /directory/deletedItems/{id} finds it with its deletedDateTime."""
    a = await instantiate(graph, AWS, "Doomed")
    app_id = a["application"]["id"]
    assert (await graph.delete(f"/applications/{app_id}")).status == 204
    r = await graph.get(f"/applications/{app_id}")
    assert r.status == 404 and r.error_code == "Request_ResourceNotFound"
    r = await graph.get("/applications", params={"$filter": "displayName eq 'Doomed'"})
    assert r.body["value"] == []
    r = await graph.get(f"/directory/deletedItems/{app_id}")
    assert r.status == 200
    assert r.body["id"] == app_id and r.body["deletedDateTime"] is not None
    assert r.body["@odata.type"] == "#microsoft.graph.application"
    # deleting the application took its service principal along
    sp_id = a["servicePrincipal"]["id"]
    assert (await graph.get(f"/servicePrincipals/{sp_id}")).status == 404
    r = await graph.get(f"/directory/deletedItems/{sp_id}")
    assert r.status == 200 and r.body["@odata.type"] == "#microsoft.graph.servicePrincipal"


async def test_restore_and_purge_deleted_item(graph: PlainGraph) -> None:
    """A soft-deleted object can be restored; a purged one is gone from deletedItems."""
    a = await instantiate(graph, AWS, "Restorable")
    app_id = a["application"]["id"]
    await graph.delete(f"/applications/{app_id}")
    r = await graph.post(f"/directory/deletedItems/{app_id}/restore")
    assert r.status == 200 and r.body["deletedDateTime"] is None
    assert (await graph.get(f"/applications/{app_id}")).status == 200
    await graph.delete(f"/applications/{app_id}")
    assert (await graph.delete(f"/directory/deletedItems/{app_id}")).status == 204
    assert (await graph.get(f"/directory/deletedItems/{app_id}")).status == 404


async def test_stats_count_duplicates_and_orphans(graph: PlainGraph, mock: MockGraph) -> None:
    """Stats count a duplicate when two apps share a display name, an orphan application
    when its service principal is deleted, and an orphan service principal without a job."""
    await instantiate(graph, AWS, "Twin")
    twin = await instantiate(graph, AWS, "Twin")
    other = await instantiate(graph, AWS, "Single")
    stats = mock.stats()
    assert stats["duplicates"] == 1
    assert "Twin" in stats["tenants"][next(iter(stats["tenants"]))]["duplicateNames"]
    assert stats["orphanServicePrincipals"] == 3  # no jobs yet
    assert stats["orphanApplications"] == 0
    r = await graph.post(
        f"/servicePrincipals/{other['servicePrincipal']['id']}/synchronization/jobs",
        {"templateId": "aws"},
    )
    assert r.status == 201
    assert mock.stats()["orphanServicePrincipals"] == 2
    sp_id = twin["servicePrincipal"]["id"]
    assert (await graph.delete(f"/servicePrincipals/{sp_id}")).status == 204
    stats = mock.stats()
    assert stats["orphanApplications"] == 1
    assert stats["orphanServicePrincipals"] == 1
    # purging the deleted service principal leaves the application an orphan still
    assert (await graph.delete(f"/directory/deletedItems/{sp_id}")).status == 204
    assert mock.stats()["orphanApplications"] == 1


# ----------------------------------------------------------------------- replication


@pytest.mark.parametrize(
    "mock_settings",
    [
        MockSettings.quiet(
            time_scale=0.01, replication=ReplicationSettings(min_delay=5, max_delay=5, flap=0)
        )
    ],
)
async def test_new_objects_404_until_replicated(graph: PlainGraph, mock: MockGraph) -> None:
    """Right after instantiate the new service principal and application 404 with
    Request_ResourceNotFound (also on /synchronization/templates), and read back once the
    replication delay (5 Graph s = 0.05 s here) has passed."""
    checked = 0
    for attempt in range(3):  # a loaded machine may miss the 0.05 s window: try again
        t0 = mock.clock.now()
        body = await instantiate(graph, AWS_SSO, f"Replicating {attempt}")
        sp_id, app_id = body["servicePrincipal"]["id"], body["application"]["id"]
        early = await asyncio.gather(
            graph.get(f"/servicePrincipals/{sp_id}"),
            graph.get(f"/servicePrincipals/{sp_id}/synchronization/templates"),
            graph.get(f"/applications/{app_id}"),
        )
        if mock.clock.now() - t0 < 5:  # all three reads happened inside the window
            for r in early:
                assert r.status == 404, r.body
                assert r.error_code == "Request_ResourceNotFound"
            checked += 1
            break
    assert checked, "never read inside the replication window"
    await asyncio.sleep(0.06)
    r = await graph.get(f"/servicePrincipals/{sp_id}")
    assert r.status == 200
    r = await graph.get(f"/servicePrincipals/{sp_id}/synchronization/templates")
    assert r.status == 200 and [t["id"] for t in r.body["value"]] == ["aWSSingleSignon"]
    assert (await graph.get(f"/applications/{app_id}")).status == 200
