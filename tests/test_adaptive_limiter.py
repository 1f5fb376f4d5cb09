"""The client's quota limiter: one rate cut per throttling episode, and recovery."""

from __future__ import annotations

import pytest

from bulkprov.limiter import AdaptiveLimiter
from bulkprov.settings import Quota

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_one_cut_per_episode_then_recovery() -> None:
    clock = Clock()
    lim = AdaptiveLimiter(Quota(limit=3000, window=150), time_scale=1.0, backoff=0.8, recovery=0.01,
                          clock=clock)
    # a 429 for a request sent at 99.0 cuts the rate once ...
    await lim.throttled(sent_at=99.0)
    assert lim.factor == pytest.approx(0.8)
    # ... the others that were on their way before the cut say nothing new
    clock.now = 100.5
    for sent in (99.1, 99.9, 100.0):
        await lim.throttled(sent_at=sent)
    assert lim.factor == pytest.approx(0.8)
    # a request sent after the cut that is throttled again starts a new episode; this soon
    # after the last cut it means the real quota is lower: halve
    await lim.throttled(sent_at=100.2)
    assert lim.factor == pytest.approx((0.8 + 0.005) * 0.5, rel=1e-3)  # recovered 0.5 s first
    # quiet: the factor creeps back to 1 at `recovery` per Graph second
    clock.now += 10
    await lim.acquire(1)
    assert lim.factor == pytest.approx(0.4025 + 0.1, rel=1e-3)
    clock.now += 100
    await lim.acquire(1)
    assert lim.factor == 1.0
    # after a calm spell, a stray 429 cuts gently again
    await lim.throttled(sent_at=clock.now)
    assert lim.factor == pytest.approx(0.8)


@pytest.mark.parametrize(("limit", "window", "burst"), [(3000, 150, 2997), (3500, 10, 3497),
                                                         (5, 10, 5)])
async def test_burst_a_tenth_of_a_percent_short_at_graphs_rate(limit: int, window: float,
                                                              burst: int) -> None:
    """The client's bucket holds a tenth of a percent less than Graph's (nothing off a small
    quota) and refills at Graph's rate: the first requests spend it at once."""
    import time

    lim = AdaptiveLimiter(Quota(limit=limit, window=window), time_scale=1.0, backoff=0.8,
                          recovery=0.01)
    assert lim._limiter.max_rate == burst
    rate = lim._limiter.max_rate / lim._limiter.time_period
    assert rate == pytest.approx(limit / window)
    t0 = time.monotonic()
    for _ in range(burst):
        await lim.acquire(1)
    assert time.monotonic() - t0 < 0.5
