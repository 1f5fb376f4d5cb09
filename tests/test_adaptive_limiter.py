"""The client's scope pace: the published burst at once, one rate cut per throttling episode,
and recovery while Graph stays calm."""

from __future__ import annotations

import pytest

from bulkprov.limiter import ScopePace
from bulkprov.settings import Quota


def test_one_cut_per_episode_then_recovery() -> None:
    pace = ScopePace(Quota(limit=3000, window=150), 100.0)
    for _ in range(10):
        assert pace.admit(100.0, 1.0) == 0.0
    # a 429 for the request admitted as 5 disproves the published quota: the burst collapses,
    # the rate goes under Graph's, and the scope closes for its Retry-After ...
    pace.throttled(100.0, seq=5.0, sent_at=99.0, retry_after=2.0, cost=1.0)
    first = pace.state
    assert first.rate < 20.0 and first.burst <= 2.0 and pace.closed_for(100.0) > 2.0
    assert pace.admit(100.0, 1.0) > 2.0  # nothing goes into the closed scope
    # ... the others that were on their way before the cut say nothing new
    for seq in (6.0, 8.0, 10.0):
        pace.throttled(100.5, seq=seq, sent_at=99.5, retry_after=2.0, cost=1.0)
    assert (pace.state.rate, pace.state.estimate) == (first.rate, first.estimate)
    # a request let go after the cut that is throttled again is a new episode: a new cut
    now = 102.5
    while (wait := pace.admit(now, 1.0)) > 0:
        now += wait
    pace.throttled(now, seq=pace.seq, sent_at=now, retry_after=1.0, cost=1.0)
    cut = pace.state.estimate
    assert cut < first.estimate and pace.state.rate < first.rate
    # quiet: answers under 80% used raise the estimate again
    now, seq = now + 2.0, pace.seq
    for _ in range(200):
        while (wait := pace.admit(now, 1.0)) > 0:
            now += wait
        seq = pace.seq
        pace.answered(now + 0.1, seq=seq, sent_at=now, share=None, cost=1.0)
    assert pace.state.estimate > cut


@pytest.mark.parametrize(
    ("limit", "window", "burst"), [(3000, 150, 2997), (3500, 10, 3497), (5, 10, 5)]
)
def test_burst_a_tenth_of_a_percent_short_at_graphs_rate(
    limit: int, window: float, burst: int
) -> None:
    """The client's bucket holds a tenth of a percent less than Graph's (nothing off a small
    quota) and refills at Graph's rate: the first requests spend it at once."""
    pace = ScopePace(Quota(limit=limit, window=window), 0.0)
    for _ in range(burst):
        assert pace.admit(0.0, 1.0) == 0.0
    assert pace.admit(0.0, 1.0) == pytest.approx(window / limit)
    assert pace.state.rate == pytest.approx(limit / window)


def test_a_request_waits_while_higher_priorities_do() -> None:
    """A request is held while requests of a higher priority wait in the scope, for about
    the time the bucket takes to serve them (at most HOLD_MAX), and goes as any other once
    they are through: the steps of instances begun (NORMAL) after first instantiates
    (FIRST), those after an instantiate posted again (URGENT)."""
    from bulkprov.limiter import FIRST, HOLD_MAX, NORMAL, URGENT

    pace = ScopePace(Quota(limit=20, window=1), 0.0)  # 20 per second, a burst of 20
    assert pace.admit(0.0, 1.0, priority=NORMAL) == 0.0  # nothing else waits: it goes
    for _ in range(4):
        pace.join(1.0, FIRST)
    assert pace.admit(0.0, 1.0, priority=NORMAL) == pytest.approx(4 / pace.state.rate)
    assert pace.admit(0.0, 1.0, priority=FIRST) == 0.0  # not held back by its own kind
    pace.join(1.0, URGENT)
    assert pace.admit(0.0, 1.0, priority=FIRST) == pytest.approx(1 / pace.state.rate)
    assert pace.admit(0.0, 1.0, priority=URGENT) == 0.0
    for _ in range(10_000):
        pace.join(1.0, FIRST)
    assert pace.admit(0.0, 1.0, priority=NORMAL) == HOLD_MAX
    pace.leave(1.0, URGENT)
    for _ in range(10_004):
        pace.leave(1.0, FIRST)
    assert pace.admit(0.0, 1.0, priority=NORMAL) == 0.0


def test_waiters_wake_as_their_turns_come() -> None:
    """With the bucket spent, the request whose place is tenth in line is told to wait about
    ten tokens' time; the first in line, one token's (not all of them the same)."""
    pace = ScopePace(Quota(limit=20, window=1), 0.0)
    for _ in range(20):
        assert pace.admit(0.0, 1.0) == 0.0  # the burst
    places = [pace.join(1.0) for _ in range(10)]
    first = pace.admit(0.0, 1.0, place=places[0])
    tenth = pace.admit(0.0, 1.0, place=places[9])
    assert 0 < first < 0.1 and tenth == pytest.approx(first + 9 / pace.state.rate)
