"""The pacing controller: each transition as a table of cases, then whole runs simulated
against a Graph write bucket whose rate, burst and Retry-After the client does not know."""

from __future__ import annotations

import dataclasses
import math

import pytest

from benchmarks.pacingsim import Graph, Run, simulate
from bulkprov import pacing
from bulkprov.pacing import Pace, PaceSettings

PUBLISHED = PaceSettings(rate=20.0, burst=2997.0)


def fresh(**changes: object) -> Pace:
    """A scope at Graph time 100, changed as given."""
    return dataclasses.replace(pacing.start(PUBLISHED, 100.0), **changes)  # type: ignore[arg-type]


def distrusted(**changes: object) -> Pace:
    """A scope whose published quota was disproved, running at an estimate of 10/s."""
    base = fresh(trusting=False, estimate=10.0, rate=10.0, burst=1.0)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


class TestSettings:
    @pytest.mark.parametrize(("rate", "burst"), [(0.0, 10.0), (-1.0, 10.0), (20.0, 0.5)])
    def test_rejects_what_cannot_pace(self, rate: float, burst: float) -> None:
        """A pace needs a positive rate and a burst of at least one request."""
        with pytest.raises(ValueError, match="positive rate"):
            PaceSettings(rate=rate, burst=burst)

    def test_starts_at_the_published_quota(self) -> None:
        """A new scope trusts the published rate and burst."""
        p = pacing.start(PUBLISHED, 5.0)
        assert pacing.allowed(p) == (20.0, 2997.0)
        assert p.trusting and p.estimate == 20.0 and p.capacity == 0.0


class TestLimitPercentage:
    @pytest.mark.parametrize(
        ("header", "share"),
        [
            ("0.85", 0.85),
            ("1.2", 1.2),
            ("85.0", 0.85),
            ("100.0", 1.0),
            (" 0.9 ", 0.9),
            (None, None),
            ("", None),
            ("high", None),
            ("-0.5", None),
            ("nan", None),
            ("inf", None),
        ],
    )
    def test_parsed_as_a_share(self, header: str | None, share: float | None) -> None:
        """Graph's share (0.8 to 1.8) or the mock's percentage, as a share; nonsense is None."""
        got = pacing.parse_limit_percentage(header)
        assert got == (pytest.approx(share) if share is not None else None)


class TestAdmit:
    def test_burst_goes_at_once_then_the_rate(self) -> None:
        """The whole burst is admitted at once; the next request waits 1/rate."""
        p = fresh(burst=3.0)
        for i in range(3):
            p, wait = pacing.admit(p, 100.0)
            assert wait == 0.0 and p.sent == i + 1
        p, wait = pacing.admit(p, 100.0)
        assert wait == pytest.approx(1 / 20) and p.sent == 3
        p, wait = pacing.admit(p, 100.0 + 1 / 20)
        assert wait == 0.0 and p.sent == 4

    @pytest.mark.parametrize(
        ("t", "wait"), [(100.0, 5.0), (104.0, 1.0), (104.999, 0.001), (105.0, 0.0)]
    )
    def test_closed_scope_waits_for_retry_after(self, t: float, wait: float) -> None:
        """Nothing is admitted before the latest Retry-After has passed."""
        _, got = pacing.admit(fresh(closed_until=105.0), t)
        assert got == pytest.approx(wait, abs=1e-9)

    def test_a_collapsed_burst_does_not_hold_back_what_the_old_one_sent(self) -> None:
        """After the burst shrinks, the bucket is at most the new burst full: no long pause."""
        p = fresh(level=2000.0, level_at=100.0, burst=2.0, rate=10.0)
        _, wait = pacing.admit(p, 100.0)
        assert wait == pytest.approx(0.1)

    def test_cost_and_own_bucket(self) -> None:
        """A request of several units takes them all; sent() counts for a client's own bucket."""
        p, wait = pacing.admit(fresh(burst=10.0), 100.0, cost=4.0)
        assert wait == 0.0 and p.sent == 4.0 and p.level == 4.0
        assert pacing.sent(p, 2.0).sent == 6.0


class TestThrottled:
    def test_closes_the_scope_a_hair_past_retry_after(self) -> None:
        """The scope closes for Retry-After x 1.02 + 5 ms, never earlier than it already was."""
        p = pacing.on_throttled(fresh(), 100.0, seq=1, sent_at=99.9, retry_after=3.0)
        assert p.closed_until == pytest.approx(103.065)
        later = pacing.on_throttled(p, 100.5, seq=2, sent_at=99.95, retry_after=1.0)
        assert later.closed_until == pytest.approx(103.065)
        assert later.refused == 2

    def test_first_429_ends_the_trust_and_the_burst(self) -> None:
        """A 429 disproves the published quota: the burst becomes 0.1 s of the rate; the
        estimate stays the published rate until something is measured."""
        p = pacing.on_throttled(fresh(sent=40), 100.0, seq=1, sent_at=99.99, retry_after=1)
        assert not p.trusting
        assert p.estimate == 20.0
        assert p.burst == pytest.approx(p.rate * 0.1)
        assert p.cut_seq == 40 and p.zero == (99.99, 0.0, 1)

    # (id, state changes, seq, sent_at, expected estimate)
    EPISODES = [
        ("echo: sent before the latest episode", {"cut_seq": 50.0}, 50, 100.0, 10.0),
        ("nothing measured: cut by 15%", {"cut_seq": 50.0}, 51, 100.0, 8.5),
        (
            "accepted since the previous episode",
            {"zero": (90.0, 100.0, 1.0), "sent": 300.0},
            251,
            100.0,
            15.0,
        ),
        (
            "previous episode too recent",
            {"zero": (99.0, 100.0, 1.0), "sent": 300.0},
            251,
            100.0,
            8.5,
        ),
        ("previous episode too old", {"zero": (30.0, 100.0, 1.0), "sent": 300.0}, 251, 100.0, 8.5),
        (
            "scope closed too long between",
            {"zero": (90.0, 100.0, 5.0), "sent": 300.0},
            251,
            100.0,
            8.5,
        ),
        (
            "a calm between: the bucket may have filled",
            {"zero": (90.0, 100.0, 1.0), "sent": 300.0, "calmed": True, "calm_estimate": 10.0},
            251,
            100.0,
            8.5,
        ),
        ("after a probe: undone", {"calmed": True, "calm_estimate": 9.0}, 1, 100.0, 9.0),
    ]

    @pytest.mark.parametrize(
        ("changes", "seq", "sent_at", "estimate"),
        [case[1:] for case in EPISODES],
        ids=[case[0] for case in EPISODES],
    )
    def test_episode(
        self, changes: dict[str, object], seq: float, sent_at: float, estimate: float
    ) -> None:
        """A new episode teaches the rate, undoes a probe or cuts; an echo changes nothing."""
        p = pacing.on_throttled(
            distrusted(**changes), 100.2, seq=seq, sent_at=sent_at, retry_after=1.0
        )
        assert p.estimate == pytest.approx(estimate)

    def test_a_new_episode_starts_at_the_latest_request_sent(self) -> None:
        """Requests already on their way when an episode begins are its echoes."""
        p = pacing.on_throttled(distrusted(sent=70.0), 100.0, seq=60, sent_at=99.9, retry_after=1)
        assert p.cut_seq == 70.0
        echo = pacing.on_throttled(p, 100.1, seq=65, sent_at=99.95, retry_after=1)
        assert echo.estimate == p.estimate and echo.cut_seq == 70.0


class TestResponse:
    def test_trusting_scope_spends_the_published_burst(self) -> None:
        """While trusted, answers (even at 85% used, as the burst runs out) change nothing."""
        p = fresh(model=500.0)  # the published bucket would hold 500 of 2997: 83% used
        q = pacing.on_response(p, 100.0, seq=1, sent_at=99.9, limit_percentage=0.85)
        assert q.trusting and pacing.allowed(q) == (20.0, 2997.0)
        q = pacing.on_response(q, 100.1, seq=2, sent_at=100.0, limit_percentage=None)
        assert q.trusting and pacing.allowed(q) == (20.0, 2997.0)

    def test_share_far_above_the_published_bucket_ends_the_trust(self) -> None:
        """85% used when the published bucket would be almost full: the quota is not there."""
        q = pacing.on_response(fresh(), 100.0, seq=1, sent_at=99.9, limit_percentage=0.85)
        assert not q.trusting
        assert q.burst < 10

    @pytest.mark.parametrize(
        ("used", "factor"), [(0.8, 1.01), (0.9, 1.0), (1.0, 0.99), (1.5, 0.97)]
    )
    def test_shallow_bucket_runs_around_the_estimate(self, used: float, factor: float) -> None:
        """Capacity unknown: 1% under the estimate at 100% used, at it at 90%, over it at 80%."""
        p = pacing.on_response(
            distrusted(used=used), 100.0, seq=1, sent_at=99.9, limit_percentage=used
        )
        assert p.rate == pytest.approx(10.0 * factor)

    @pytest.mark.parametrize(
        ("share", "rate"),
        [(0.9, 10 + (300 - 50) / 20), (0.98, 10 + (60 - 50) / 20), (1.0, 10 - 50 / 20)],
    )
    def test_deep_bucket_keeps_a_cushion_and_spends_the_rest(
        self, share: float, rate: float
    ) -> None:
        """Capacity known (3,000): keep 5 s of the rate in it, spend the rest over 20 s."""
        p = distrusted(capacity=3000.0, used=share)
        q = pacing._steer(p)
        assert q.rate == pytest.approx(rate)

    @pytest.mark.parametrize(("estimate", "rate"), [(100.0, 30.0), (0.1, 1.0)])
    def test_rate_stays_within_ceiling_and_floor(self, estimate: float, rate: float) -> None:
        """Never above 1.5 nor under 0.05 times the published rate."""
        assert pacing._steer(distrusted(estimate=estimate)).rate == pytest.approx(rate)

    # (id, state changes, dt since the calm began, expected growth factor)
    PROBES = [
        ("calm begins: no growth yet", {}, None, 1.0),
        (
            "fill not known: 0.5%/s, +0.05%/s per s of calm",
            {"calm_since": 90.0},
            10.0,
            1 + (0.005 + 0.0005 * 10) * 1.0,
        ),
        (
            "fill of 0.2 s: at least 0.3%/s",
            {"calm_since": 90.0, "capacity": 2.0},
            10.0,
            1 + (0.003 + 0.0005 * 10) * 1.0,
        ),
        (
            "deep bucket: faster (fill 300 s, capped at 5%/s)",
            {"calm_since": 90.0, "capacity": 3000.0},
            10.0,
            1 + (0.05 + 0.0005 * 10) * 1.0,
        ),
        (
            "after a 10 s Retry-After: ten times slower",
            {"calm_since": 90.0, "retry_after": 10.0},
            10.0,
            1 + (0.005 + 0.0005 * 10) / 10,
        ),
        (
            "after a probe ended in a 429 just now: half as fast",
            {"calm_since": 90.0, "misses": (1.0, 100.0)},
            10.0,
            1 + (0.005 + 0.0005 * 10) / 2,
        ),
    ]

    @pytest.mark.parametrize(
        ("changes", "calm", "growth"), [c[1:] for c in PROBES], ids=[c[0] for c in PROBES]
    )
    def test_calm_probes_upward(
        self, changes: dict[str, object], calm: float | None, growth: float
    ) -> None:
        """An answer under 80% raises the estimate, as fast as a 429 would cost little."""
        p = distrusted(at=99.0, **changes)
        q = pacing.on_response(p, 100.0, seq=1, sent_at=99.9, limit_percentage=None)
        assert q.estimate == pytest.approx(10.0 * growth)
        assert q.calm_since == (100.0 if calm is None else 90.0) and q.fit is None

    def test_percentage_after_a_probe_into_a_shallow_bucket_undoes_it(self) -> None:
        """Back to the estimate of the calm's start: the bucket was full then."""
        p = distrusted(estimate=12.0, calm_since=90.0, calm_estimate=10.0)
        q = pacing.on_response(p, 100.0, seq=1, sent_at=99.9, limit_percentage=0.82)
        assert q.estimate == 10.0 and q.calm_since is None

    def test_percentage_after_a_probe_into_a_deep_bucket_keeps_it(self) -> None:
        """A deep bucket has room: the fit will tell."""
        p = distrusted(estimate=12.0, calm_since=90.0, calm_estimate=10.0, capacity=3000.0)
        q = pacing.on_response(p, 100.0, seq=1, sent_at=99.9, limit_percentage=0.82)
        assert q.estimate == 12.0

    def test_a_lasting_calm_moves_the_known_good_estimate_on(self) -> None:
        """After 10 s of calm, the estimate of then is known to be under Graph's rate."""
        p = distrusted(at=100.0)
        t = 100.0
        for _ in range(25):
            t += 1.0
            p = pacing.on_response(p, t, seq=1, sent_at=t, limit_percentage=None)
        assert 10.0 < p.calm_estimate < p.estimate

    @pytest.mark.parametrize(("rate", "capacity"), [(12.0, 3000.0), (7.0, 1500.0)])
    def test_fit_learns_rate_and_capacity_from_the_level(
        self, rate: float, capacity: float
    ) -> None:
        """Readings of a token bucket draining then refilling give its rate and capacity."""
        p = distrusted()
        level, t = 0.15 * capacity, 0.0
        for n in range(1, 401):  # 200 writes at 1.5 times the rate, then 200 at half of it
            send = rate * (1.5 if n <= 200 else 0.5)
            t += 1 / send
            level += rate / send - 1
            share = 1 - level / capacity
            p = pacing.on_response(p, t, seq=n, sent_at=t, limit_percentage=share)
        assert p.estimate == pytest.approx(rate, rel=1e-3)
        assert p.capacity == pytest.approx(capacity, rel=1e-3)

    def test_state_is_immutable(self) -> None:
        """Transitions return new states; the old one is untouched."""
        p = distrusted()
        q = pacing.on_response(p, 100.0, seq=1, sent_at=99.9, limit_percentage=None)
        assert q is not p and p.calm_since is None
        with pytest.raises(dataclasses.FrozenInstanceError):
            p.rate = 3.0  # type: ignore[misc]


class TestSimulatedGraph:
    def test_retry_after_and_early_retries(self) -> None:
        """The simulated scope answers 429 with the seconds until a token, rounded up, closes
        until then, and counts a request sent after its client read that 429 as early."""
        from benchmarks.pacingsim import _Scope

        scope = _Scope(Graph(rate=4.0, capacity=4.0, start_full=False))
        assert scope.arrive(0.1, sent=0.1) == (False, 1.0, None, False)
        scope.known_at = 0.2
        assert scope.arrive(0.5, sent=0.15)[3] is False  # on its way before the 429 arrived
        assert scope.arrive(0.6, sent=0.3) == (False, 1.0, None, True)
        answers = [scope.arrive(1.2, sent=1.2) for _ in range(5)]  # the bucket is full again
        assert [a[0] for a in answers] == [True] * 4 + [False]
        assert [a[2] for a in answers[:4]] == [None, None, None, 1.0]  # sent from 80% used on
        assert answers[4][1] == 1.0  # a token is back within 0.25 s: rounded up


# ------------------------------------------------------------------ whole runs (issue 16)
N = 1000


def no_burst(rate: float, **kw: object) -> Graph:
    """Graph's bucket at ``rate``, empty at the start (150 s deep, as the published one)."""
    return Graph(rate=rate, capacity=150 * rate, start_full=False, **kw)  # type: ignore[arg-type]


def shallow(rate: float, **kw: object) -> Graph:
    """A bucket only one second deep: the percentage warns a fifth of a second ahead."""
    return Graph(rate=rate, capacity=rate, start_full=False, **kw)  # type: ignore[arg-type]


def assert_run(graph: Graph, factor: float, share_429: float = 0.01) -> None:
    result = simulate(graph, Run(n=N))
    assert result.requests >= 14 * N
    assert result.early == 0, result
    assert result.ratio <= factor, result
    assert result.share_429 < share_429, result


@pytest.mark.parametrize("rate", [10.0, 15.0, 20.0])
def test_no_burst_within_115_of_the_bound(rate: float) -> None:
    """An unknown rate with no burst: within 1.15x of 5N/rate, under 1% 429s, none early."""
    assert_run(no_burst(rate), 1.15)


@pytest.mark.parametrize("rate", [10.0, 15.0, 20.0])
def test_no_burst_shallow_bucket_within_115_of_the_bound(rate: float) -> None:
    """The same when Graph's bucket holds one second: the percentage barely warns."""
    assert_run(shallow(rate), 1.15)


def test_documented_quota_spends_the_burst() -> None:
    """At Graph's documented quota (burst 3,000 at 20/s, full): within 1.10x of
    (5N - 3000) / 20, and no 429 at all."""
    assert_run(Graph(rate=20.0, capacity=3000.0, start_full=True), 1.10, share_429=1e-9)


def test_documented_bucket_starting_empty() -> None:
    """The documented bucket, but empty at the start (another run just spent it)."""
    assert_run(Graph(rate=20.0, capacity=3000.0, start_full=False), 1.10)


@pytest.mark.parametrize(
    ("graph", "factor"),
    [
        (no_burst(20.0, shed=((60.0, 120.0, 0.5),)), 1.05),
        (shallow(20.0, shed=((60.0, 120.0, 0.5),)), 1.15),
        (Graph(shed=((60.0, 120.0, 0.5),)), 1.15),
    ],
    ids=["deep", "shallow", "documented"],
)
def test_load_shedding_found_and_left(graph: Graph, factor: float) -> None:
    """Graph halves the rate for 60 s, then restores it: found, and found again."""
    assert_run(graph, factor)


@pytest.mark.parametrize(
    ("graph", "factor"),
    [
        (no_burst(20.0, competitor=5.0), 1.05),
        (no_burst(20.0, competitor=5.0, competitor_period=10.0), 1.10),
        (shallow(20.0, competitor=5.0), 1.05),
        (shallow(20.0, competitor=5.0, competitor_period=10.0), 1.15),
        (Graph(competitor=5.0), 1.10),
    ],
    ids=["steady", "bursty", "shallow-steady", "shallow-bursty", "documented"],
)
def test_another_app_spending_the_budget(graph: Graph, factor: float) -> None:
    """Another app spends 5 of the 20 writes/s, steadily or 50 at a time every 10 s: the bound
    is at the 15/s left."""
    assert_run(graph, factor)


@pytest.mark.parametrize(
    ("graph", "factor"),
    [
        (no_burst(10.0, retry_after=10.0), 1.05),
        (shallow(10.0, retry_after=10.0), 1.25),
        (shallow(20.0, retry_after=10.0), 1.25),
    ],
    ids=["deep-10", "shallow-10", "shallow-20"],
)
def test_a_fixed_longer_retry_after(graph: Graph, factor: float) -> None:
    """Retry-After of 10 s whatever the bucket holds: each 429 costs 10 s, none is early."""
    assert_run(graph, factor)


def test_without_the_percentage_429s_alone_steer() -> None:
    """A Graph that never sends the limit percentage: the 429s and their Retry-After suffice
    (more of them: under 1.5%)."""
    assert_run(no_burst(10.0, percentage=False), 1.05, share_429=0.015)


def test_bound_accounts_for_burst_shedding_and_competitor() -> None:
    """The simulation's bound: what the burst does not cover, at the rate left to the client."""
    assert Graph(rate=20.0, capacity=3000.0).bound(1000) == pytest.approx(100.0, abs=0.02)
    assert no_burst(10.0).bound(1000) == pytest.approx(500.0, abs=0.02)
    assert no_burst(20.0, competitor=5.0).bound(1000) == pytest.approx(5000 / 15, abs=0.02)
    shed = no_burst(20.0, shed=((60.0, 120.0, 0.5),)).bound(1000)
    assert shed == pytest.approx(280.0, abs=0.02)
    assert math.isfinite(shed)
