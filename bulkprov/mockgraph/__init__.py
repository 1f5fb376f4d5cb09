"""A faithful Microsoft Graph double for bulkprov: quotas, 429s, replication delays, faults.

Start it with ``bulkprov mock-graph --port N`` or in-process with :func:`run_mock`.
"""

from .server import MockGraph, MockInfo, run_mock
from .settings import (
    FaultSettings,
    JobSettings,
    LatencySettings,
    MockSettings,
    ReplicationSettings,
    ThrottleSettings,
)

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
