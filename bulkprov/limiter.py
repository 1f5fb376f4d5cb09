"""Graph's quotas on the client side: one :class:`ScopePace` per throttle scope (resource
units, writes, reports), holding that scope's :class:`bulkprov.pacing.Pace`.

The pace is immutable and many requests share a scope, so the holder keeps the current state
and every method reads and replaces it synchronously (no await in between): the client's
tasks, on one event loop, never see a half-made update. Times are Graph seconds (the client's
clock divided by its time scale)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from . import pacing
from .pacing import Pace, PaceSettings
from .settings import Quota

Sleep = Callable[[float], Awaitable[None]]


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

    def closed_for(self, now: float) -> float:
        """Graph seconds until the latest 429's Retry-After has passed (0: open)."""
        return max(0.0, self.state.closed_until - now)

    def admit(self, now: float, cost: float) -> float:
        """Let a request of ``cost`` go at ``now`` (0.0; its sequence number is :attr:`seq`),
        or the Graph seconds to wait before asking again."""
        self.state, wait = pacing.admit(self.state, now, cost)
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
