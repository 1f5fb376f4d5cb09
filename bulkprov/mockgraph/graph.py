"""The mock's Graph service: every request goes auth -> throttle -> faults -> latency -> handler.

:class:`GraphService` knows nothing of aiohttp: it takes a :class:`MockRequest` and returns a
:class:`MockResponse`, so ``$batch`` items go through exactly the same path as top-level
requests (each one authenticated, metered, delayed and possibly faulted on its own).
"""

from __future__ import annotations

import asyncio
import math
import random
import re
import uuid
from collections import Counter, defaultdict, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import unquote, urlencode

import orjson

from ..graphenums import SYNCHRONIZATION_SECRETS
from . import catalog, onprem
from .catalog import GalleryApp
from .clock import ScaledClock
from .identity import TokenClaims, TokenService
from .odata import FilterError, FilterSpec, parse_filter
from .schemacheck import SchemaBodyError, check_schema
from .settings import BURSTS, FaultSettings, MockSettings
from .state import Application, Job, ServicePrincipal, Tenant
from .throttle import Charge, Throttler, delivered, resource_units

JSON = dict[str, Any]
GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
SECRET_KEYS = frozenset(SYNCHRONIZATION_SECRETS)
MASK = "*****"
WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})


@dataclass(slots=True)
class MockRequest:
    method: str
    path: str  # below the version, e.g. "/applicationTemplates", still percent-encoded
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    version: str  # "v1.0" or "beta"
    base_url: str  # "https://127.0.0.1:8443"
    in_batch: bool = False
    conn: int = 0  # identifies the client connection the request came on


@dataclass(slots=True)
class MockResponse:
    status: int
    body: Any = None  # JSON-able, or None for no content
    headers: dict[str, str] = field(default_factory=dict)
    drop: str | None = None  # "before" / "after": the connection is dropped
    on_sent: list[Callable[[], None]] = field(default_factory=list)  # run once written
    malformed: str | None = None  # a malformed-answer fault to apply (settings.MALFORMED_KINDS)
    raw: bytes | None = None  # the body as sent, when it is not ``body`` as JSON
    content_type: str | None = None  # with ``raw``


class GraphError(Exception):
    """A Graph error answer: status, code and message, in Graph's error body."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        details: list[JSON] | None = None,
        on_sent: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(message)
        self.on_sent = on_sent
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.details = details


def not_found(object_id: str) -> GraphError:
    return GraphError(
        404,
        "Request_ResourceNotFound",
        f"Resource '{object_id}' does not exist or one of its queried reference-property "
        "objects are not present.",
    )


@dataclass(slots=True)
class Ctx:
    req: MockRequest
    tenant: Tenant
    claims: TokenClaims
    now: float


Handler = Callable[..., Awaitable[MockResponse]]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    name: str  # e.g. "POST /applicationTemplates/{id}/instantiate"
    route_class: str
    handler: str
    ru: int = 1


def _route(method: str, template: str, route_class: str, handler: str, ru: int = 1) -> Route:
    regex = re.escape(template)
    regex = re.sub(r"\\\{(\w+)\\\}", lambda m: f"(?P<{m.group(1)}>[^/()]+)", regex)
    return Route(method, re.compile(f"^{regex}$"), f"{method} {template}", route_class, handler, ru)


SP = "/servicePrincipals/{id}/synchronization"
ROUTES: tuple[Route, ...] = (
    _route("GET", "/applicationTemplates", "templates", "list_templates"),
    _route("GET", "/applicationTemplates/{id}", "templates", "get_template"),
    _route("POST", "/applicationTemplates/{id}/instantiate", "instantiate", "instantiate"),
    _route("GET", "/applications", "directory_read", "list_applications", ru=2),
    _route("GET", "/applications(appId='{appId}')", "directory_read", "get_application_by_app_id"),
    _route("GET", "/applications/{id}", "directory_read", "get_application"),
    _route("PATCH", "/applications/{id}", "directory_write", "patch_application"),
    _route("DELETE", "/applications/{id}", "directory_write", "delete_application"),
    _route("GET", "/servicePrincipals", "directory_read", "list_service_principals"),
    _route("GET", "/servicePrincipals(appId='{appId}')", "directory_read", "get_sp_by_app_id"),
    _route("GET", "/servicePrincipals/{id}", "directory_read", "get_service_principal"),
    _route("PATCH", "/servicePrincipals/{id}", "directory_write", "patch_service_principal"),
    _route("DELETE", "/servicePrincipals/{id}", "directory_write", "delete_service_principal"),
    _route("GET", "/directory/deletedItems/{id}", "directory_read", "get_deleted_item"),
    _route("DELETE", "/directory/deletedItems/{id}", "directory_write", "purge_deleted_item"),
    _route(
        "POST", "/directory/deletedItems/{id}/restore", "directory_write", "restore_deleted_item"
    ),
    _route("GET", SP + "/templates", "sync_templates", "list_sync_templates"),
    _route("GET", SP + "/templates/{templateId}", "sync_templates", "get_sync_template"),
    _route("GET", SP + "/secrets", "sync_read", "get_secrets"),
    _route("PUT", SP + "/secrets", "secrets", "put_secrets"),
    _route("GET", SP + "/jobs", "sync_read", "list_jobs"),
    _route("POST", SP + "/jobs", "job_create", "create_job"),
    _route("POST", SP + "/jobs/validateCredentials", "validate", "validate_collection"),
    _route("GET", SP + "/jobs/{jobId}", "sync_read", "get_job"),
    _route("DELETE", SP + "/jobs/{jobId}", "job_control", "delete_job"),
    _route("POST", SP + "/jobs/{jobId}/validateCredentials", "validate", "validate_job"),
    _route("POST", SP + "/jobs/{jobId}/start", "job_control", "start_job"),
    _route("POST", SP + "/jobs/{jobId}/pause", "job_control", "pause_job"),
    _route("POST", SP + "/jobs/{jobId}/restart", "job_control", "restart_job"),
    _route(
        "POST", SP + "/jobs/{jobId}/provisionOnDemand", "provision_on_demand", "provision_on_demand"
    ),
    _route("GET", SP + "/jobs/{jobId}/schema", "schema", "get_schema"),
    _route("PUT", SP + "/jobs/{jobId}/schema", "schema", "put_schema"),
    _route("GET", "/auditLogs/provisioning", "audit_logs", "list_provisioning"),
    *(_route(*spec) for spec in onprem.ROUTES),  # beta only, delegated only
)

TEMPLATE_FILTER = FilterSpec(
    "applicationTemplate",
    {
        "displayName": frozenset({"eq", "ne", "contains", "startswith"}),
        "categories": frozenset({"any"}),
        "publisher": frozenset({"eq", "contains", "startswith"}),
        "id": frozenset({"eq"}),
    },
)
DIRECTORY_PROPS = {
    "displayName": frozenset({"eq", "ne", "startswith"}),
    "appId": frozenset({"eq"}),
    "id": frozenset({"eq"}),
    "applicationTemplateId": frozenset({"eq"}),
    "tags": frozenset({"any"}),
}
APPLICATION_FILTER = FilterSpec("Application", DIRECTORY_PROPS)
SP_FILTER = FilterSpec("ServicePrincipal", DIRECTORY_PROPS)
PROVISIONING_FILTER = FilterSpec(
    "provisioningObjectSummary",
    {
        "jobId": frozenset({"eq"}),
        "servicePrincipal/id": frozenset({"eq"}),
        "cycleId": frozenset({"eq"}),
        "activityDateTime": frozenset({"eq", "ge", "gt", "le", "lt"}),
        "provisioningAction": frozenset({"eq"}),
        "provisioningStatusInfo/status": frozenset({"eq"}),
        "tenantId": frozenset({"eq"}),
    },
)
PATCHABLE_APPLICATION = frozenset({"displayName", "tags", "notes"})
PATCHABLE_SP = frozenset(
    {"displayName", "tags", "notes", "appRoleAssignmentRequired", "accountEnabled"}
)


class GraphService(onprem.OnPremisesRoutes):
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
        self.throttler = Throttler(settings.throttle, grace=0.05 / settings.time_scale)
        self._latency_rng = random.Random(f"{settings.faults.seed}:latency")
        self._fault_rngs: dict[str, random.Random] = {}
        self.requests: defaultdict[str, Counter[int]] = defaultdict(Counter)
        self.counters: Counter[str] = Counter()
        # when (Graph seconds) each 429 was answered: benchmarks plot them
        self.throttle_log: deque[float] = deque(maxlen=100_000)
        self._bursts: dict[tuple[str, str], int] = {}
        self.arm_bursts(settings.faults)
        # set by a mock that keeps its tenants on disk: called after every write request
        self.journal: Callable[[Tenant], None] | None = None

    # ------------------------------------------------------------------ settings at run time
    def apply_settings(self, settings: MockSettings) -> None:
        """Swap settings live (faults, latency, replication); throttle buckets keep their
        levels."""
        if settings.faults != self.settings.faults:
            self.arm_bursts(settings.faults)
        self.settings = settings
        self.throttler.settings = settings.throttle
        for tenant in self.tenants.values():
            tenant.settings = settings

    def arm_bursts(self, faults: FaultSettings) -> None:
        """Set every counted fault to its full count."""
        self._bursts = {
            (name, route_class): count
            for name in BURSTS
            for route_class, count in getattr(faults, name).items()
        }

    def burst(self, name: str, route_class: str, *, shared: bool = True) -> bool:
        """Whether this request gets the counted fault ``name`` (and count it down); with
        ``shared``, a ``"*"`` burst counts too."""
        keys = ((name, route_class), (name, "*")) if shared else ((name, route_class),)
        for key in keys:
            left = self._bursts.get(key)
            if left is not None:
                if left <= 0:
                    return False
                self._bursts[key] = left - 1
                return True
        return False

    def _faulted(self, table: Mapping[str, float], burst: str, route_class: str) -> bool:
        """A rate fault drawn from the class's generator, or the class's burst."""
        faults = self.settings.faults
        rate = faults.rate(table, route_class)
        if rate and self.fault_rng(route_class).random() < rate:
            return True
        return self.burst(burst, route_class)

    def fault_rng(self, route_class: str) -> random.Random:
        rng = self._fault_rngs.get(route_class)
        if rng is None:
            rng = self._fault_rngs[route_class] = random.Random(
                f"{self.settings.faults.seed}:{route_class}"
            )
        return rng

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
            resp = await self._handle(req, route, params)
            self.requests[route.name][resp.status] += 1
        except GraphError as err:
            name = getattr(err, "route_name", "unmatched")
            self.requests[name][err.status] += 1
            resp = MockResponse(
                err.status,
                {
                    "error": {
                        "code": err.code,
                        "message": err.message,
                        **({"details": err.details} if err.details else {}),
                        "innerError": {
                            "date": self.clock.wall().strftime("%Y-%m-%dT%H:%M:%S"),
                            "request-id": request_id,
                            "client-request-id": client_request_id,
                        },
                    }
                },
                err.headers,
            )
            if err.on_sent is not None:
                resp.on_sent.append(err.on_sent)
        resp.headers["request-id"] = request_id
        resp.headers["client-request-id"] = client_request_id
        resp.headers.setdefault(
            "x-ms-ags-diagnostic",
            '{"ServerInfo":{"DataCenter":"Loopback","Slice":"E",'
            '"Ring":"0","ScaleUnit":"000","RoleInstance":"mock"}}',
        )
        if resp.malformed is not None:
            _malform(resp)
        return resp

    def _match(self, req: MockRequest) -> tuple[Route, dict[str, str]]:
        path = req.path.rstrip("/") or "/"
        allowed = False
        for route in ROUTES:
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
        try:
            claims = self._authenticate(req)
            tenant = self.tenants[claims.tenant_id]
            now = self.clock.now()
            # throttling, at the gateway
            charge = Charge(
                ru=resource_units(
                    req.method,
                    base=route.ru,
                    select="$select" in req.query,
                    expand="$expand" in req.query,
                ),
                write=req.method in ("POST", "PATCH", "PUT", "DELETE"),
                reports=route.route_class == "audit_logs",
            )
            verdict = self.throttler.check(
                app_id=claims.app_id,
                tenant_id=claims.tenant_id,
                charge=charge,
                now=now,
                conn=req.conn,
            )
            if not verdict.allowed:
                self.counters["throttled"] += 1
                self.throttle_log.append(round(now, 3))
                if verdict.early_retry:
                    self.counters["early_retries"] += 1
                elif verdict.bucket is None:  # sent before the client could know
                    self.counters["throttled_in_flight"] += 1
                bucket = verdict.bucket
                raise GraphError(
                    429,
                    "TooManyRequests",
                    "Too many requests. Please retry later.",
                    headers={
                        "Retry-After": str(verdict.retry_after),
                        "x-ms-throttle-scope": verdict.scope,
                        "x-ms-throttle-information": verdict.information,
                    },
                    on_sent=(
                        (lambda: delivered(bucket, self.clock.now(), req.conn)) if bucket else None
                    ),
                )
            # faults
            faults = self.settings.faults
            rc = route.route_class
            if self.burst("throttle_burst", rc):
                self.counters["faults_429_storm"] += 1
                after = math.ceil(faults.throttle_retry_after)
                write = req.method in ("POST", "PATCH", "PUT", "DELETE")
                kind = "Write" if write else "ResourceUnits"
                raise GraphError(
                    429,
                    "TooManyRequests",
                    "Too many requests. Please retry later.",
                    headers={
                        "Retry-After": str(after),
                        "x-ms-throttle-scope": (
                            f"Tenant_Application/{kind}/{claims.app_id}/{claims.tenant_id}"
                        ),
                        "x-ms-throttle-information": (
                            "WriteLimitExceeded" if write else "ResourceUnitLimitExceeded"
                        ),
                    },
                )
            if self.burst("redirect_burst", rc):
                self.counters["faults_redirect"] += 1
                location = {"Location": faults.redirect_location}
                return MockResponse(faults.redirect_status, headers=location)
            rng = self.fault_rng(rc)
            if self._faulted(faults.error_rate, "error_burst", rc):
                self.counters["faults_5xx"] += 1
                await self.latency(rc)
                status = rng.choice((500, 502, 503, 504))
                raise GraphError(status, _FAULT_CODES[status], _FAULT_MESSAGES[status])
            drop: str | None = None
            if not req.in_batch:
                if rng.random() < faults.rate(faults.drop_rate, rc):
                    drop = rng.choice(("before", "after"))
                elif self.burst("drop_burst", rc):
                    drop = "after"  # cut in the middle of the response
                if drop is not None:
                    self.counters[f"drops_{drop}"] += 1
                if drop == "before":
                    return MockResponse(0, drop="before")
            await self.latency(rc)
            ctx = Ctx(req=req, tenant=tenant, claims=claims, now=self.clock.now())
            tenant.advance(ctx.now)
            handler: Handler = getattr(self, "h_" + route.handler)
            try:
                resp = await handler(ctx, **params)
            finally:
                # a kept tenant journals what a write changed before it is answered
                if self.journal is not None and req.method in WRITE_METHODS:
                    addressed = params.get("id")
                    if addressed in tenant.applications or addressed in tenant.service_principals:
                        tenant.touch(addressed)
                    self.journal(tenant)
            resp.headers["x-ms-resource-unit"] = str(charge.ru)
            if verdict.limit_percentage >= 80:
                resp.headers["x-ms-throttle-limit-percentage"] = f"{verdict.limit_percentage:.1f}"
            if not req.in_batch and drop is None:
                if self._faulted(faults.slow_rate, "slow_burst", rc):
                    self.counters["faults_slow"] += 1
                    await self.clock.sleep(faults.slow_delay)  # it took effect; the answer is late
                if self._faulted(faults.malformed_rate, "malformed_burst", rc):
                    kinds = [k for k in faults.malformed_kinds if _malformable(k, resp)]
                    if kinds:
                        resp.malformed = rng.choice(kinds)
                        self.counters[f"faults_malformed_{resp.malformed}"] += 1
            resp.drop = drop
            return resp
        except GraphError as err:
            err.route_name = route.name  # type: ignore[attr-defined]
            raise

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

    # ------------------------------------------------------------------ helpers
    def _json_body(self, ctx: Ctx) -> JSON:
        if not ctx.req.body.strip():
            raise GraphError(400, "BadRequest", "Empty Payload. JSON content expected.")
        try:
            body = orjson.loads(ctx.req.body)
        except orjson.JSONDecodeError as exc:
            raise GraphError(
                400,
                "BadRequest",
                "Unable to read JSON request payload. Please ensure Content-Type header is set "
                "and payload is of valid JSON format.",
            ) from exc
        if not isinstance(body, dict):
            raise GraphError(400, "BadRequest", "The request payload must be a JSON object.")
        return body

    def _context(self, ctx: Ctx, fragment: str) -> str:
        return f"{ctx.req.base_url}/{ctx.req.version}/$metadata#{fragment}"

    def _page(
        self,
        ctx: Ctx,
        items: list[JSON],
        fragment: str,
        *,
        default_top: int | None = None,
        already_offset: int = 0,
        next_offset: int | None = None,
    ) -> MockResponse:
        """A page of ``items`` (already filtered) with ``$top``, ``$select`` and a nextLink."""
        q = ctx.req.query
        top = self._top(q, default_top)
        offset = self._skiptoken(q)
        if "$skip" in q:
            try:
                offset += int(q["$skip"])
            except ValueError as exc:
                raise GraphError(400, "BadRequest", "Invalid value for $skip.") from exc
        page = items[offset : offset + top]
        body: JSON = {"@odata.context": self._context(ctx, fragment)}
        if "$count" in q and q["$count"].lower() == "true":
            body["@odata.count"] = len(items)
        body["value"] = [self._select(ctx, it) for it in page]
        if offset + top < len(items):
            query = {k: v for k, v in q.items() if k not in ("$skiptoken", "$skip")}
            query["$skiptoken"] = _encode_token(offset + top)
            body["@odata.nextLink"] = (
                f"{ctx.req.base_url}/{ctx.req.version}{ctx.req.path}?{urlencode(query)}"
            )
        return MockResponse(200, body)

    def _top(self, q: Mapping[str, str], default_top: int | None) -> int:
        top = default_top or self.settings.page_size
        if "$top" in q:
            try:
                top = int(q["$top"])
            except ValueError as exc:
                raise GraphError(
                    400, "BadRequest", f"Invalid value '{q['$top']}' for $top query option."
                ) from exc
            if not 1 <= top <= self.settings.max_page_size:
                raise GraphError(
                    400,
                    "Request_BadRequest",
                    f"Invalid page size specified: '{top}'. Must be between 1 and "
                    f"{self.settings.max_page_size} inclusive.",
                )
        return top

    @staticmethod
    def _skiptoken(q: Mapping[str, str]) -> int:
        token = q.get("$skiptoken")
        if token is None:
            return 0
        try:
            return _decode_token(token)
        except ValueError as exc:
            raise GraphError(
                400, "Request_BadRequest", "Invalid $skiptoken: the token is malformed or expired."
            ) from exc

    @staticmethod
    def _select(ctx: Ctx, item: JSON) -> JSON:
        select = ctx.req.query.get("$select")
        if not select:
            return item
        fields = {f.strip() for f in select.split(",") if f.strip()}
        return {k: v for k, v in item.items() if k in fields or k == "id"}

    def _filter(self, ctx: Ctx, spec: FilterSpec, directory: bool) -> Callable[[JSON], bool]:
        text = ctx.req.query.get("$filter")
        if text is None:
            return lambda _obj: True
        try:
            return parse_filter(text, spec)
        except FilterError as err:
            code = "Request_UnsupportedQuery" if directory else "BadRequest"
            if err.unsupported_property is None and directory:
                code = "BadRequest"
            raise GraphError(400, code, str(err)) from err

    # ------------------------------------------------------------------ rendering
    def render_template(self, app: GalleryApp) -> JSON:
        return dict(app.template)

    def render_application(self, ctx: Ctx, a: Application) -> JSON:
        tpl = a.template
        return {
            "id": a.id,
            "appId": a.app_id,
            "applicationTemplateId": tpl.id,
            "createdDateTime": self.clock.iso(a.created)[:19] + "Z",
            "deletedDateTime": self.clock.iso(a.deleted)[:19] + "Z" if a.deleted else None,
            "displayName": a.display_name,
            "description": None,
            "groupMembershipClaims": None,
            "identifierUris": [],
            "isFallbackPublicClient": False,
            "notes": a.notes,
            "signInAudience": "AzureADMyOrg",
            "tags": list(a.tags),
            "tokenEncryptionKeyId": None,
            "defaultRedirectUri": None,
            "optionalClaims": None,
            "verifiedPublisher": {
                "displayName": None,
                "verifiedPublisherId": None,
                "addedDateTime": None,
            },
            "addIns": [],
            "api": {
                "acceptMappedClaims": None,
                "knownClientApplications": [],
                "requestedAccessTokenVersion": None,
                "oauth2PermissionScopes": [_scope(a.display_name)],
                "preAuthorizedApplications": [],
            },
            "appRoles": [dict(r) for r in tpl.app_roles],
            "info": {
                "logoUrl": None,
                "marketingUrl": None,
                "privacyStatementUrl": None,
                "supportUrl": None,
                "termsOfServiceUrl": None,
            },
            "keyCredentials": [],
            "parentalControlSettings": {
                "countriesBlockedForMinors": [],
                "legalAgeGroupRule": "Allow",
            },
            "passwordCredentials": [],
            "publicClient": {"redirectUris": []},
            "requiredResourceAccess": [],
            "web": {"homePageUrl": tpl.home_page_url, "redirectUris": [], "logoutUrl": None},
        }

    def render_service_principal(self, ctx: Ctx, sp: ServicePrincipal) -> JSON:
        tpl = sp.template
        return {
            "id": sp.id,
            "deletedDateTime": self.clock.iso(sp.deleted)[:19] + "Z" if sp.deleted else None,
            "accountEnabled": True,
            "appId": sp.app_id,
            "applicationTemplateId": tpl.id,
            "appDisplayName": sp.display_name,
            "alternativeNames": [],
            "appOwnerOrganizationId": ctx.tenant.id,
            "displayName": sp.display_name,
            "appRoleAssignmentRequired": True,
            "loginUrl": None,
            "logoutUrl": None,
            "homepage": tpl.home_page_url,
            "notes": sp.notes,
            "notificationEmailAddresses": [],
            "preferredSingleSignOnMode": None,
            "preferredTokenSigningKeyThumbprint": None,
            "replyUrls": [],
            "servicePrincipalNames": [sp.app_id],
            "servicePrincipalType": "Application",
            "tags": list(sp.tags),
            "tokenEncryptionKeyId": None,
            "samlSingleSignOnSettings": None,
            "verifiedPublisher": {
                "displayName": None,
                "verifiedPublisherId": None,
                "addedDateTime": None,
            },
            "addIns": [],
            "appRoles": [dict(r) for r in tpl.app_roles],
            "info": {
                "logoUrl": None,
                "marketingUrl": None,
                "privacyStatementUrl": None,
                "supportUrl": None,
                "termsOfServiceUrl": None,
            },
            "keyCredentials": [],
            "oauth2PermissionScopes": [_scope(sp.display_name)],
            "passwordCredentials": [],
        }

    def render_sync_template(self, sp: ServicePrincipal, t: catalog.SyncTemplate) -> JSON:
        schema = dict(t.schema)
        schema["id"] = f"{t.id}.00000000000000000000000000000000"
        return {
            "id": t.id,
            "applicationId": sp.template.id,
            "default": t.default,
            "description": t.description,
            "discoverable": t.discoverable,
            "factoryTag": t.factory_tag,
            "metadata": [{"key": k, "value": v} for k, v in t.metadata],
            "schema": schema,
        }

    def render_job(self, ctx: Ctx, job: Job) -> JSON:
        counts = [{"key": k, "value": v} for k, v in job.entry_counts.items()]
        status: JSON = {
            "code": job.code,
            "countSuccessiveCompleteFailures": job.failures_in_a_row,
            "escrowsPruned": False,
            "lastExecution": job.last_execution,
            "lastSuccessfulExecution": job.last_success,
            "lastSuccessfulExecutionWithExports": job.last_success,
            "progress": [],
            "quarantine": job.quarantine,
            "steadyStateFirstAchievedTime": job.steady_first,
            "steadyStateLastAchievedTime": job.steady_last,
            "synchronizedEntryCountByType": counts,
            "troubleshootingUrl": None,
        }
        return {
            "id": job.id,
            "templateId": job.template.id,
            "schedule": {"expiration": None, "interval": job.interval, "state": job.schedule_state},
            "status": status,
            "synchronizationJobSettings": [{"name": n, "value": v} for n, v in job.settings],
        }

    # ------------------------------------------------------------------ lookups
    def _template(self, template_id: str) -> GalleryApp:
        app = catalog.find_app(template_id)
        if app is None:
            raise GraphError(
                404, "Request_ResourceNotFound", f"Resource '{template_id}' does not exist."
            )
        return app

    def _check_guid(self, object_id: str) -> None:
        if GUID.match(object_id) is None:
            raise GraphError(400, "Request_BadRequest", f"Invalid object identifier '{object_id}'.")

    def _application(self, ctx: Ctx, object_id: str) -> Application:
        self._check_guid(object_id)
        a = ctx.tenant.applications.get(object_id)
        if a is None or a.deleted is not None or not ctx.tenant.visible(a.vis, ctx.now):
            raise not_found(object_id)
        return a

    def _sp(self, ctx: Ctx, object_id: str) -> ServicePrincipal:
        self._check_guid(object_id)
        sp = ctx.tenant.service_principals.get(object_id)
        if sp is None or sp.deleted is not None or not ctx.tenant.visible(sp.vis, ctx.now):
            raise not_found(object_id)
        return sp

    def _job(self, ctx: Ctx, sp_id: str, job_id: str) -> tuple[ServicePrincipal, Job]:
        sp = self._sp(ctx, sp_id)
        job = sp.jobs.get(job_id)
        if job is None:
            raise GraphError(
                404,
                "NotFound",
                f"The synchronization job '{job_id}' was not found on service principal '{sp_id}'.",
            )
        return sp, job

    # ------------------------------------------------------------------ application templates
    async def h_list_templates(self, ctx: Ctx) -> MockResponse:
        pred = self._filter(ctx, TEMPLATE_FILTER, directory=False)
        items = [self.render_template(a) for a in catalog.GALLERY]
        items = [t for t in items if pred(t)]
        orderby = ctx.req.query.get("$orderby")
        if orderby:
            field_, _, direction = orderby.partition(" ")
            if field_ not in ("displayName", "publisher"):
                raise GraphError(400, "BadRequest", f"OrderBy not supported for '{field_}'.")
            items.sort(
                key=lambda t: str(t.get(field_) or "").lower(),
                reverse=direction.strip().lower() == "desc",
            )
        return self._page(ctx, items, "applicationTemplates")

    async def h_get_template(self, ctx: Ctx, id: str) -> MockResponse:
        body = {"@odata.context": self._context(ctx, "applicationTemplates/$entity")}
        body.update(self._select(ctx, self.render_template(self._template(id))))
        return MockResponse(200, body)

    async def h_instantiate(self, ctx: Ctx, id: str) -> MockResponse:
        app = self._template(id)
        body = self._json_body(ctx)
        name = body.get("displayName")
        if not isinstance(name, str) or not name.strip():
            raise GraphError(
                400,
                "Request_BadRequest",
                "Property 'displayName' is required and must be a non-empty string.",
            )
        if len(name) > 256:
            raise GraphError(
                400,
                "Request_BadRequest",
                "Invalid value specified for property 'displayName' of resource 'Application'.",
            )
        unknown = set(body) - {"displayName", "serviceManagementReference"}
        if unknown:
            raise GraphError(
                400,
                "BadRequest",
                f"Property '{sorted(unknown)[0]}' does not exist on type "
                "'microsoft.graph.applicationTemplate.instantiate'.",
            )
        application, sp = ctx.tenant.instantiate(app, name, ctx.now)
        faults = self.settings.faults
        rng = self.fault_rng("instantiate")
        if rng.random() < faults.instantiate_404_rate:
            self.counters["instantiate_404_but_created"] += 1
            raise not_found(id)
        if rng.random() < faults.instantiate_timeout_rate:
            self.counters["instantiate_timeout_but_created"] += 1
            await self.clock.sleep(faults.instantiate_timeout)
            raise GraphError(504, "UnknownError", "The request timed out.")
        return MockResponse(
            201,
            {
                "@odata.context": self._context(ctx, "microsoft.graph.applicationServicePrincipal"),
                "application": self.render_application(ctx, application),
                "servicePrincipal": self.render_service_principal(ctx, sp),
            },
        )

    # ------------------------------------------------------------------ applications
    def _visible_list(self, ctx: Ctx, objs: list[Any]) -> list[Any]:
        t = ctx.tenant
        return [o for o in objs if o.deleted is None and t.visible(o.vis, ctx.now)]

    async def h_list_applications(self, ctx: Ctx) -> MockResponse:
        pred = self._filter(ctx, APPLICATION_FILTER, directory=True)
        objs = _by_name(ctx, ctx.tenant.app_order, ctx.tenant.apps_by_name)
        items = [self.render_application(ctx, a) for a in self._visible_list(ctx, objs)]
        return self._page(ctx, [i for i in items if pred(i)], "applications")

    async def h_get_application(self, ctx: Ctx, id: str) -> MockResponse:
        a = self._application(ctx, id)
        body = {"@odata.context": self._context(ctx, "applications/$entity")}
        body.update(self._select(ctx, self.render_application(ctx, a)))
        return MockResponse(200, body)

    async def h_get_application_by_app_id(self, ctx: Ctx, appId: str) -> MockResponse:
        for a in ctx.tenant.app_order:
            if a.app_id == appId and a.deleted is None and ctx.tenant.visible(a.vis, ctx.now):
                return await self.h_get_application(ctx, a.id)
        raise not_found(appId)

    async def h_patch_application(self, ctx: Ctx, id: str) -> MockResponse:
        a = self._application(ctx, id)
        body = self._patch_body(ctx, PATCHABLE_APPLICATION, "application")
        if "displayName" in body:
            ctx.tenant.rename_application(a, body["displayName"])
        if "tags" in body:
            a.tags = list(body["tags"])
        if "notes" in body:
            a.notes = body["notes"]
        return MockResponse(204)

    def _patch_body(self, ctx: Ctx, allowed: frozenset[str], type_name: str) -> JSON:
        body = self._json_body(ctx)
        for key, value in body.items():
            if key not in allowed:
                raise GraphError(
                    400,
                    "Request_BadRequest",
                    f"Property '{key}' is read-only or does not exist on type "
                    f"'microsoft.graph.{type_name}'.",
                )
            if key == "displayName" and (not isinstance(value, str) or not value.strip()):
                raise GraphError(
                    400, "Request_BadRequest", "Invalid value specified for property 'displayName'."
                )
            if key == "tags" and (
                not isinstance(value, list)
                or not all(isinstance(t, str) and len(t) <= 256 for t in value)
            ):
                raise GraphError(
                    400, "Request_BadRequest", "Invalid value specified for property 'tags'."
                )
        return body

    async def h_delete_application(self, ctx: Ctx, id: str) -> MockResponse:
        a = self._application(ctx, id)
        ctx.tenant.delete_application(a, ctx.now)
        return MockResponse(204)

    # ------------------------------------------------------------------ service principals
    async def h_list_service_principals(self, ctx: Ctx) -> MockResponse:
        pred = self._filter(ctx, SP_FILTER, directory=True)
        objs = _by_name(ctx, ctx.tenant.sp_order, ctx.tenant.sps_by_name)
        items = [self.render_service_principal(ctx, s) for s in self._visible_list(ctx, objs)]
        return self._page(ctx, [i for i in items if pred(i)], "servicePrincipals")

    async def h_get_service_principal(self, ctx: Ctx, id: str) -> MockResponse:
        sp = self._sp(ctx, id)
        body = {"@odata.context": self._context(ctx, "servicePrincipals/$entity")}
        body.update(self._select(ctx, self.render_service_principal(ctx, sp)))
        return MockResponse(200, body)

    async def h_get_sp_by_app_id(self, ctx: Ctx, appId: str) -> MockResponse:
        sp = ctx.tenant.sp_by_app_id.get(appId)
        if sp is None or sp.deleted is not None or not ctx.tenant.visible(sp.vis, ctx.now):
            raise not_found(appId)
        return await self.h_get_service_principal(ctx, sp.id)

    async def h_patch_service_principal(self, ctx: Ctx, id: str) -> MockResponse:
        sp = self._sp(ctx, id)
        body = self._patch_body(ctx, PATCHABLE_SP, "servicePrincipal")
        if "displayName" in body:
            ctx.tenant.rename_service_principal(sp, body["displayName"])
        if "tags" in body:
            sp.tags = list(body["tags"])
        if "notes" in body:
            sp.notes = body["notes"]
        return MockResponse(204)

    async def h_delete_service_principal(self, ctx: Ctx, id: str) -> MockResponse:
        sp = self._sp(ctx, id)
        ctx.tenant.delete_service_principal(sp, ctx.now)
        return MockResponse(204)

    # ------------------------------------------------------------------ deleted items
    def _deleted(self, ctx: Ctx, object_id: str) -> Application | ServicePrincipal:
        self._check_guid(object_id)
        obj: Application | ServicePrincipal | None = ctx.tenant.applications.get(object_id)
        if obj is None:
            obj = ctx.tenant.service_principals.get(object_id)
        if obj is None or obj.deleted is None:
            raise not_found(object_id)
        return obj

    def _render_deleted(self, ctx: Ctx, obj: Application | ServicePrincipal) -> JSON:
        """A directory object as deletedItems returns it: typed with ``@odata.type``."""
        if isinstance(obj, Application):
            body = self.render_application(ctx, obj)
            body["@odata.type"] = "#microsoft.graph.application"
        else:
            body = self.render_service_principal(ctx, obj)
            body["@odata.type"] = "#microsoft.graph.servicePrincipal"
        return body

    async def h_get_deleted_item(self, ctx: Ctx, id: str) -> MockResponse:
        obj = self._deleted(ctx, id)
        return MockResponse(200, self._render_deleted(ctx, obj))

    async def h_purge_deleted_item(self, ctx: Ctx, id: str) -> MockResponse:
        self._deleted(ctx, id)
        ctx.tenant.purge(id)
        return MockResponse(204)

    async def h_restore_deleted_item(self, ctx: Ctx, id: str) -> MockResponse:
        obj = self._deleted(ctx, id)
        obj.deleted = None
        return MockResponse(200, self._render_deleted(ctx, obj))

    # ------------------------------------------------------------------ synchronization
    async def h_list_sync_templates(self, ctx: Ctx, id: str) -> MockResponse:
        sp = self._sp(ctx, id)
        items = [self.render_sync_template(sp, t) for t in sp.template.sync_templates]
        return self._page(ctx, items, f"servicePrincipals('{sp.id}')/synchronization/templates")

    async def h_get_sync_template(self, ctx: Ctx, id: str, templateId: str) -> MockResponse:
        sp = self._sp(ctx, id)
        t = catalog.find_sync_template(sp.template, templateId)
        if t is None:
            raise GraphError(404, "NotFound", f"The template '{templateId}' was not found.")
        return MockResponse(200, self.render_sync_template(sp, t))

    async def h_get_secrets(self, ctx: Ctx, id: str) -> MockResponse:
        sp = self._sp(ctx, id)
        return MockResponse(
            200,
            {
                "@odata.context": self._context(
                    ctx, f"servicePrincipals('{sp.id}')/synchronization/secrets"
                ),
                "value": [{"key": k, "value": MASK} for k in sp.secrets],
            },
        )

    def _credentials(self, items: Any, field_name: str) -> dict[str, str]:
        if not isinstance(items, list):
            raise GraphError(
                400, "BadRequest", f"'{field_name}' must be an array of key/value pairs."
            )
        out: dict[str, str] = {}
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("key"), str):
                raise GraphError(400, "BadRequest", f"Every item of '{field_name}' needs a key.")
            key = item["key"]
            if key not in SECRET_KEYS:
                raise GraphError(
                    400,
                    "BadRequest",
                    f"The requested value '{key}' is not a member of the "
                    "synchronizationSecret enumeration.",
                )
            value = item.get("value")
            if value is not None and not isinstance(value, str):
                raise GraphError(400, "BadRequest", f"The value of '{key}' must be a string.")
            out[key] = value or ""
        return out

    async def h_put_secrets(self, ctx: Ctx, id: str) -> MockResponse:
        sp = self._sp(ctx, id)
        body = self._json_body(ctx)
        sp.secrets = self._credentials(body.get("value"), "value")
        for job in sp.jobs.values():
            if job.code == "NotConfigured" and sp.secrets:
                job.code = "Paused"
        return MockResponse(204)

    async def h_list_jobs(self, ctx: Ctx, id: str) -> MockResponse:
        sp = self._sp(ctx, id)
        items = [self.render_job(ctx, j) for j in sp.jobs.values()]
        return self._page(ctx, items, f"servicePrincipals('{sp.id}')/synchronization/jobs")

    async def h_create_job(self, ctx: Ctx, id: str) -> MockResponse:
        sp = self._sp(ctx, id)
        body = self._json_body(ctx)
        template_id = body.get("templateId")
        if not isinstance(template_id, str):
            raise GraphError(400, "BadRequest", "The property 'templateId' is required.")
        t = catalog.find_sync_template(sp.template, template_id)
        if t is None:
            raise GraphError(
                400,
                "BadRequest",
                f"The template id '{template_id}' is not valid for this application.",
            )
        settings = body.get("synchronizationJobSettings")
        if settings is not None and (
            not isinstance(settings, list)
            or not all(
                isinstance(i, dict) and isinstance(i.get("name"), str) and "value" in i
                for i in settings
            )
        ):
            raise GraphError(
                400,
                "BadRequest",
                "The property 'synchronizationJobSettings' must be an array of name/value pairs.",
            )
        job = ctx.tenant.create_job(sp, t, ctx.now)
        for item in settings or []:
            value = "" if item["value"] is None else str(item["value"])
            job.settings = [(n, v) for n, v in job.settings if n != item["name"]]
            job.settings.append((item["name"], value))
        body = {
            "@odata.context": self._context(
                ctx, f"servicePrincipals('{sp.id}')/synchronization/jobs/$entity"
            )
        }
        body.update(self.render_job(ctx, job))
        return MockResponse(201, body)

    async def h_get_job(self, ctx: Ctx, id: str, jobId: str) -> MockResponse:
        sp, job = self._job(ctx, id, jobId)
        body = {
            "@odata.context": self._context(
                ctx, f"servicePrincipals('{sp.id}')/synchronization/jobs/$entity"
            )
        }
        body.update(self._select(ctx, self.render_job(ctx, job)))
        return MockResponse(200, body)

    async def h_delete_job(self, ctx: Ctx, id: str, jobId: str) -> MockResponse:
        sp, job = self._job(ctx, id, jobId)
        job.generation += 1
        del sp.jobs[job.id]
        return MockResponse(204)

    def _validate(self, ctx: Ctx, sp: ServicePrincipal, template: catalog.SyncTemplate) -> None:
        body = self._json_body(ctx)
        creds = self._credentials(body.get("credentials", []), "credentials")
        if body.get("useSavedCredentials"):
            creds = {**sp.secrets, **creds}
        error = template.connector.judge(creds)
        if error is None and sp.target_broken:
            error = catalog.CredentialError(
                code=template.connector.invalid_code, message=template.connector.invalid_message
            )
        if error is not None:
            raise GraphError(
                400,
                "BadRequest",
                f"Test connection failed: {error.message}",
                details=[{"code": error.code, "message": error.message, "target": "credentials"}],
            )

    async def h_validate_job(self, ctx: Ctx, id: str, jobId: str) -> MockResponse:
        sp, job = self._job(ctx, id, jobId)
        self._validate(ctx, sp, job.template)
        return MockResponse(204)

    async def h_validate_collection(self, ctx: Ctx, id: str) -> MockResponse:
        sp = self._sp(ctx, id)
        body = self._json_body(ctx)
        template_id = body.get("templateId")
        t = catalog.find_sync_template(sp.template, str(template_id)) if template_id else None
        if t is None:
            raise GraphError(
                400,
                "BadRequest",
                f"The template id '{template_id}' is not valid for this application.",
            )
        self._validate(ctx, sp, t)
        return MockResponse(204)

    async def h_start_job(self, ctx: Ctx, id: str, jobId: str) -> MockResponse:
        _sp, job = self._job(ctx, id, jobId)
        ctx.tenant.start_job(job, ctx.now)
        return MockResponse(204)

    async def h_pause_job(self, ctx: Ctx, id: str, jobId: str) -> MockResponse:
        _sp, job = self._job(ctx, id, jobId)
        ctx.tenant.pause_job(job)
        return MockResponse(204)

    async def h_restart_job(self, ctx: Ctx, id: str, jobId: str) -> MockResponse:
        _sp, job = self._job(ctx, id, jobId)
        scope = ""
        if ctx.req.body.strip():
            criteria = self._json_body(ctx).get("criteria") or {}
            scope = str(criteria.get("resetScope") or "") if isinstance(criteria, dict) else ""
        ctx.tenant.restart_job(job, ctx.now, scope)
        return MockResponse(204)

    async def h_provision_on_demand(self, ctx: Ctx, id: str, jobId: str) -> MockResponse:
        sp, job = self._job(ctx, id, jobId)
        body = self._json_body(ctx)
        params = body.get("parameters")
        if not isinstance(params, list) or not params:
            raise GraphError(400, "BadRequest", "The property 'parameters' is required.")
        error = job.template.connector.judge(sp.secrets)
        status = "Failure" if error else "Success"
        details = {
            "provisioningSteps": [
                {
                    "name": "EntryExportAdd",
                    "type": "Export",
                    "status": status,
                    "description": error.message if error else "Entry was provisioned.",
                }
            ],
            "statusInfo": {
                "status": status,
                "errorInformation": ({"errorCode": error.code} if error else None),
            },
        }
        return MockResponse(
            200,
            {
                "@odata.context": self._context(ctx, "microsoft.graph.stringKeyStringValuePair"),
                "key": "Microsoft.Identity.Health.CPP.Common.DataContracts.SyncFabric.StatusInfo",
                "value": orjson.dumps([details]).decode(),
            },
        )

    async def h_get_schema(self, ctx: Ctx, id: str, jobId: str) -> MockResponse:
        sp, job = self._job(ctx, id, jobId)
        body = {
            "@odata.context": self._context(
                ctx, f"servicePrincipals('{sp.id}')/synchronization/jobs('{job.id}')/schema/$entity"
            )
        }
        body.update(job.schema)
        return MockResponse(200, body)

    async def h_put_schema(self, ctx: Ctx, id: str, jobId: str) -> MockResponse:
        _sp, job = self._job(ctx, id, jobId)
        body = self._json_body(ctx)
        try:
            check_schema(body)
        except SchemaBodyError as exc:
            raise GraphError(400, "BadRequest", str(exc)) from None
        schema = {k: v for k, v in body.items() if "@odata." not in k}
        schema["id"] = job.id
        job.schema = schema
        return MockResponse(204)

    # ------------------------------------------------------------------ provisioning logs
    async def h_list_provisioning(self, ctx: Ctx) -> MockResponse:
        pred = self._filter(ctx, PROVISIONING_FILTER, directory=False)
        q = ctx.req.query
        top = self._top(q, 50)
        # newest first; the skiptoken is a position in the append-only log, stable as it grows
        end = self._skiptoken(q) if "$skiptoken" in q else len(ctx.tenant.logs)
        page: list[JSON] = []
        i = min(end, len(ctx.tenant.logs)) - 1
        logs = ctx.tenant.logs
        while i >= 0 and len(page) < top:
            if pred(logs[i]):
                page.append(logs[i])
            i -= 1
        body: JSON = {
            "@odata.context": self._context(ctx, "auditLogs/provisioning"),
            "value": [self._select(ctx, e) for e in page],
        }
        if i >= 0 and any(pred(logs[j]) for j in range(i, -1, -1)):
            query = {k: v for k, v in q.items() if k != "$skiptoken"}
            query["$skiptoken"] = _encode_token(i + 1)
            body["@odata.nextLink"] = (
                f"{ctx.req.base_url}/{ctx.req.version}{ctx.req.path}?{urlencode(query)}"
            )
        return MockResponse(200, body)

    # ------------------------------------------------------------------ $batch
    async def batch(self, req: MockRequest) -> MockResponse:
        """Run a JSON batch: each item through :meth:`handle`, honouring ``dependsOn``."""
        request_id = str(uuid.uuid4())
        try:  # the envelope needs a valid token (Graph answers 401 for the whole batch)
            self._authenticate(req)
        except GraphError as err:
            resp = _error_response(err.status, err.code, err.message, request_id)
            resp.headers.update(err.headers)
            return resp
        try:
            body = orjson.loads(req.body)
            items = body["requests"]
            if not isinstance(items, list):
                raise TypeError
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return _error_response(400, "BadRequest", "Invalid batch payload format.", request_id)
        if len(items) > self.settings.batch_limit:
            return _error_response(
                400,
                "BadRequest",
                f"Number of requests in a batch exceeds the limit of {self.settings.batch_limit}.",
                request_id,
            )
        ids = [str(it.get("id")) if isinstance(it, dict) else "" for it in items]
        if len(set(ids)) != len(ids) or any(not i for i in ids):
            return _error_response(
                400, "BadRequest", "Batch request ids must be unique and present.", request_id
            )
        await self.latency("batch")
        results: dict[str, MockResponse] = {}
        pending = {i: it for i, it in zip(ids, items, strict=True)}

        async def run(item_id: str, item: JSON) -> None:
            deps = item.get("dependsOn") or []
            if any(results[d].status >= 400 for d in deps if d in results):
                results[item_id] = MockResponse(
                    424,
                    {
                        "error": {
                            "code": "FailedDependency",
                            "message": "A dependent request failed.",
                        }
                    },
                )
                return
            url = str(item.get("url", ""))
            path, _, query = url.partition("?")
            if not path.startswith("/"):
                path = "/" + path
            sub = MockRequest(
                method=str(item.get("method", "GET")).upper(),
                path=path,
                query=_parse_query(query),
                headers={
                    **{k.lower(): str(v) for k, v in (item.get("headers") or {}).items()},
                    "authorization": req.headers.get("authorization", ""),
                },
                body=orjson.dumps(item["body"]) if "body" in item else b"",
                version=req.version,
                base_url=req.base_url,
                in_batch=True,
                conn=req.conn,
            )
            results[item_id] = await self.handle(sub)

        while pending:
            ready = {
                i: it
                for i, it in pending.items()
                if all(d in results for d in (it.get("dependsOn") or []))
            }
            if not ready:
                for i in pending:
                    results[i] = MockResponse(
                        400,
                        {
                            "error": {
                                "code": "BadRequest",
                                "message": "dependsOn refers to an unknown id.",
                            }
                        },
                    )
                break
            for i in ready:
                del pending[i]
            await asyncio.gather(*(run(i, it) for i, it in ready.items()))
        responses = []
        for i in ids:
            r = results[i]
            entry: JSON = {
                "id": i,
                "status": r.status,
                "headers": {
                    k: v
                    for k, v in r.headers.items()
                    if k.lower()
                    in (
                        "retry-after",
                        "location",
                        "x-ms-throttle-scope",
                        "x-ms-throttle-information",
                    )
                },
            }
            entry["headers"]["Content-Type"] = "application/json"
            if r.body is not None:
                entry["body"] = r.body
            responses.append(entry)
        self.counters["batches"] += 1
        resp = MockResponse(200, {"responses": responses}, {"request-id": request_id})
        for r in results.values():
            resp.on_sent.extend(r.on_sent)
        return resp

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
            "throttledInFlight": self.counters["throttled_in_flight"],
            "throttledAt": list(self.throttle_log),
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


T = TypeVar("T", Application, ServicePrincipal)
_LITERAL = re.compile(r"'(?:[^']|'')*'")
_NAME_EQ_BEFORE = re.compile(r"(?:^|[\s(])displayName\s+eq\s*$", re.IGNORECASE)
_OR_NOT = re.compile(r"\b(?:or|not)\b", re.IGNORECASE)


def name_in_filter(text: str | None) -> str | None:
    """The display name a ``$filter`` requires (``displayName eq '..'`` in a conjunction), or
    None when the filter does not pin one (no filter, an ``or``, a ``not``)."""
    if not text:
        return None
    found: str | None = None
    bare: list[str] = []
    pos = 0
    for m in _LITERAL.finditer(text):
        before = text[pos : m.start()]
        bare.append(before)
        if found is None and _NAME_EQ_BEFORE.search(before):
            found = m.group(0)[1:-1].replace("''", "'")
        pos = m.end()
    bare.append(text[pos:])
    if found is None or _OR_NOT.search(" ".join(bare)):
        return None
    return found


def _by_name(ctx: Ctx, ordered: list[T], index: Mapping[str, list[T]]) -> list[T]:
    """The objects a list must look at: those of the filter's display name, in creation
    order, or all of them. The filter itself is still applied to what this returns."""
    name = name_in_filter(ctx.req.query.get("$filter"))
    if name is None:
        return ordered
    return sorted(index.get(name.casefold(), ()), key=lambda o: o.created)


_FAULT_CODES = {
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}
_FAULT_MESSAGES = {
    500: "An internal server error occurred.",
    502: "The server received an invalid response from an upstream server.",
    503: "The service is temporarily unavailable. Please retry later.",
    504: "The request timed out before the service answered.",
}


PROXY_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
PORTAL_200 = (
    b"<!DOCTYPE html><html><head><title>Sign in to continue</title></head><body>"
    b'<form method="post" action="/login"><p>Your session has expired.</p></form>'
    b"</body></html>"
)


def _malformable(kind: str, resp: MockResponse) -> bool:
    """Whether ``kind`` can change this answer (an empty 204 cannot be truncated)."""
    if kind in ("html_502", "html_200"):
        return True
    if kind == "empty":
        return resp.body is not None
    if kind == "truncated":
        return resp.body is not None
    if kind == "extra_fields":
        return isinstance(resp.body, dict)
    return _has_ids(resp.body)


def _has_ids(obj: Any) -> bool:
    if isinstance(obj, dict):
        return "id" in obj or any(_has_ids(v) for v in obj.values())
    if isinstance(obj, list):
        return any(_has_ids(v) for v in obj)
    return False


def _without_ids(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _without_ids(v) for k, v in obj.items() if k != "id"}
    if isinstance(obj, list):
        return [_without_ids(v) for v in obj]
    return obj


def _with_extras(obj: JSON) -> JSON:
    extra = {
        "@odata.nextGenerationAnnotation": "ignored",
        "bulkprovFutureProperty": {"nested": [1, "two", None], "enabled": True},
    }
    out = {**obj, **extra}
    for k, v in obj.items():
        if isinstance(v, dict):
            out[k] = {**v, **extra}
        elif isinstance(v, list):
            out[k] = [{**i, **extra} if isinstance(i, dict) else i for i in v]
    return out


def _malform(resp: MockResponse) -> None:
    """Turn a good answer into the malformed one its fault asks for."""
    kind = resp.malformed
    if kind in ("html_502", "html_200"):
        # a proxy or portal answered: none of Graph's headers or body
        for name in ("request-id", "client-request-id", "x-ms-ags-diagnostic"):
            resp.headers.pop(name, None)
        resp.status = 502 if kind == "html_502" else 200
        resp.raw = PROXY_502 if kind == "html_502" else PORTAL_200
        resp.content_type = "text/html"
    elif kind == "empty":
        resp.raw = b""
        resp.content_type = "application/json"
    elif kind == "truncated":
        data = orjson.dumps(resp.body)
        resp.raw = data[: max(1, len(data) // 2)]
    elif kind == "extra_fields":
        resp.body = _with_extras(resp.body)
    elif kind == "missing_ids":
        resp.body = _without_ids(resp.body)


def _scope(name: str) -> JSON:
    return {
        "adminConsentDescription": f"Allow the application to access {name} on behalf of the "
        "signed-in user.",
        "adminConsentDisplayName": f"Access {name}",
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, name)),
        "isEnabled": True,
        "type": "User",
        "userConsentDescription": f"Allow the application to access {name} on your behalf.",
        "userConsentDisplayName": f"Access {name}",
        "value": "user_impersonation",
    }


def _encode_token(offset: int) -> str:
    return f"X%27{offset:x}%27".replace("%27", "'")


def _decode_token(token: str) -> int:
    if not (token.startswith("X'") and token.endswith("'")):
        raise ValueError(token)
    value = int(token[2:-1], 16)
    if value < 0 or math.isinf(value):
        raise ValueError(token)
    return value


def _parse_query(query: str) -> dict[str, str]:
    from urllib.parse import parse_qsl

    return dict(parse_qsl(query, keep_blank_values=True))


def _error_response(status: int, code: str, message: str, request_id: str) -> MockResponse:
    return MockResponse(
        status,
        {"error": {"code": code, "message": message, "innerError": {"request-id": request_id}}},
        {"request-id": request_id},
    )
