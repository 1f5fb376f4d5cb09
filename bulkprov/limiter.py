"""Graph's quotas on the client side: a leaky bucket per quota that slows down after a 429 and
recovers while quiet (:class:`AdaptiveLimiter`), and a gate per throttle scope that a 429 closes
for everyone until its Retry-After has passed (:class:`ScopeGate`)."""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable

from aiolimiter import AsyncLimiter

from .settings import Quota

Sleep = Callable[[float], Awaitable[None]]

REPEAT_WINDOW = 60.0  # Graph seconds: a 429 episode this soon after the last cut halves


class AdaptiveLimiter:
    """A quota as an aiolimiter leaky bucket whose effective rate backs off after a 429.

    Each acquisition takes ``amount / factor`` of the bucket, so a factor of 0.8 spends the
    quota 20% slower; the factor creeps back to 1 while no 429 arrives.
    """

    def __init__(
        self,
        quota: Quota,
        *,
        time_scale: float,
        backoff: float,
        recovery: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.quota = quota
        # a burst a tenth of a percent short of Graph's (at the same refill rate): the
        # client's count and Graph's never agree to the token, and a 429 at the moment the
        # burst runs out (a rate cut) costs far more than the few requests kept back
        burst = float(quota.limit - quota.limit // 1000)
        self._limiter = AsyncLimiter(burst, burst * quota.window / quota.limit * time_scale)
        self._time_scale = time_scale
        self._backoff = backoff
        self._recovery = recovery
        self._clock = clock
        self.factor = 1.0
        self._since = clock()
        self._last_cut = -math.inf  # when the rate was last cut

    def _recover(self) -> None:
        now = self._clock()
        if self.factor < 1.0:
            graph_seconds = (now - self._since) / self._time_scale
            self.factor = min(1.0, self.factor + self._recovery * graph_seconds)
        self._since = now

    async def acquire(self, amount: float = 1.0) -> None:
        self._recover()
        await self._limiter.acquire(min(self._limiter.max_rate, amount / self.factor))

    async def throttled(self, sent_at: float) -> None:
        """A 429 in this scope for a request sent at ``sent_at`` (this limiter's clock): slow
        down, and spend what the bucket still holds, so requests resume at the refill rate
        rather than in a burst. Once per episode: the other requests that were already on
        their way when the rate was cut come back 429 too, and say nothing new."""
        if sent_at <= self._last_cut:
            return
        self._recover()
        now = self._clock()
        # a first 429 after a calm spell cuts gently (the quota mirrors Graph's, so it is
        # likely a stray); 429s that keep coming mean the real quota is lower: halve
        recent = (now - self._last_cut) / self._time_scale < REPEAT_WINDOW
        self.factor = max(0.02, self.factor * (0.5 if recent else self._backoff))
        self._last_cut = now
        amount = float(self.quota.limit)
        while amount >= 1:
            if self._limiter.has_capacity(amount):
                await self._limiter.acquire(amount)
            else:
                amount /= 2


class ScopeGate:
    """Closed until a moment: every request in the scope waits for it."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.until = 0.0

    def close_for(self, real_seconds: float) -> None:
        self.until = max(self.until, self._clock() + real_seconds)

    async def wait(self, sleep: Sleep) -> None:
        while (remaining := self.until - self._clock()) > 0:
            await sleep(remaining)
