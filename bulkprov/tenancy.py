"""Which tenant a ledger's instances belong to.

A run of a manifest whose rows name no ``profile`` is one tenant's: the ledger's header
records its Graph and tenant, and every command checks that it connects to those
(:func:`check_target`). A run of a manifest whose rows name profiles is many tenants' at once:
the header and each run line record ``tenants``, profile -> the Graph and tenant id that
profile connected to, and each instance's records name its profile. A profile that connects to
another tenant than the ledger says is refused, as a single-tenant ledger is: the ledger's
application ids would be looked for in the wrong tenant.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import LedgerError
from .jsontypes import JSON
from .records import Header


@dataclass(frozen=True, slots=True)
class TenantRef:
    """One profile of a run across many tenants: the Graph the ledger records for it (its base
    URL, or the embedded mock's name) and the tenant id it connected to."""

    profile: str
    graph: str
    tenant: str

    def to_json(self) -> JSON:
        return {"graph": self.graph, "tenant": self.tenant}

    @classmethod
    def from_json(cls, profile: str, raw: Any) -> TenantRef | None:
        if not isinstance(raw, Mapping):
            return None
        graph, tenant = raw.get("graph"), raw.get("tenant")
        if not isinstance(graph, str) or not isinstance(tenant, str):
            return None
        return cls(profile, graph, tenant)


def refs_of(raw: Mapping[str, Any] | None) -> dict[str, TenantRef]:
    """The profiles a header's or run line's ``tenants`` records (malformed entries left out)."""
    out: dict[str, TenantRef] = {}
    for profile, value in (raw or {}).items():
        ref = TenantRef.from_json(str(profile), value)
        if ref is not None:
            out[ref.profile] = ref
    return out


def as_json(refs: Iterable[TenantRef]) -> JSON:
    return {r.profile: r.to_json() for r in sorted(refs, key=lambda r: r.profile)}


def describe(profiles: Collection[str], shown: int = 3) -> str:
    """``1 tenant (profile a)``, ``3 tenants (profiles a, b, c)``, ``20 tenants (profiles a,
    b, c and 17 more)``."""
    names = sorted(profiles)
    listed = ", ".join(names[:shown])
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    plural = "s" if len(names) != 1 else ""
    return f"{len(names)} tenant{plural} (profile{plural} {listed}{more})"


def check_target(path: Path, header: Header | None, *, graph: str, tenant: str) -> None:
    """Refuse a ledger written against another Graph or tenant than the one connected to, or
    by a run across many tenants (its commands connect to each profile's)."""
    if header is not None and header.tenants is not None:
        raise LedgerError(
            f"{path} records a run across {describe(refs_of(header.tenants))}: it is worked "
            "on tenant by tenant, through those profiles (a manifest whose rows name them, "
            "--profiles), not with one tenant's connection"
        )
    recorded = (header.graph, header.tenant) if header is not None else (None, None)
    for name, was, mine in (("graph", recorded[0], graph), ("tenant", recorded[1], tenant)):
        if was != mine:
            raise LedgerError(
                f"{path} records a run against {name} {was!r}, not "
                f"{mine!r}: use another ledger for another {name}"
            )


def check_tenants(
    path: Path,
    header: Header | None,
    known: Mapping[str, TenantRef],
    refs: Mapping[str, TenantRef],
) -> None:
    """Refuse a ledger of one tenant for a run across many, and a profile that connects to
    another Graph or tenant than the ledger records for it (``known``)."""
    if header is not None and header.tenants is None:
        raise LedgerError(
            f"{path} records a run against tenant {header.tenant!r} alone; a manifest whose "
            "rows name profiles (one tenant each) needs a ledger of its own"
        )
    for profile, ref in sorted(refs.items()):
        was = known.get(profile)
        if was is None:
            continue
        for name, old, new in (("tenant", was.tenant, ref.tenant), ("graph", was.graph, ref.graph)):
            if old != new:
                raise LedgerError(
                    f"{path} records profile {profile!r} as {name} {old!r}, but it connects "
                    f"to {new!r} now: the ledger's objects of that profile are in the other "
                    f"{name}; restore the profile, or use another ledger"
                )


def selected(path: Path, known: Mapping[str, TenantRef], only: Sequence[str] | None) -> list[str]:
    """The profiles of a run across many tenants that a command works on: those of ``only``
    (``--tenant``), each of which the ledger must know, or all of them."""
    if not only:
        return sorted(known)
    unknown = sorted(set(only) - set(known))
    if unknown:
        raise LedgerError(
            f"{path} has no tenant of profile {unknown[0]!r}; its profiles: "
            f"{', '.join(sorted(known)) or 'none (a run of one tenant: leave --tenant out)'}"
        )
    return sorted(set(only))


def recorded(path: Path | None) -> dict[str, TenantRef]:
    """The profiles a ledger file records (its header's and run lines' ``tenants``), read
    without replaying it: only those lines are parsed. Empty when there is no such file."""
    import orjson

    out: dict[str, TenantRef] = {}
    if path is None:
        return out
    try:
        with path.open("rb") as fh:
            for line in fh:
                if line.startswith((b'{"type":"header"', b'{"type":"run"')):
                    try:
                        rec = orjson.loads(line)
                    except orjson.JSONDecodeError:
                        continue  # a torn last line: the ledger itself will say so
                    if isinstance(rec, dict) and isinstance(rec.get("tenants"), dict):
                        out.update(refs_of(rec["tenants"]))
    except OSError:
        return {}  # the ledger's own checks say what is wrong with it
    return out


def assign(
    profiles: Sequence[str], tenant_ids: Sequence[str], known: Mapping[str, TenantRef]
) -> dict[str, str]:
    """Profile -> tenant id on a mock: the tenant the ledger records for a profile it knows,
    the others onto the tenants no profile has yet, in name order (as many as there are)."""
    out = {p: known[p].tenant for p in profiles if p in known and known[p].tenant in tenant_ids}
    taken = {r.tenant for r in known.values()} | set(out.values())
    free = iter(t for t in tenant_ids if t not in taken)
    for p in sorted(set(profiles) - set(out)):
        tid = next(free, None)
        if tid is not None:
            out[p] = tid
    return out
