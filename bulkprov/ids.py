"""Graph's object ids: a GUID is recognised by one pattern everywhere (manifest, ids files,
template look-ups, and before an id is put in a URL)."""

from __future__ import annotations

import re

#: A GUID, e.g. ``8adf8e6e-67b2-4cf2-a259-e3dc5476c621`` (either case); match it whole.
GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def is_guid(value: object) -> bool:
    """Whether ``value`` is a string that is a GUID, whole (no trailing newline either)."""
    return isinstance(value, str) and GUID.fullmatch(value) is not None
