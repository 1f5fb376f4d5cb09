"""The pure retry policy: decide(), parse_retry_after() and backoff(), table-driven."""

from __future__ import annotations

import random

import pytest

from bulkprov.retry import Action, Decision, RetryPolicy, backoff, decide, parse_retry_after

POLICY = RetryPolicy(
    max_attempts=4, max_throttle_attempts=5, base_delay=1.0, max_delay=8.0, default_retry_after=5.0
)


def ceiling(attempt: int, policy: RetryPolicy = POLICY) -> float:
    return min(policy.max_delay, policy.base_delay * 2 ** (attempt - 1))


def run(
    status: int | None,
    *,
    headers: dict[str, str] | None = None,
    attempt: int = 1,
    idempotent: bool = True,
    reauthed: bool = False,
    seed: int = 7,
) -> Decision:
    return decide(
        status=status,
        headers=headers or {},
        attempt=attempt,
        idempotent=idempotent,
        reauthed=reauthed,
        policy=POLICY,
        rng=random.Random(seed),
    )


# (id, kwargs for run(), expected action, expected exact delay or None, expected scope)
EXACT = [
    ("200", {"status": 200}, Action.OK, 0.0, None),
    ("201 non-idempotent", {"status": 201, "idempotent": False}, Action.OK, 0.0, None),
    ("204 late attempt", {"status": 204, "attempt": 99}, Action.OK, 0.0, None),
    (
        "429 retry-after",
        {"status": 429, "headers": {"Retry-After": "17", "x-ms-throttle-scope": "Tenant/Write/x"}},
        Action.RETRY,
        17.0,
        "Tenant/Write/x",
    ),
    (
        "429 header case",
        {"status": 429, "headers": {"retry-after": "3", "X-MS-Throttle-Scope": "App/Reports"}},
        Action.RETRY,
        3.0,
        "App/Reports",
    ),
    (
        "429 retry-after 0",
        {"status": 429, "headers": {"Retry-After": "0"}},
        Action.RETRY,
        0.0,
        None,
    ),
    (
        "429 non-idempotent still retried",
        {"status": 429, "idempotent": False, "headers": {"Retry-After": "2"}},
        Action.RETRY,
        2.0,
        None,
    ),
    (
        "429 at max throttle attempts",
        {"status": 429, "attempt": 5, "headers": {"Retry-After": "1"}},
        Action.FAIL,
        0.0,
        None,
    ),
    ("429 beyond max throttle attempts", {"status": 429, "attempt": 6}, Action.FAIL, 0.0, None),
    ("500 non-idempotent", {"status": 500, "idempotent": False}, Action.FAIL, 0.0, None),
    ("503 non-idempotent", {"status": 503, "idempotent": False}, Action.FAIL, 0.0, None),
    ("transport non-idempotent", {"status": None, "idempotent": False}, Action.FAIL, 0.0, None),
    ("500 at max attempts", {"status": 500, "attempt": 4}, Action.FAIL, 0.0, None),
    ("transport at max attempts", {"status": None, "attempt": 4}, Action.FAIL, 0.0, None),
    ("401 first", {"status": 401}, Action.REAUTH, 0.0, None),
    ("401 non-idempotent first", {"status": 401, "idempotent": False}, Action.REAUTH, 0.0, None),
    ("401 after reauth", {"status": 401, "reauthed": True}, Action.FAIL, 0.0, None),
    ("400", {"status": 400}, Action.FAIL, 0.0, None),
    ("403", {"status": 403}, Action.FAIL, 0.0, None),
    ("404", {"status": 404}, Action.FAIL, 0.0, None),
    ("409", {"status": 409}, Action.FAIL, 0.0, None),
    ("501 not retryable", {"status": 501}, Action.FAIL, 0.0, None),
]


@pytest.mark.parametrize(
    ("kw", "action", "delay", "scope"), [e[1:] for e in EXACT], ids=[e[0] for e in EXACT]
)
def test_decide_table(
    kw: dict[str, object], action: Action, delay: float, scope: str | None
) -> None:
    """decide() gives the expected action, delay and throttle scope for each case."""
    assert run(**kw) == Decision(action, delay, scope)  # type: ignore[arg-type]


@pytest.mark.parametrize("status", [None, 500, 502, 503, 504])
@pytest.mark.parametrize("attempt", [1, 2, 3])
@pytest.mark.parametrize("seed", range(5))
def test_5xx_and_transport_idempotent_retry_with_bounded_backoff(
    status: int | None, attempt: int, seed: int
) -> None:
    """An idempotent request after a 5xx or no answer retries after [ceiling/2, ceiling]."""
    d = run(status, attempt=attempt, seed=seed)
    assert d.action is Action.RETRY and d.scope is None
    assert ceiling(attempt) / 2 <= d.delay <= ceiling(attempt)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Retry-After": "soon"},
        {"Retry-After": "-3"},
        {"Retry-After": "inf"},
        {"Retry-After": "nan"},
        {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"},
    ],
)
@pytest.mark.parametrize("attempt", [1, 2, 3, 4])
def test_429_without_usable_retry_after_waits_at_least_the_default(
    headers: dict[str, str], attempt: int
) -> None:
    """A 429 without a usable Retry-After waits max(default_retry_after, backoff), finitely."""
    d = run(429, headers=headers, attempt=attempt)
    assert d.action is Action.RETRY
    assert (
        POLICY.default_retry_after <= d.delay <= max(POLICY.default_retry_after, ceiling(attempt))
    )


def test_401_reauth_then_fail_sequence() -> None:
    """A 401 asks for one re-authentication; a second 401 after it fails."""
    first = run(401, attempt=1)
    second = run(401, attempt=2, reauthed=first.action is Action.REAUTH)
    assert (first.action, second.action) == (Action.REAUTH, Action.FAIL)


def test_decide_is_deterministic_for_a_seed() -> None:
    """The same seed gives the same back-off: the policy has no hidden state."""
    assert run(503, attempt=3, seed=42) == run(503, attempt=3, seed=42)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("5", 5.0),
        (" 12 ", 12.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("", None),
        ("abc", None),
        ("-1", None),
        ("inf", None),
        ("Infinity", None),
        ("nan", None),
        ("1e400", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    """Retry-After seconds parse; missing, negative, non-numeric and non-finite give None."""
    assert parse_retry_after(value) == expected


@pytest.mark.parametrize("attempt", [0, 1, 2, 3, 4, 5, 10, 64, 1025, 10_000])
def test_backoff_is_capped_and_jittered_within_half_to_full(attempt: int) -> None:
    """backoff() is in [c/2, c] with c = min(max_delay, base * 2**(n-1)), even for huge n."""
    rng = random.Random(attempt)
    c = min(POLICY.max_delay, POLICY.base_delay * 2.0 ** min(max(0, attempt - 1), 1000))
    values = [backoff(attempt, POLICY, rng) for _ in range(50)]
    assert all(c / 2 <= v <= c for v in values)
    assert max(values) <= POLICY.max_delay
    assert len(set(values)) > 1  # jittered, not a constant


def test_backoff_grows_then_reaches_the_cap() -> None:
    """The back-off ceiling doubles per attempt until max_delay, then stays there."""
    rng = random.Random(0)
    policy = RetryPolicy(base_delay=1.0, max_delay=4.0)
    lows = [min(backoff(n, policy, rng) for _ in range(200)) for n in (1, 2, 3, 4, 8)]
    assert lows[0] < 1.0 <= lows[1] < 2.0 <= lows[2]
    assert all(2.0 <= v <= 4.0 for v in lows[2:])


def test_throttle_attempts_beyond_2k_do_not_crash() -> None:
    """A policy with many throttle attempts decides a late 429 without float overflow."""
    policy = RetryPolicy(max_throttle_attempts=5000, max_delay=60.0)
    d = decide(
        status=429,
        headers={},
        attempt=3000,
        idempotent=True,
        reauthed=False,
        policy=policy,
        rng=random.Random(1),
    )
    assert d.action is Action.RETRY and policy.default_retry_after <= d.delay <= 60.0


@pytest.mark.parametrize(
    "kw",
    [
        {"max_attempts": 0},
        {"max_throttle_attempts": 0},
        {"base_delay": 0.0},
        {"base_delay": 10.0, "max_delay": 5.0},
    ],
)
def test_policy_rejects_impossible_settings(kw: dict[str, float]) -> None:
    """RetryPolicy refuses zero attempts, a zero base delay or base > max."""
    with pytest.raises(ValueError):
        RetryPolicy(**kw)  # type: ignore[arg-type]
