"""The mock's Graph service: every request goes auth -> throttle -> faults -> latency -> handler.

:class:`GraphService` knows nothing of aiohttp: it takes a :class:`~.wire.MockRequest` and
returns a :class:`~.wire.MockResponse`, so ``$batch`` items go through exactly the same path as
top-level requests (each one authenticated, metered, delayed and possibly faulted on its own).
The handlers are in :mod:`.handlers`, one class per resource; each route names the bound
handler that serves it.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Mapping
from urllib.parse import unquote

from ..jsontypes import JSON
from .clock import ScaledClock
from .faults import WRITE_METHODS, FaultInjector, malform
from .handlers.auditlogs import AuditLogs
from .handlers.batch import Batch
from .handlers.directory import Directory
from .handlers.onprem import OnPremisesAgents
from .handlers.synchronization import Synchronization
from .identity import TokenClaims, TokenService
from .settings import FaultSettings, MockSettings
from .state import Tenant
from .throttle import Charge, Throttler, Verdict, delivered, resource_units
from .wire import Ctx, GraphError, MockRequest, MockResponse, Route

__all__ = ["GraphError", "GraphService", "MockRequest", "MockResponse"]

RESOURCE_UNIT = "x-ms-resource-unit"
LIMIT_PERCENTAGE = "x-ms-throttle-limit-percentage"
REDIRECTS = frozenset({301, 302, 303, 307, 308})
DIAGNOSTIC = (
    '{"ServerInfo":{"DataCenter":"Loopback","Slice":"E",'
    '"Ring":"0","ScaleUnit":"000","RoleInstance":"mock"}}'
)


class GraphService:
    """The Graph API of the mock, for all of its tenants."""

    def __init__(
        self,
        settings: MockSettings,
        clock: ScaledClock,
        tokens: TokenService,
        tenants: Mapping[str, Tenant],
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.tokens = tokens
        self.tenants = dict(tenants)
        # within 50 ms (real) of a 429's delivery, other requests may already be on their way
        self.throttler = Throttler(
            settings.throttle, grace=0.05 / settings.time_scale, origin=clock.start
        )
        self._latency_rng = random.Random(f"{settings.faults.seed}:latency")
        self.requests: defaultdict[str, Counter[int]] = defaultdict(Counter)
        self.counters: Counter[str] = Counter()
        self.early_by: Counter[str] = Counter()  # early retries by scope and reason
        # when (Graph seconds) each 429 was answered: benchmarks plot them
        self.throttle_log: deque[float] = deque(maxlen=100_000)
        self.faults = FaultInjector(settings.faults, clock, self.counters, self.latency)
        self.onprem = OnPremisesAgents()
        self.routes: tuple[Route, ...] = (
            *Directory(self.faults).routes(),
            *Synchronization().routes(),
            *AuditLogs().routes(),
            *self.onprem.routes(),  # beta only, delegated only
        )
        self.batch = Batch(
            self.handle, self._authenticate, self.latency, lambda: self.settings, self.counters
        )
        # set by a mock that keeps its tenants on disk: called after every write request
        self.journal: Callable[[Tenant], None] | None = None

    # ------------------------------------------------------------------ settings at run time
    def apply_settings(self, settings: MockSettings) -> None:
        """Swap settings live (faults, latency, replication); throttle buckets keep their
        levels."""
        if settings.faults != self.settings.faults:
            self.faults.arm(settings.faults)
        self.settings = settings
        self.throttler.settings = settings.throttle
        for tenant in self.tenants.values():
            tenant.settings = settings

    def arm_bursts(self, faults: FaultSettings) -> None:
        """Set every counted fault to its full count."""
        self.faults.arm(faults)

    def burst(self, name: str, route_class: str, *, shared: bool = True) -> bool:
        """Whether this request gets the counted fault ``name`` (and count it down)."""
        return self.faults.burst(name, route_class, shared=shared)

    async def latency(self, route_class: str) -> None:
        lat = self.settings.latency
        if not lat.enabled:
            return
        base = lat.per_route.get(route_class, 0.0)
        if base <= 0:
            return
        j = lat.jitter
        await self.clock.sleep(base * self._latency_rng.uniform(1 - j, 1 + j))

    # ------------------------------------------------------------------ the pipeline
    async def handle(self, req: MockRequest) -> MockResponse:
        request_id = str(uuid.uuid4())
        client_request_id = req.headers.get("client-request-id", request_id)
        try:
            route, params = self._match(req)
            try:
                resp = await self._handle(req, route, params)
            except GraphError as err:
                err.route_name = route.name
                raise
            self.requests[route.name][resp.status] += 1
        except GraphError as err:
            self.requests[err.route_name][err.status] += 1
            resp = self._error(err, request_id, client_request_id)
        resp.headers["request-id"] = request_id
        resp.headers["client-request-id"] = client_request_id
        resp.headers.setdefault("x-ms-ags-diagnostic", DIAGNOSTIC)
        if resp.malformed is not None:
            malform(resp)
        return resp

    def _error(self, err: GraphError, request_id: str, client_request_id: str) -> MockResponse:
        """Graph's error answer for ``err``."""
        error: JSON = {"code": err.code, "message": err.message}
        if err.details:
            error["details"] = err.details
        error["innerError"] = {
            "date": self.clock.wall().strftime("%Y-%m-%dT%H:%M:%S"),
            "request-id": request_id,
            "client-request-id": client_request_id,
        }
        resp = MockResponse(err.status, {"error": error}, err.headers)
        if err.on_sent is not None:
            resp.on_sent.append(err.on_sent)
        return resp

    def _match(self, req: MockRequest) -> tuple[Route, dict[str, str]]:
        path = req.path.rstrip("/") or "/"
        allowed = False
        for route in self.routes:
            m = route.pattern.match(path)
            if m is None:
                continue
            if route.method != req.method:
                allowed = True
                continue
            return route, {k: unquote(v) for k, v in m.groupdict().items()}
        if allowed:
            raise GraphError(
                405,
                "Request_BadRequest",
                "Specified HTTP method is not allowed for the request target.",
            )
        segment = unquote(path.strip("/").split("/")[0] if path.strip("/") else "")
        raise GraphError(400, "BadRequest", f"Resource not found for the segment '{segment}'.")

    async def _handle(self, req: MockRequest, route: Route, params: dict[str, str]) -> MockResponse:
        claims = self._authenticate(req)
        charge = Charge(
            ru=resource_units(
                req.method,
                base=route.ru,
                select="$select" in req.query,
                expand="$expand" in req.query,
            ),
            write=req.method in WRITE_METHODS,
            reports=route.route_class == "audit_logs",
        )
        try:  # every answer of the identity service says what the request cost
            resp = await self._serve(req, route, params, claims, charge)
        except GraphError as err:
            err.headers[RESOURCE_UNIT] = str(charge.ru)
            raise
        if resp.drop != "before" and resp.status not in REDIRECTS:
            resp.headers[RESOURCE_UNIT] = str(charge.ru)
        return resp

    async def _serve(
        self,
        req: MockRequest,
        route: Route,
        params: dict[str, str],
        claims: TokenClaims,
        charge: Charge,
    ) -> MockResponse:
        verdict = self._throttle(req, claims, charge)  # at the gateway
        rc = route.route_class
        redirect = await self.faults.gate(req, rc, claims)
        if redirect is not None:
            return redirect
        drop = self.faults.drop(req, rc)
        if drop == "before":
            return MockResponse(0, drop="before")
        await self.latency(rc)
        tenant = self.tenants[claims.tenant_id]
        ctx = Ctx(req=req, tenant=tenant, claims=claims, now=self.clock.now())
        tenant.advance(ctx.now)
        resp = await self._dispatch(ctx, route, params)
        if verdict.limit_percentage >= 80:  # as a fraction of the limit: 0.8 and up
            resp.headers[LIMIT_PERCENTAGE] = f"{verdict.limit_percentage / 100:.2f}"
        resp.drop = drop
        await self.faults.after(req, rc, resp)
        return resp

    def _throttle(self, req: MockRequest, claims: TokenClaims, charge: Charge) -> Verdict:
        """Charge the request to its buckets, or raise its 429."""
        now = self.clock.now()
        verdict = self.throttler.check(
            app_id=claims.app_id, tenant_id=claims.tenant_id, charge=charge, now=now, conn=req.conn
        )
        if verdict.allowed:
            return verdict
        self.counters["throttled"] += 1
        self.throttle_log.append(round(now, 3))
        if verdict.early_retry:
            self.counters["early_retries"] += 1
            scope = verdict.scope.split("/")[:2]
            self.early_by["/".join(scope) + f" ({verdict.early_reason})"] += 1
        elif verdict.bucket is None:  # sent before the client could know
            self.counters["throttled_in_flight"] += 1
        bucket = verdict.bucket
        headers = {
            "x-ms-throttle-scope": verdict.scope,
            "x-ms-throttle-information": verdict.information,
        }
        if verdict.retry_after is not None:
            headers = {"Retry-After": str(verdict.retry_after), **headers}
        raise GraphError(
            429,
            "TooManyRequests",
            "Too many requests. Please retry later.",
            headers=headers,
            on_sent=(lambda: delivered(bucket, self.clock.now(), req.conn)) if bucket else None,
        )

    async def _dispatch(self, ctx: Ctx, route: Route, params: dict[str, str]) -> MockResponse:
        """Run the route's handler; a kept tenant journals what a write changed before it is
        answered."""
        try:
            return await route.handler(ctx, **params)
        finally:
            if self.journal is not None and ctx.req.method in WRITE_METHODS:
                tenant = ctx.tenant
                addressed = params.get("id")
                if addressed in tenant.applications or addressed in tenant.service_principals:
                    tenant.touch(addressed)
                self.journal(tenant)

    def _authenticate(self, req: MockRequest) -> TokenClaims:
        auth = req.headers.get("authorization", "")
        if not auth:
            raise GraphError(
                401,
                "InvalidAuthenticationToken",
                "Access token is empty.",
                headers={
                    "WWW-Authenticate": 'Bearer realm="", '
                    'authorization_uri="https://login.microsoftonline.com/'
                    'common/oauth2/authorize"'
                },
            )
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise GraphError(
                401,
                "InvalidAuthenticationToken",
                "Access token validation failure. Invalid audience.",
            )
        result = self.tokens.verify(token.strip())
        if isinstance(result, str):
            raise GraphError(401, "InvalidAuthenticationToken", result)
        if result.tenant_id not in self.tenants:
            raise GraphError(401, "InvalidAuthenticationToken", "Invalid tenant in token.")
        return result

    # ------------------------------------------------------------------ stats
    def stats(self) -> JSON:
        by_route = {
            name: {str(k): v for k, v in sorted(c.items())}
            for name, c in sorted(self.requests.items())
        }
        total = sum(sum(c.values()) for c in self.requests.values())
        tenants = {tid: t.stats() for tid, t in self.tenants.items()}
        return {
            "now": self.clock.now(),
            "timeScale": self.clock.time_scale,
            "requests": total,
            "byRoute": by_route,
            "throttled": self.counters["throttled"],
            "earlyRetries": self.counters["early_retries"],
            # by scope and why: "(connection)" came on a connection that carried the 429,
            # "(late)" well after it was delivered
            "earlyRetriesBy": dict(sorted(self.early_by.items())),
            "throttledInFlight": self.counters["throttled_in_flight"],
            "throttledAt": list(self.throttle_log),
            "otherAppWrites": round(self.throttler.other_app_writes),
            "faults": {
                k: v
                for k, v in self.counters.items()
                if k.startswith(("faults", "drops", "instantiate_"))
            },
            "tokensIssued": self.tokens.issued,
            "tenants": tenants,
            "duplicates": sum(t["duplicates"] for t in tenants.values()),
            "orphanApplications": sum(t["orphanApplications"] for t in tenants.values()),
            "orphanServicePrincipals": sum(t["orphanServicePrincipals"] for t in tenants.values()),
        }
