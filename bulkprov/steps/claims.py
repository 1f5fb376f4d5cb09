"""Which instance holds which application, for display names that several instances share.

Graph lets any number of applications have one display name, and instantiate looks for an
instance's application by its name (an answer may have been lost), so two instances of one
name could find, and take, the same application. :class:`Claims` prevents that: an application
is *claimed* by one instance, synchronously (in the same step of the event loop as the lookup
that chose it, so no interleaving lets two instances hold one), and while an instantiate POST
for a shared name is in flight, a free application of that name may be the one it is about to
be told of, so lookups wait for those POSTs to answer (:meth:`Claims.posts_answered`).

Only names that several instances of the run share need this (``shared_names``, casefolded;
None: every name may be shared).
"""

from __future__ import annotations

from collections.abc import Collection

import anyio

from ..manifest import Instance


class Claims:
    def __init__(self, claimed: dict[str, str], shared_names: Collection[str] | None) -> None:
        # application id -> the instance that holds it: the ledger's, and those this run makes
        # or adopts for a display name that several instances share
        self.claimed = claimed
        self._shared_names = shared_names
        # instantiate POSTs in flight per shared display name, and who waits for them to end
        self._in_flight: dict[str, int] = {}
        self._idle: dict[str, anyio.Event] = {}

    def shared(self, inst: Instance) -> str | None:
        """The casefolded display name if other instances of the run may share it, else None
        (only then can a lookup by name find another instance's application)."""
        name = inst.display_name.casefold()
        if self._shared_names is None or name in self._shared_names:
            return name
        return None

    def holder(self, app_id: str) -> str | None:
        return self.claimed.get(app_id)

    def claim(self, app_id: str, inst: Instance) -> bool:
        """Take ``app_id`` for ``inst``, unless another instance holds it (then False).

        Synchronous: a claim is decided in the same step of the event loop as the lookup that
        chose the application, so no interleaving lets two instances hold one."""
        holder = self.claimed.get(app_id)
        if holder is not None and holder != inst.key:
            return False
        if self.shared(inst) is not None:
            self.claimed[app_id] = inst.key
        return True

    def in_flight(self, name: str) -> bool:
        """Whether an instantiate POST for the shared display name ``name`` is in flight."""
        return name in self._in_flight

    def posting(self, name: str | None, delta: int) -> None:
        """Count the instantiate POSTs in flight for a shared display name; waiters of
        :meth:`posts_answered` wake when none is left."""
        if name is None:
            return
        n = self._in_flight.get(name, 0) + delta
        if n > 0:
            self._in_flight[name] = n
            return
        self._in_flight.pop(name, None)
        idle = self._idle.pop(name, None)
        if idle is not None:
            idle.set()

    async def posts_answered(self, name: str) -> None:
        """Wait until no instantiate POST for ``name`` is in flight."""
        if name not in self._in_flight:
            return
        idle = self._idle.get(name)
        if idle is None:
            idle = self._idle[name] = anyio.Event()
        await idle.wait()
