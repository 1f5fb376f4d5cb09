"""A deterministic discrete-event simulation of a run's writes against a Graph write bucket.

No I/O, no sleeping, no asyncio: simulated Graph seconds on a heap. It drives
:mod:`bulkprov.pacing` exactly as the client does (a leaky bucket reconfigured from the
controller, a scope gate closed for Retry-After, the controller told of every answer), against
a Graph write scope modelled as the mock models it:

- a token bucket of ``capacity`` refilled at ``rate`` per second, full or empty at the start;
  ``shed`` intervals multiply the rate for a while (Graph shedding load); another app spends
  ``competitor`` writes per second of it (steadily, or all at once every ``competitor_period``);
- a write that finds less than one token gets 429 with ``Retry-After`` = the seconds until the
  bucket holds one, rounded up (or a fixed ``retry_after``), and closes the scope until then:
  every write that arrives in the closed scope is throttled again (an *early retry* when its
  client had already read that 429);
- an accepted write answers after its service time with ``x-ms-throttle-limit-percentage``
  (a fraction) when the bucket is 80% spent or more.

Each instance sends 5 writes (the seed sequence), each after its reads (``reads`` per instance
in all, which a separate, non-binding RU bucket answers: they count as requests, nothing more).
``instances`` are in flight at once and ``slots`` write connections are shared by all.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import NamedTuple

from bulkprov import pacing

# service time (Graph s) of the seed sequence's writes, and the reads before each (as the mock)
WRITES = (1.6, 0.6, 1.1, 0.45, 0.35)  # instantiate, create job, validate, secrets, start
READS_BEFORE = (0.25, 0.3, 0.12, 0.12, 0.12)
READS_PER_INSTANCE = 9


@dataclass(frozen=True, slots=True, kw_only=True)
class Graph:
    """The write scope as Graph (or the mock) runs it."""

    rate: float = 20.0
    capacity: float = 3000.0
    start_full: bool = True
    shed: tuple[tuple[float, float, float], ...] = ()  # (from, to, rate factor)
    competitor: float = 0.0  # writes per second another app spends
    competitor_period: float = 0.0  # 0: steadily; else all of a period's writes at once
    retry_after: float | None = None  # None: until a token is back, rounded up
    percentage: bool = True  # x-ms-throttle-limit-percentage on answers from 80% used on

    def rate_at(self, t: float) -> float:
        f = 1.0
        for a, b, k in self.shed:
            if a <= t < b:
                f *= k
        return self.rate * f

    def bound(self, n: int) -> float:
        """The write bound of ``n`` instances: what the burst does not cover, at the rate left
        to this client (load shedding included)."""
        need = 5 * n - (self.capacity if self.start_full else 0.0)
        t, step = 0.0, 0.01
        while need > 0:
            need -= (self.rate_at(t) - self.competitor) * step
            t += step
        return t


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    n: int = 1000
    instances: int = 1000  # in flight at once
    slots: int = 40  # write connections
    jitter: float = 0.3  # service times uniform within +-jitter
    uplink: float = 0.005  # client to Graph, each way
    seed: int = 1
    pace: pacing.PaceSettings = field(default_factory=pacing.PaceSettings)


class Sample(NamedTuple):
    """The run at one moment: the controller's view and Graph's."""

    t: float
    rate: float  # allowed by the controller
    estimate: float  # its estimate of Graph's rate
    capacity: float  # and of Graph's bucket (0: not known)
    level: float  # what Graph's bucket holds
    accepted: int  # writes accepted so far
    throttled: int  # 429s so far


@dataclass
class Result:
    makespan: float
    bound: float
    writes: int
    throttled: int
    early: int
    requests: int  # every request sent: reads, writes, retried writes
    samples: list[Sample]  # one a Graph second

    @property
    def ratio(self) -> float:
        return self.makespan / self.bound

    @property
    def share_429(self) -> float:
        return self.throttled / self.requests

    def __str__(self) -> str:
        return (
            f"makespan {self.makespan:.1f} s / bound {self.bound:.1f} s = x{self.ratio:.3f}, "
            f"429s {self.throttled} ({100 * self.share_429:.2f}% of {self.requests}), "
            f"early retries {self.early}"
        )


class _Scope:
    """Graph's side: the bucket and its Retry-After horizon."""

    def __init__(self, g: Graph) -> None:
        self.g = g
        self.level = g.capacity if g.start_full else 0.0
        self.at = 0.0
        self.closed_until = 0.0
        self.known_at = math.inf  # when the 429 that closed it reached the client
        self.owed = 0.0  # writes the bursty competitor has still to send
        self.last_due = 0.0

    def refill(self, now: float) -> None:
        # piecewise: the rate changes at the shed boundaries
        cuts = sorted({now, *(x for a, b, _ in self.g.shed for x in (a, b) if self.at < x < now)})
        for x in cuts:
            net = self.g.rate_at(self.at) - (0.0 if self.g.competitor_period else self.g.competitor)
            self.level = min(self.g.capacity, self.level + net * (x - self.at))
            if net < 0:
                self.level = max(0.0, self.level)
            self.at = x

    def compete(self, now: float) -> None:
        self.refill(now)
        due = self.g.competitor * self.g.competitor_period
        self.owed += due * math.floor((now - self.last_due) / self.g.competitor_period)
        self.last_due = now - (now - self.last_due) % self.g.competitor_period
        # its writes are served first: the level may go below zero (and this client waits)
        self.level -= self.owed
        self.owed = 0.0

    def arrive(self, now: float, sent: float) -> tuple[bool, float, float | None, bool]:
        """(accepted, retry_after, limit fraction, early retry) for a write arriving now."""
        self.refill(now)
        if now < self.closed_until:
            early = sent >= self.known_at
            return False, max(1.0, math.ceil(self.closed_until - now - 1e-9)), None, early
        if self.level < 1.0:
            net = self.g.rate_at(now) - (0.0 if self.g.competitor_period else self.g.competitor)
            wait = (1.0 - self.level) / max(net, 1e-9)
            after = self.g.retry_after or max(1.0, math.ceil(wait - 1e-9))
            self.closed_until = now + after
            self.known_at = math.inf
            return False, after, None, False
        self.level -= 1.0
        used = 1.0 - self.level / self.g.capacity
        return True, 0.0, (used if used >= 0.8 and self.g.percentage else None), False


Proc = Generator[object, None, None]


class _Sim:
    def __init__(self, graph: Graph, run: Run) -> None:
        self.graph, self.run = graph, run
        self.rng = random.Random(run.seed)
        self.now = 0.0
        self.heap: list[tuple[float, int, Callable[[], None]]] = []
        self.seq = 0
        self.scope = _Scope(graph)
        self.state = pacing.start(run.pace)
        self.free = run.slots
        self.slot_queue: list[Proc] = []
        self.queue: list[int] = list(range(run.n))
        self.done = 0
        self.last_done = 0.0
        self.throttled = self.early = self.writes = 0
        self.ok = 0
        self.samples: list[Sample] = []

    # ---------------------------------------------------------------- kernel
    def at(self, t: float, fn: Callable[[], None]) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, fn))

    def step(self, proc: Proc) -> None:
        try:
            cmd = next(proc)
        except StopIteration:
            return
        if cmd == "slot":
            if self.free > 0:
                self.free -= 1
                self.at(self.now, lambda: self.step(proc))
            else:
                self.slot_queue.append(proc)
        else:
            assert isinstance(cmd, float)
            self.at(self.now + cmd, lambda: self.step(proc))

    def release(self) -> None:
        if self.slot_queue:
            proc = self.slot_queue.pop(0)
            self.at(self.now, lambda: self.step(proc))
        else:
            self.free += 1

    def jit(self, x: float) -> float:
        j = self.run.jitter
        return x * self.rng.uniform(1 - j, 1 + j)

    # ---------------------------------------------------------------- processes
    def worker(self) -> Proc:
        while self.queue:
            self.queue.pop()
            for service, reads in zip(WRITES, READS_BEFORE, strict=True):
                yield self.jit(reads)
                yield from self.write(service)
            self.done += 1
            self.last_done = self.now

    def write(self, service: float) -> Proc:
        yield "slot"
        while True:
            # the client's _admit: the scope's gate and bucket, asked again after each wait
            self.state, wait = pacing.admit(self.state, self.now)
            if wait > 0:
                yield wait
                continue
            seq, sent = self.state.sent, self.now
            yield self.run.uplink
            ok, after, used, early = self.scope.arrive(self.now, sent)
            self.writes += 1
            if ok:
                self.ok += 1
                yield self.jit(service) + self.run.uplink
                self.state = pacing.on_response(
                    self.state, self.now, seq=seq, sent_at=sent, limit_percentage=used
                )
                break
            self.throttled += 1
            self.early += early
            yield self.run.uplink
            self.scope.known_at = min(self.scope.known_at, self.now)
            self.state = pacing.on_throttled(
                self.state, self.now, seq=seq, sent_at=sent, retry_after=after
            )
        self.release()

    def competitor(self) -> None:
        self.scope.compete(self.now)
        if self.done < self.run.n:
            self.at(self.now + self.graph.competitor_period, self.competitor)

    def sample(self) -> None:
        self.scope.refill(self.now)
        st = self.state
        self.samples.append(
            Sample(
                self.now,
                st.rate,
                st.estimate,
                st.capacity,
                self.scope.level,
                self.ok,
                self.throttled,
            )
        )
        if self.done < self.run.n:
            self.at(self.now + 1.0, self.sample)

    def go(self) -> Result:
        self.at(0.0, self.sample)
        for _ in range(min(self.run.instances, self.run.n)):
            self.step(self.worker())
        if self.graph.competitor and self.graph.competitor_period:
            self.at(self.graph.competitor_period, self.competitor)
        while self.heap and self.done < self.run.n:
            self.now, _, fn = heapq.heappop(self.heap)
            fn()
        n = self.run.n
        requests = n * READS_PER_INSTANCE + self.writes
        return Result(
            makespan=self.last_done,
            bound=self.graph.bound(n),
            writes=self.writes,
            throttled=self.throttled,
            early=self.early,
            requests=requests,
            samples=self.samples,
        )


def simulate(graph: Graph, run: Run | None = None) -> Result:
    """One run of ``run.n`` instances against ``graph``."""
    return _Sim(graph, run or Run()).go()


def scenarios() -> dict[str, Graph]:
    """The cases of issue 16 and tests/test_pacing.py, by name."""
    shed = ((60.0, 120.0, 0.5),)
    cases: dict[str, Graph] = {}
    for rate in (10.0, 15.0, 20.0):
        cases[f"no burst {rate:g}/s"] = Graph(rate=rate, capacity=150 * rate, start_full=False)
        cases[f"no burst {rate:g}/s, 1 s bucket"] = Graph(
            rate=rate, capacity=rate, start_full=False
        )
    cases["documented quota"] = Graph()
    cases["documented, empty at start"] = Graph(start_full=False)
    cases["shedding 60 s at half"] = Graph(capacity=3000.0, start_full=False, shed=shed)
    cases["shedding, 1 s bucket"] = Graph(capacity=20.0, start_full=False, shed=shed)
    cases["shedding, documented"] = Graph(shed=shed)
    cases["other app 5/s"] = Graph(capacity=3000.0, start_full=False, competitor=5.0)
    cases["other app 50 per 10 s"] = Graph(
        capacity=3000.0, start_full=False, competitor=5.0, competitor_period=10.0
    )
    cases["Retry-After 10 s, 10/s"] = Graph(
        rate=10.0, capacity=1500.0, start_full=False, retry_after=10.0
    )
    cases["Retry-After 10 s, 10/s, 1 s bucket"] = Graph(
        rate=10.0, capacity=10.0, start_full=False, retry_after=10.0
    )
    cases["no limit percentage, 10/s"] = Graph(
        rate=10.0, capacity=1500.0, start_full=False, percentage=False
    )
    return cases


if __name__ == "__main__":  # python -m benchmarks.pacingsim: the table of issue 16's cases
    for name, graph in scenarios().items():
        print(f"{name:36} {simulate(graph)}", flush=True)
