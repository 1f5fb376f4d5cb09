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
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .settings import ThrottleSettings


@dataclass(slots=True)
class TokenBucket:
    """Capacity ``limit`` refilled at ``limit / window`` per Graph second."""

    limit: float
    window: float
    level: float
    updated: float
    closed_until: float = 0.0  # Retry-After horizon of the last 429 in this scope
    notified_at: float = math.inf  # when that 429 reached the client's socket
    informed: set[int] = field(default_factory=set)  # connections that carried that 429

    def refill(self, now: float) -> None:
        if now > self.updated:
            self.level = min(
                self.limit, self.level + (now - self.updated) * self.limit / self.window
            )
            self.updated = now

    def shortfall_wait(self, cost: float) -> float:
        """Graph seconds until ``cost`` is available (0 if it is now)."""
        if self.level >= cost:
            return 0.0
        return (cost - self.level) * self.window / self.limit

    def percentage_used(self) -> float:
        return 100.0 * (1.0 - self.level / self.limit)


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


@dataclass(frozen=True, slots=True)
class Verdict:
    """The throttler's answer for one request."""

    allowed: bool
    retry_after: int = 0  # whole Graph seconds, as Graph sends it
    scope: str = ""  # x-ms-throttle-scope
    information: str = ""  # x-ms-throttle-information
    early_retry: bool = False
    limit_percentage: float = 0.0  # highest use of the request's buckets, in percent
    bucket: TokenBucket | None = None  # the bucket that closed, for :meth:`Throttler.delivered`


@dataclass(frozen=True, slots=True)
class _Metered:
    """One of a request's buckets, with what the request costs it."""

    scope: Scope
    bucket: TokenBucket
    cost: float
    header: str  # x-ms-throttle-scope


class Throttler:
    """All the token buckets of the mock, keyed by scope."""

    def __init__(self, settings: ThrottleSettings, *, grace: float = 0.0) -> None:
        self.settings = settings
        self.grace = grace  # Graph seconds after delivery within which a request may be in flight
        # how late the event loop has been running callbacks lately (Graph seconds): a 429
        # waits that long to be read by a client on the same loop, and a request that client
        # sent before it could read it waits as long again to be read here
        self.loop_lag = 0.0
        self._buckets: dict[tuple[str, ...], TokenBucket] = {}

    def _bucket(self, key: tuple[str, ...], limit: int, window: float, now: float) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            start = float(limit) if self.settings.start_full else 0.0
            bucket = TokenBucket(limit=float(limit), window=window, level=start, updated=now)
            self._buckets[key] = bucket
        bucket.refill(now)
        return bucket

    def _metered(self, app_id: str, tenant_id: str, charge: Charge, now: float) -> list[_Metered]:
        """The buckets ``charge`` is due in, in :data:`SCOPES` order, refilled to ``now``."""
        ids = {"app": app_id, "tenant": tenant_id}
        s = self.settings
        out = []
        for scope in SCOPES:
            if not scope.applies(charge):
                continue
            keys = tuple(ids[p] for p in scope.per)
            limit, window = getattr(s, scope.limit), getattr(s, scope.window)
            bucket = self._bucket((scope.name, *keys), limit, window, now)
            out.append(_Metered(scope, bucket, scope.cost(charge), "/".join((scope.name, *keys))))
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

        The request is an early retry when the client provably knew of that 429: it came on a
        connection that carried the 429 back (HTTP/1.1 sends nothing more on a connection
        before its answer is read), or well after the 429 was delivered (the grace, plus twice
        the event loop's recent lag: a client on a busy loop reads the 429 late). Requests
        already on their way when the 429 left are throttled too, but they are no retries."""
        for m in metered:
            bucket = m.bucket
            if now < bucket.closed_until:
                return Verdict(
                    allowed=False,
                    retry_after=max(1, math.ceil(bucket.closed_until - now)),
                    scope=m.header,
                    information=m.scope.information,
                    early_retry=(
                        conn in bucket.informed
                        or now >= bucket.notified_at + self.grace + 2 * self.loop_lag
                    ),
                    limit_percentage=100.0,
                )
        return None

    def _short(self, metered: list[_Metered], now: float) -> Verdict | None:
        """The 429 of the first bucket that cannot pay for the request, which it closes."""
        for m in metered:
            wait = m.bucket.shortfall_wait(m.cost)
            if wait > 0:
                retry_after = max(1, math.ceil(wait))
                bucket = m.bucket
                bucket.closed_until = now + retry_after
                bucket.notified_at = math.inf
                bucket.informed.clear()
                return Verdict(
                    allowed=False,
                    retry_after=retry_after,
                    scope=m.header,
                    information=m.scope.information,
                    limit_percentage=100.0,
                    bucket=bucket,
                )
        return None


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
