"""The benchmarks' lower bound (a pure function of the mock's settings) and their manifests."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from benchmarks.common import lower_bound, write_manifest
from benchmarks.tenants import scenario_bound
from bulkprov.mockgraph.settings import MockSettings, ReplicationSettings, ThrottleSettings

TAIL = 0.35 * 0.7  # the last call, start, at its shortest service time
CRITICAL_PATH = (
    1.6 + 0.08 + 0.35 + 0.6 + 1.1 + 0.45 + 0.35
) * 0.7 + ReplicationSettings().min_delay


def test_one_tenant_the_app_and_tenant_write_bucket_binds_past_its_burst() -> None:
    """The race: 5,000 writes, the first 3,000 from the full bucket, the rest at 20/s."""
    lb = lower_bound(1000, MockSettings())
    assert lb.scopes["Tenant_Application/Write"] == pytest.approx(100 + TAIL)
    assert lb.scopes["Tenant_Application/ResourceUnits"] == pytest.approx(10 + TAIL)
    assert lb.value == pytest.approx(100 + TAIL) == lb.write_bound
    assert lb.ru_bound == pytest.approx(10 + TAIL)
    assert lb.binding == "Tenant_Application/Write"
    assert lb.critical_path == pytest.approx(CRITICAL_PATH)


def test_twenty_full_tenants_fit_every_burst_so_the_critical_path_binds() -> None:
    lb = scenario_bound("published", tenants=20, per_tenant=250, time_scale=1.0)
    assert lb.n == 5000 and lb.tenants == 20
    assert all(v == pytest.approx(TAIL) for v in lb.scopes.values())
    assert lb.binding == "critical path"
    assert lb.value == pytest.approx(CRITICAL_PATH)


def test_twenty_drained_tenants_are_bound_by_the_app_write_bucket_they_share() -> None:
    lb = scenario_bound("drained", tenants=20, per_tenant=250, time_scale=1.0)
    expected = {
        "Application/Write": 25_000 * 300 / 35_000,  # all tenants' writes, one bucket
        "Tenant_Application/Write": 1_250 / 20,  # one tenant's writes at 3,000 per 150 s
        "Tenant/Write": 1_250 * 300 / 18_000,
        "Tenant_Application/ResourceUnits": 1_750 * 10 / 3_500,
        "Application/ResourceUnits": 35_000 * 20 / 150_000,
    }
    assert lb.scopes == pytest.approx({k: v + TAIL for k, v in expected.items()})
    assert lb.binding == "Application/Write"
    assert lb.value == pytest.approx(214.2857 + TAIL, abs=1e-3)


def test_uneven_tenants_the_largest_tenant_bounds_its_own_buckets() -> None:
    settings = MockSettings(throttle=ThrottleSettings(start_full=False))
    lb = lower_bound(500, settings, per_tenant=[400, 100])
    assert lb.scopes["Tenant_Application/Write"] == pytest.approx(2_000 / 20 + TAIL)
    assert lb.scopes["Application/Write"] == pytest.approx(2_500 * 300 / 35_000 + TAIL)
    with pytest.raises(ValueError, match="split the 500 instances"):
        lower_bound(500, settings, per_tenant=[400, 50])


def test_an_unknown_rate_without_burst_and_no_throttling() -> None:
    """The pace benchmark's bound at 10 writes/s, and a mock that throttles nothing."""
    paced = MockSettings(
        throttle=ThrottleSettings(write_limit=1_500, write_window=150.0, start_full=False)
    )
    assert lower_bound(1000, paced).value == pytest.approx(5_000 / 10 + TAIL)
    free = lower_bound(1000, MockSettings(throttle=ThrottleSettings(enabled=False)))
    assert free.scopes == {} and free.binding == "critical path"
    assert free.value == pytest.approx(CRITICAL_PATH)


def test_the_tenants_manifest_interleaves_profiles_with_unique_keys(tmp_path: Path) -> None:
    path = write_manifest(tmp_path / "m.csv", 12, profiles=["tenant1", "tenant2", "tenant3"])
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["profile"] for r in rows[:4]] == ["tenant1", "tenant2", "tenant3", "tenant1"]
    assert len({r["key"] for r in rows}) == len({r["displayName"] for r in rows}) == 12
    plain = write_manifest(tmp_path / "p.csv", 2)
    assert "profile" not in plain.read_text().splitlines()[0]
