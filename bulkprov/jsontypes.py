"""The one name for a JSON object as Graph, the mock and the ledger exchange it."""

from __future__ import annotations

from typing import Any

JSON = dict[str, Any]
