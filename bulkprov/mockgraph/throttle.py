"""Graph's throttling for the mock: token buckets per scope, Retry-After and early retries.

The identity and access service meters every request in resource units (RU) and every write
(POST, PATCH, PUT, DELETE) once more in writes, in three scopes at once (:data:`SCOPES`):

    app + tenant        RU per 10 s (by tenant size)   writes: 3,000 per 150 s
    app, all tenants    150,000 RU per 20 s            writes: 35,000 per 5 min
    tenant, all apps    -                              writes: 18,000 per 5 min

The reports service (``auditLogs/provisioning``) allows 5 requests per 10 s per app + tenant.
A request that finds a bucket short gets 429 with an integer ``Retry-After`` (the Graph seconds
until the bucket holds enough again); the scope is then closed until that moment. A request
that arrives in a closed scope is throttled again, and counted as an *early retry* when its
client provably knew of the 429 (see :meth:`Throttler.check`).

A scope's bucket may also change over time (:class:`Schedule`): load shedding lowers its limit
for a while, and another app of the tenant draws on the tenant's write bucket (see
:class:`~.settings.ThrottleSettings`). A request that is let through learns the highest use of
its buckets (``x-ms-throttle-limit-percentage`` above 80%).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

from .settings import THROTTLE_SCOPES, ThrottleSettings

#: One stretch of Graph time over which a scope's bucket changes evenly:
#: (end, limit factor, writes per Graph second another app takes).
Piece = tuple[float, float, float]


@dataclass(frozen=True, slots=True)
class Schedule:
    """How a scope's limit and another app's draw on it vary, in Graph seconds.

    ``shed``: (start, end, factor), the limit is ``factor`` times the published one in
    [start, end). ``other_app``: (rate, period, on), another app takes ``rate`` writes per
    Graph second in the first ``on`` seconds of every ``period`` counted from ``origin``."""

    origin: float = 0.0
    shed: tuple[float, float, float] | None = None
    other_app: tuple[float, float, float] | None = None

    def pieces(self, t0: float, t1: float) -> Iterator[Piece]:
        """The stretches of [t0, t1), in order (one, when nothing changes)."""
        t = t0
        while t < t1:
            end, factor, drain = t1, 1.0, 0.0
            if self.shed is not None:
                start, stop, shed_factor = self.shed
                if t < start:
                    end = min(end, start)
                elif t < stop:
                    end, factor = min(end, stop), shed_factor
            if self.other_app is not None:
                rate, period, on = self.other_app
                base = self.origin + math.floor((t - self.origin) / period) * period
                if t < base + on:
                    end, drain = min(end, base + on), rate
                else:
                    end = min(end, base + period)
            end = max(end, math.nextafter(t, math.inf))  # a boundary lost to rounding
            yield min(end, t1), factor, drain
            t = end

    def factor(self, t: float) -> float:
        if self.shed is not None and self.shed[0] <= t < self.shed[1]:
            return self.shed[2]
        return 1.0


STEADY = Schedule()  # a bucket as Graph publishes it


@dataclass(slots=True)
class TokenBucket:
    """Capacity ``limit`` refilled at ``limit / window`` per Graph second (both times the
    schedule's factor while it sheds load)."""

    limit: float
    window: float
    level: float
    updated: float
    closed_until: float = 0.0  # Retry-After horizon of the last 429 in this scope
    notified_at: float = math.inf  # when that 429 reached the client's socket
    informed: set[int] = field(default_factory=set)  # connections that carried that 429
    told: bool = True  # whether that 429 said when to come back (a Retry-After)
    capacity: float = -1.0  # the limit in force at ``updated`` (-1: ``limit``)

    def __post_init__(self) -> None:
        if self.capacity < 0:
            self.capacity = self.limit

    def refill(self, now: float, schedule: Schedule = STEADY) -> float:
        """Bring the bucket to ``now``; returns the writes another app took meanwhile."""
        taken = 0.0
        if now > self.updated:
            t = self.updated
            for end, factor, drain in schedule.pieces(self.updated, now):
                cap = self.limit * factor
                dt = end - t
                level = self.level + dt * cap / self.window - dt * drain
                taken += dt * drain + min(0.0, level)  # it gets no more than there is
                self.level = min(cap, max(0.0, level))
                t = end
            self.updated = now
        self.capacity = self.limit * schedule.factor(now)
        self.level = min(self.level, self.capacity)
        return taken

    def shortfall_wait(self, cost: float, schedule: Schedule = STEADY) -> float:
        """Graph seconds until ``cost`` is available (0 if it is now; ``window`` if the
        schedule never lets it be)."""
        if self.level >= cost:
            return 0.0
        if schedule is STEADY:
            return (cost - self.level) * self.window / self.limit
        level, t = self.level, self.updated
        for end, factor, drain in schedule.pieces(self.updated, self.updated + 100 * self.window):
            cap = self.limit * factor
            rate = cap / self.window - drain
            if cost <= cap and rate > 0 and level + (end - t) * rate >= cost:
                return t + (cost - level) / rate - self.updated
            level = min(cap, max(0.0, level + (end - t) * rate))
            t = end
        return self.window

    def percentage_used(self) -> float:
        return 100.0 * (1.0 - self.level / self.capacity)


@dataclass(frozen=True, slots=True)
class Charge:
    """What one request costs: resource units, writes, and whether it is a reports request."""

    ru: int
    write: bool
    reports: bool = False


@dataclass(frozen=True, slots=True)
class Scope:
    """One throttle scope: what it meters, whose bucket it is, and its limit in the settings.

    ``meter`` is ``"reports"`` (1 per reports request), ``"ru"`` (the resource units of every
    other request) or ``"write"`` (1 per write); ``per`` names the ids that key the bucket and
    follow ``name`` in ``x-ms-throttle-scope``; ``limit`` and ``window`` name the settings'
    fields."""

    name: str  # x-ms-throttle-scope without its ids, e.g. "Tenant_Application/Write"
    meter: str
    per: tuple[str, ...]  # "app", "tenant"
    information: str  # x-ms-throttle-information
    limit: str
    window: str

    def applies(self, charge: Charge) -> bool:
        if self.meter == "reports":
            return charge.reports
        return not charge.reports and (self.meter == "ru" or charge.write)

    def cost(self, charge: Charge) -> float:
        return float(charge.ru) if self.meter == "ru" else 1.0


RU_EXCEEDED = "ResourceUnitLimitExceeded"
WRITE_EXCEEDED = "WriteLimitExceeded"
APP_TENANT = ("app", "tenant")
#: Every scope, in the order a request's buckets are checked.
SCOPES: tuple[Scope, ...] = (
    Scope("Tenant_Application/Reports", "reports", APP_TENANT, RU_EXCEEDED,
          "reports_limit", "reports_window"),
    Scope("Tenant_Application/ResourceUnits", "ru", APP_TENANT, RU_EXCEEDED,
          "effective_ru_limit", "ru_window"),
    Scope("Application/ResourceUnits", "ru", ("app",), RU_EXCEEDED,
          "app_ru_limit", "app_ru_window"),
    Scope("Tenant_Application/Write", "write", APP_TENANT, WRITE_EXCEEDED,
          "write_limit", "write_window"),
    Scope("Application/Write", "write", ("app",), WRITE_EXCEEDED,
          "app_write_limit", "app_write_window"),
    Scope("Tenant/Write", "write", ("tenant",), WRITE_EXCEEDED,
          "tenant_write_limit", "tenant_write_window"),
)  # fmt: skip
assert tuple(s.name for s in SCOPES) == THROTTLE_SCOPES
#: The scope another app of the tenant spends too.
SHARED_BY_APPS = "Tenant/Write"


def schedule(settings: ThrottleSettings, scope: Scope, origin: float) -> Schedule:
    """How ``scope``'s bucket varies under ``settings`` (:data:`STEADY` when it does not);
    times count from ``origin``, when the mock started."""
    s = settings
    shed = None
    if s.shed_factor != 1.0 and scope.name in s.shed_scopes:
        start = origin + s.shed_start
        shed = (start, start + s.shed_duration, s.shed_factor)
    other_app = None
    if s.other_app_write_rate > 0 and scope.name == SHARED_BY_APPS:
        on = s.other_app_period * s.other_app_duty
        other_app = (s.other_app_write_rate / s.other_app_duty, s.other_app_period, on)
    if shed is None and other_app is None:
        return STEADY
    return Schedule(origin, shed, other_app)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The throttler's answer for one request."""

    allowed: bool
    retry_after: int | None = 0  # whole Graph seconds, as Graph sends it; None: not sent
    scope: str = ""  # x-ms-throttle-scope
    information: str = ""  # x-ms-throttle-information
    early_retry: bool = False
    # why it is early: "connection" (it came on a connection that carried the 429) or "late"
    # (it came well after the 429 was delivered)
    early_reason: str = ""
    limit_percentage: float = 0.0  # highest use of the request's buckets, in percent
    bucket: TokenBucket | None = None  # the bucket that closed, for :meth:`Throttler.delivered`


@dataclass(frozen=True, slots=True)
class _Metered:
    """One of a request's buckets, with what the request costs it."""

    scope: Scope
    bucket: TokenBucket
    schedule: Schedule
    cost: float
    header: str  # x-ms-throttle-scope


class Throttler:
    """All the token buckets of the mock, keyed by scope."""

    def __init__(
        self, settings: ThrottleSettings, *, grace: float = 0.0, origin: float = 0.0
    ) -> None:
        self.settings = settings
        self.grace = grace  # Graph seconds after delivery within which a request may be in flight
        self.origin = origin  # Graph time the mock started at (shedding and bursts count from it)
        # how late the event loop has been running callbacks lately (Graph seconds): a 429
        # waits that long to be read by a client on the same loop, and a request that client
        # sent before it could read it waits as long again to be read here
        self.loop_lag = 0.0
        self.other_app_writes = 0.0  # writes another app took from the tenants' budgets
        self._buckets: dict[tuple[str, ...], TokenBucket] = {}

    def _metered(self, app_id: str, tenant_id: str, charge: Charge, now: float) -> list[_Metered]:
        """The buckets ``charge`` is due in, in :data:`SCOPES` order, refilled to ``now``."""
        ids = {"app": app_id, "tenant": tenant_id}
        s = self.settings
        out = []
        for scope in SCOPES:
            if not scope.applies(charge):
                continue
            keys = tuple(ids[p] for p in scope.per)
            key = (scope.name, *keys)
            plan = schedule(s, scope, self.origin)
            bucket = self._buckets.get(key)
            if bucket is None:
                limit = float(getattr(s, scope.limit))
                start = limit * plan.factor(now) if s.start_full else 0.0
                bucket = TokenBucket(
                    limit=limit, window=getattr(s, scope.window), level=start, updated=now
                )
                self._buckets[key] = bucket
            self.other_app_writes += bucket.refill(now, plan)
            out.append(_Metered(scope, bucket, plan, scope.cost(charge), "/".join(key)))
        return out

    def check(
        self, *, app_id: str, tenant_id: str, charge: Charge, now: float, conn: int = 0
    ) -> Verdict:
        """Charge a request to its buckets, or throttle it. Nothing is charged on a 429."""
        if not self.settings.enabled:
            return Verdict(allowed=True)
        metered = self._metered(app_id, tenant_id, charge, now)
        verdict = self._closed(metered, now, conn) or self._short(metered, now)
        if verdict is not None:
            return verdict
        used = 0.0
        for m in metered:
            m.bucket.level -= m.cost
            used = max(used, m.bucket.percentage_used())
        return Verdict(allowed=True, limit_percentage=used)

    def _closed(self, metered: list[_Metered], now: float, conn: int) -> Verdict | None:
        """The 429 of a scope still inside the Retry-After of an earlier 429.

        The request is an early retry when the client provably knew of that 429 and was told
        when to come back: it came on a connection that carried the 429 back (HTTP/1.1 sends
        nothing more on a connection before its answer is read), or well after the 429 was
        delivered (the grace, plus twice the event loop's recent lag: a client on a busy loop
        reads the 429 late). Requests already on their way when the 429 left are throttled
        too, but they are no retries."""
        for m in metered:
            bucket = m.bucket
            if now < bucket.closed_until:
                informed = conn in bucket.informed
                late = now >= bucket.notified_at + self.grace + 2 * self.loop_lag
                return Verdict(
                    allowed=False,
                    retry_after=max(1, math.ceil(bucket.closed_until - now))
                    if bucket.told
                    else None,
                    scope=m.header,
                    information=m.scope.information,
                    early_retry=bucket.told and (informed or late),
                    early_reason="connection" if informed else "late" if late else "",
                    limit_percentage=100.0,
                )
        return None

    def _short(self, metered: list[_Metered], now: float) -> Verdict | None:
        """The 429 of the first bucket that cannot pay for the request, which it closes for
        as long as the 429 says."""
        for m in metered:
            wait = m.bucket.shortfall_wait(m.cost, m.schedule)
            if wait > 0:
                graph = max(1, math.ceil(wait))
                told = self.retry_after(graph)
                bucket = m.bucket
                bucket.closed_until = now + (graph if told is None else told)
                bucket.told = told is not None
                bucket.notified_at = math.inf
                bucket.informed.clear()
                return Verdict(
                    allowed=False,
                    retry_after=told,
                    scope=m.header,
                    information=m.scope.information,
                    limit_percentage=100.0,
                    bucket=bucket,
                )
        return None

    def retry_after(self, graph: int) -> int | None:
        """The ``Retry-After`` a 429 carries when Graph's would be ``graph`` seconds (None:
        none), as the settings' ``retry_after`` mode says."""
        s = self.settings
        if s.retry_after == "fixed":
            return math.ceil(s.retry_after_value)
        if s.retry_after == "scaled":
            return max(1, math.ceil(graph * s.retry_after_factor))
        if s.retry_after == "absent":
            return None
        return graph


def delivered(bucket: TokenBucket, now: float, conn: int) -> None:
    """The 429 that closed ``bucket`` has been written to the client on connection ``conn``."""
    bucket.notified_at = min(bucket.notified_at, now)
    bucket.informed.add(conn)


def resource_units(
    method: str, *, base: int = 1, select: bool = False, expand: bool = False
) -> int:
    """Graph's RU cost of a request: 1 (or ``base``), ``$select`` -1, ``$expand`` +1, min 1."""
    cost = base if method == "GET" else 1
    if select:
        cost -= 1
    if expand:
        cost += 1
    return max(1, cost)
