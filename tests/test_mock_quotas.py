"""The mock's quotas beyond Graph's published figures: another app spending the tenant's write
budget, load shedding, buckets that start empty, unusual Retry-After values, the per-app
limits shared by every tenant, and the headers a client learns the effective rate from."""

from __future__ import annotations

import math
from typing import Any

import pytest

from bulkprov.mockgraph import MockGraph, MockSettings, ThrottleSettings
from bulkprov.mockgraph.throttle import Charge, Schedule, Throttler, Verdict, delivered

from .graphclient import PlainGraph

AWS = "8b1025e4-1dd2-430b-a150-2ef79cd700f5"
WRITE = Charge(ru=1, write=True)
READ = Charge(ru=1, write=False)


def throttler(origin: float = 0.0, **settings: Any) -> Throttler:
    return Throttler(ThrottleSettings(**settings), origin=origin)


def write(t: Throttler, now: float, *, app: str = "a", tenant: str = "t", conn: int = 0) -> Verdict:
    return t.check(app_id=app, tenant_id=tenant, charge=WRITE, now=now, conn=conn)


def writes_allowed(t: Throttler, now: float, **ids: str) -> int:
    """How many writes pass at ``now`` before the first 429."""
    n = 0
    while write(t, now, **ids).allowed:
        n += 1
        assert n < 10_000
    return n


class TestSchedule:
    def test_a_steady_bucket_is_one_piece(self) -> None:
        """With no shedding and no other app, [t0, t1) is one stretch at the published limit."""
        assert list(Schedule().pieces(3.0, 8.0)) == [(8.0, 1.0, 0.0)]

    @pytest.mark.parametrize(
        ("t0", "t1", "pieces"),
        [
            (0.0, 10.0, [(5.0, 1.0, 0.0), (10.0, 0.5, 0.0)]),
            (6.0, 30.0, [(20.0, 0.5, 0.0), (30.0, 1.0, 0.0)]),
            (25.0, 26.0, [(26.0, 1.0, 0.0)]),
        ],
    )
    def test_shedding_splits_at_its_start_and_end(
        self, t0: float, t1: float, pieces: list[tuple[float, float, float]]
    ) -> None:
        """Load shedding from 5 to 20 halves the limit inside that window only."""
        assert list(Schedule(shed=(5.0, 20.0, 0.5)).pieces(t0, t1)) == pieces

    def test_a_bursty_other_app_writes_in_the_first_part_of_each_period(self) -> None:
        """Another app writing 2/s in the first 3 s of every 10 s, counted from the origin."""
        s = Schedule(origin=100.0, other_app=(2.0, 10.0, 3.0))
        assert list(s.pieces(101.0, 115.0)) == [
            (103.0, 1.0, 2.0),
            (110.0, 1.0, 0.0),
            (113.0, 1.0, 2.0),
            (115.0, 1.0, 0.0),
        ]


class TestOtherApp:
    """Another app of the tenant spends the tenant's write budget (Tenant/Write, 1 per s here)."""

    def test_a_steady_other_app_takes_its_share_of_the_refill(self) -> None:
        """At 0.5 writes/s it leaves half of the tenant bucket's refill: 5 writes in 10 s."""
        t = throttler(tenant_write_limit=10, tenant_write_window=10.0, other_app_write_rate=0.5)
        assert writes_allowed(t, 0.0) == 10
        assert writes_allowed(t, 10.0) == 5
        assert t.other_app_writes == pytest.approx(5.0)
        v = write(t, 10.0)
        assert (v.scope, v.information) == ("Tenant/Write/t", "WriteLimitExceeded")
        assert v.retry_after == 2  # the bucket fills at 0.5/s net

    def test_a_bursty_other_app_takes_all_while_it_writes(self) -> None:
        """Writing 1/s on average in bursts (2/s in the first half of every 10 s), it takes
        the whole refill while it writes, and none in the other half."""
        t = throttler(
            tenant_write_limit=10,
            tenant_write_window=10.0,
            other_app_write_rate=1.0,
            other_app_period=10.0,
            other_app_duty=0.5,
        )
        assert writes_allowed(t, 0.0) == 10
        v = write(t, 2.0)
        assert not v.allowed and v.scope == "Tenant/Write/t"
        assert v.retry_after == 4  # nothing until the burst ends at 5, then 1 s for one write
        assert writes_allowed(t, 10.0) == 5
        assert t.other_app_writes == pytest.approx(5.0)

    def test_another_app_draws_on_the_tenant_scope_only(self) -> None:
        """It writes in each tenant's Tenant/Write bucket, never in the app's own buckets."""
        t = throttler(write_limit=10, write_window=10.0, other_app_write_rate=100.0)
        assert writes_allowed(t, 0.0) == 10
        v = write(t, 0.5)
        assert v.scope == "Tenant_Application/Write/a/t"
        assert writes_allowed(t, 5.0, tenant="u") == 10


class TestShedding:
    def test_shedding_lowers_capacity_and_rate_for_a_while(self) -> None:
        """From 20 to 40 s the app + tenant write limit is halved (5 per 10 s): the bucket
        holds 5 and refills at 0.5/s; after 40 s it refills at 1/s again."""
        t = throttler(
            write_limit=10,
            write_window=10.0,
            shed_factor=0.5,
            shed_start=20.0,
            shed_duration=20.0,
        )
        assert writes_allowed(t, 0.0) == 10
        assert writes_allowed(t, 20.0) == 5
        v = write(t, 20.0)
        assert (v.scope, v.retry_after) == ("Tenant_Application/Write/a/t", 2)
        assert writes_allowed(t, 30.0) == 5
        assert writes_allowed(t, 50.0) == 10

    def test_shedding_counts_from_the_mocks_start(self) -> None:
        """Times are Graph seconds after the mock started (a kept tenant's clock goes on)."""
        t = throttler(origin=1000.0, write_limit=10, write_window=10.0, shed_factor=0.3)
        assert writes_allowed(t, 1000.0) == 3
        assert write(t, 1000.0).retry_after == math.ceil(1 / 0.3)

    def test_use_is_measured_against_the_lowered_limit(self) -> None:
        """x-ms-throttle-limit-percentage follows the limit in force: 4 of 5 is 80%."""
        t = throttler(write_limit=10, write_window=10.0, shed_factor=0.5)
        used = [write(t, 0.0).limit_percentage for _ in range(4)]
        assert used == pytest.approx([20.0, 40.0, 60.0, 80.0])

    def test_other_scopes_keep_their_limit(self) -> None:
        """Shedding the write scope leaves resource units alone."""
        t = throttler(ru_limit=10, shed_factor=0.1)
        reads = 0
        while t.check(app_id="a", tenant_id="t", charge=READ, now=0.0).allowed:
            reads += 1
        assert reads == 10

    def test_unknown_scope_is_refused(self) -> None:
        with pytest.raises(ValueError, match="unknown throttle scopes in shed_scopes"):
            ThrottleSettings(shed_factor=0.5, shed_scopes=("Tenant/Reads",))


class TestEmptyStart:
    def test_an_empty_bucket_allows_only_the_refill_rate(self) -> None:
        """Started empty, a bucket has no burst: the first request waits for the refill."""
        t = throttler(start_full=False, write_limit=10, write_window=10.0)
        first = write(t, 0.0)
        assert not first.allowed and first.retry_after == 1
        assert write(t, 1.0).allowed
        v = write(t, 1.0)
        assert (v.scope, v.retry_after) == ("Tenant_Application/Write/a/t", 1)
        assert writes_allowed(t, 5.0) == 4


class TestRetryAfter:
    """Graph's value here is 10 s: one write per 10 s once the 10 of the burst are spent."""

    @pytest.mark.parametrize(
        ("mode", "extra", "told"),
        [
            ("graph", {}, 10),
            ("fixed", {"retry_after_value": 7.0}, 7),
            ("fixed", {"retry_after_value": 0.0}, 0),
            ("scaled", {"retry_after_factor": 0.5}, 5),
            ("scaled", {"retry_after_factor": 2.5}, 25),
            ("scaled", {"retry_after_factor": 0.01}, 1),
            ("absent", {}, None),
        ],
    )
    def test_what_a_429_says(self, mode: str, extra: dict[str, float], told: int | None) -> None:
        t = throttler(write_limit=10, write_window=100.0, retry_after=mode, **extra)
        assert writes_allowed(t, 0.0) == 10
        assert write(t, 0.0).retry_after == told

    def test_a_too_short_retry_after_meets_another_429_that_is_no_early_retry(self) -> None:
        """Told 5 s when 10 are needed, a client that waits 5 s is throttled again, and the
        new 429 tells it another 3 s (half of the 5 s still needed, rounded up)."""
        t = throttler(
            write_limit=10, write_window=100.0, retry_after="scaled", retry_after_factor=0.5
        )
        assert all(write(t, 0.0).allowed for _ in range(10))
        v = write(t, 0.0, conn=1)
        assert v.bucket is not None
        delivered(v.bucket, 0.0, 1)
        again = write(t, 5.0, conn=1)
        assert not again.allowed and not again.early_retry and again.retry_after == 3

    def test_a_client_that_was_told_nothing_never_retries_early(self) -> None:
        """Without Retry-After the scope stays closed for Graph's value, and a request inside
        it is throttled without a Retry-After, and without counting as an early retry."""
        t = throttler(write_limit=10, write_window=100.0, retry_after="absent")
        assert all(write(t, 0.0).allowed for _ in range(10))
        v = write(t, 0.0, conn=1)
        assert v.bucket is not None
        delivered(v.bucket, 0.0, 1)
        inside = write(t, 5.0, conn=1)
        assert (inside.allowed, inside.retry_after, inside.early_retry) == (False, None, False)
        assert write(t, 10.0).allowed

    def test_a_zero_retry_after_leaves_the_scope_open(self) -> None:
        t = throttler(
            write_limit=10, write_window=100.0, retry_after="fixed", retry_after_value=0.0
        )
        assert all(write(t, 0.0).allowed for _ in range(10))
        v = write(t, 0.0, conn=1)
        assert v.bucket is not None
        delivered(v.bucket, 0.0, 1)
        again = write(t, 0.0, conn=1)
        assert again.bucket is not None and not again.early_retry  # the bucket refused it
        assert again.retry_after == 0


class TestAcrossTenants:
    def test_the_per_app_write_limit_is_shared_by_every_tenant(self) -> None:
        """35,000 writes per 5 min (5 here) for one app, whichever tenants they go to."""
        t = throttler(app_write_limit=5)
        assert writes_allowed(t, 0.0, tenant="t1") == 5
        v = write(t, 0.0, tenant="t2")
        assert (v.scope, v.information) == ("Application/Write/a", "WriteLimitExceeded")
        assert write(t, 0.0, app="other", tenant="t2").allowed

    def test_the_per_app_resource_units_are_shared_by_every_tenant(self) -> None:
        """150,000 RU per 20 s (6 here) for one app across its tenants."""
        t = throttler(app_ru_limit=6)
        for tenant in ("t1", "t2", "t3"):
            for _ in range(2):
                assert t.check(app_id="a", tenant_id=tenant, charge=READ, now=0.0).allowed
        v = t.check(app_id="a", tenant_id="t4", charge=READ, now=0.0)
        assert v.scope == "Application/ResourceUnits/a"


# ---------------------------------------------------------------------------- over HTTPS
@pytest.mark.anyio
@pytest.mark.parametrize(
    "mock_settings",
    [
        MockSettings.quiet(
            time_scale=0.01,
            throttle=ThrottleSettings(
                write_limit=5,
                write_window=150.0,
                shed_factor=0.4,
                retry_after="scaled",
                retry_after_factor=2.0,
            ),
        )
    ],
)
async def test_shedding_over_https(graph: PlainGraph, mock: MockGraph) -> None:
    """A shed write scope (2 of 5 writes per 150 s) answers the 3rd write 429 with the
    scaled Retry-After; use shows above 80% before any 429; every answer names its cost."""
    r = await graph.post(f"/applicationTemplates/{AWS}/instantiate", {"displayName": "Shed"})
    assert r.status == 201 and r.headers["x-ms-resource-unit"] == "1"
    assert "x-ms-throttle-limit-percentage" not in r.headers  # 1 of 2
    app_id = r.body["application"]["id"]
    r = await graph.patch(f"/applications/{app_id}", {"notes": "second"})
    assert r.status == 204
    assert float(r.headers["x-ms-throttle-limit-percentage"]) >= 0.95  # 2 of 2 (and a refill)
    r = await graph.patch(f"/applications/{app_id}", {"notes": "third"})
    assert r.status == 429
    retry_after = int(r.headers["Retry-After"])  # twice Graph's, for one write at 2 per 150 s
    assert retry_after % 2 == 0 and 100 <= retry_after <= 150
    assert r.headers["x-ms-resource-unit"] == "1"
    missing = await graph.get("/applications/00000000-0000-0000-0000-000000000000")
    assert missing.status == 404 and missing.headers["x-ms-resource-unit"] == "1"


@pytest.mark.anyio
@pytest.mark.parametrize(
    "mock_settings",
    [
        MockSettings.quiet(
            time_scale=0.01,
            tenants=2,
            throttle=ThrottleSettings(app_write_limit=3, retry_after="absent"),
        )
    ],
)
async def test_per_app_limit_across_tenants_over_https(mock: MockGraph) -> None:
    """Writes in two tenants spend one app budget: the 4th write, in the second tenant, is
    429 in the Application/Write scope, here without a Retry-After."""
    assert mock.info is not None
    first, second = mock.info.tenant_ids
    async with (
        PlainGraph(mock.info, tenant_id=first) as g1,
        PlainGraph(mock.info, tenant_id=second) as g2,
    ):
        for g, name in ((g1, "One"), (g1, "Two"), (g2, "Three")):
            r = await g.post(f"/applicationTemplates/{AWS}/instantiate", {"displayName": name})
            assert r.status == 201, r.body
        r = await g2.post(f"/applicationTemplates/{AWS}/instantiate", {"displayName": "Four"})
    assert r.status == 429
    assert r.headers["x-ms-throttle-scope"] == f"Application/Write/{mock.info.client_id}"
    assert "Retry-After" not in r.headers
    assert mock.stats()["throttled"] == 1


@pytest.mark.anyio
@pytest.mark.parametrize(
    "mock_settings",
    [
        MockSettings.quiet(
            time_scale=0.01,
            throttle=ThrottleSettings(tenant_write_limit=4, tenant_write_window=40_000.0),
        )
    ],
)
async def test_another_app_set_live_over_https(graph: PlainGraph, mock: MockGraph) -> None:
    """/_mock/control turns another app on: it spends the rest of the tenant's writes (the
    stats count them) and the next write is 429 in the Tenant/Write scope."""
    assert mock.info is not None
    r = await graph.post(f"/applicationTemplates/{AWS}/instantiate", {"displayName": "Busy"})
    assert r.status == 201
    changes = {"throttle": {"other_app_write_rate": 100.0, "shed_scopes": ["Tenant/Write"]}}
    r = await graph.post(
        f"{graph.info.graph_url}/_mock/control", {"action": "settings", "changes": changes}
    )
    assert r.status == 200, r.body
    assert mock.settings.throttle.shed_scopes == ("Tenant/Write",)
    r = await graph.patch("/applications/00000000-0000-0000-0000-000000000000", {"notes": "x"})
    assert r.status == 429, r.body
    assert r.headers["x-ms-throttle-scope"] == f"Tenant/Write/{mock.info.tenant_id}"
    assert mock.stats()["otherAppWrites"] == 3  # what the instantiate left of 4


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"retry_after": "later"}, "retry_after must be one of"),
        ({"retry_after_value": -1.0}, "retry_after_value"),
        ({"retry_after_factor": 0.0}, "retry_after_factor"),
        ({"other_app_write_rate": -5.0}, "other_app_write_rate"),
        ({"other_app_period": 0.5}, "other_app_period"),
        ({"other_app_duty": 0.0}, "other_app_duty"),
        ({"shed_factor": 1.5}, "shed_factor"),
        ({"shed_duration": 0.0}, "shed_duration"),
    ],
)
def test_bad_quota_settings_name_their_field(changes: dict[str, Any], named: str) -> None:
    """Each new setting is checked, and the error names it."""
    with pytest.raises(ValueError, match=named):
        ThrottleSettings(**changes)
