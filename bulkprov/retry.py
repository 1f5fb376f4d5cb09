"""Pure retry and back-off decisions: what to do after an answer, and how long to wait.

No I/O here: the client feeds in what happened and gets a :class:`Decision` back, so the policy
is tested with tables of cases.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

RETRYABLE_STATUSES = frozenset({500, 502, 503, 504})


class Action(Enum):
    OK = "ok"
    RETRY = "retry"
    FAIL = "fail"
    REAUTH = "reauth"  # 401: refresh the token once, then retry


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Attempts and back-off, in Graph seconds."""

    max_attempts: int = 6  # for 5xx and transport errors
    max_throttle_attempts: int = 30  # for 429s: throttling is expected at scale
    base_delay: float = 1.0
    max_delay: float = 60.0
    default_retry_after: float = 5.0  # a 429 without Retry-After

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.max_throttle_attempts < 1:
            raise ValueError("attempt limits must be at least 1")
        if not 0 < self.base_delay <= self.max_delay:
            raise ValueError("need 0 < base_delay <= max_delay")


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    delay: float = 0.0  # Graph seconds before the next attempt
    scope: str | None = None  # throttle scope the delay applies to (every worker waits)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds of a ``Retry-After`` header (Graph sends whole seconds), or None."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def doubling(attempt: int, base: float, cap: float) -> float:
    """``base`` doubled for each attempt after the first (1-based), at most ``cap``:
    min(cap, base * 2**(attempt-1)). bulkprov's one back-off formula."""
    # the exponent is capped: 2**1100 does not fit a float, and the cap is reached long before
    return min(cap, base * 2.0 ** min(max(0, attempt - 1), 1000))


def jittered(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """:func:`doubling` with equal jitter: uniform in [ceiling/2, ceiling], so tries that
    failed together do not come back together."""
    ceiling = doubling(attempt, base, cap)
    return rng.uniform(ceiling / 2, ceiling)


def backoff(attempt: int, policy: RetryPolicy, rng: random.Random) -> float:
    """Exponential back-off with equal jitter: uniform in [ceiling/2, ceiling], where ceiling is
    min(max_delay, base_delay * 2**(attempt-1))."""
    return jittered(attempt, policy.base_delay, policy.max_delay, rng)


def decide(
    *,
    status: int | None,
    headers: Mapping[str, str],
    attempt: int,
    idempotent: bool,
    reauthed: bool,
    policy: RetryPolicy,
    rng: random.Random,
) -> Decision:
    """What to do after attempt number ``attempt`` (1-based) of a request.

    ``status`` is None when there was no answer (connection dropped, timed out). A request that
    is not idempotent (a POST that creates) is never retried after a 5xx or a lost answer: it
    may have taken effect, and only the step can find out (reconcile). A 429 is always safe to
    retry: Graph rejected it before doing anything.
    """
    if status is not None and status < 400:
        return Decision(Action.OK)
    if status == 429:
        if attempt >= policy.max_throttle_attempts:
            return Decision(Action.FAIL)
        lower = {k.lower(): v for k, v in headers.items()}
        retry_after = parse_retry_after(lower.get("retry-after"))
        if retry_after is None:
            delay = max(policy.default_retry_after, backoff(attempt, policy, rng))
        else:
            delay = retry_after
        return Decision(Action.RETRY, delay, lower.get("x-ms-throttle-scope"))
    if status == 401:
        return Decision(Action.FAIL) if reauthed else Decision(Action.REAUTH)
    if status is None or status in RETRYABLE_STATUSES:
        if not idempotent or attempt >= policy.max_attempts:
            return Decision(Action.FAIL)
        return Decision(Action.RETRY, backoff(attempt, policy, rng))
    return Decision(Action.FAIL)
