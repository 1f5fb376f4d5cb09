"""Pacing a throttle scope at the rate Graph really allows, learnt from what Graph answers.

Graph publishes its quotas (3,000 writes per 150 s per app and tenant: a bucket of 3,000 refilled
at 20/s), but a tenant's budget is shared with its other apps, and Graph "can throttle below
these limits when the service is under load". This module paces one scope (its writes, say)
from the signals Graph gives: a 429 with ``Retry-After``, and on the answers that pass,
``x-ms-throttle-limit-percentage`` (the share of the limit used, sent from 80% on).

It is pure: immutable state in, new state out, time passed in as Graph seconds (the client
divides its clock by ``time_scale``); no clock, no sleep, no asyncio. The client holds one
:class:`Pace` per scope and calls, for every request of that scope::

    pace, wait = admit(pace, now)       # wait > 0: sleep that long, then ask again
    seq, sent_at = pace.sent, now       # remember both with the request
    ...                                 # send it
    pace = on_response(pace, now, seq=seq, sent_at=sent_at, limit_percentage=pct)
    pace = on_throttled(pace, now, seq=seq, sent_at=sent_at, retry_after=seconds)

``admit`` is the scope's leaky bucket (``rate`` per second, ``burst`` deep, as aiolimiter's)
and its gate (nothing goes before the last ``Retry-After`` has passed). A client that keeps its
own bucket reads :func:`allowed` instead and calls :func:`sent` for each request it lets go.

How it steers:

- **Trust the published quota until Graph disproves it.** The scope starts at the published
  rate and burst (the documented quota is then spent at once, as it must be), and keeps a model
  of the published bucket. A 429, or a limit percentage 10 points above what the model says is
  used, ends the trust: the burst collapses to a tenth of a second of the rate.
- **Learn the rate from the level.** For a token bucket the percentage is the level read
  directly: ``used = a + n / C - t * R / C`` for ``n`` writes accepted by Graph time ``t``
  (counted in the order Graph saw them, from the sequence numbers). A weighted least-squares fit
  of the answers since the bucket was last seen above 20% gives the refill rate ``R`` left to
  this client (other apps' spending and load shedding included) and the capacity ``C``; once
  ``C`` is known, the rate is what was accepted, corrected for the change of the level. A 429
  is a reading too (the bucket is empty), and two throttling episodes give the accepted rate
  between them.
- **Steer just under it.** With a bucket deep enough to see (5 s of the rate within the top
  10%), keep 5 s of the rate in it and spend anything beyond over 20 s (a real burst is not
  thrown away); otherwise run 1% under the estimate at 100% used, at it at 90%.
- **Probe when Graph stops complaining.** Answers without the percentage (less than 80% used)
  raise the estimate by 0.5% per second for each second Graph's bucket takes to fill (one
  while not known; at least 0.3%, at most 5%), plus 0.05% per second of calm so far; for a
  bucket that fills in under 10 s, divided by the latest Retry-After; and divided by one plus
  the probes that ended in a 429 lately. So a rate that rose again (load shedding ended,
  another app stopped) is found. When the percentage comes back after a
  probe into a shallow bucket, the estimate goes back to what it was 10 to 20 s into the calm
  (the bucket was still full then).
- **One decision per throttling episode.** A 429 for a request sent before the latest episode
  began says nothing new (it was on its way). A new episode takes the rate from the fit, or
  from the writes accepted since the previous episode (2 to 60 s before, with the scope closed
  for at most a quarter of that and no calm between, in which the bucket may have filled);
  else it undoes the probe since the latest calm, or, with none, cuts the estimate by 15%.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

HOT = 0.8  # Graph sends the limit percentage from this share used on
MISMATCH = 0.1  # a share used this far above the published bucket's ends the trust
BURST_SECONDS = 0.1  # the burst once the published one is disproved, in seconds of the rate
SETPOINT = 0.9  # the share used the estimate is run at, when the capacity is not known
GAIN = 0.1  # rate change per unit of share used away from it
CUSHION = 5.0  # seconds of the rate kept in a bucket whose capacity is known
SPEND = 20.0  # seconds over which what such a bucket holds beyond the cushion is spent
CUT = 0.85  # a throttling episode with nothing measured ...
PROBED = 0.001  # ... unless a probe since the latest calm raised the estimate this much: undo it
PROBE = 0.003  # estimate gained per calm second, at least ...
PROBE_FILL = 0.005  # ... or this much per second the bucket takes to fill ...
PROBE_MAX = 0.05  # ... at most
PROBE_GAIN = 0.0005  # added per second of calm
CALM_LAG = 10.0  # a calm that lasts shows the estimate of this long ago was under Graph's rate
MISS_MEMORY = 300.0  # Graph seconds over which probes that ended in a 429 are forgotten
REVERT_FILL = 10.0  # a probe into a bucket that fills faster than this is undone when hot
MEMORY = 60.0  # Graph seconds over which the fit forgets
CONDITIONING = 0.02  # how far from collinear writes and time must be to fit both R and C
SPAN = 3.0  # weighted spread of the readings in time needed to take the rate given C
SMOOTH = 0.2  # weight of a new reading in the smoothed share used
ZERO_WINDOW = (2.0, 60.0)  # throttling episodes this far apart measure the rate between ...
ZERO_CLOSED = 0.25  # ... if the scope was closed for no more than this share of the time
CEILING = 1.5  # the rate never goes above this much of the published one ...
FLOOR = 0.05  # ... nor under this much
RETRY_MARGIN = (1.02, 0.005)  # a hair past Retry-After, so that the next request is not early


@dataclass(frozen=True, slots=True, kw_only=True)
class PaceSettings:
    """The published quota of a scope: ``rate`` per Graph second, ``burst`` deep."""

    rate: float = 20.0
    burst: float = 2997.0

    def __post_init__(self) -> None:
        if not (self.rate > 0 and self.burst >= 1):
            raise ValueError("a pace needs a positive rate and a burst of at least 1")


@dataclass(frozen=True, slots=True)
class Fit:
    """Weighted sums of the readings (n, t, used) since ``origin``, decaying with time."""

    origin: tuple[float, float]  # (n, t) of the first reading
    last: float  # Graph time of the latest reading
    sums: tuple[float, ...]  # w, n, t, y, nn, nt, tt, ny, ty


@dataclass(frozen=True, slots=True)
class Pace:
    """One scope's pacing state (see the module docstring); build it with :func:`start`."""

    settings: PaceSettings
    rate: float  # allowed now, per Graph second
    burst: float  # allowed now
    estimate: float  # the refill rate Graph leaves this client, as last learnt
    capacity: float = 0.0  # Graph's bucket, once learnt (0: not known)
    trusting: bool = True  # the published quota still holds
    model: float = 0.0  # what the published bucket would hold
    at: float = 0.0  # Graph time of the latest answer
    level: float = 0.0  # this client's bucket: what was sent recently
    level_at: float = 0.0
    closed_until: float = 0.0  # until when the latest 429 closed the scope
    retry_after: float = 1.0  # its Retry-After
    misses: tuple[float, float] = (0.0, 0.0)  # (count, when) of probes that ended in a 429
    sent: float = 0.0  # units let through (the sequence number of the latest)
    refused: float = 0.0  # of which answered 429
    used: float = 0.0  # smoothed share used (0 while calm)
    calm_since: float | None = None  # since when no answer said 80%
    calm_estimate: float = 0.0  # the estimate then, or CALM_LAG to twice that ago
    calm_mark: tuple[float, float] = (0.0, 0.0)  # (t, estimate) to move it on to
    calmed: bool = False  # an answer under 80% came since the latest episode
    cut_seq: float = -1.0  # requests up to this one were sent before the latest episode
    zero: tuple[float, float, float] | None = None  # (sent_at, accepted, Retry-After) of it
    fit: Fit | None = None


def start(settings: PaceSettings, t: float = 0.0) -> Pace:
    """A scope that trusts the published quota, at Graph time ``t``."""
    return Pace(
        settings,
        settings.rate,
        settings.burst,
        settings.rate,
        model=settings.burst,
        at=t,
        level_at=t,
    )


def allowed(p: Pace) -> tuple[float, float]:
    """(rate per Graph second, burst) the scope's bucket should have now."""
    return p.rate, p.burst


def _leaked(p: Pace, t: float) -> float:
    return max(0.0, min(p.level, p.burst) - max(0.0, t - p.level_at) * p.rate)


def admit(p: Pace, t: float, cost: float = 1.0) -> tuple[Pace, float]:
    """Let a request of ``cost`` units go at ``t``: (state, 0.0) with ``state.sent`` its
    sequence number, or (state, Graph seconds to wait before asking again)."""
    if t < p.closed_until:
        return p, p.closed_until - t
    level = _leaked(p, t)
    room = max(p.burst, cost)
    if level + cost > room + 1e-9:
        return p, (level + cost - room) / p.rate
    return sent(replace(p, level=level + cost, level_at=max(t, p.level_at)), cost), 0.0


def sent(p: Pace, cost: float = 1.0) -> Pace:
    """Count a request let through by a bucket of the client's own (not :func:`admit`)."""
    return replace(p, sent=p.sent + cost)


def parse_limit_percentage(value: str | None) -> float | None:
    """``x-ms-throttle-limit-percentage`` as a share (Graph documents 0.8 to 1.8; a value
    above 5 is taken as a percentage, as the mock sends it)."""
    try:
        share = float(value) if value is not None else math.nan
    except ValueError:
        return None
    if not math.isfinite(share) or share < 0:
        return None
    return share / 100 if share > 5 else share


def _add(fit: Fit | None, n: float, t: float, y: float) -> Fit:
    if fit is None:
        fit = Fit((n, t), t, (0.0,) * 9)
    decay = math.exp(-max(0.0, t - fit.last) / MEMORY)
    x, z = n - fit.origin[0], t - fit.origin[1]
    new = (1.0, x, z, y, x * x, x * z, z * z, x * y, z * y)
    sums = tuple(a * decay + b for a, b in zip(fit.sums, new, strict=True))
    return Fit(fit.origin, max(fit.last, t), sums)


def _learn(p: Pace, fit: Fit) -> Pace:
    """The rate (and capacity) the readings give, when they give them."""
    w, sn, st, sy, snn, snt, stt, sny, sty = fit.sums
    p = replace(p, fit=fit)
    if w < 10:
        return p
    cnn, cnt, ctt = snn - sn * sn / w, snt - sn * st / w, stt - st * st / w
    cny, cty = sny - sn * sy / w, sty - st * sy / w
    det = cnn * ctt - cnt * cnt
    low, high = FLOOR * p.settings.rate, 2 * p.settings.rate
    if cnn > 0 and ctt > 0 and det >= CONDITIONING * cnn * ctt:
        inv_c = (cny * ctt - cty * cnt) / det
        r_over_c = (cny * cnt - cty * cnn) / det
        if inv_c > 0 and r_over_c > 0 and low <= r_over_c / inv_c <= high:
            return replace(p, estimate=r_over_c / inv_c, capacity=1 / inv_c)
    if p.capacity and ctt >= SPAN**2 * w:
        rate = (cnt - p.capacity * cty) / ctt  # accepted, corrected for the level's change
        if low <= rate <= high:
            return replace(p, estimate=rate)
    return p


def _steer(p: Pace) -> Pace:
    """The rate and burst that follow from the estimate and the share used."""
    if p.trusting:
        return p
    s = p.settings
    used = min(max(p.used, HOT), 1.2)
    if p.capacity and CUSHION * p.estimate <= (1 - SETPOINT) * p.capacity:
        rate = p.estimate + ((1 - used) * p.capacity - CUSHION * p.estimate) / SPEND
    else:
        rate = p.estimate * (1 + GAIN * (SETPOINT - used))
    rate = max(FLOOR * s.rate, min(CEILING * s.rate, rate))
    return replace(p, rate=rate, burst=max(1.0, rate * BURST_SECONDS))


def _fill(p: Pace) -> float:
    """Seconds Graph's bucket takes to fill, as far as known (a shallow one if not)."""
    return p.capacity / p.estimate if p.capacity else 1.0


def _undo(p: Pace) -> float:
    """The estimate after a probe went too far: back to what it was CALM_LAG or more into
    the calm (the bucket was still full then)."""
    return min(p.estimate, p.calm_estimate)


def _misses(p: Pace, t: float) -> float:
    count, at = p.misses
    return count * math.exp(-max(0.0, t - at) / MISS_MEMORY)


def _calm(p: Pace, t: float, dt: float) -> Pace:
    """An answer under 80%: the fit starts again (the bucket may have filled), and probe."""
    if p.calm_since is None:
        p = replace(p, calm_since=t, calm_estimate=p.estimate, calm_mark=(t, p.estimate))
    elif t - p.calm_mark[0] >= CALM_LAG:  # still calm: the rate of then was under Graph's
        p = replace(p, calm_estimate=p.calm_mark[1], calm_mark=(t, p.estimate))
    p = replace(p, used=0.0, fit=None, calmed=True)
    if p.trusting:
        return p
    assert p.calm_since is not None
    dt = min(dt, t - p.calm_since)  # a calm starts with its first answer
    speed = min(PROBE_MAX, max(PROBE, PROBE_FILL * _fill(p))) + PROBE_GAIN * (t - p.calm_since)
    if _fill(p) < REVERT_FILL:  # a probe into a shallow bucket risks a 429: the dearer, slower
        speed /= max(1.0, p.retry_after)
    speed /= 1 + _misses(p, t)  # probes that keep ending in a 429 slow down
    return _steer(replace(p, estimate=p.estimate * (1 + speed * dt)))


def on_response(
    p: Pace,
    t: float,
    *,
    seq: float,
    sent_at: float,
    limit_percentage: float | None,
    cost: float = 1.0,
) -> Pace:
    """An answer Graph counted (anything but a 429), at ``t``, to the request admitted as
    ``seq`` at ``sent_at``, with its limit percentage as a share (None when absent)."""
    s = p.settings
    dt = max(0.0, t - p.at)
    model = min(s.burst, p.model + dt * s.rate) - cost
    p = replace(p, model=model, at=max(p.at, t))
    share = limit_percentage
    if share is None or share < HOT:
        return _calm(p, t, dt)
    if p.calm_since is not None and not p.trusting and _fill(p) < REVERT_FILL:
        p = replace(p, estimate=_undo(p))  # the probe went too far
    used = share if p.used < HOT else p.used + SMOOTH * (share - p.used)
    p = replace(p, calm_since=None, used=used)
    p = _learn(p, _add(p.fit, seq - cost - p.refused, sent_at, min(share, 1.0)))
    if p.trusting and share - (1 - p.model / s.burst) >= MISMATCH:
        p = replace(p, trusting=False)
    return _steer(p)


def on_throttled(
    p: Pace, t: float, *, seq: float, sent_at: float, retry_after: float, cost: float = 1.0
) -> Pace:
    """A 429 at ``t`` for the request admitted as ``seq`` at ``sent_at``: the scope closes for
    ``retry_after`` Graph seconds, and a new episode teaches or cuts."""
    scale, hair = RETRY_MARGIN
    closed = max(p.closed_until, t + retry_after * scale + hair)
    p = replace(p, closed_until=closed, refused=p.refused + cost, retry_after=retry_after)
    if seq <= p.cut_seq:
        return p  # on its way before the latest cut: nothing new
    done = seq - p.refused
    before = p.estimate
    p = _learn(p, _add(p.fit, done, sent_at, 1.0))
    if p.estimate == before and p.zero is not None and not p.calmed:
        t0, n0, closed_for = p.zero
        span = sent_at - t0
        # the scope was closed for a part of it; a bucket that filled then lost tokens
        if ZERO_WINDOW[0] <= span <= ZERO_WINDOW[1] and closed_for <= ZERO_CLOSED * span:
            p = replace(p, estimate=(done - n0) / (sent_at - t0))
    if p.estimate == before and not p.trusting:
        # after a calm, undo what was probed since; else the rate was too high all along
        probed = p.calmed and p.calm_estimate < before * (1 - PROBED)
        if probed:
            p = replace(p, misses=(_misses(p, t) + 1, t))
        cut = min(before, p.calm_estimate) if probed else before * CUT
        p = replace(p, estimate=cut)
    p = replace(
        p,
        trusting=False,
        used=1.0,
        calm_since=None,
        cut_seq=p.sent,
        calmed=False,
        zero=(sent_at, done, retry_after),
    )
    return _steer(p)
