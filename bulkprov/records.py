"""The ledger's records and their vocabulary: one JSON object per line, in ledger format version 1.

::

    {"type": "header", "version": 1, "created": ..., "manifest": ..., "graph": ..., "tenant": ...,
     "salt": ..., "fingerprintKey": ...}                          Header: the first line
    {"type": "run", "at": ..., "pid": ..., "manifest": ...}      RunStart: each time a run starts
    {"type": "run", "at": ..., "pid": ..., "command": "cleanup" | "monitor"}
    {"type": "step", "t": ..., "key": ..., "step": ..., "event": ..., ...}          StepRecord
    {"type": "instance", "t": ..., "key": ..., "status": ..., ...}              InstanceRecord
    {"type": "cleanup", "key": ..., "object": ..., "id": ..., "event": ..., ...}  CleanupRecord

Each record class is a frozen dataclass with ``to_json()`` (the object written, keys in the
order above; a field that is None is left out) and ``from_json()``, which is lenient, as a
ledger of an older release may need: a key this release does not know, or a known one whose
value has another type, is kept in ``extra`` (read by nothing, written back as it was) rather
than refused. :func:`parse_record` picks the class by ``"type"``.

The step, event and status names are ``StrEnum``s: each member is the very string written in
the ledger and compares equal to it. A record read with a name this release does not know
keeps it as a plain string.

A run across many tenants (a manifest whose rows name a ``profile``) adds optional keys to
version 1: ``tenants`` in the header and the run line (profile -> its Graph and tenant id),
``profile`` in its step, cleanup and drift records and ``profile`` and ``tenant`` in its
instance records. A ledger without them is one tenant's, the header's.

Version 1 is the only layout so far: the ledgers of 0.1.0 and of today's release are both
version 1 (``tests/data/ledger-*`` keep one of each). A change of the layout bumps
:data:`VERSION`; a ledger of another version is refused by a run (``status`` still reads it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, TypeVar

from .jsontypes import JSON

VERSION = 1  # the header's "version": the layout this module reads and writes


class Step(StrEnum):
    """A step of an instance, in the order a run takes them."""

    INSTANTIATE = "instantiate"
    REPLICATE = "replicate"
    AGENT_GROUP = "agent_group"
    SYNC_TEMPLATE = "sync_template"
    JOB = "job"
    SCHEMA = "schema"
    VALIDATE = "validate"
    SECRETS = "secrets"
    START = "start"
    MONITOR = "monitor"
    LOGS = "logs"
    RESTART = "restart"  # monitor --restart, after the run


class Event(StrEnum):
    """What a step record (or a cleanup record) says happened."""

    START = "start"
    DONE = "done"
    ERROR = "error"
    ATTEMPT = "attempt"  # write-ahead: an instantiate POST is about to be sent
    DEDUPE = "dedupe"  # a duplicate application of the instance was removed
    GONE = "gone"  # cleanup: Graph answered 404, the object was deleted already


class Status(StrEnum):
    """How an instance ended, in its ``instance`` record."""

    DONE = "done"
    QUARANTINED = "quarantined"
    FAILED = "failed"
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"
    SKIPPED = "skipped"
    REMOVED = "removed"  # cleanup deleted its objects: the ledger forgets its ids and steps


FINAL_OK = frozenset({Status.DONE, Status.QUARANTINED})  # finished: a re-run leaves them alone


# ------------------------------------------------------------------ lenient field readers
class _Bad:
    """What a conversion gives for a value it does not take (the value goes to ``extra``)."""


_BAD = _Bad()
_E = TypeVar("_E", bound=StrEnum)

# How a field is read: the JSON types its value may have (exactly: a bool is no int), and a
# conversion of such a value (None: taken as it is)
_Reader = tuple[tuple[type, ...], Callable[[Any], object] | None]
_TEXT: _Reader = ((str,), None)
_INT: _Reader = ((int,), None)
_NUMBER: _Reader = ((int, float), None)
_FLAG: _Reader = ((bool,), None)
_OBJECT: _Reader = ((dict,), None)


def _id_map(v: JSON) -> object:
    """An id map: names to id strings (a None value, as a caller may give, is kept)."""
    ok = all(isinstance(k, str) and (x is None or isinstance(x, str)) for k, x in v.items())
    return v if ok else _BAD


_IDS: _Reader = ((dict,), _id_map)


def _name_of(kind: type[_E]) -> _Reader:
    """A field holding a name of ``kind``: its member, or the string if it names none."""
    members: dict[str, _E | str] = {m.value: m for m in kind}
    return ((str,), lambda v: members.get(v, v))


def as_name(kind: type[_E], value: str) -> _E | str:
    """The member of ``kind`` named ``value``, or ``value`` itself if it names none."""
    try:
        return kind(value)
    except ValueError:
        return value


_Field = tuple[str, str, _Reader]  # JSON key, attribute, reader


class _Spec:
    """The fields of a record class in the order they are written (JSON key, attribute,
    reader), and by JSON key for reading."""

    __slots__ = ("by_key", "table")

    def __init__(self, *table: _Field) -> None:
        self.table = table
        self.by_key = {key: (attr, *reader) for key, attr, reader in table}


def _read(raw: Mapping[str, Any], spec: _Spec) -> dict[str, Any]:
    """The keyword arguments of a record from ``raw``; a key the record has no field for, or
    whose value has another type than the field's, goes to ``extra``; null values are left
    out (they are not written either)."""
    kwargs: dict[str, Any] = {}
    extra: JSON = {}
    by_key = spec.by_key
    for key, value in raw.items():
        if value is None or key == "type":
            continue
        found = by_key.get(key)
        if found is None or type(value) not in found[1]:
            extra[key] = value
            continue
        attr, _types, convert = found
        if convert is not None:
            converted = convert(value)
            if converted is _BAD:
                extra[key] = value
                continue
            value = converted
        kwargs[attr] = value
    kwargs["extra"] = extra
    return kwargs


def _plain(value: Any) -> Any:
    if isinstance(value, StrEnum):
        return str(value)
    if isinstance(value, InstanceError):
        return value.to_json()
    if isinstance(value, Mapping):
        return dict(value)
    return value


def _write(kind: str, rec: object, table: tuple[_Field, ...], extra: Mapping[str, Any]) -> JSON:
    out: JSON = {"type": kind}
    for key, attr, _reader in table:
        value = getattr(rec, attr)
        if value is not None:
            out[key] = _plain(value)
    out.update((k, v) for k, v in extra.items() if v is not None)
    return out


def _keyed(raw: Mapping[str, Any], spec: _Spec) -> dict[str, Any]:
    """:func:`_read` for a record of an instance, which must have its key."""
    kwargs = _read(raw, spec)
    if "key" not in kwargs:
        raise ValueError("a record of an instance without its key")
    return kwargs


# ------------------------------------------------------------------ records
@dataclass(frozen=True, slots=True, kw_only=True)
class Header:
    """The ledger's first line: its format version, and the Graph, tenant and manifest it
    belongs to; ``salt`` (hex) and ``fingerprint_key`` (the key id) of its fingerprints."""

    version: int | None = VERSION
    created: str | None = None
    manifest: str | None = None
    graph: str | None = None
    tenant: str | None = None
    salt: str | None = None
    fingerprint_key: str | None = None  # absent in 0.1.0 ledgers
    # a run across many tenants: profile -> {"graph": ..., "tenant": ...} (``tenant`` is
    # then None; later runs that add profiles record them in their run line)
    tenants: JSON | None = None
    extra: JSON = field(default_factory=dict)

    SPEC: ClassVar[_Spec] = _Spec(
        ("version", "version", _INT),
        ("created", "created", _TEXT),
        ("manifest", "manifest", _TEXT),
        ("graph", "graph", _TEXT),
        ("tenant", "tenant", _TEXT),
        ("salt", "salt", _TEXT),
        ("fingerprintKey", "fingerprint_key", _TEXT),
        ("tenants", "tenants", _OBJECT),
    )

    def to_json(self) -> JSON:
        return _write("header", self, self.SPEC.table, self.extra)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Header:
        return cls(**{"version": None, **_read(raw, cls.SPEC)})


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStart:
    """A command began writing the ledger: a run (``command`` "run", with its manifest's
    name), or another command (``cleanup``, ``monitor`` for ``--restart``)."""

    at: str | None = None
    pid: int | None = None
    command: str = "run"
    manifest: str | None = None
    tenants: JSON | None = None  # a run across many tenants: as the header's
    extra: JSON = field(default_factory=dict)

    SPEC: ClassVar[_Spec] = _Spec(
        ("at", "at", _TEXT),
        ("pid", "pid", _INT),
        ("manifest", "manifest", _TEXT),
        ("command", "command", _TEXT),
        ("tenants", "tenants", _OBJECT),
    )

    def to_json(self) -> JSON:
        out = _write("run", self, self.SPEC.table[:3], {})  # a run's command is left out
        if self.command != "run":
            out["command"] = self.command
        if self.tenants is not None:
            out["tenants"] = dict(self.tenants)
        out.update((k, v) for k, v in self.extra.items() if v is not None)
        return out

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> RunStart:
        kwargs = _read(raw, cls.SPEC)
        if not kwargs.get("command"):  # "command": "" or absent: a run
            kwargs.pop("command", None)
            kwargs["extra"].pop("command", None)
        return cls(**kwargs)


@dataclass(frozen=True, slots=True, kw_only=True)
class StepRecord:
    """An event of one step of one instance: start, done (with the ``ids`` it found or made
    and its other ``data``), error (``code``, ``message``, ``request_id``; ``settled``: an
    instantiate POST surely had no effect), attempt (the write-ahead record of instantiate
    POST number ``attempt`` for ``display_name`` from ``template_id``), dedupe (``removed``:
    the duplicate application deleted), and a restart's start (``reset_scope``)."""

    key: str
    step: Step | str | None = None
    event: Event | str | None = None
    t: float | None = None
    ms: int | None = None
    ids: Mapping[str, str | None] | None = None
    data: JSON | None = None
    attempt: int | None = None
    display_name: str | None = None
    template_id: str | None = None
    settled: bool | None = None
    code: str | None = None
    message: str | None = None
    request_id: str | None = None
    removed: str | None = None
    reset_scope: str | None = None
    profile: str | None = None  # a run across many tenants: the instance's profile
    extra: JSON = field(default_factory=dict)

    SPEC: ClassVar[_Spec] = _Spec(
        ("t", "t", _NUMBER),
        ("key", "key", _TEXT),
        ("step", "step", _name_of(Step)),
        ("event", "event", _name_of(Event)),
        ("ms", "ms", _INT),
        ("ids", "ids", _IDS),
        ("data", "data", _OBJECT),
        ("attempt", "attempt", _INT),
        ("displayName", "display_name", _TEXT),
        ("templateId", "template_id", _TEXT),
        ("settled", "settled", _FLAG),
        ("code", "code", _TEXT),
        ("message", "message", _TEXT),
        ("requestId", "request_id", _TEXT),
        ("removed", "removed", _TEXT),
        ("resetScope", "reset_scope", _TEXT),
        ("profile", "profile", _TEXT),
    )

    def to_json(self) -> JSON:
        return _write("step", self, self.SPEC.table, self.extra)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> StepRecord:
        return cls(**_keyed(raw, cls.SPEC))

    @classmethod
    def of(
        cls, key: str, step: Step | str, event: Event | str, *, t: float, **data: Any
    ) -> StepRecord:
        """A record from the JSON names of its fields (``displayName=``, ``requestId=``...);
        a name no field has is kept in ``extra``."""
        attrs = _STEP_DATA
        known = {attrs[k]: v for k, v in data.items() if k in attrs}
        extra = {k: v for k, v in data.items() if k not in attrs}
        step, event = as_name(Step, step), as_name(Event, event)
        return cls(key=key, step=step, event=event, t=t, extra=extra, **known)


@dataclass(frozen=True, slots=True, kw_only=True)
class InstanceError:
    """Why an instance failed: the step, the error's code, its message (masked and cut) and
    Graph's request id. All four are written, null or not."""

    step: str | None = None
    code: str | None = None
    message: str | None = None
    request_id: str | None = None

    def to_json(self) -> JSON:
        return {
            "step": self.step,
            "code": self.code,
            "message": self.message,
            "requestId": self.request_id,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> InstanceError:
        def text(key: str) -> str | None:
            v = raw.get(key)
            return v if isinstance(v, str) else None

        return cls(
            step=text("step"),
            code=text("code"),
            message=text("message"),
            request_id=text("requestId"),
        )


_STEP_DATA = {k: a for k, a, _r in StepRecord.SPEC.table[4:]}  # JSON key -> attribute


_ERROR: _Reader = ((dict,), InstanceError.from_json)


@dataclass(frozen=True, slots=True, kw_only=True)
class InstanceRecord:
    """How an instance ended. A run writes ``t``, the display name, template and ``ids``,
    the job's state once monitored (``job_status``, ``quarantine``, ``last_execution``,
    ``logs``), ``error`` if it failed, its ``timings`` (ms per step) and ``seconds``; a
    cleanup that deleted its objects writes status ``removed`` with ``at``, ``removed_ids``
    (object kind -> id) and ``purged``."""

    key: str
    status: Status | str | None = None
    t: float | None = None
    at: str | None = None
    display_name: str | None = None
    template: str | None = None
    ids: Mapping[str, str | None] | None = None
    template_id: str | None = None
    job_status: str | None = None
    quarantine: JSON | None = None
    last_execution: str | None = None
    logs: JSON | None = None
    error: InstanceError | None = None
    timings: JSON | None = None
    seconds: float | None = None
    removed_ids: Mapping[str, str] | None = None
    purged: bool | None = None
    # a run across many tenants: the instance's profile and its tenant's id
    profile: str | None = None
    tenant: str | None = None
    extra: JSON = field(default_factory=dict)

    SPEC: ClassVar[_Spec] = _Spec(
        ("t", "t", _NUMBER),
        ("key", "key", _TEXT),
        ("status", "status", _name_of(Status)),
        ("at", "at", _TEXT),
        ("displayName", "display_name", _TEXT),
        ("template", "template", _TEXT),
        ("ids", "ids", _IDS),
        ("templateId", "template_id", _TEXT),
        ("jobStatus", "job_status", _TEXT),
        ("quarantine", "quarantine", _OBJECT),
        ("lastExecution", "last_execution", _TEXT),
        ("logs", "logs", _OBJECT),
        ("error", "error", _ERROR),
        ("timings", "timings", _OBJECT),
        ("seconds", "seconds", _NUMBER),
        ("removedIds", "removed_ids", _OBJECT),
        ("purged", "purged", _FLAG),
        ("profile", "profile", _TEXT),
        ("tenant", "tenant", _TEXT),
    )

    def to_json(self) -> JSON:
        return _write("instance", self, self.SPEC.table, self.extra)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> InstanceRecord:
        return cls(**_keyed(raw, cls.SPEC))


@dataclass(frozen=True, slots=True, kw_only=True)
class CleanupRecord:
    """``bulkprov cleanup`` deleted (``done``), found deleted already (``gone``) or failed
    to delete (``error``, with ``code``, ``message``, ``request_id``) one object of an
    instance: ``kind`` job, servicePrincipal, application, or deletedItem (a purge);
    ``found``: the object was found by name (its instantiate answer was lost)."""

    key: str
    kind: str | None = None
    object_id: str | None = None
    event: Event | str | None = None
    found: bool | None = None
    code: str | None = None
    message: str | None = None
    request_id: str | None = None
    profile: str | None = None  # a run across many tenants: the instance's profile
    extra: JSON = field(default_factory=dict)

    SPEC: ClassVar[_Spec] = _Spec(
        ("key", "key", _TEXT),
        ("object", "kind", _TEXT),
        ("id", "object_id", _TEXT),
        ("event", "event", _name_of(Event)),
        ("found", "found", _FLAG),
        ("code", "code", _TEXT),
        ("message", "message", _TEXT),
        ("requestId", "request_id", _TEXT),
        ("profile", "profile", _TEXT),
    )

    def to_json(self) -> JSON:
        out = _write("cleanup", self, self.SPEC.table, self.extra)
        if self.event == Event.ERROR:
            out.setdefault("requestId", None)  # an error's request id is written, null or not
        return out

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> CleanupRecord:
        return cls(**_keyed(raw, cls.SPEC))


def _texts(v: list[Any]) -> object:
    return tuple(v) if all(isinstance(x, str) for x in v) else _BAD


@dataclass(frozen=True, slots=True, kw_only=True)
class DriftRecord:
    """``bulkprov drift`` found an instance's live state differs from its manifest line
    (``drifted``; false: it found none, after an earlier record said it drifted): ``fields``
    name what differs, ``message`` says it in one line, and ``applied`` is the desired state
    the live one amounts to (folded into the instance's applied state, so that the next run
    takes the update steps that put it back: a job paused by hand is started again)."""

    key: str
    t: float | None = None
    drifted: bool | None = None
    fields: tuple[str, ...] | None = None
    message: str | None = None
    applied: JSON | None = None
    profile: str | None = None  # a run across many tenants: the instance's profile
    extra: JSON = field(default_factory=dict)

    SPEC: ClassVar[_Spec] = _Spec(
        ("key", "key", _TEXT),
        ("t", "t", _NUMBER),
        ("drifted", "drifted", _FLAG),
        ("fields", "fields", ((list,), _texts)),
        ("message", "message", _TEXT),
        ("applied", "applied", _OBJECT),
        ("profile", "profile", _TEXT),
    )

    def to_json(self) -> JSON:
        out = _write("drift", self, self.SPEC.table, self.extra)
        if self.fields is not None:
            out["fields"] = list(self.fields)
        return out

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> DriftRecord:
        return cls(**_keyed(raw, cls.SPEC))


Record = Header | RunStart | StepRecord | InstanceRecord | CleanupRecord | DriftRecord

_PARSERS: dict[str, Callable[[Mapping[str, Any]], Record]] = {
    "header": Header.from_json,
    "run": RunStart.from_json,
    "step": StepRecord.from_json,
    "instance": InstanceRecord.from_json,
    "cleanup": CleanupRecord.from_json,
    "drift": DriftRecord.from_json,
}


def parse_record(raw: Mapping[str, Any]) -> Record | None:
    """The record a ledger line's object holds; None for an object that is no record of this
    release (another ``"type"``, or a record of an instance without its key)."""
    kind = raw.get("type")
    parser = _PARSERS.get(kind) if isinstance(kind, str) else None
    if parser is None:
        return None
    try:
        return parser(raw)
    except ValueError:
        return None
