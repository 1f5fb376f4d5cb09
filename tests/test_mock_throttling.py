"""Graph's throttling in the mock: write quota, 429 shape, Retry-After, early retries and
resource units, over real HTTPS."""

from __future__ import annotations

import asyncio

import pytest

from bulkprov.mockgraph import MockGraph, MockSettings, ThrottleSettings

from .graphclient import PlainGraph, Reply

pytestmark = pytest.mark.anyio

AWS = "8b1025e4-1dd2-430b-a150-2ef79cd700f5"
TIME_SCALE = 0.01
WRITES = 5  # per 150 Graph s: one write comes back every 30 Graph s = 0.3 s real


@pytest.fixture
def mock_settings() -> MockSettings:
    return MockSettings.quiet(
        time_scale=TIME_SCALE, throttle=ThrottleSettings(write_limit=WRITES, write_window=150)
    )


async def _burn_writes(graph: PlainGraph) -> tuple[str, Reply]:
    """Instantiate once and PATCH until the write quota is spent; returns the app id and the
    first throttled reply."""
    r = await graph.post(f"/applicationTemplates/{AWS}/instantiate", {"displayName": "Quota"})
    assert r.status == 201
    app_id = r.body["application"]["id"]
    for n in range(WRITES - 1):
        r = await graph.patch(f"/applications/{app_id}", {"notes": f"write {n + 2}"})
        assert r.status == 204, (n, r.body)
    r = await graph.patch(
        f"/applications/{app_id}",
        {"notes": "write 6"},
        headers={"client-request-id": "sixth-write"},
    )
    return app_id, r


async def test_sixth_write_is_throttled_with_graph_shape(
    graph: PlainGraph, mock: MockGraph
) -> None:
    """With 5 writes per 150 s the 6th write is 429 with an integer Retry-After, Graph's
    x-ms-throttle-scope / -information headers and Graph's TooManyRequests body."""
    _app, r = await _burn_writes(graph)
    assert r.status == 429
    retry_after = int(r.headers["Retry-After"])  # an integer, in Graph seconds
    assert 1 <= retry_after <= 30
    assert mock.info is not None
    assert r.headers["x-ms-throttle-scope"] == (
        f"Tenant_Application/Write/{mock.info.client_id}/{mock.info.tenant_id}"
    )
    assert r.headers["x-ms-throttle-information"] == "WriteLimitExceeded"
    err = r.body["error"]
    assert err["code"] == "TooManyRequests"
    inner = err["innerError"]
    assert inner["request-id"] == r.headers["request-id"]
    assert inner["client-request-id"] == "sixth-write"
    assert inner["date"]
    assert mock.stats()["throttled"] == 1
    assert mock.stats()["earlyRetries"] == 0


async def test_ignoring_retry_after_is_an_early_retry(graph: PlainGraph, mock: MockGraph) -> None:
    """A client that retries at once, ignoring Retry-After, is throttled again and counted as
    an early retry."""
    app_id, r = await _burn_writes(graph)
    assert r.status == 429
    r2 = await graph.patch(f"/applications/{app_id}", {"notes": "too soon"})
    assert r2.status == 429
    assert int(r2.headers["Retry-After"]) >= 1
    assert mock.stats()["earlyRetries"] == 1
    assert mock.stats()["throttled"] == 2


async def test_waiting_retry_after_succeeds(graph: PlainGraph, mock: MockGraph) -> None:
    """A client that waits Retry-After (scaled: seconds * time_scale) succeeds, with no early
    retry counted."""
    app_id, r = await _burn_writes(graph)
    assert r.status == 429
    await asyncio.sleep(int(r.headers["Retry-After"]) * TIME_SCALE + 0.03)
    r2 = await graph.patch(f"/applications/{app_id}", {"notes": "patient"})
    assert r2.status == 204, r2.body
    assert mock.stats()["earlyRetries"] == 0
    assert (await graph.get(f"/applications/{app_id}")).body["notes"] == "patient"


async def test_reads_pass_while_write_scope_is_closed(graph: PlainGraph) -> None:
    """Reads are not blocked by a closed write scope: GETs answer 200 after a write 429."""
    app_id, r = await _burn_writes(graph)
    assert r.status == 429
    assert (await graph.get(f"/applications/{app_id}")).status == 200
    assert (await graph.get("/applications")).status == 200
    assert (await graph.get("/applicationTemplates")).status == 200


async def test_resource_unit_header(graph: PlainGraph) -> None:
    """Normal responses carry x-ms-resource-unit: 2 for GET /applications, 1 for other
    requests, and $select lowers the cost (minimum 1)."""
    r = await graph.post(f"/applicationTemplates/{AWS}/instantiate", {"displayName": "RU"})
    assert r.headers["x-ms-resource-unit"] == "1"
    app_id = r.body["application"]["id"]
    assert (await graph.get("/applications")).headers["x-ms-resource-unit"] == "2"
    r = await graph.get("/applications", params={"$select": "id,displayName"})
    assert r.headers["x-ms-resource-unit"] == "1"
    assert set(r.body["value"][0]) == {"id", "displayName"}
    assert (await graph.get(f"/applications/{app_id}")).headers["x-ms-resource-unit"] == "1"
    assert (await graph.get("/servicePrincipals")).headers["x-ms-resource-unit"] == "1"
    assert (await graph.get("/applicationTemplates")).headers["x-ms-resource-unit"] == "1"
    r = await graph.patch(f"/applications/{app_id}", {"notes": "x"})
    assert r.headers["x-ms-resource-unit"] == "1"


@pytest.mark.parametrize(
    "mock_settings",
    [MockSettings.quiet(time_scale=1.0, throttle=ThrottleSettings(ru_limit=10))],
)
async def test_resource_unit_quota(graph: PlainGraph) -> None:
    """Spending the resource-unit quota (10 RU here, GET /applications costs 2) gives 429
    ResourceUnitLimitExceeded, and x-ms-throttle-limit-percentage appears above 80 % use, as
    Graph sends it: the share of the limit used (0.8 and up)."""
    replies = [await graph.get("/applications") for _ in range(5)]
    assert [r.status for r in replies] == [200] * 5
    assert "x-ms-throttle-limit-percentage" not in replies[0].headers  # 20 % used
    assert 0.8 <= float(replies[-1].headers["x-ms-throttle-limit-percentage"]) <= 1.0
    r = await graph.get("/applications")
    assert r.status == 429
    assert r.headers["x-ms-throttle-information"] == "ResourceUnitLimitExceeded"
    assert r.headers["x-ms-throttle-scope"].startswith("Tenant_Application/ResourceUnits/")


@pytest.mark.parametrize("lag", [0.0, 0.3])
def test_early_retry_allows_for_the_event_loops_lag(lag: float) -> None:
    """A request on another connection is an early retry once the 429 was delivered more than
    the grace plus twice the loop's recent lag ago; before that it may have been on its way.
    On the connection that carried the 429 it is early at once."""
    from bulkprov.mockgraph.throttle import Charge, Throttler, delivered

    t = Throttler(ThrottleSettings(write_limit=1, write_window=100.0), grace=0.5)
    t.loop_lag = lag
    write = Charge(ru=1, write=True)

    def check(now: float, conn: int) -> tuple[bool, bool]:
        v = t.check(app_id="a", tenant_id="t", charge=write, now=now, conn=conn)
        if v.bucket is not None:
            delivered(v.bucket, now, conn)
        return v.allowed, v.early_retry

    assert check(0.0, 1) == (True, False)
    assert check(0.0, 1) == (False, False)  # the 429 that closes the scope, on connection 1
    edge = 0.5 + 2 * lag
    assert check(edge - 0.01, 2) == (False, False)
    assert check(edge - 0.01, 1) == (False, True)
    assert check(edge + 0.01, 3) == (False, True)


async def test_mock_watches_its_event_loops_lag(mock: MockGraph) -> None:
    """A callback held up 0.2 s shows in the throttler's loop lag (in Graph seconds), and the
    lag is forgotten a second later."""
    import time

    await asyncio.sleep(0.05)
    time.sleep(0.2)  # noqa: ASYNC251 (the loop is blocked, as a busy one is)
    await asyncio.sleep(0.05)
    throttler = mock.service.throttler
    assert throttler.loop_lag >= 0.15 / mock.settings.time_scale
    await asyncio.sleep(1.2)
    assert throttler.loop_lag < 0.15 / mock.settings.time_scale
