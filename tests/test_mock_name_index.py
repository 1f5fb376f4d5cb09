"""Lists filtered on displayName read the mock's name index (so 100k objects stay fast); the
answers must be those of a full scan: renames, deletes, case, ``or`` and other filters."""

from __future__ import annotations

import pytest

from bulkprov.mockgraph.handlers.directory import name_in_filter

from .graphclient import PlainGraph
from .test_mock_directory import AWS, DATABRICKS, collect, instantiate

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("displayName eq 'A'", "A"),
        ("applicationTemplateId eq 'x' and displayName eq 'It''s'", "It's"),
        ("(displayName eq 'A') and appId eq 'b'", "A"),
        ("DisplayName EQ 'A'", "A"),
        ("displayName eq 'A' or displayName eq 'B'", None),
        ("not(displayName eq 'A')", None),
        ("startswith(displayName, 'A')", None),
        ("notes eq 'displayName eq x'", None),
        ("appId eq 'displayName eq '", None),
        ("tags/any(t: t eq 'displayName eq ''A''')", None),
        (None, None),
    ],
)
def test_name_in_filter(text: str | None, name: str | None) -> None:
    """Only a conjunction that pins displayName narrows the objects looked at."""
    assert name_in_filter(text) == name


async def test_filtered_lists_follow_renames_and_deletes(graph: PlainGraph) -> None:
    a = await instantiate(graph, AWS, "Name One")
    b = await instantiate(graph, DATABRICKS, "name one")
    await instantiate(graph, AWS, "Other")

    async def ids(path: str, flt: str) -> set[str]:
        return {o["id"] for o in await collect(graph, path, {"$filter": flt})}

    app_a, app_b = a["application"]["id"], b["application"]["id"]
    sp_a = a["servicePrincipal"]["id"]
    assert await ids("/applications", "displayName eq 'NAME ONE'") == {app_a, app_b}
    assert await ids(
        "/applications", f"displayName eq 'Name One' and applicationTemplateId eq '{AWS}'"
    ) == {app_a}
    assert await ids("/applications", "displayName eq 'Name One' or displayName eq 'Other'") == {
        app_a,
        app_b,
    } | await ids("/applications", "displayName eq 'Other'")

    r = await graph.patch(f"/applications/{app_a}", {"displayName": "Renamed"})
    assert r.status == 204, r.body
    r = await graph.patch(f"/servicePrincipals/{sp_a}", {"displayName": "Renamed SP"})
    assert r.status == 204, r.body
    assert await ids("/applications", "displayName eq 'Name One'") == {app_b}
    assert await ids("/applications", "displayName eq 'renamed'") == {app_a}
    assert await ids("/servicePrincipals", "displayName eq 'Renamed SP'") == {sp_a}
    assert sp_a not in await ids("/servicePrincipals", "displayName eq 'Name One'")

    r = await graph.delete(f"/applications/{app_b}")
    assert r.status == 204, r.body
    assert await ids("/applications", "displayName eq 'Name One'") == set()
    r = await graph.delete(f"/directory/deletedItems/{app_b}")
    assert r.status == 204, r.body
    assert await ids("/applications", "displayName eq 'Name One'") == set()
