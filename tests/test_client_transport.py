"""The Graph client through its transport seam, without a server: a scripted transport answers,
a fake clock and sleep stand for time (nothing waits for real), a fake token source for MSAL.
Retries (429 with its Retry-After, 5xx back-off, 401), redirects, transport failures, answers
that are not Graph's JSON, and the context every error carries."""

from __future__ import annotations

import errno
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import orjson
import pytest

from bulkprov.client import GraphClient
from bulkprov.errors import GraphError, GraphUnreachable, Redirected, Throttled, TransportError
from bulkprov.graph import Graph
from bulkprov.retry import RetryPolicy, backoff
from bulkprov.settings import ClientSettings, ConnectionSettings, Credential, Quota
from bulkprov.transport import Answer, Request

pytestmark = pytest.mark.anyio

GRAPH = "https://graph.example.test"
SP = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
SEED = 7
POLICY = RetryPolicy(max_attempts=4, max_throttle_attempts=3, base_delay=1.0, max_delay=8.0)
HTML = b"<html><head><title>Sign in</title></head><body>portal</body></html>"


class Clock:
    """The client's clock and sleep: a sleep moves the clock on at once."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await anyio.lowlevel.checkpoint()


class Tokens:
    """Hands out token-1, token-2, ...: a new one after the current one is invalidated."""

    def __init__(self) -> None:
        self.issued = 0
        self.current: str | None = None
        self.invalidated: list[str] = []

    async def token(self) -> str:
        if self.current is None:
            self.issued += 1
            self.current = f"token-{self.issued}"
        return self.current

    async def invalidate(self, token: str) -> None:
        self.invalidated.append(token)
        if token == self.current:
            self.current = None


class Script:
    """A transport answering from a list (an exception is raised as no answer), recording
    each request with the client's clock at the moment it was sent."""

    def __init__(self, clock: Clock, replies: list[Answer | BaseException]) -> None:
        self.clock = clock
        self.replies = replies
        self.sent: list[tuple[float, Request]] = []
        self.closed = False

    @asynccontextmanager
    async def send(self, request: Request) -> AsyncIterator[Answer]:
        self.sent.append((self.clock.now, request))
        reply = self.replies.pop(0)
        await anyio.lowlevel.checkpoint()
        if isinstance(reply, BaseException):
            raise reply
        yield reply

    async def aclose(self) -> None:
        self.closed = True

    def ids(self) -> list[str]:
        return [r.headers["client-request-id"] for _, r in self.sent]


def json_answer(status: int, body: Any, **headers: str) -> Answer:
    return Answer(status, {"Content-Type": "application/json", **headers}, orjson.dumps(body))


def graph_error(status: int, code: str, message: str, **headers: str) -> Answer:
    return json_answer(
        status,
        {"error": {"code": code, "message": message, "details": [{"code": "DetailOne"}]}},
        **headers,
    )


OK = json_answer(200, {"id": SP, "appId": SP})


class Rig:
    def __init__(self, *replies: Answer | BaseException, policy: RetryPolicy = POLICY) -> None:
        self.clock = Clock()
        self.tokens = Tokens()
        self.transport = Script(self.clock, list(replies))
        # quotas that hold a request up by a tenth of a millisecond at most, even once a 429 has
        # spent them (the limiters pace on the event loop's clock, not the client's)
        big = Quota(limit=10_000, window=1)
        settings = ClientSettings(
            time_scale=1.0,
            retry=policy,
            seed=SEED,
            ru_quota=big,
            write_quota=big,
            reports_quota=big,
        )
        conn = ConnectionSettings(
            graph_url=GRAPH,
            tenant_id="t",
            client_id="c",
            credential=Credential(client_secret="dummy-not-a-secret"),
        )
        self.client = GraphClient(
            conn,
            settings,
            tokens=self.tokens,
            transport=self.transport,
            sleep=self.clock.sleep,
            clock=self.clock,
        )


async def test_a_429_waits_out_its_retry_after_on_the_clients_clock() -> None:
    """A 429 with Retry-After 30 closes its scope for 30 s (a hair more) of the client's
    clock, then the request goes again and succeeds; no real time passes."""
    rig = Rig(
        json_answer(
            429, {}, **{"Retry-After": "30", "x-ms-throttle-scope": "Tenant_Application/Write/t/c"}
        ),
        OK,
    )
    t0 = time.monotonic()
    async with rig.client as c:
        resp = await c.request("PATCH", f"/servicePrincipals/{SP}", json={"x": 1})
    assert time.monotonic() - t0 < 2
    assert resp.status == 200 and resp.body["id"] == SP
    (first, _), (second, _) = rig.transport.sent
    assert second - first == pytest.approx((30 + 0.005) * 1.02 + 0.005)  # + 5 real ms, at scale 1
    assert rig.clock.sleeps == [pytest.approx((30 + 0.005) * 1.02 + 0.005)]
    assert c.stats.throttled == 1 and c.stats.retries == 1 and c.stats.by_status[429] == 1
    assert len(set(rig.transport.ids())) == 2  # each try its own client-request-id
    assert rig.transport.closed is False  # a transport the client was given is not its own


async def test_429s_beyond_the_throttle_budget_raise_throttled_with_context() -> None:
    """After max_throttle_attempts 429s the request fails with Throttled, naming the scope,
    the Retry-After, the request and both ids of the last try."""
    throttled = json_answer(
        429,
        {},
        **{"Retry-After": "2", "request-id": "rid-429", "x-ms-throttle-scope": "Tenant/Read/t"},
    )
    rig = Rig(throttled, throttled, throttled)
    async with rig.client as c:
        with pytest.raises(Throttled) as caught:
            await c.get("/applications")
    err = caught.value
    assert err.retry_after == 2 and err.scope == "Tenant/Read/t"
    assert (err.method, err.path, err.request_id) == ("GET", "/applications", "rid-429")
    assert err.client_request_id == rig.transport.ids()[-1]
    assert len(rig.transport.sent) == POLICY.max_throttle_attempts


async def test_5xx_backs_off_exponentially_with_jitter() -> None:
    """503, 502, 500 then 200: three sleeps, each the policy's back-off for its attempt
    (the client's seeded random numbers), doubling and jittered."""
    rig = Rig(
        graph_error(503, "ServiceUnavailable", "busy"),
        graph_error(502, "BadGateway", "busy"),
        graph_error(500, "InternalServerError", "busy"),
        OK,
    )
    async with rig.client as c:
        resp = await c.request("GET", f"/servicePrincipals/{SP}")
    assert resp.status == 200
    rng = random.Random(SEED)
    assert rig.clock.sleeps == [backoff(n, POLICY, rng) for n in (1, 2, 3)]
    for n, slept in enumerate(rig.clock.sleeps, start=1):
        ceiling = min(POLICY.max_delay, POLICY.base_delay * 2 ** (n - 1))
        assert ceiling / 2 <= slept <= ceiling
    assert c.stats.retries == 3 and c.stats.requests == 4


async def test_5xx_to_a_post_that_creates_is_not_sent_again() -> None:
    """A POST that creates may have taken effect: a 503 fails it at once, with Graph's code."""
    rig = Rig(graph_error(503, "ServiceUnavailable", "try later", **{"request-id": "rid-1"}))
    async with rig.client as c:
        with pytest.raises(GraphError) as caught:
            await c.request("POST", "/applications", json={"displayName": "x"})
    assert caught.value.status == 503 and caught.value.code == "ServiceUnavailable"
    assert len(rig.transport.sent) == 1 and rig.clock.sleeps == []


async def test_5xx_beyond_the_budget_fails_with_the_last_answer() -> None:
    busy = graph_error(503, "ServiceUnavailable", "busy")
    rig = Rig(*[busy] * POLICY.max_attempts)
    async with rig.client as c:
        with pytest.raises(GraphError, match="503 ServiceUnavailable: busy"):
            await c.get("/applications")
    assert len(rig.transport.sent) == POLICY.max_attempts
    assert len(rig.clock.sleeps) == POLICY.max_attempts - 1


async def test_a_redirect_is_refused_and_not_followed() -> None:
    """A 307 fails the request (Redirected), naming the Location's origin only and both
    ids; nothing is sent again, to the Location or anywhere."""
    rig = Rig(Answer(307, {"Location": "https://evil.example/steal?x=1", "request-id": "r-3"}))
    async with rig.client as c:
        with pytest.raises(Redirected) as caught:
            await c.request(
                "PUT", f"/servicePrincipals/{SP}/synchronization/secrets", json={"value": []}
            )
    err = caught.value
    assert err.status == 307 and err.target == "https://evil.example:443"
    assert err.request_id == "r-3" and err.client_request_id == rig.transport.ids()[0]
    assert "steal" not in str(err) and f"PUT /servicePrincipals/{SP}/synchronization" in str(err)
    assert len(rig.transport.sent) == 1


async def test_an_error_names_method_path_and_both_ids_once() -> None:
    """A 404's GraphError carries Graph's code, message and detail codes, the method, the
    path below the versioned base URL, the request-id Graph sent and the client-request-id
    the client sent, each said once in its message."""
    rig = Rig(
        graph_error(404, "Request_ResourceNotFound", "no such object", **{"request-id": "rid-404"})
    )
    async with rig.client as c:
        with pytest.raises(GraphError) as caught:
            await c.get(f"/servicePrincipals/{SP}", params={"$select": "id"})
    err = caught.value
    ((_, sent),) = rig.transport.sent
    assert sent.url == f"{GRAPH}/v1.0/servicePrincipals/{SP}" and sent.params == {"$select": "id"}
    crid = sent.headers["client-request-id"]
    assert (err.status, err.code, err.graph_message) == (
        404,
        "Request_ResourceNotFound",
        "no such object",
    )
    assert err.detail_codes == ("DetailOne",)
    assert (err.method, err.path) == ("GET", f"/servicePrincipals/{SP}")
    assert (err.request_id, err.client_request_id) == ("rid-404", crid)
    text = str(err)
    assert text.count("rid-404") == 1 and text.count(crid) == 1 and text.count("/v1.0") == 0


async def test_graph_reads_name_the_request_of_an_answer_without_what_it_documents() -> None:
    """A job read whose status is not an object, asked again as a read is, fails with
    InvalidResponse naming the request and both ids of the last answer."""
    job = json_answer(200, {"id": "AWS.x", "status": "broken"}, **{"request-id": "rid-job"})
    rig = Rig(job, job, job)
    async with rig.client as c:
        with pytest.raises(GraphError) as caught:
            await Graph(c).job(SP, "AWS.x")
    err = caught.value
    assert err.code == "InvalidResponse" and "status is not an object" in err.graph_message
    assert err.path == f"/servicePrincipals/{SP}/synchronization/jobs/AWS.x"
    assert err.request_id == "rid-job" and err.client_request_id == rig.transport.ids()[-1]
    assert len(rig.transport.sent) == 3


async def test_a_collection_item_check_names_the_page_it_came_in() -> None:
    """Graph.collect follows @odata.nextLink; an item lacking its id fails naming the page's
    request (the second), not the first."""
    page1 = json_answer(
        200, {"value": [{"id": "a"}], "@odata.nextLink": f"{GRAPH}/v1.0/applications?$skiptoken=2"}
    )
    page2 = json_answer(200, {"value": [{"appId": "b"}]}, **{"request-id": "rid-page-2"})
    rig = Rig(page1, page2, page1, json_answer(200, {"value": [{"id": "b"}]}))
    async with rig.client as c:
        graph = Graph(c)
        with pytest.raises(GraphError) as caught:
            await graph.collect("/applications", required=("id",))
        assert [i["id"] for i in await graph.collect("/applications", required=("id",))] == [
            "a",
            "b",
        ]
    err = caught.value
    assert err.graph_message == "an item of the collection lacks id"
    assert err.request_id == "rid-page-2" and err.client_request_id == rig.transport.ids()[1]
    assert rig.transport.sent[1][1].url == f"{GRAPH}/v1.0/applications?$skiptoken=2"


async def test_a_read_answered_by_an_html_page_is_asked_again_then_fails_saying_so() -> None:
    """200 with a portal's HTML page: a read is asked again (backing off) up to the policy's
    attempts, then fails with InvalidResponse naming the page's title and the attempts."""
    page = Answer(200, {"Content-Type": "text/html"}, HTML)
    rig = Rig(*[page] * POLICY.max_attempts)
    async with rig.client as c:
        with pytest.raises(GraphError) as caught:
            await c.get("/applicationTemplates")
    err = caught.value
    assert err.code == "InvalidResponse" and err.status == 200
    assert "an HTML page titled 'Sign in'" in err.graph_message
    assert f"after {POLICY.max_attempts} attempts" in err.graph_message
    assert "portal" not in str(err)  # the page's body is never repeated
    assert len(rig.clock.sleeps) == POLICY.max_attempts - 1


async def test_a_write_answered_by_garbled_json_is_not_sent_again() -> None:
    """201 with JSON cut short: a create may have taken effect, so it fails at once."""
    rig = Rig(Answer(201, {"Content-Type": "application/json"}, b'{"id": "a'))
    async with rig.client as c:
        with pytest.raises(GraphError, match="JSON that does not parse"):
            await c.request("POST", "/applications", json={"displayName": "x"})
    assert len(rig.transport.sent) == 1


async def test_an_error_status_with_a_proxy_page_says_a_proxy_answered() -> None:
    rig = Rig(Answer(403, {"Content-Type": "text/html"}, HTML))
    async with rig.client as c:
        with pytest.raises(GraphError, match="a proxy or gateway answered, not Graph") as caught:
            await c.get("/applications")
    assert caught.value.code == "HTTP403"


async def test_an_empty_answer_to_a_read_is_not_a_result() -> None:
    rig = Rig(*[Answer(200)] * POLICY.max_attempts)
    async with rig.client as c:
        with pytest.raises(GraphError, match="an empty answer to a read"):
            await c.get("/applications")


async def test_a_401_gets_a_new_token_once() -> None:
    """401: the token is invalidated and the request sent again with a new one; a second
    401 fails."""
    denied = graph_error(401, "InvalidAuthenticationToken", "expired")
    rig = Rig(denied, OK, denied, denied)
    async with rig.client as c:
        assert (await c.get("/applications")).get("id") == SP
        with pytest.raises(GraphError, match="401 InvalidAuthenticationToken"):
            await c.get("/applications")
    auth = [r.headers["Authorization"] for _, r in rig.transport.sent]
    assert auth == ["Bearer token-1", "Bearer token-2", "Bearer token-2", "Bearer token-3"]
    assert rig.tokens.invalidated == ["token-1", "token-2"]
    assert rig.clock.sleeps == []


async def test_a_graph_never_reached_fails_after_one_quick_retry() -> None:
    """Connection refused before Graph ever answered: GraphUnreachable after two tries."""
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
    rig = Rig(refused, refused)
    async with rig.client as c:
        with pytest.raises(GraphUnreachable, match="connection refused") as caught:
            await c.get("/applications")
    assert caught.value.client_request_id == rig.transport.ids()[-1]
    assert len(rig.transport.sent) == 2 and c.stats.transport_errors == 2


async def test_a_dropped_answer_after_graph_answered_is_retried_then_reported() -> None:
    """Once Graph has answered, a lost answer is retried with back-off like a 5xx; when they
    all go the error names the request and why no answer came."""
    dropped = ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")
    rig = Rig(OK, dropped, OK, *[dropped] * POLICY.max_attempts)
    async with rig.client as c:
        await c.get("/applications")
        assert (await c.get("/applications"))["id"] == SP
        with pytest.raises(TransportError) as caught:
            await c.get("/servicePrincipals")
    err = caught.value
    assert not isinstance(err, GraphUnreachable)
    assert (err.method, err.path) == ("GET", "/servicePrincipals")
    assert "ConnectionResetError" in err.reason
    assert err.client_request_id == rig.transport.ids()[-1]
    assert len(rig.clock.sleeps) == 1 + POLICY.max_attempts - 1
