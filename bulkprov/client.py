"""The Graph client: Graph's quotas on the client side (:mod:`bulkprov.limiter`), retries, errors.

Every request passes, in order: a token, a connection for its kind, the paces of its throttle
scopes (resource units, writes, reports, per app + tenant, and the app's writes and resource
units across all its tenants: each a bucket at the rate Graph is found to allow, and a gate a
429 closes for everyone until its Retry-After has passed; see :mod:`bulkprov.pacing` and
:mod:`bulkprov.limiter`), the HTTP exchange (through a
:class:`bulkprov.transport.Transport`: aiohttp, or a test's own), and
:func:`bulkprov.retry.decide`. Errors carry method, path, request-id and client-request-id, all
taken from the :class:`Response` (:meth:`Response.context`).

No redirect is followed: a 3xx answer fails the request (:class:`Redirected`, naming the status
and the ``Location`` host), since Graph redirects none of these calls and the request, token
and credentials included, would go to that host. A Graph that cannot be connected to at all
(refused, no such host, TLS certificate not trusted, connect timeout) before it has answered
once fails after one quick retry (:class:`GraphUnreachable`); later, the retry policy applies.

Time spent waiting on scopes a 429 closed is added to the task's :func:`measure_throttle_wait`;
inside :func:`wait_out_throttling` a request retries 429s without the policy's limit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import re
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol, Self
from urllib.parse import urlsplit

import aiohttp
import anyio
import orjson
import structlog

from .auth import TokenProvider
from .errors import (
    GraphError,
    GraphUnreachable,
    Redirected,
    Throttled,
    TransportError,
    UnsafeRequest,
    origin,
)
from .limiter import (
    NORMAL,
    SCOPE_NAMES,
    AppPaces,
    ScopePace,
    Sleep,
    busiest,
    own_scope,
    scope_pace,
    scopes,
)
from .pacing import parse_limit_percentage
from .reach import explain
from .retry import Action, Decision, RetryPolicy, backoff, decide, parse_retry_after
from .settings import ClientSettings, ConnectionSettings
from .transport import NO_ANSWER, AiohttpTransport, Answer, Request, Transport

log = structlog.get_logger("bulkprov.client")
WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
#: Tries, before Graph has answered once, of a Graph that cannot be connected to at all.
FRESH_ATTEMPTS = 2
#: Graph's error message is kept up to this many characters (the display shortens it).
MAX_GRAPH_MESSAGE = 16 * 1024


@dataclass(slots=True)
class ThrottleWait:
    """Real seconds the requests of one task spent waiting on throttle scopes that a 429 had
    closed (its Retry-After), by the client's scope (``ru``, ``write``, ``reports``,
    ``app_write``, ``app_ru``)."""

    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, scope: str, seconds: float) -> None:
        self.seconds[scope] = self.seconds.get(scope, 0.0) + seconds

    def describe(self, time_scale: float) -> str:
        """E.g. "240 Graph s of it waiting on Graph's 429 Retry-After in scope write", or ""
        when it waited less than a Graph second."""
        graph = {k: v / time_scale for k, v in self.seconds.items() if v / time_scale >= 0.5}
        if not graph:
            return ""
        total = sum(graph.values())
        text = f"{total:.0f} Graph s of it waiting on Graph's 429 Retry-After"
        if len(graph) == 1:
            return f"{text} in scope {SCOPE_NAMES[next(iter(graph))]}"
        parts = sorted(graph.items(), key=lambda kv: -kv[1])
        return f"{text} ({', '.join(f'{SCOPE_NAMES[k]} {v:.0f} s' for k, v in parts)})"


_throttle_wait: ContextVar[ThrottleWait | None] = ContextVar("throttle_wait", default=None)
_wait_out: ContextVar[bool] = ContextVar("wait_out_throttling", default=False)


@contextlib.contextmanager
def measure_throttle_wait(into: ThrottleWait | None = None) -> Iterator[ThrottleWait]:
    """Within the block, this task's (and its children's) waits on closed throttle scopes are
    added to ``into`` (a new :class:`ThrottleWait` if not given), which the block gets."""
    waited = into if into is not None else ThrottleWait()
    token = _throttle_wait.set(waited)
    try:
        yield waited
    finally:
        _throttle_wait.reset(token)


_priority: ContextVar[int] = ContextVar("priority", default=NORMAL)


@contextlib.contextmanager
def priority(level: int) -> Iterator[None]:
    """Within the block, this task's requests wait in each throttle scope at ``level``
    (:data:`bulkprov.limiter.NORMAL`, ``FIRST``, ``URGENT``): a request is held while requests
    of a higher level wait (see :meth:`bulkprov.limiter.ScopePace.admit`)."""
    token = _priority.set(level)
    try:
        yield
    finally:
        _priority.reset(token)


@contextlib.contextmanager
def wait_out_throttling() -> Iterator[None]:
    """Within the block, this task's requests retry 429s however many come, each after its
    Retry-After: for the look-ups a run cannot start without, where giving up ends the run."""
    token = _wait_out.set(True)
    try:
        yield
    finally:
        _wait_out.reset(token)


RETRY_MARGIN_REAL = 0.005  # real seconds past a Retry-After before the scope opens


class Tokens(Protocol):
    """Where the client gets its access tokens (:class:`bulkprov.auth.TokenProvider`)."""

    async def token(self) -> str: ...

    async def invalidate(self, token: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Response:
    """Graph's answer to a request, and which request it answers: an error about the answer
    names them all (:meth:`context`, the one place that puts them together)."""

    status: int
    body: Any
    headers: Mapping[str, str]
    request_id: str | None
    client_request_id: str
    method: str = ""
    path: str = ""  # below the versioned base URL, as errors and logs name it

    def context(self) -> dict[str, Any]:
        """The request an error about this answer names: method, path and both ids."""
        return {
            "method": self.method,
            "path": self.path,
            "request_id": self.request_id,
            "client_request_id": self.client_request_id,
        }

    def invalid(self, problem: str) -> GraphError:
        """This answer is not what Graph documents (code ``InvalidResponse``)."""
        return GraphError(self.status, "InvalidResponse", problem, **self.context())

    def items(self) -> list[Any]:
        """The ``value`` of a collection answer."""
        body = self.body
        if not isinstance(body, dict) or not isinstance(body.get("value"), list):
            raise self.invalid("a collection answer without 'value'")
        value: list[Any] = body["value"]
        return value


@dataclass(slots=True)
class ClientStats:
    requests: int = 0
    throttled: int = 0
    retries: int = 0
    transport_errors: int = 0
    by_status: Counter[int] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "throttled": self.throttled,
            "retries": self.retries,
            "transportErrors": self.transport_errors,
            "byStatus": {str(k): v for k, v in sorted(self.by_status.items())},
        }


def _origin(url: str) -> tuple[str, str | None, int | None]:
    """(scheme, host, port) with the scheme's default port made explicit."""
    parts = urlsplit(url)
    port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    return parts.scheme, parts.hostname, port


_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def not_json(raw: bytes, headers: Mapping[str, str]) -> str:
    """What an answer that should be Graph's JSON was instead, in a few words (an HTML page's
    title, never its body: the page is not ours and may echo anything)."""
    ctype = (headers.get("Content-Type") or "").split(";")[0].strip() or "no content type"
    size = f"{ctype}, {len(raw)} bytes"
    title = _TITLE.search(raw[:4096])
    if title is not None:
        text = " ".join(title.group(1).decode("utf-8", "replace").split())[:80]
        return f"an HTML page titled {text!r} ({size}) instead of Graph's JSON"
    if "html" in ctype or raw[:200].lstrip().startswith(b"<"):
        return f"an HTML page ({size}) instead of Graph's JSON"
    return f"JSON that does not parse, cut short or garbled ({size})"


def _decode(
    raw: bytes, status: int, method: str, headers: Mapping[str, str]
) -> tuple[Any, str | None]:
    """The body of a success answer, or why it is not a usable Graph answer."""
    if not raw:
        if method == "GET" and status != 204:
            return None, f"an empty answer to a read ({status} without a body)"
        return None, None  # 201/204 of a write, 202 Accepted
    try:
        return orjson.loads(raw), None
    except orjson.JSONDecodeError:
        return None, not_json(raw, headers)


@dataclass(slots=True)
class _Call:
    """One request over all its tries: what is sent, and what each budget of tries has used."""

    method: str
    url: str
    path: str  # as errors and logs name it: the URL's path below the versioned base URL
    params: Mapping[str, str] | None
    body: bytes | None
    kind: str  # its connections and quotas: write, read or reports
    ru: int  # resource units it costs
    idempotent: bool
    policy: RetryPolicy
    attempt: int = 0  # every try
    throttles: int = 0  # tries answered 429, and the others: each kind has its budget
    tries: int = 0
    reauthed: bool = False


@dataclass(frozen=True, slots=True)
class Admitted:
    """How a request was let go: (sequence number, cost) in each scope's pace, and when (Graph
    seconds), for the paces to learn from its answer."""

    seqs: Mapping[str, tuple[float, float]]
    at: float


@dataclass(frozen=True, slots=True)
class _Try:
    """One try of a request: Graph's answer, or why none came."""

    token: str
    client_request_id: str
    sent_at: float  # on the client's clock
    answer: Answer | None
    lost: BaseException | None = None
    admitted: Admitted | None = None  # how its scopes' paces let it go
    paced: bool = False  # a 429 of it has been told to its scope's pace already

    @property
    def status(self) -> int | None:
        return None if self.answer is None else self.answer.status

    @property
    def headers(self) -> Mapping[str, str]:
        return {} if self.answer is None else self.answer.headers

    @property
    def reason(self) -> str:
        """Why no answer came ("" when one did)."""
        exc = self.lost
        if exc is None:
            return ""
        return type(exc).__name__ if not str(exc) else f"{type(exc).__name__}: {exc}"

    def response(self, call: _Call, body: Any = None) -> Response:
        assert self.answer is not None
        headers = self.answer.headers
        return Response(
            self.answer.status,
            body,
            headers,
            headers.get("request-id"),
            self.client_request_id,
            call.method,
            call.path,
        )


class GraphClient:
    """``async with GraphClient(conn, settings) as client: await client.get("/...")``.

    ``transport`` (or an aiohttp ``session``) replaces the HTTP layer, ``tokens`` the token
    provider, and ``sleep``/``clock`` the client's time (real seconds): a test answers the
    client without a server and without waiting.

    ``app_paces`` is the pacing of the app's limits across tenants that this client shares with
    the clients of the app's other tenants (:class:`bulkprov.limiter.AppPaces`: one event loop,
    one clock and one time scale for all); without it the client paces them alone."""

    def __init__(
        self,
        conn: ConnectionSettings,
        settings: ClientSettings | None = None,
        *,
        tokens: Tokens | None = None,
        session: aiohttp.ClientSession | None = None,
        transport: Transport | None = None,
        sleep: Sleep = anyio.sleep,
        clock: Callable[[], float] = time.monotonic,
        app_paces: AppPaces | None = None,
    ) -> None:
        self.conn = conn
        self.settings = settings or ClientSettings()
        if app_paces is not None:
            app_paces.check(
                self.settings.time_scale, f"the Graph client of tenant {conn.tenant_id}"
            )
        self._app_paces = app_paces or AppPaces(self.settings)
        self.tokens: Tokens = tokens or TokenProvider(conn)
        if transport is None and session is not None:
            transport = AiohttpTransport(session)
        self._transport = transport
        self._sleep = sleep
        self._clock = clock
        self._rng = random.Random(self.settings.seed)
        self.stats = ClientStats()
        self._origin = _origin(conn.graph_url)
        self._base_path = urlsplit(conn.base_url).path
        self._patient = dataclasses.replace(self.settings.retry, max_throttle_attempts=sys.maxsize)
        self._reached = False  # Graph has answered (anything) since the client started
        # each throttle scope's pace (ru, write, reports, and the app's app_write, app_ru),
        # and the connections per request kind (write, read, reports): set on entry
        self._paces: dict[str, ScopePace] | None = None
        self._slots: dict[str, anyio.Semaphore] = {}
        self._gates: dict[str, list[anyio.Semaphore]] = {}  # see _gates
        self._opened: Transport | None = None  # the transport the client opened, and closes
        self._closed = False

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> Self:
        s = self.settings
        # the paces are created inside the running loop, on the client's clock
        writes = max(1, s.connections // 2)
        reports = min(4, max(1, s.connections // 8))
        sizes = {
            "write": writes,
            "reports": reports,
            "read": max(1, s.connections - writes - reports),
        }
        self._slots = {kind: anyio.Semaphore(n) for kind, n in sizes.items()}
        self._gates = {kind: _gates(n) for kind, n in sizes.items()}
        now = self._now()
        self._paces = {
            "ru": ScopePace(s.ru_quota, now),
            "write": ScopePace(s.write_quota, now),
            "reports": ScopePace(s.reports_quota, now),
            **self._app_paces.paces(now),
        }
        if self._transport is None:
            self._transport = self._opened = AiohttpTransport.open(self.conn, s.connections)
        return self

    async def aclose(self) -> None:
        if not self._closed and self._opened is not None:
            await self._opened.aclose()
        self._closed = True

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ URLs
    def url(self, path_or_url: str) -> str:
        """The absolute URL for a Graph path, refusing any URL outside the configured Graph."""
        if path_or_url.startswith(("http://", "https://")):
            parts = urlsplit(path_or_url)
            try:
                origin = _origin(path_or_url)
            except ValueError:
                origin = None
            if origin != self._origin:
                raise UnsafeRequest(
                    f"refusing to send the Graph token to {parts.scheme}://{parts.netloc}: "
                    f"it is not the configured Graph {self.conn.graph_url}"
                )
            return path_or_url
        if not path_or_url.startswith("/"):
            raise UnsafeRequest(f"a Graph path must start with '/': {path_or_url!r}")
        return self.conn.base_url + path_or_url

    @staticmethod
    def _kind(method: str, url: str) -> str:
        if "/auditLogs/" in url:
            return "reports"
        return "write" if method in WRITE_METHODS else "read"

    @staticmethod
    def _ru(method: str, url: str, params: Mapping[str, str] | None) -> int:
        path = urlsplit(url).path
        cost = 2 if method == "GET" and path.endswith("/applications") else 1
        query = urlsplit(url).query + "&".join(params or {})
        if "$select" in query or "%24select" in query:
            cost -= 1
        if "$expand" in query or "%24expand" in query:
            cost += 1
        return max(1, cost)

    # ------------------------------------------------------------------ requests
    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> Response:
        """Send a request, retrying what is safe to retry; raise on any error answer."""
        assert self._transport is not None and self._paces is not None, "use `async with`"
        url = self.url(path)
        call = _Call(
            method=method,
            url=url,
            path=urlsplit(url).path.removeprefix(self._base_path),
            params=params,
            body=None if json is None else orjson.dumps(json),
            kind=self._kind(method, url),
            ru=self._ru(method, url, params),
            idempotent=method != "POST" if idempotent is None else idempotent,
            policy=self._patient if _wait_out.get() else self.settings.retry,
        )
        while True:
            sent = await self._send_once(call)
            response = await self._judge(call, sent)
            if response is not None:
                return response

    async def _send_once(self, call: _Call) -> _Try:
        """One try: a token, a connection for the request's kind, the quotas, the exchange."""
        assert self._transport is not None
        call.attempt += 1
        token = await self.tokens.token()
        # a request is admitted to the quotas only once a connection is free for it: a
        # request that waited for a connection after taking its token would reach Graph
        # later than the client's bucket assumes, and Graph's bucket, full and capped
        # meanwhile, would have less to give. Each kind has its own connections, so that
        # writes queued on their quota never hold up reads.
        async with _through(self._gates[call.kind][_priority.get() :]), self._slots[call.kind]:
            admitted = await self._admit(call.kind, call.ru)
            sent_at = self._clock()
            client_request_id = str(uuid.uuid4())
            headers = {"Authorization": f"Bearer {token}", "client-request-id": client_request_id}
            if call.body is not None:
                headers["Content-Type"] = "application/json"
            request = Request(
                call.method,
                call.url,
                headers,
                call.body,
                call.params,
                timeout=self.settings.request_timeout * self.settings.time_scale,
            )
            self.stats.requests += 1
            paced = False
            try:
                async with self._transport.send(request) as answer:
                    # the paces learn (and a 429 closes its scope) before this connection
                    # returns to the pool: no request may take it into a closed scope meanwhile
                    paced = self._pace_answer(call.kind, admitted, answer)
            except NO_ANSWER as exc:
                self.stats.transport_errors += 1
                return _Try(token, client_request_id, sent_at, None, exc, admitted)
        self.stats.by_status[answer.status] += 1
        self._reached = True
        return _Try(token, client_request_id, sent_at, answer, None, admitted, paced)

    async def _judge(self, call: _Call, sent: _Try) -> Response | None:
        """What a try's answer means: the response, another try (None), or an error."""
        status = sent.status
        if status is not None and 300 <= status < 400 and status != 304:
            response = sent.response(call)
            raise Redirected(
                f"{response.method} {response.path}",
                status,
                call.url,
                response.headers.get("Location"),
                request_id=response.request_id,
                client_request_id=response.client_request_id,
            )
        if status == 429:
            call.throttles += 1
        else:
            call.tries += 1
        if sent.lost is not None and not self._reached:
            self._unreachable(call, sent)
        decision = decide(
            status=status,
            headers=sent.headers,
            attempt=call.throttles if status == 429 else call.tries,
            idempotent=call.idempotent,
            reauthed=call.reauthed,
            policy=call.policy,
            rng=self._rng,
        )
        if decision.action is Action.OK:
            return await self._accept(call, sent)
        if decision.action is Action.REAUTH:
            call.reauthed = True
            await self.tokens.invalidate(sent.token)
            return None
        if decision.action is Action.RETRY:
            await self._wait_to_retry(call, sent, decision)
            return None
        if sent.answer is None:
            raise TransportError(
                call.method, call.path, sent.reason, client_request_id=sent.client_request_id
            )
        raise _error(sent.response(call), sent.answer.body)

    async def _accept(self, call: _Call, sent: _Try) -> Response | None:
        """A success status: its response, or another try (None) when the body is not a
        usable Graph answer."""
        assert sent.answer is not None
        answer = sent.answer
        parsed, problem = _decode(answer.body, answer.status, call.method, answer.headers)
        response = sent.response(call, parsed)
        if problem is None:
            return response
        # a success status without Graph's JSON: a proxy's or a portal's page, or an answer
        # cut short. A read is asked again; a write may have taken effect, so the step that
        # sent it finds out (reconciles)
        if call.idempotent and call.tries < call.policy.max_attempts:
            self.stats.retries += 1
            delay = backoff(call.tries, call.policy, self._rng)
            self._log_retry(call, response.status, problem, delay, response.request_id)
            await self._sleep(delay * self.settings.time_scale)
            return None
        after = f" (after {call.attempt} attempts)" if call.attempt > 1 else ""
        raise response.invalid(f"{problem}{after}")

    async def _wait_to_retry(self, call: _Call, sent: _Try, decision: Decision) -> None:
        """A 429 closes its scope for everyone; anything else waits out its back-off."""
        self.stats.retries += 1
        request_id = sent.headers.get("request-id")
        if sent.status == 429:
            self._on_throttled(call.kind, decision.scope, decision.delay, sent)
            log.info(
                "throttled",
                method=call.method,
                path=call.path,
                scope=decision.scope,
                retry_after=decision.delay,
                request_id=request_id,
            )
            return
        self._log_retry(call, sent.status, sent.reason or None, decision.delay, request_id)
        await self._sleep(decision.delay * self.settings.time_scale)

    @staticmethod
    def _log_retry(
        call: _Call, status: int | None, reason: str | None, delay: float, request_id: str | None
    ) -> None:
        log.info(
            "retrying",
            method=call.method,
            path=call.path,
            status=status,
            reason=reason,
            attempt=call.attempt,
            delay=delay,
            request_id=request_id,
        )

    def _unreachable(self, call: _Call, sent: _Try) -> None:
        """Before Graph has answered once, a Graph that cannot be connected to at all is not
        worth the policy's minute of retries: :class:`GraphUnreachable` after a quick one."""
        assert sent.lost is not None
        failure = explain(sent.lost)
        if failure.connecting and (call.tries >= FRESH_ATTEMPTS or not call.idempotent):
            raise GraphUnreachable(
                call.method,
                call.path,
                origin(self.conn.graph_url),
                failure.reason,
                hint=self.conn.unreachable_hint,
                client_request_id=sent.client_request_id,
            )

    def _now(self) -> float:
        """The client's clock in Graph seconds, as the paces count time."""
        return self._clock() / self.settings.time_scale

    async def _admit(self, kind: str, ru: int) -> Admitted:
        """Wait for the request's scopes to let it go (each scope's bucket, and its gate a 429
        closed); a gate that closed while this request waited in another scope is waited for
        again, so nothing is sent into a closed scope."""
        assert self._paces is not None
        seqs: dict[str, tuple[float, float]] = {}
        floor = 0.0  # Graph time the last sleep was to reach (the clock may be a hair short)
        prio = _priority.get()
        for name, cost in scopes(kind, ru):
            pace = self._paces[name]
            place = pace.join(cost, prio)  # its place in the scope's line
            try:
                while (
                    wait := pace.admit(
                        now := max(self._now(), floor), cost, priority=prio, place=place
                    )
                ) > 0:
                    floor = now + wait
                    await self._wait(name if pace.closed_for(now) > 0 else None, wait)
            finally:
                pace.leave(cost, prio)
            seqs[name] = (pace.seq, cost)
        while True:
            now = max(self._now(), floor)
            closed = [(self._paces[n].closed_for(now), n) for n in seqs]
            wait, name = max(closed)
            if wait <= 0:
                return Admitted(seqs, now)
            floor = now + wait
            await self._wait(name, wait)

    async def _wait(self, closed_scope: str | None, graph_seconds: float) -> None:
        """Sleep; the time a scope that a 429 closed holds the task up is its throttle wait."""
        t0 = self._clock()
        await self._sleep(graph_seconds * self.settings.time_scale)
        if closed_scope is not None and (waited := _throttle_wait.get()) is not None:
            waited.add(closed_scope, self._clock() - t0)

    def _pace_answer(self, kind: str, admitted: Admitted, answer: Answer) -> bool:
        """Tell the paces what Graph answered: a counted answer teaches each of the request's
        scopes (its limit share goes to the one :func:`bulkprov.limiter.busiest` picks), a 429
        with Retry-After closes and steers the scope it names. True when a 429 was told
        (without Retry-After it waits for the back-off the retry policy chooses)."""
        assert self._paces is not None
        status = answer.status
        if status >= 500:
            return False  # not counted, or not Graph's
        headers = answer.headers  # case-insensitive (an Answer's are): read as they are
        now = self._now()
        if status == 429:
            retry_after = parse_retry_after(headers.get("retry-after"))
            if retry_after is None:
                return False
            self._pace_throttled(kind, headers.get("x-ms-throttle-scope"), retry_after, admitted)
            return True
        share = parse_limit_percentage(headers.get("x-ms-throttle-limit-percentage"))
        paces = {name: self._paces[name] for name in admitted.seqs}
        hot = (
            ""
            if share is None
            else busiest({n: p.state for n, p in paces.items()}, own_scope(kind), now)
        )
        for name, (seq, cost) in admitted.seqs.items():
            paces[name].answered(
                now,
                seq=seq,
                sent_at=admitted.at,
                share=share if name == hot else None,
                cost=cost,
            )
        return False

    def _pace_throttled(
        self, kind: str, scope: str | None, retry_after: float, admitted: Admitted
    ) -> None:
        assert self._paces is not None
        name = scope_pace(kind, scope)
        pace = self._paces[name]
        seq, cost = admitted.seqs.get(name, (pace.seq, 1.0))
        # plus a few real milliseconds, whatever the time scale: the event loop's latency must
        # not make the first request after the wait an early one
        margin = RETRY_MARGIN_REAL / self.settings.time_scale
        pace.throttled(
            self._now(),
            seq=seq,
            sent_at=admitted.at,
            retry_after=retry_after + margin,
            cost=cost,
        )

    def _on_throttled(self, kind: str, scope: str | None, retry_after: float, sent: _Try) -> None:
        """A 429 to retry: counted; a scope not told yet (no Retry-After) is closed for the
        back-off the retry policy chose."""
        self.stats.throttled += 1
        if not sent.paced and sent.admitted is not None:
            self._pace_throttled(kind, scope, retry_after, sent.admitted)

    async def get(self, path: str, *, params: Mapping[str, str] | None = None) -> Any:
        return (await self.request("GET", path, params=params)).body

    async def answers(
        self, path: str, *, params: Mapping[str, str] | None = None
    ) -> AsyncIterator[Response]:
        """Each page of a collection as its response (its ``value`` a list, or
        ``InvalidResponse``), following the whole ``@odata.nextLink`` until absent."""
        response = await self.request("GET", path, params=params)
        while True:
            response.items()
            yield response
            next_link = response.body.get("@odata.nextLink")
            if not next_link:
                return
            response = await self.request("GET", str(next_link))

    async def pages(
        self, path: str, *, params: Mapping[str, str] | None = None
    ) -> AsyncIterator[list[Any]]:
        """Each page of a collection, following the whole ``@odata.nextLink`` until absent."""
        async for response in self.answers(path, params=params):
            yield response.items()


def _gates(slots: int) -> list[anyio.Semaphore]:
    """How many of a kind's ``slots`` (connections) the requests of each priority and those
    below it may hold: all but a twelfth for NORMAL and FIRST, all but two twelfths for NORMAL
    alone. A request of a higher priority then always finds a connection that no waiter of
    a lower one holds (it is admitted to the quotas only once it has a connection)."""
    keep = max(1, slots // 12) if slots >= 3 else 0
    return [anyio.Semaphore(max(1, slots - 2 * keep)), anyio.Semaphore(max(1, slots - keep))]


@contextlib.asynccontextmanager
async def _through(gates: Sequence[anyio.Semaphore]) -> AsyncIterator[None]:
    """Hold each of ``gates`` (a priority's, :func:`_gates`) for the block, in order."""
    held: list[anyio.Semaphore] = []
    try:
        for gate in gates:
            await gate.acquire()
            held.append(gate)
        yield
    finally:
        for gate in reversed(held):
            gate.release()


def _error(response: Response, raw: bytes) -> GraphError:
    """The error an error status stands for, with Graph's code, message and detail codes."""
    code, message, details = f"HTTP{response.status}", "", []
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        body = None
        message = f"{not_json(raw, response.headers)}: a proxy or gateway answered, not Graph"
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        code = str(err.get("code") or code)
        message = str(err.get("message") or "")[:MAX_GRAPH_MESSAGE]
        details = [
            str(d.get("code"))
            for d in err.get("details") or []
            if isinstance(d, dict) and d.get("code")
        ]
    if response.status == 429:
        lower = {k.lower(): v for k, v in response.headers.items()}
        return Throttled(
            parse_retry_after(lower.get("retry-after")),
            lower.get("x-ms-throttle-scope"),
            **response.context(),
        )
    return GraphError(response.status, code, message, detail_codes=details, **response.context())
