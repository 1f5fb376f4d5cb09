"""Injected faults (5xx, dropped connections, instantiate 404 / timeout that still create the
objects), their determinism, and the scaled clock, over real HTTPS."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from bulkprov.mockgraph import FaultSettings, LatencySettings, MockGraph, MockSettings

from .graphclient import PlainGraph

pytestmark = pytest.mark.anyio

AWS = "8b1025e4-1dd2-430b-a150-2ef79cd700f5"
DROPPED = (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientOSError)


def faulty(**faults: object) -> MockSettings:
    return MockSettings.quiet(time_scale=0.01, faults=FaultSettings(**faults))  # type: ignore[arg-type]


@pytest.mark.parametrize("mock_settings", [faulty(error_rate={"templates": 1.0})])
async def test_error_rate_answers_5xx(graph: PlainGraph, mock: MockGraph) -> None:
    """With error_rate 1.0 on templates, template reads answer 500/502/503/504 with Graph's
    error body, while other routes are unaffected."""
    replies = [await graph.get("/applicationTemplates") for _ in range(12)]
    statuses = {r.status for r in replies}
    assert statuses <= {500, 502, 503, 504}
    assert len(statuses) >= 2  # the status is drawn, not fixed
    codes = {r.error_code for r in replies}
    assert codes <= {"InternalServerError", "BadGateway", "ServiceUnavailable", "GatewayTimeout"}
    assert all(r.body["error"]["innerError"]["request-id"] for r in replies)
    assert mock.stats()["faults"]["faults_5xx"] == 12
    assert (await graph.get("/applications")).status == 200


@pytest.mark.parametrize("mock_settings", [faulty(drop_rate={"templates": 1.0})])
async def test_drop_rate_drops_the_connection(graph: PlainGraph, mock: MockGraph) -> None:
    """With drop_rate 1.0 the client sees a dropped connection (before or after the
    response started), never an answer."""
    for _ in range(6):
        with pytest.raises(DROPPED):
            await graph.get("/applicationTemplates")
    faults = mock.stats()["faults"]
    # aiohttp may resend a request once when a reused keep-alive connection drops
    assert 6 <= faults.get("drops_before", 0) + faults.get("drops_after", 0) <= 12
    assert faults.get("drops_before", 0) >= 1 and faults.get("drops_after", 0) >= 1
    assert (await graph.get("/applications")).status == 200


async def _status_sequence(seed: int) -> list[int]:
    settings = faulty(seed=seed, error_rate={"templates": 0.5, "directory_read": 0.3})
    async with MockGraph(settings) as mock:
        assert mock.info is not None
        async with PlainGraph(mock.info) as g:
            out = []
            for i in range(16):
                path = "/applicationTemplates" if i % 2 else "/applications"
                out.append((await g.get(path)).status)
            return out


async def test_faults_are_deterministic_for_a_seed() -> None:
    """Two mocks with the same seed answer the same request sequence with the same statuses;
    another seed gives another sequence."""
    first = await _status_sequence(7)
    second = await _status_sequence(7)
    other = await _status_sequence(8)
    assert first == second
    assert set(first) - {200}  # some faults happened
    assert 200 in first
    assert other != first


@pytest.mark.parametrize("mock_settings", [faulty(instantiate_404_rate=1.0)])
async def test_instantiate_404_but_created(graph: PlainGraph, mock: MockGraph) -> None:
    """instantiate can answer 404 although it created the objects (terraform-azuread #1406):
    the application is found by listing with a displayName filter."""
    r = await graph.post(
        f"/applicationTemplates/{AWS}/instantiate", {"displayName": "tmp-1406-a1b2"}
    )
    assert r.status == 404
    assert r.error_code == "Request_ResourceNotFound"
    r = await graph.get("/applications", params={"$filter": "displayName eq 'tmp-1406-a1b2'"})
    assert r.status == 200
    (app,) = r.body["value"]
    assert app["applicationTemplateId"] == AWS
    r = await graph.get(f"/servicePrincipals(appId='{app['appId']}')")
    assert r.status == 200
    assert mock.stats()["faults"]["instantiate_404_but_created"] == 1


@pytest.mark.parametrize(
    "mock_settings",
    [faulty(instantiate_timeout_rate=1.0, instantiate_timeout=30)],  # hangs 0.3 s real
)
async def test_instantiate_timeout_but_created(graph: PlainGraph, mock: MockGraph) -> None:
    """instantiate can hang past the client's timeout although it created the objects."""
    with pytest.raises(asyncio.TimeoutError):
        await graph.post(
            f"/applicationTemplates/{AWS}/instantiate", {"displayName": "tmp-timeout"}, timeout=0.1
        )
    r = await graph.get("/applications", params={"$filter": "displayName eq 'tmp-timeout'"})
    assert r.status == 200 and len(r.body["value"]) == 1
    assert mock.stats()["faults"]["instantiate_timeout_but_created"] == 1
    await asyncio.sleep(0.25)  # let the hanging handler finish before the mock closes


@pytest.mark.parametrize(
    "mock_settings",
    [
        MockSettings.quiet(
            time_scale=0.002, latency=LatencySettings(per_route={"templates": 100.0}, jitter=0.0)
        )
    ],
)
async def test_time_scale_compresses_latency(graph: PlainGraph, mock: MockGraph) -> None:
    """Service time is in Graph seconds: 100 Graph s of latency last 0.2 s real at
    time_scale 0.002, and the mock's clock advances 1/time_scale times faster."""
    g0, t0 = mock.clock.now(), time.monotonic()
    r = await graph.get("/applicationTemplates")
    real = time.monotonic() - t0
    assert r.status == 200
    assert 0.18 <= real < 1.0
    assert mock.clock.now() - g0 >= 95
