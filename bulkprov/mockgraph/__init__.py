"""A faithful Microsoft Graph double for bulkprov: quotas, 429s, replication delays, faults.

Start it with ``bulkprov mock-graph --port N`` or in-process with :func:`run_mock`.

The names below load their module when first used, so that importing a small part of the
package (its settings, its command line) does not load the server and its dependencies.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import MockGraph, MockInfo, run_mock
    from .settings import (
        FaultSettings,
        JobSettings,
        LatencySettings,
        MockSettings,
        ReplicationSettings,
        ThrottleSettings,
    )

_WHERE = {
    "MockGraph": "server",
    "MockInfo": "server",
    "run_mock": "server",
    "FaultSettings": "settings",
    "JobSettings": "settings",
    "LatencySettings": "settings",
    "MockSettings": "settings",
    "ReplicationSettings": "settings",
    "ThrottleSettings": "settings",
}

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


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
