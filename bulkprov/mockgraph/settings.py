"""Settings of the mock Graph: every figure defaults to Microsoft's published one.

All durations are in *Graph seconds*: the time a real Graph would take. ``time_scale`` says how
many real seconds one Graph second lasts, so ``time_scale=0.01`` runs the whole world (latency,
quota windows, Retry-After, replication windows, job cycles) 100 times faster and keeps every
figure comparable to Graph's real pace.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Self, TypeVar

_V = TypeVar("_V")

# Resource units per 10 s for one app in one tenant, by tenant size (throttling-limits page).
RU_PER_10S_BY_TENANT_SIZE = MappingProxyType({"small": 3_500, "medium": 5_000, "large": 8_000})

#: The throttle scopes (``x-ms-throttle-scope`` without its ids), in the order a request's
#: buckets are checked (see :mod:`.throttle`).
THROTTLE_SCOPES = (
    "Tenant_Application/Reports",
    "Tenant_Application/ResourceUnits",
    "Application/ResourceUnits",
    "Tenant_Application/Write",
    "Application/Write",
    "Tenant/Write",
)
#: How the mock tells a throttled client when to come back (see :class:`ThrottleSettings`).
RETRY_AFTER_MODES = ("graph", "fixed", "scaled", "absent")

#: The route classes that latency and fault settings are keyed by.
ROUTE_CLASSES = (
    "token",
    "templates",
    "instantiate",
    "directory_read",
    "directory_write",
    "sync_read",
    "sync_templates",
    "job_create",
    "validate",
    "secrets",
    "job_control",
    "schema",
    "provision_on_demand",
    "audit_logs",
    "batch",
)


def _frozen(mapping: Mapping[str, _V]) -> Mapping[str, _V]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, slots=True, kw_only=True)
class ThrottleSettings:
    """Token buckets of the identity and access service, and of the reports service.

    The limits default to Graph's published ones. The rest shows a Graph less tidy than its
    documentation, each off by default (the defaults are Graph as published):

    - ``other_app_write_rate``: another app of the tenant spends the tenant's write budget
      (``Tenant/Write``, shared by every app of the tenant) at this many writes per Graph
      second on average; with ``other_app_duty`` below 1 it writes in bursts, only in the
      first ``other_app_duty`` of every ``other_app_period`` (at ``rate / duty`` then). Its
      writes are taken from the bucket while there is room, as a client's would be.
    - ``shed_factor`` below 1: load shedding. From ``shed_start`` for ``shed_duration`` Graph
      seconds after the mock started, the ``shed_scopes`` behave as if their limit were
      ``shed_factor`` times the published one (capacity and refill rate both).
    - ``start_full=False``: every bucket starts empty (no burst: the refill rate from the
      first request on).
    - ``retry_after``: ``"graph"`` sends Graph's usual ``Retry-After``, the whole seconds until
      the bucket holds enough again; ``"fixed"`` always ``retry_after_value`` seconds;
      ``"scaled"`` Graph's value times ``retry_after_factor`` (rounded up: below 1 the client
      comes back too early and meets another 429, above 1 it waits longer than it needs);
      ``"absent"`` no ``Retry-After`` at all (the client must back off on its own). The scope
      stays closed for as long as the 429 said (Graph's value when it said nothing); only a
      client that was told a time can retry early.

    The per-app limits across tenants (``app_ru_*``, ``app_write_*``) are shared by every
    tenant the mock serves: its tenants' tokens all name the same app.
    """

    enabled: bool = True
    tenant_size: str = "small"
    # app + tenant
    ru_limit: int | None = None  # None: from tenant_size
    ru_window: float = 10.0
    write_limit: int = 3_000
    write_window: float = 150.0
    # app, all tenants
    app_ru_limit: int = 150_000
    app_ru_window: float = 20.0
    app_write_limit: int = 35_000
    app_write_window: float = 300.0
    # tenant, all apps
    tenant_write_limit: int = 18_000
    tenant_write_window: float = 300.0
    # auditLogs/provisioning (reports): requests per window per app + tenant
    reports_limit: int = 5
    reports_window: float = 10.0
    # a bucket starts full (a burst of `limit` is allowed) as a token bucket does
    start_full: bool = True
    # another app of the tenant, writing too (Tenant/Write)
    other_app_write_rate: float = 0.0  # writes per Graph second, on average; 0: none
    other_app_period: float = 60.0  # Graph seconds
    other_app_duty: float = 1.0  # the share of each period it writes in; 1: steadily
    # load shedding
    shed_factor: float = 1.0  # 1: none
    shed_scopes: tuple[str, ...] = ("Tenant_Application/Write",)
    shed_start: float = 0.0  # Graph seconds after the mock started
    shed_duration: float = math.inf  # Graph seconds
    # what a 429 says about when to come back
    retry_after: str = "graph"
    retry_after_value: float = 30.0  # "fixed": Graph seconds (whole, 0 or more)
    retry_after_factor: float = 1.0  # "scaled"

    def __post_init__(self) -> None:
        if self.tenant_size not in RU_PER_10S_BY_TENANT_SIZE:
            raise ValueError(f"tenant_size must be one of {sorted(RU_PER_10S_BY_TENANT_SIZE)}")
        for name in (
            "write_limit",
            "app_ru_limit",
            "app_write_limit",
            "tenant_write_limit",
            "reports_limit",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        scopes: Any = self.shed_scopes  # a list or one name, as a control request may send it
        scopes = (scopes,) if isinstance(scopes, str) else tuple(scopes)
        object.__setattr__(self, "shed_scopes", scopes)
        self._check_other_app_and_shedding()
        if self.retry_after not in RETRY_AFTER_MODES:
            raise ValueError(f"retry_after must be one of {list(RETRY_AFTER_MODES)}")
        if not 0 <= self.retry_after_value < math.inf:
            raise ValueError("retry_after_value must be 0 or more")
        if not 0 < self.retry_after_factor < math.inf:
            raise ValueError("retry_after_factor must be positive")

    def _check_other_app_and_shedding(self) -> None:
        if not 0 <= self.other_app_write_rate < math.inf:
            raise ValueError("other_app_write_rate must be 0 or more")
        if not 1 <= self.other_app_period < math.inf:
            raise ValueError("other_app_period must be at least 1 Graph second")
        if not 0 < self.other_app_duty <= 1:
            raise ValueError("other_app_duty must be in (0, 1]")
        if not 0 < self.shed_factor <= 1:
            raise ValueError("shed_factor must be in (0, 1]")
        unknown = set(self.shed_scopes) - set(THROTTLE_SCOPES)
        if unknown:
            raise ValueError(
                f"unknown throttle scopes in shed_scopes: {sorted(unknown)} "
                f"(known: {', '.join(THROTTLE_SCOPES)})"
            )
        if not 0 <= self.shed_start < math.inf or not self.shed_duration > 0:
            raise ValueError("shed_start must be 0 or more and shed_duration positive")

    @property
    def effective_ru_limit(self) -> int:
        if self.ru_limit is not None:
            return self.ru_limit
        return RU_PER_10S_BY_TENANT_SIZE[self.tenant_size]


DEFAULT_LATENCY: Mapping[str, float] = _frozen(
    {
        "token": 0.15,
        "templates": 0.25,
        "instantiate": 1.6,
        "directory_read": 0.08,
        "directory_write": 0.25,
        "sync_read": 0.12,
        "sync_templates": 0.35,
        "job_create": 0.6,
        "validate": 1.1,
        "secrets": 0.45,
        "job_control": 0.35,
        "schema": 0.3,
        "provision_on_demand": 2.5,
        "audit_logs": 0.4,
        "batch": 0.02,
    }
)


@dataclass(frozen=True, slots=True, kw_only=True)
class LatencySettings:
    """Service time per route class in Graph seconds, with a uniform +-jitter fraction."""

    enabled: bool = True
    per_route: Mapping[str, float] = field(default_factory=lambda: DEFAULT_LATENCY)
    jitter: float = 0.3

    def __post_init__(self) -> None:
        unknown = set(self.per_route) - set(ROUTE_CLASSES)
        if unknown:
            raise ValueError(f"unknown route classes in latency: {sorted(unknown)}")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplicationSettings:
    """Eventual consistency of new applications and service principals.

    A new object 404s on reads (and on its synchronization sub-resources) for a delay drawn
    uniformly from [min_delay, max_delay]; for ``flap`` seconds after that, reads still 404
    with probability ``flap_probability`` (another replica answers), which is why a client must
    see several reads in a row before it trusts the object.
    """

    enabled: bool = True
    min_delay: float = 1.0
    max_delay: float = 12.0
    flap: float = 6.0
    flap_probability: float = 0.3

    def __post_init__(self) -> None:
        if not 0 <= self.min_delay <= self.max_delay:
            raise ValueError("replication delays must satisfy 0 <= min_delay <= max_delay")
        if not 0 <= self.flap_probability <= 1:
            raise ValueError("flap_probability must be in [0, 1]")


#: What a "malformed answer" fault can turn an answer into (see :class:`FaultSettings`).
MALFORMED_KINDS = (
    "html_502",  # a proxy's HTML error page: 502 text/html, no Graph error body
    "html_200",  # a 200 text/html page (a captive portal, a login page)
    "empty",  # the status Graph gave, with an empty body
    "truncated",  # the JSON body cut in the middle
    "extra_fields",  # well-formed, with properties and annotations no client knows
    "missing_ids",  # well-formed, without its "id" properties (instantiate, job create, lists)
)


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultSettings:
    """Injected faults, deterministic for a given seed and request order.

    Rates map a route class (or ``"*"`` for all) to a probability per request; bursts map a
    route class to a count: the next N requests of that class get the fault, then none (a
    ``"*"`` burst is one count shared by every class). Setting the faults of a running mock
    (``/_mock/control``) arms its bursts again.

    - ``error_rate`` / ``error_burst``: 500/502/503/504 with Graph's error body, before the
      request takes effect;
    - ``drop_rate`` (before or after the request took effect) / ``drop_burst`` (after: the
      connection is cut in the middle of the response);
    - ``slow_rate`` / ``slow_burst``: the request takes effect, and its answer comes after
      ``slow_delay`` Graph seconds (past a client's timeout);
    - ``throttle_burst``: 429 with a ``Retry-After`` of ``throttle_retry_after`` (a storm);
    - ``redirect_burst``: a ``redirect_status`` answer (301/302/303/307/308) whose ``Location``
      is ``redirect_location``, before the request takes effect: Graph redirects none of these
      calls, so a client must follow none (the token endpoint too, when the burst names it);
    - ``malformed_rate`` / ``malformed_burst``: the request takes effect, and its answer is
      one of ``malformed_kinds`` (:data:`MALFORMED_KINDS`);
    - ``instantiate_404_rate`` and ``instantiate_timeout_rate``: the terraform-azuread #1406
      cases, the objects are created, yet the answer is a 404 or nothing before the client's
      timeout.

    The token endpoint is the route class ``"token"``: ``error_burst``/``drop_burst`` naming
    it (and ``token_error_rate``) make it answer 503 or drop the connection; a ``"*"`` burst
    leaves it alone.
    """

    seed: int = 1406
    error_rate: Mapping[str, float] = field(default_factory=lambda: _frozen({}))
    drop_rate: Mapping[str, float] = field(default_factory=lambda: _frozen({}))
    slow_rate: Mapping[str, float] = field(default_factory=lambda: _frozen({}))
    malformed_rate: Mapping[str, float] = field(default_factory=lambda: _frozen({}))
    error_burst: Mapping[str, int] = field(default_factory=lambda: _frozen({}))
    drop_burst: Mapping[str, int] = field(default_factory=lambda: _frozen({}))
    slow_burst: Mapping[str, int] = field(default_factory=lambda: _frozen({}))
    throttle_burst: Mapping[str, int] = field(default_factory=lambda: _frozen({}))
    malformed_burst: Mapping[str, int] = field(default_factory=lambda: _frozen({}))
    redirect_burst: Mapping[str, int] = field(default_factory=lambda: _frozen({}))
    malformed_kinds: tuple[str, ...] = MALFORMED_KINDS
    slow_delay: float = 150.0  # Graph seconds; a client's timeout is usually 100
    throttle_retry_after: float = 120.0  # Graph seconds, for throttle_burst
    redirect_status: int = 307  # for redirect_burst
    redirect_location: str = "https://graph.example.invalid/elsewhere"
    instantiate_404_rate: float = 0.0
    instantiate_timeout_rate: float = 0.0
    instantiate_timeout: float = 150.0  # how long a timed-out instantiate hangs (Graph seconds)
    token_error_rate: float = 0.0  # the token endpoint answers 503

    def __post_init__(self) -> None:
        for name in ("error_rate", "drop_rate", "slow_rate", "malformed_rate"):
            rates = getattr(self, name)
            unknown = set(rates) - {*ROUTE_CLASSES, "*"}
            if unknown:
                raise ValueError(f"unknown route classes in {name}: {sorted(unknown)}")
            if any(not 0 <= r <= 1 for r in rates.values()):
                raise ValueError(f"{name} rates must be in [0, 1]")
        for name in BURSTS:
            counts = getattr(self, name)
            unknown = set(counts) - {*ROUTE_CLASSES, "*"}
            if unknown:
                raise ValueError(f"unknown route classes in {name}: {sorted(unknown)}")
            if any(not isinstance(n, int) or n < 0 for n in counts.values()):
                raise ValueError(f"{name} counts must be whole numbers >= 0")
        bad = set(self.malformed_kinds) - set(MALFORMED_KINDS)
        if bad or not self.malformed_kinds:
            raise ValueError(f"malformed_kinds must be among {list(MALFORMED_KINDS)}")
        if self.redirect_status not in (301, 302, 303, 307, 308):
            raise ValueError("redirect_status must be one of 301, 302, 303, 307, 308")
        if self.slow_delay < 0 or self.throttle_retry_after < 0:
            raise ValueError("slow_delay and throttle_retry_after must be >= 0")

    def rate(self, table: Mapping[str, float], route_class: str) -> float:
        return table.get(route_class, table.get("*", 0.0))

    @property
    def any(self) -> bool:
        return bool(
            any(self.error_rate.values())
            or any(self.drop_rate.values())
            or any(self.slow_rate.values())
            or any(self.malformed_rate.values())
            or any(any(getattr(self, name).values()) for name in BURSTS)
            or self.instantiate_404_rate
            or self.instantiate_timeout_rate
            or self.token_error_rate
        )


#: The counted faults of :class:`FaultSettings`.
BURSTS = (
    "error_burst",
    "drop_burst",
    "slow_burst",
    "throttle_burst",
    "malformed_burst",
    "redirect_burst",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class JobSettings:
    """How synchronization jobs run once started (Graph seconds)."""

    first_cycle_delay: float = 20.0  # from start to the first cycle beginning
    initial_cycle_duration: float = 40.0
    incremental_cycle_duration: float = 15.0
    quarantine_retry: float = 300.0  # nextAttempt of a first quarantine, doubling each time
    # incremental cycles run every schedule.interval; this caps it so a compressed run sees
    # more than one cycle (None keeps the job's interval, e.g. PT40M)
    max_interval: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MockSettings:
    """Everything that shapes the mock Graph's behaviour."""

    time_scale: float = 1.0  # real seconds per Graph second
    throttle: ThrottleSettings = field(default_factory=ThrottleSettings)
    latency: LatencySettings = field(default_factory=LatencySettings)
    replication: ReplicationSettings = field(default_factory=ReplicationSettings)
    faults: FaultSettings = field(default_factory=FaultSettings)
    jobs: JobSettings = field(default_factory=JobSettings)
    token_lifetime: float = 3599.0  # real seconds: token caches (MSAL) run on the real clock
    page_size: int = 100  # default page size of lists
    max_page_size: int = 999
    batch_limit: int = 20
    tenants: int = 1  # tenants served (migration tests use two)
    # a device-code sign-in is approved by the mock's user after this many token polls
    # (None: only POST /_mock/control {"action": "approve_device_code"} approves it)
    device_code_auto_approve: int | None = 1

    def __post_init__(self) -> None:
        if self.time_scale <= 0:
            raise ValueError("time_scale must be positive")
        if self.tenants < 1:
            raise ValueError("tenants must be at least 1")
        if self.token_lifetime <= 0:
            raise ValueError("token_lifetime must be positive")
        if self.device_code_auto_approve is not None and self.device_code_auto_approve < 0:
            raise ValueError("device_code_auto_approve must be 0 or more (or None)")

    def evolve(self, **changes: Any) -> Self:
        """A copy with ``changes`` applied (nested settings are replaced whole)."""
        return replace(self, **changes)

    @classmethod
    def quiet(cls, **changes: Any) -> MockSettings:
        """No latency, no throttling, no replication delay, no faults: a fast functional mock."""
        base = cls(
            latency=LatencySettings(enabled=False),
            throttle=ThrottleSettings(enabled=False),
            replication=ReplicationSettings(enabled=False),
        )
        return replace(base, **changes)
