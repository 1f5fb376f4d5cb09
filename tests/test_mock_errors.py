"""Graph's error answers and standard response headers, as the mock gives them over HTTPS."""

from __future__ import annotations

import uuid
from email.utils import parsedate_to_datetime

import pytest

from .graphclient import PlainGraph, Reply

pytestmark = pytest.mark.anyio

AWS = "8b1025e4-1dd2-430b-a150-2ef79cd700f5"


def assert_graph_error(r: Reply, status: int, code: str) -> None:
    assert r.status == status, r.body
    assert r.error_code == code, r.body
    assert r.body["error"]["message"]
    assert r.body["error"]["innerError"]["request-id"] == r.headers["request-id"]


async def test_unknown_application_is_404(graph: PlainGraph) -> None:
    """An unknown (well-formed) application id is 404 Request_ResourceNotFound."""
    missing = str(uuid.uuid4())
    r = await graph.get(f"/applications/{missing}")
    assert_graph_error(r, 404, "Request_ResourceNotFound")
    assert missing in r.body["error"]["message"]
    assert_graph_error(
        await graph.delete(f"/servicePrincipals/{missing}"), 404, "Request_ResourceNotFound"
    )


async def test_non_guid_id_is_400(graph: PlainGraph) -> None:
    """A non-GUID object id is 400, not 404."""
    assert_graph_error(await graph.get("/applications/not-a-guid"), 400, "Request_BadRequest")
    assert_graph_error(
        await graph.get("/servicePrincipals/12345/synchronization/jobs"), 400, "Request_BadRequest"
    )


async def test_malformed_json_is_400(graph: PlainGraph) -> None:
    """A malformed JSON body is 400 BadRequest; so is an empty one where JSON is expected."""
    r = await graph.request(
        "POST",
        f"/applicationTemplates/{AWS}/instantiate",
        data=b'{"displayName": ',
        headers={"Content-Type": "application/json"},
    )
    assert_graph_error(r, 400, "BadRequest")
    r = await graph.request("POST", f"/applicationTemplates/{AWS}/instantiate", data=b"")
    assert_graph_error(r, 400, "BadRequest")
    r = await graph.post(f"/applicationTemplates/{AWS}/instantiate", {"displayName": ""})
    assert r.status == 400


async def test_unsupported_filter_property_is_400(graph: PlainGraph) -> None:
    """Filtering applications on an unsupported property is 400 Request_UnsupportedQuery; a
    syntax error is 400 BadRequest."""
    r = await graph.get("/applications", params={"$filter": "notes eq 'x'"})
    assert_graph_error(r, 400, "Request_UnsupportedQuery")
    assert "notes" in r.body["error"]["message"]
    r = await graph.get("/applications", params={"$filter": "contains(appId, 'x')"})
    assert_graph_error(r, 400, "Request_UnsupportedQuery")
    r = await graph.get("/applications", params={"$filter": "displayName eq"})
    assert_graph_error(r, 400, "BadRequest")


async def test_bad_query_options_are_400(graph: PlainGraph) -> None:
    """$top outside 1..999 and a malformed $skiptoken are 400."""
    assert (await graph.get("/applications", params={"$top": "0"})).status == 400
    assert (await graph.get("/applications", params={"$top": "1000"})).status == 400
    assert (await graph.get("/applications", params={"$top": "ten"})).status == 400
    assert (await graph.get("/applications", params={"$skiptoken": "garbage"})).status == 400


async def test_unknown_segment_is_400(graph: PlainGraph) -> None:
    """An unknown path segment is 400 BadRequest naming the segment."""
    r = await graph.get("/applicationTemplatez")
    assert_graph_error(r, 400, "BadRequest")
    assert "applicationTemplatez" in r.body["error"]["message"]


async def test_wrong_method_is_405(graph: PlainGraph) -> None:
    """A known path with a method it does not support is 405."""
    r = await graph.delete("/applicationTemplates")
    assert r.status == 405
    assert r.body["error"]["code"] == "Request_BadRequest"
    r = await graph.put(f"/applications/{uuid.uuid4()}", {"displayName": "x"})
    assert r.status == 405


async def test_response_headers(graph: PlainGraph) -> None:
    """Every answer carries request-id, echoes client-request-id, and has a Date header; a
    missing client-request-id is replaced by the request-id."""
    sent = str(uuid.uuid4())
    r = await graph.get("/applicationTemplates", headers={"client-request-id": sent})
    assert r.status == 200
    assert uuid.UUID(r.headers["request-id"])
    assert r.headers["client-request-id"] == sent
    assert parsedate_to_datetime(r.headers["Date"]).tzinfo is not None
    assert r.headers["Content-Type"].startswith("application/json")
    r2 = await graph.get("/applicationTemplates")
    assert r2.headers["request-id"] != r.headers["request-id"]
    assert r2.headers["client-request-id"] == r2.headers["request-id"]
    r3 = await graph.get(f"/applications/{uuid.uuid4()}", headers={"client-request-id": sent})
    assert r3.headers["client-request-id"] == sent
    assert r3.body["error"]["innerError"]["client-request-id"] == sent


async def test_beta_endpoint_serves_the_same_api(graph: PlainGraph) -> None:
    """The beta endpoint answers like v1.0, with beta in @odata.context."""
    r = await graph.get(
        graph.info.graph_url + "/beta/applicationTemplates",
        params={"$filter": "displayName eq 'AWS Single-Account Access'"},
    )
    assert r.status == 200
    assert [t["id"] for t in r.body["value"]] == [AWS]
    assert "/beta/$metadata#" in r.body["@odata.context"]
