"""JSON $batch in the mock: size limit, per-item status, dependsOn and throttled items."""

from __future__ import annotations

from typing import Any

import pytest

from bulkprov.mockgraph import MockGraph, MockSettings, ThrottleSettings

from .graphclient import PlainGraph

pytestmark = pytest.mark.anyio

AWS = "8b1025e4-1dd2-430b-a150-2ef79cd700f5"
MISSING = "00000000-0000-0000-0000-000000000000"


def by_id(reply_body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["id"]: item for item in reply_body["responses"]}


async def test_batch_of_20_answers_each_item(graph: PlainGraph) -> None:
    """A batch of 20 requests answers 200 with one response per item, each with its own
    status (200 for a template read, 404 for a missing application)."""
    requests = [
        {"id": str(i), "method": "GET", "url": "/applicationTemplates?$top=1"} for i in range(19)
    ]
    requests.append({"id": "19", "method": "GET", "url": f"/applications/{MISSING}"})
    r = await graph.post("/$batch", {"requests": requests})
    assert r.status == 200
    items = by_id(r.body)
    assert set(items) == {str(i) for i in range(20)}
    assert all(items[str(i)]["status"] == 200 for i in range(19))
    assert len(items["0"]["body"]["value"]) == 1
    assert items["19"]["status"] == 404
    assert items["19"]["body"]["error"]["code"] == "Request_ResourceNotFound"


async def test_batch_of_21_is_400(graph: PlainGraph) -> None:
    """A batch of 21 requests exceeds Graph's limit of 20: 400 for the whole batch."""
    requests = [{"id": str(i), "method": "GET", "url": "/applicationTemplates"} for i in range(21)]
    r = await graph.post("/$batch", {"requests": requests})
    assert r.status == 400
    assert r.error_code == "BadRequest"


async def test_batch_writes_and_reads(graph: PlainGraph) -> None:
    """Items may write: an instantiate inside a batch answers 201 and its objects exist."""
    r = await graph.post(
        "/$batch",
        {
            "requests": [
                {
                    "id": "a",
                    "method": "POST",
                    "url": f"/applicationTemplates/{AWS}/instantiate",
                    "headers": {"Content-Type": "application/json"},
                    "body": {"displayName": "Batched"},
                },
            ]
        },
    )
    assert r.status == 200
    item = by_id(r.body)["a"]
    assert item["status"] == 201
    app_id = item["body"]["application"]["id"]
    assert (await graph.get(f"/applications/{app_id}")).status == 200


async def test_depends_on_failed_item_is_424(graph: PlainGraph) -> None:
    """An item that dependsOn a failed item is not run and answers 424; one depending on a
    successful item runs."""
    r = await graph.post(
        "/$batch",
        {
            "requests": [
                {"id": "1", "method": "GET", "url": f"/applications/{MISSING}"},
                {
                    "id": "2",
                    "method": "PATCH",
                    "url": f"/applications/{MISSING}",
                    "dependsOn": ["1"],
                    "headers": {"Content-Type": "application/json"},
                    "body": {"notes": "x"},
                },
                {"id": "3", "method": "GET", "url": "/applicationTemplates?$top=1"},
                {
                    "id": "4",
                    "method": "GET",
                    "url": "/applicationTemplates?$top=2",
                    "dependsOn": ["3"],
                },
            ]
        },
    )
    assert r.status == 200
    items = by_id(r.body)
    assert items["1"]["status"] == 404
    assert items["2"]["status"] == 424
    assert items["3"]["status"] == 200
    assert items["4"]["status"] == 200 and len(items["4"]["body"]["value"]) == 2


async def test_batch_without_token_is_401(graph: PlainGraph) -> None:
    """The batch envelope needs a token: without one the whole batch is 401."""
    r = await graph.post(
        "/$batch",
        {"requests": [{"id": "1", "method": "GET", "url": "/applicationTemplates"}]},
        auth=False,
    )
    assert r.status == 401
    assert r.error_code == "InvalidAuthenticationToken"


@pytest.mark.parametrize(
    "mock_settings",
    [MockSettings.quiet(time_scale=0.01, throttle=ThrottleSettings(write_limit=2))],
)
async def test_throttled_items_are_429_inside_a_200_batch(
    graph: PlainGraph, mock: MockGraph
) -> None:
    """$batch does not bypass throttling: with a quota of 2 writes, a batch of 4 writes is 200
    with two items 429, each carrying its own Retry-After and throttle scope."""
    requests = [
        {
            "id": str(i),
            "method": "POST",
            "url": f"/applicationTemplates/{AWS}/instantiate",
            "headers": {"Content-Type": "application/json"},
            "body": {"displayName": f"B{i}"},
        }
        for i in range(4)
    ]
    r = await graph.post("/$batch", {"requests": requests})
    assert r.status == 200
    statuses = sorted(item["status"] for item in r.body["responses"])
    assert statuses == [201, 201, 429, 429]
    for item in r.body["responses"]:
        if item["status"] == 429:
            assert int(item["headers"]["Retry-After"]) >= 1
            assert item["headers"]["x-ms-throttle-information"] == "WriteLimitExceeded"
            assert item["body"]["error"]["code"] == "TooManyRequests"
    assert mock.stats()["tenants"][next(iter(mock.stats()["tenants"]))]["applications"] == 2
