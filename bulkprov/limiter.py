"""Graph's quotas on the client side: one :class:`ScopePace` per throttle scope, holding that
scope's :class:`bulkprov.pacing.Pace`, and which scopes a request is paced in (:func:`scopes`),
which one a 429 names (:func:`scope_pace`) and which one a limit percentage is about
(:func:`busiest`).

A client paces five scopes. Three are its own, per app + tenant: ``ru`` (resource units),
``write`` and ``reports``. Two are the app's across all the tenants it serves, ``app_write``
(Graph's ``Application/Write``, 35,000 writes per 300 s) and ``app_ru``
(``Application/ResourceUnits``, 150,000 RU per 20 s): an :class:`AppPaces` holds those, and the
clients of one app, one per tenant, share it. Graph's ``Tenant/Write`` (18,000 writes per 300 s
for all the apps of a tenant) is steered by the tenant's own ``write`` pace.

The pace is immutable and many requests share a scope, so the holder keeps the current state
and every method reads and replaces it synchronously (no await in between): the client's
tasks, on one event loop, never see a half-made update. Times are Graph seconds (the client's
clock divided by its time scale)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from . import pacing
from .errors import ConfigError
from .pacing import Pace, PaceSettings
from .settings import ClientSettings, Quota

Sleep = Callable[[float], Awaitable[None]]
#: The priorities of requests in a throttle scope (see :meth:`ScopePace.admit`).
NORMAL, FIRST, URGENT = 0, 1, 2
PRIORITIES = (NORMAL, FIRST, URGENT)
#: Graph seconds at most that a request waits before it asks again while requests of a
#: higher priority wait (it asks again sooner when they should be through by then)
HOLD_MAX = 1.0
#: The client's paces, as logs and throttle waits name them.
SCOPE_NAMES = {
    "ru": "resource units",
    "write": "write",
    "reports": "reports",
    "app_write": "app writes (all tenants)",
    "app_ru": "app resource units (all tenants)",
}


def pace_settings(quota: Quota) -> PaceSettings:
    """The published quota as a pace: Graph's refill rate, and a burst a tenth of a percent
    short of Graph's (the client's count and Graph's never agree to the token, and a 429 at
    the moment the burst runs out costs far more than the few requests kept back)."""
    return PaceSettings(
        rate=quota.limit / quota.window, burst=float(quota.limit - quota.limit // 1000)
    )


class ScopePace:
    """A throttle scope's bucket and Retry-After gate, steered by what Graph answers."""

    def __init__(self, quota: Quota, now: float) -> None:
        self.quota = quota
        self.state: Pace = pacing.start(pace_settings(quota), now)
        # the requests waiting in this scope, by priority (NORMAL, FIRST, URGENT): a request is
        # held while requests of a higher priority wait (see :meth:`admit`); and each
        # priority's line, in units of cost: what had begun waiting (a waiter's place is what
        # had begun before it) and what is through (let go, or gone)
        self.waiting = [0] * len(PRIORITIES)
        self.joined = [0.0] * len(PRIORITIES)
        self.left = [0.0] * len(PRIORITIES)

    def join(self, cost: float, priority: int = NORMAL) -> float:
        """A request begins waiting: its place in its priority's line."""
        place = self.joined[priority]
        self.joined[priority] += cost
        self.waiting[priority] += 1
        return place

    def leave(self, cost: float, priority: int = NORMAL) -> None:
        """A request that waited is through (let go, or gone)."""
        self.left[priority] += cost
        self.waiting[priority] -= 1

    def closed_for(self, now: float) -> float:
        """Graph seconds until the latest 429's Retry-After has passed (0: open)."""
        return max(0.0, self.state.closed_until - now)

    def admit(
        self, now: float, cost: float, *, priority: int = NORMAL, place: float | None = None
    ) -> float:
        """Let a request of ``cost`` go at ``now`` (0.0; its sequence number is :attr:`seq`),
        or the Graph seconds to wait before asking again.

        A request is held while requests of a higher ``priority`` wait (for about the time
        the bucket takes to serve them, at most :data:`HOLD_MAX`). The steps of instances
        begun (NORMAL) wait for the first instantiate of the others (FIRST), and that for an
        instantiate posted again because the first one's answer was lost (URGENT: the whole
        set-up of its instance is still ahead of it). The POST that may be lost goes early,
        so that the wait after a lost one (a minute at least, for what it may have created
        to show) is over long before the run's end, not added to it. A request given its
        ``place`` in its priority's line (:meth:`join`) waits also for the bucket to serve
        those still ahead of it (at most as many as began waiting before it): a thousand
        waiters wake one after another as their turns come, not all at once each time the
        bucket has room for one."""
        higher = sum(self.waiting[priority + 1 :])
        if higher > 0:
            hold = min(higher * cost / self.state.rate, HOLD_MAX)
            return max(self.closed_for(now), hold, 1e-3)
        self.state, wait = pacing.admit(self.state, now, cost)
        if wait > 0 and place is not None:
            wait += max(0.0, place - self.left[priority]) / self.state.rate
        return wait

    @property
    def seq(self) -> float:
        """The sequence number of the request admitted last."""
        return self.state.sent

    def answered(
        self, now: float, *, seq: float, sent_at: float, share: float | None, cost: float
    ) -> None:
        """Graph counted the request (any answer but a 429 or a 5xx), with its limit share."""
        self.state = pacing.on_response(
            self.state, now, seq=seq, sent_at=sent_at, limit_percentage=share, cost=cost
        )

    def throttled(
        self, now: float, *, seq: float, sent_at: float, retry_after: float, cost: float
    ) -> None:
        """A 429 in this scope: closed for ``retry_after`` Graph seconds, and steered down."""
        self.state = pacing.on_throttled(
            self.state, now, seq=seq, sent_at=sent_at, retry_after=retry_after, cost=cost
        )


class AppPaces:
    """The paces of one app's limits across all the tenants it serves, ``app_write`` and
    ``app_ru``, shared by the :class:`bulkprov.client.GraphClient` of each tenant:
    ``shared = AppPaces(settings)``, then ``GraphClient(conn, settings, app_paces=shared)`` for
    every tenant. They let a request go only when the app's bucket has room for it, and a 429
    in an ``Application/...`` scope closes it for all of them (one throttling episode of the
    shared pace, however many of the clients' requests meet it).

    It may be made before any event loop runs: the paces start when the first client enters,
    at its clock. The clients that share one must run on one event loop with one clock and one
    time scale (the paces count Graph seconds, the clock divided by the time scale, and are
    read and replaced without locks); a client of another time scale is refused. The quotas
    are those of ``settings`` (``app_write_quota``, ``app_ru_quota``), whatever the clients'
    own settings say."""

    def __init__(self, settings: ClientSettings | None = None) -> None:
        s = settings or ClientSettings()
        self.time_scale = s.time_scale
        self.quotas = {"app_write": s.app_write_quota, "app_ru": s.app_ru_quota}
        self._paces: dict[str, ScopePace] | None = None

    def check(self, time_scale: float, who: str) -> None:
        """Refuse a client (``who`` names it) whose time scale is not the shared paces'."""
        if time_scale != self.time_scale:
            raise ConfigError(
                f"{who}: time_scale {time_scale:g} differs from the {self.time_scale:g} of the "
                "AppPaces it shares; give every client that shares one the same time_scale"
            )

    def paces(self, now: float) -> dict[str, ScopePace]:
        """The shared paces by name, started at Graph time ``now`` by the first to ask."""
        if self._paces is None:
            self._paces = {name: ScopePace(q, now) for name, q in self.quotas.items()}
        return dict(self._paces)


def scopes(kind: str, ru: int) -> tuple[tuple[str, float], ...]:
    """The paces a request of ``kind`` (write, read, reports) goes through, with what it
    costs in each, in the order it is admitted: a write is counted in writes and resource
    units, per app + tenant and per app; a read in resource units; a reports request only in
    the reports scope."""
    if kind == "reports":
        return (("reports", 1.0),)
    if kind == "write":
        return (("write", 1.0), ("ru", float(ru)), ("app_write", 1.0), ("app_ru", float(ru)))
    return (("ru", float(ru)), ("app_ru", float(ru)))


def own_scope(kind: str) -> str:
    """The per app + tenant pace that meters a request of ``kind`` most closely."""
    return {"reports": "reports", "write": "write"}.get(kind, "ru")


#: ``x-ms-throttle-scope`` is the scope's name then its ids, e.g.
#: ``Tenant_Application/Write/<appId>/<tenantId>`` or ``Application/Write/<appId>``: its first
#: two parts, lower-cased, name the pace.
HEADER_PACES = {
    ("tenant_application", "write"): "write",
    ("tenant_application", "resourceunits"): "ru",
    ("tenant_application", "reports"): "reports",
    ("application", "write"): "app_write",
    ("application", "resourceunits"): "app_ru",
    # all the tenant's apps: the client sees only its own share, which its write pace learns
    ("tenant", "write"): "write",
}


def scope_pace(kind: str, header: str | None) -> str:
    """The pace a 429's ``x-ms-throttle-scope`` closes (the request's own kind's scope when
    there is none; a scope not in :data:`HEADER_PACES` by what it meters)."""
    if kind == "reports":
        return "reports"
    if not header:
        return own_scope(kind)
    parts = header.lower().split("/")
    known = HEADER_PACES.get((parts[0], parts[1] if len(parts) > 1 else ""))
    if known is not None:
        return known
    if "reports" in parts[1:2]:
        return "reports"
    return "write" if "write" in parts[1:2] else "ru"


def _heat(p: Pace, now: float) -> float:
    """How used the client believes a scope's bucket to be: the published bucket's level as
    the client counts it (refilled to ``now``), or the share Graph reported for it lately
    (1 after a 429, 0 once Graph says under 80% again), whichever is higher."""
    s = p.settings
    model = min(s.burst, p.model + max(0.0, now - p.at) * s.rate)
    return max(1.0 - model / s.burst, p.used)


def busiest(states: Mapping[str, Pace], own: str, now: float) -> str:
    """The scope among a request's ``states`` that its ``x-ms-throttle-limit-percentage`` is
    taken to measure; ``own`` (the request's own kind's scope) on a tie.

    Graph sends the highest use among the request's buckets without saying which. The
    published bucket's level tells a scope that many clients spend (the app's across tenants)
    from one the client spends alone, as long as Graph keeps to the published quota; once
    Graph has shown otherwise, what it reported for the scope (a 429 last: full) is the better
    guide, so the higher of the two decides. The other scopes hear no percentage."""
    best = own if own in states else next(iter(states))
    top = _heat(states[best], now)
    for name, p in states.items():
        if (heat := _heat(p, now)) > top + 1e-9:
            best, top = name, heat
    return best
