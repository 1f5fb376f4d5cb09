"""The mock's scaled clock: Graph time runs ``1 / time_scale`` times faster than real time."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta


class ScaledClock:
    """Graph seconds since the mock started (or its kept tenant was made), and the wall-clock
    dates that go with them.

    Dates in payloads (createdDateTime, activityDateTime, ...) advance at Graph's pace, so a
    job cycle of 40 Graph seconds shows 40 s between its timeBegan and timeEnded however much
    the run is compressed.
    """

    def __init__(
        self, time_scale: float, *, start: float = 0.0, wall0: datetime | None = None
    ) -> None:
        """``start`` and ``wall0`` carry on a kept tenant's clock: Graph time goes on from
        ``start`` seconds after the date ``wall0``."""
        self.time_scale = time_scale
        self._monotonic = time.monotonic
        self._t0 = self._monotonic()
        self.start = start
        self.wall0 = wall0 or datetime.now(UTC)

    def now(self) -> float:
        """Graph seconds since the clock's origin (``wall0``)."""
        return self.start + (self._monotonic() - self._t0) / self.time_scale

    def real(self, graph_seconds: float) -> float:
        """Real seconds that ``graph_seconds`` last."""
        return graph_seconds * self.time_scale

    async def sleep(self, graph_seconds: float) -> None:
        if graph_seconds > 0:
            await asyncio.sleep(graph_seconds * self.time_scale)

    def wall(self, graph_time: float | None = None) -> datetime:
        """The UTC date at ``graph_time`` (default: now)."""
        t = self.now() if graph_time is None else graph_time
        return self.wall0 + timedelta(seconds=t)

    def iso(self, graph_time: float | None = None) -> str:
        """``wall(graph_time)`` as Graph writes dates: ``2021-05-24T21:45:53.6330529Z``."""
        d = self.wall(graph_time)
        return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond:06d}0Z"
