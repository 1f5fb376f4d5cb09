"""No redirect is followed: a 3xx answer from Graph or the token endpoint fails the request,
naming the status and the Location host, and nothing reaches that host. Over real HTTP: the
mock answers the redirect, and a second loopback listener stands for the foreign host."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bulkprov.client import GraphClient
from bulkprov.errors import AuthError
from bulkprov.mockgraph import MockGraph
from bulkprov.settings import ClientSettings

from .enginekit import aws_manifest, connection, run_engine
from .graphclient import PlainGraph

pytestmark = pytest.mark.anyio


class Foreign:
    """A loopback HTTP server that records every request it gets."""

    def __init__(self, server: TestServer) -> None:
        self.server = server
        self.received: list[str] = []

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"


@pytest.fixture
async def foreign() -> AsyncIterator[Foreign]:
    async def record(request: web.Request) -> web.Response:
        box.received.append(f"{request.method} {request.path}")
        return web.json_response({"value": []}, status=200)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    server = TestServer(app, host="127.0.0.1", port=0)
    box = Foreign(server)
    await server.start_server()
    try:
        yield box
    finally:
        await server.close()


async def redirect(graph: PlainGraph, route_class: str, status: int, location: str) -> None:
    r = await graph.post(
        f"{graph.info.graph_url}/_mock/control",
        {
            "action": "settings",
            "changes": {
                "faults": {
                    "redirect_burst": {route_class: 3},
                    "redirect_status": status,
                    "redirect_location": location,
                }
            },
        },
    )
    assert r.status == 200, r.body


async def test_the_mock_redirects_nothing_by_default(graph: PlainGraph) -> None:
    """Like Graph, the mock answers these calls without a redirect unless a fault asks."""
    r = await graph.get("/applicationTemplates")
    assert r.status == 200 and "Location" not in r.headers


@pytest.mark.parametrize(
    ("route_class", "status", "step", "route"),
    [
        (
            "validate",
            307,
            "validate",
            "POST /servicePrincipals/{id}/synchronization/jobs/{jobId}/validateCredentials",
        ),
        ("secrets", 308, "secrets", "PUT /servicePrincipals/{id}/synchronization/secrets"),
        (
            "sync_templates",
            302,
            "sync_template",
            "GET /servicePrincipals/{id}/synchronization/templates",
        ),
    ],
)
async def test_a_redirected_step_fails_and_sends_nothing_to_the_location(
    mock: MockGraph,
    graph: PlainGraph,
    foreign: Foreign,
    tmp_path: Path,
    route_class: str,
    status: int,
    step: str,
    route: str,
) -> None:
    """A 3xx to a step's call fails the instance at that step, naming the status and the
    Location's host (not its path or query), without a retry and without following it."""
    await redirect(graph, route_class, status, f"{foreign.origin}/collect?token=abc")
    manifest = aws_manifest(tmp_path / "m.csv", 1)
    result = await run_engine(mock, manifest, tmp_path / "ledger.jsonl")
    assert foreign.received == []
    assert result.statuses["failed"] == 1, result.statuses
    [failure] = result.failures
    assert failure["step"] == step and failure["code"] == "Redirected", failure
    assert f"answered {status}, a redirect to {foreign.origin};" in failure["message"]
    assert "collect" not in failure["message"] and "token=abc" not in failure["message"]
    assert mock.stats()["byRoute"][route] == {str(status): 1}  # not retried


async def test_a_redirected_token_request_does_not_carry_the_secret_away(
    mock: MockGraph, graph: PlainGraph, foreign: Foreign
) -> None:
    """A 307 from the token endpoint stops at once with an error naming status and host; the
    client secret is not POSTed to the Location."""
    await redirect(graph, "token", 307, f"{foreign.origin}/token")
    settings = ClientSettings(time_scale=mock.settings.time_scale)
    async with GraphClient(connection(mock), settings) as c:
        with pytest.raises(AuthError) as caught:
            await c.get("/applicationTemplates")
    assert foreign.received == []
    message = str(caught.value)
    assert f"answered 307, a redirect to {foreign.origin};" in message, message
    assert mock.info is not None and mock.info.client_secret not in message
    assert mock.stats()["byRoute"]["POST /{tenant}/oauth2/v2.0/token"]["307"] == 1
