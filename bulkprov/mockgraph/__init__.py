"""A faithful Microsoft Graph double for bulkprov: quotas, 429s, replication delays, faults.

Start it with ``bulkprov mock-graph --port N`` or in-process with :func:`run_mock`.

The server (and aiohttp) is imported when one of its names is first used, so that the command
line can take the mock's options (:mod:`.cli`) without loading the mock itself.
"""

from typing import TYPE_CHECKING, Any

from .settings import (
    FaultSettings,
    JobSettings,
    LatencySettings,
    MockSettings,
    ReplicationSettings,
    ThrottleSettings,
)

if TYPE_CHECKING:
    from .server import MockGraph, MockInfo, run_mock

_SERVER_NAMES = frozenset({"MockGraph", "MockInfo", "run_mock"})


def __getattr__(name: str) -> Any:
    if name in _SERVER_NAMES:
        from . import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "FaultSettings",
    "JobSettings",
    "LatencySettings",
    "MockGraph",
    "MockInfo",
    "MockSettings",
    "ReplicationSettings",
    "ThrottleSettings",
    "run_mock",
]
