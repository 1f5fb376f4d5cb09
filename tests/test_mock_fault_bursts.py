"""The mock's counted faults (the next N requests of a route), slow answers, 429 storms,
malformed answers and token-endpoint faults, over real HTTPS."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
import pytest
import requests
from msal.exceptions import MsalServiceError

from bulkprov.mockgraph import FaultSettings, MockGraph, MockSettings
from bulkprov.mockgraph.settings import MALFORMED_KINDS

from .graphclient import PlainGraph, msal_app

pytestmark = pytest.mark.anyio

AWS = "8b1025e4-1dd2-430b-a150-2ef79cd700f5"


def faulty(**faults: Any) -> MockSettings:
    return MockSettings.quiet(time_scale=0.01, faults=FaultSettings(**faults))


async def raw_get(graph: PlainGraph, path: str) -> tuple[int, str, bytes, dict[str, str]]:
    assert graph.session is not None
    async with graph.session.get(
        graph.url(path), ssl=graph.ssl, headers={"Authorization": f"Bearer {graph.token}"}
    ) as resp:
        return resp.status, resp.content_type, await resp.read(), dict(resp.headers)


@pytest.mark.parametrize("mock_settings", [faulty(error_burst={"templates": 3})])
async def test_error_burst_fails_exactly_the_next_n(graph: PlainGraph, mock: MockGraph) -> None:
    """A burst of 3 on templates: the next 3 template reads answer 5xx, then every one works,
    and other routes are never touched."""
    assert (await graph.get("/applications")).status == 200
    statuses = [(await graph.get("/applicationTemplates")).status for _ in range(6)]
    assert all(s >= 500 for s in statuses[:3]) and statuses[3:] == [200, 200, 200]
    assert mock.stats()["faults"]["faults_5xx"] == 3


@pytest.mark.parametrize("mock_settings", [faulty()])
async def test_bursts_restart_when_set_through_control(graph: PlainGraph, mock: MockGraph) -> None:
    """/_mock/control sets a burst on a running mock; setting it again arms it again."""
    for _ in range(2):
        r = await graph.post(
            f"{graph.info.graph_url}/_mock/control",
            {"action": "settings", "changes": {"faults": {"error_burst": {"directory_read": 2}}}},
        )
        assert r.status == 200, r.body
        statuses = [(await graph.get("/applications")).status for _ in range(3)]
        assert [s >= 500 for s in statuses] == [True, True, False]
    assert mock.stats()["faults"]["faults_5xx"] == 4


@pytest.mark.parametrize("mock_settings", [faulty(drop_burst={"templates": 2})])
async def test_drop_burst_cuts_the_response_in_the_middle(
    graph: PlainGraph, mock: MockGraph
) -> None:
    """A drop burst sends the status line and half of the body, then resets the connection."""
    for _ in range(2):
        with pytest.raises(
            (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)
        ):
            await raw_get(graph, "/applicationTemplates")
    assert (await graph.get("/applicationTemplates")).status == 200
    assert mock.stats()["faults"]["drops_after"] >= 2


@pytest.mark.parametrize("mock_settings", [faulty(slow_burst={"instantiate": 1}, slow_delay=50)])
async def test_slow_answer_takes_effect_and_comes_late(graph: PlainGraph, mock: MockGraph) -> None:
    """A slow instantiate creates its objects at once and answers 50 Graph s (0.5 s) later:
    a client with a shorter timeout sees nothing, yet the application exists."""
    with pytest.raises(asyncio.TimeoutError):
        await graph.post(
            f"/applicationTemplates/{AWS}/instantiate", {"displayName": "slow-one"}, timeout=0.15
        )
    r = await graph.get("/applications", params={"$filter": "displayName eq 'slow-one'"})
    assert len(r.body["value"]) == 1
    assert mock.stats()["faults"]["faults_slow"] == 1
    await asyncio.sleep(0.45)  # let the late answer go out before the mock closes


@pytest.mark.parametrize(
    "mock_settings",
    [faulty(throttle_burst={"job_create": 2, "templates": 1}, throttle_retry_after=600)],
)
async def test_throttle_storm_answers_429_with_a_long_retry_after(
    graph: PlainGraph, mock: MockGraph
) -> None:
    """A 429 storm answers Graph's 429 with the configured Retry-After and a throttle scope."""
    r = await graph.get("/applicationTemplates")
    assert r.status == 429 and r.error_code == "TooManyRequests"
    assert r.headers["Retry-After"] == "600"
    assert "/ResourceUnits/" in r.headers["x-ms-throttle-scope"]
    assert (await graph.get("/applicationTemplates")).status == 200
    assert mock.stats()["faults"]["faults_429_storm"] == 1


@pytest.mark.parametrize("kind", MALFORMED_KINDS)
async def test_each_malformed_kind(kind: str) -> None:
    """Each malformed kind changes the answer as documented, after the request took effect."""
    settings = faulty(
        malformed_burst={"instantiate": 1, "directory_read": 1}, malformed_kinds=(kind,)
    )
    async with MockGraph(settings) as mock:
        assert mock.info is not None
        async with PlainGraph(mock.info) as graph:
            assert graph.session is not None
            async with graph.session.post(
                graph.url(f"/applicationTemplates/{AWS}/instantiate"),
                ssl=graph.ssl,
                headers={
                    "Authorization": f"Bearer {graph.token}",
                    "Content-Type": "application/json",
                },
                data=orjson.dumps({"displayName": f"malformed {kind}"}),
            ) as resp:
                status, ctype, raw = resp.status, resp.content_type, await resp.read()
                headers = dict(resp.headers)
            _s, _c, listed, _h = await raw_get(graph, "/applications")  # the read burst: this one
            again = await graph.get("/applications")
        assert again.status == 200
        (app,) = again.body["value"]  # the instantiate took effect whatever its answer
        assert app["displayName"] == f"malformed {kind}"
        assert mock.stats()["faults"][f"faults_malformed_{kind}"] == 2
    if kind == "html_502":
        assert (status, ctype) == (502, "text/html") and b"Bad Gateway" in raw
        assert "request-id" not in headers
    elif kind == "html_200":
        assert (status, ctype) == (200, "text/html") and raw.startswith(b"<!DOCTYPE html>")
    elif kind == "empty":
        assert status == 201 and raw == b""
    elif kind == "truncated":
        assert status == 201 and raw
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(raw)
    elif kind == "extra_fields":
        body = orjson.loads(raw)
        assert body["application"]["id"] and "bulkprovFutureProperty" in body
        assert "bulkprovFutureProperty" in orjson.loads(listed)["value"][0]
    else:
        body = orjson.loads(raw)
        assert "id" not in body["application"] and "id" not in body["servicePrincipal"]
        assert body["application"]["appId"]
        assert "id" not in orjson.loads(listed)["value"][0]


def test_malformed_kinds_are_checked() -> None:
    with pytest.raises(ValueError, match="malformed_kinds"):
        FaultSettings(malformed_kinds=("html_404",))
    with pytest.raises(ValueError, match="whole numbers"):
        FaultSettings(error_burst={"templates": -1})
    with pytest.raises(ValueError, match="unknown route classes"):
        FaultSettings(slow_burst={"templatez": 1})


@pytest.mark.parametrize(
    "mock_settings", [faulty(error_burst={"token": 2}, drop_burst={"token": 1})]
)
async def test_token_endpoint_bursts(mock: MockGraph) -> None:
    """The token endpoint drops one connection, answers 503 twice, then issues tokens.
    (MSAL raises on a 5xx from the token endpoint and replays it from its cache for 5 s, so the
    503s are asked for with fresh MSAL applications.)"""
    assert mock.info is not None
    scopes = ["https://graph.microsoft.com/.default"]

    def acquire() -> dict[str, Any]:
        return dict(msal_app(mock.info).acquire_token_for_client(scopes=scopes))

    with pytest.raises(requests.ConnectionError):
        await asyncio.to_thread(acquire)
    for _ in range(2):
        with pytest.raises(MsalServiceError, match="503"):
            await asyncio.to_thread(acquire)
    assert "access_token" in await asyncio.to_thread(acquire)
    faults = mock.stats()["faults"]
    assert (faults["faults_token_drop"], faults["faults_token_5xx"]) == (1, 2)
