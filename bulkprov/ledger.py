"""The run ledger: one JSON object per line, appended as each step starts and ends.

Each append is a single ``write(2)`` of a whole line to a file opened with ``O_APPEND`` (mode
600), so a ``kill -9`` loses at most the line being written; a torn last line is cut off when
the ledger is opened again. Replaying the lines gives, per instance, the ids it has, the steps
it finished, whether an instantiate may be in flight, and its final result.

The records (header, run, step, instance, cleanup) and their format version are
:mod:`bulkprov.records`; :meth:`Ledger.append` writes one, :func:`replay_lines` folds them.

``cleanup`` records are written by ``bulkprov cleanup`` as it deletes what a run created
(``object``: job, servicePrincipal, application, or deletedItem for a purge); ``gone`` means
Graph answered 404 (already deleted). Once every object of an instance is removed, an
``instance`` record with status ``removed`` closes it: replaying it forgets the instance's ids
and steps, so a later run would set the instance up anew rather than reuse deleted objects.

No secret value is ever written: credentials appear as their keys and a fingerprint,
``k1:<key id>:<mac>``: an HMAC-SHA256 keyed with the user's fingerprint key (see
:func:`fingerprint_key`), which is kept outside the ledger, so that the ledger alone (its salt
included) cannot test guesses of a secret. The key id (the first 8 hex digits of the key's
SHA-256) tells a fingerprint made with another key ("cannot compare") from a changed secret.
Ledgers written before carry bare 16-hex fingerprints keyed with their salt; they are still
read, and compared by that older scheme.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import hmac
import os
import secrets
import stat
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import structlog

from .errors import LedgerError
from .jsontypes import JSON
from .ledgerlock import LedgerBusy as LedgerBusy
from .ledgerlock import LedgerLock
from .ledgerlock import now_iso as now_iso
from .records import FINAL_OK as FINAL_OK
from .records import VERSION as VERSION
from .records import (
    CleanupRecord,
    DriftRecord,
    Event,
    Header,
    InstanceRecord,
    Record,
    RunStart,
    Status,
    Step,
    StepRecord,
    parse_record,
)
from .redact import Redactor as Redactor  # its home was here: importing it from here works
from .tenancy import TenantRef, as_json, check_tenants, refs_of
from .tenancy import check_target as check_target

log = structlog.get_logger("bulkprov.ledger")

REMOVED = Status.REMOVED  # the status cleanup gives an instance whose objects it deleted


KEY_FILE_VARIABLE = "BULKPROV_FINGERPRINT_KEY_FILE"
FINGERPRINT_SCHEME = "k1"


def fingerprint_key_path() -> Path:
    """``$BULKPROV_FINGERPRINT_KEY_FILE``, else ``$XDG_STATE_HOME/bulkprov/fingerprint.key``
    (``~/.local/state/bulkprov/fingerprint.key`` without it)."""
    given = os.environ.get(KEY_FILE_VARIABLE)
    if given:
        return Path(given).expanduser()
    state = os.environ.get("XDG_STATE_HOME")
    base = Path(state) if state and Path(state).is_absolute() else Path.home() / ".local/state"
    return base / "bulkprov" / "fingerprint.key"


def fingerprint_key(path: Path | None = None) -> bytes:
    """The user's fingerprint key: 32 random bytes, written (as hex) to ``path`` the first
    time, mode 600 in a directory of mode 700. Two processes starting at once agree: the key
    is written to a file of its own and linked into place, so the first link wins and the
    other reads it."""
    path = path or fingerprint_key_path()
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    try:
        if not path.parent.is_dir():
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(path.parent, 0o700)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secrets.token_bytes(32).hex().encode() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # fails if another process put its key there first
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
        return _read_key(path)
    except OSError as exc:
        raise LedgerError(
            f"cannot create the fingerprint key {path}: {exc.strerror or exc}; set "
            f"{KEY_FILE_VARIABLE} to a file bulkprov may create or read"
        ) from None


def _read_key(path: Path) -> bytes:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise LedgerError(
            f"cannot read the fingerprint key {path}: {exc.strerror or exc}; set "
            f"{KEY_FILE_VARIABLE} to a file bulkprov may create or read"
        ) from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) < 16:
        raise LedgerError(
            f"{path} is not a bulkprov fingerprint key (64 hex digits); remove it to make a "
            "new one (fingerprints made with it can then not be compared)"
        )
    return key


def key_id(key: bytes) -> str:
    """``k1:`` and the first 8 hex digits of the key's SHA-256: names a key, reveals nothing."""
    return f"{FINGERPRINT_SCHEME}:{hashlib.sha256(key).hexdigest()[:8]}"


@dataclass(slots=True)
class InstanceState:
    """What the ledger knows of one instance."""

    key: str
    ids: dict[str, str] = field(default_factory=dict)  # applicationId, appId, ...
    done: set[str] = field(default_factory=set)  # steps finished
    instantiate_attempts: int = 0  # POSTs started (a write-ahead record each)
    instantiate_pending: bool = False  # a POST started and its outcome was never recorded
    status: str | None = None  # final status, if any
    record: InstanceRecord | None = None  # the instance record that gave it
    errors: int = 0
    # how the instance got its application: "created", "recovered" (a POST whose answer was
    # lost) or "adopted" (it existed before the run); None while unknown
    origin: str | None = None
    job_adopted: bool = False  # the job existed before the job step ran
    attempt: dict[str, str] = field(default_factory=dict)  # displayName, templateId of a POST
    removed: set[tuple[str, str]] = field(default_factory=set)  # cleanup: (kind, id) deleted
    display_name: str | None = None  # as the ledger last recorded it (attempt or final record)
    # the desired state applied, as the steps' "applied" data says (see bulkprov.desired)
    applied: JSON = field(default_factory=dict)
    drifted: bool | None = None  # what the last drift record said (None: no drift record)
    profile: str | None = None  # a run across many tenants: the profile it was set up with

    @property
    def finished(self) -> bool:
        return self.status in FINAL_OK

    @property
    def final(self) -> JSON | None:
        """:attr:`record` as the JSON the ledger holds (for readers of the record's keys)."""
        return self.record.to_json() if self.record is not None else None


@dataclass(slots=True)
class Replay:
    header: Header | None
    instances: dict[str, InstanceState]
    runs: int
    torn: bool  # a torn last line was found (and cut off when opened for writing)
    commands: dict[str, int] = field(default_factory=dict)  # other commands that wrote to it
    # the number of a last line that is whole but not a record (cut when opened for writing)
    bad_last_line: int | None = None
    # a run across many tenants: each profile's Graph and tenant, as header and run lines say
    tenants: dict[str, TenantRef] = field(default_factory=dict)

    def claimed(self, id_name: str, except_key: str | None = None) -> dict[str, str]:
        """id value -> key, for the ids of ``id_name`` that instances hold."""
        return {
            s.ids[id_name]: k
            for k, s in self.instances.items()
            if id_name in s.ids and k != except_key
        }


def _whole_lines_end(path: Path, size: int, block: int = 1 << 16) -> int:
    """The offset just past the last newline of the first ``size`` bytes of ``path`` (0: none)."""
    if size == 0:
        return 0
    end = size
    with open(path, "rb") as fh:
        while end > 0:
            start = max(0, end - block)
            fh.seek(start)
            i = fh.read(end - start).rfind(b"\n")
            if i >= 0:
                return start + i + 1
            end = start
    return 0


class _Lines:
    """The lines of ``path`` before offset ``end`` (which ends a line), without their newline;
    ``last_start`` is the offset at which the last line given began."""

    def __init__(self, path: Path, end: int) -> None:
        self.path = path
        self.end = end
        self.last_start = 0

    def __iter__(self) -> Iterator[bytes]:
        with open(self.path, "rb") as fh:
            pos = 0
            for line in fh:
                if pos >= self.end:
                    return
                self.last_start = pos
                pos += len(line)
                yield line.rstrip(b"\r\n")


def _lines_before(path: Path, end: int) -> Iterator[bytes]:
    """The lines of ``path`` before offset ``end`` (which ends a line), without their newline."""
    yield from _Lines(path, end)


def replay_lines(lines: Iterable[bytes], tap: Callable[[Record], object] | None = None) -> Replay:
    """Fold ledger lines into per-instance state. A line that does not parse must be the last.
    ``tap``, if given, is handed each record too (another reader need not parse them again)."""
    replay = Replay(None, {}, 0, False)
    for n, raw in enumerate(lines, start=1):
        if replay.bad_last_line is not None:
            raise LedgerError(
                f"ledger line {replay.bad_last_line} is corrupt (not JSON) and is not the "
                "last line; refusing to guess what happened (if that line is not a bulkprov "
                "record, e.g. an edit, remove it and run again)"
            )
        if not raw.strip():
            continue
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            obj = None
        if not isinstance(obj, dict):
            replay.bad_last_line = n  # a whole line that is no record: it must be the last
            replay.torn = True
            continue
        if (rec := parse_record(obj)) is not None and tap is not None:
            tap(rec)
        _fold(replay, rec)
    return replay


def _fold(replay: Replay, rec: Record | None) -> None:
    """One record into the replay (None: an object that is no record of this release)."""
    match rec:  # the commonest first
        case StepRecord():
            _fold_step(_state(replay, rec.key, rec.ids), rec)
        case InstanceRecord():
            _fold_instance(replay, rec)
        case CleanupRecord():
            _fold_cleanup(_state(replay, rec.key, None), rec)
        case DriftRecord():
            _fold_drift(replay, rec)
        case RunStart():
            _fold_run(replay, rec)
        case Header():
            replay.header = rec
            replay.tenants.update(refs_of(rec.tenants))
        case None:
            pass


def _state(replay: Replay, key: str, ids: Mapping[str, str | None] | None) -> InstanceState:
    """The state of instance ``key`` (new if the ledger had none), given the ``ids`` of its
    record."""
    st = replay.instances.get(key)
    if st is None:
        st = replay.instances[key] = InstanceState(key)
    if ids:
        st.ids.update({k: str(v) for k, v in ids.items() if v})
    return st


def _fold_run(replay: Replay, rec: RunStart) -> None:
    replay.tenants.update(refs_of(rec.tenants))
    if rec.command == "run":
        replay.runs += 1
    else:
        replay.commands[rec.command] = replay.commands.get(rec.command, 0) + 1


def _fold_step(st: InstanceState, rec: StepRecord) -> None:
    if rec.profile is not None:
        st.profile = rec.profile
    if rec.step == Step.INSTANTIATE and rec.event == Event.ATTEMPT:
        st.instantiate_attempts += 1
        st.instantiate_pending = True
        st.attempt = {
            k: v
            for k, v in (("displayName", rec.display_name), ("templateId", rec.template_id))
            if v
        }
        if rec.display_name is not None:
            st.display_name = rec.display_name
    elif rec.event == Event.DONE:
        st.done.add(str(rec.step))
        _fold_done(st, rec.step, rec.data or {})
    elif rec.event == Event.ERROR:
        st.errors += 1
        if rec.step == Step.INSTANTIATE and rec.settled:
            st.instantiate_pending = False


def _fold_done(st: InstanceState, step: Step | str | None, data: Mapping[str, Any]) -> None:
    """What a step's ``done`` record says of how the instance got its objects."""
    if step == Step.INSTANTIATE:
        st.instantiate_pending = False
        for how in ("created", "recovered", "adopted"):
            if data.get(how):
                st.origin = how
    elif step == Step.JOB:
        st.job_adopted = bool(data.get("adopted"))
    fold_applied(st, step, data)


def fold_applied(st: InstanceState, step: Step | str | None, data: Mapping[str, Any]) -> None:
    """The desired state a step's ``done`` record says it applied (``bulkprov.desired``);
    for a ledger of an earlier release, what its step records imply."""
    applied = data.get("applied")
    if isinstance(applied, dict):
        st.applied.update(applied)
        return
    if step == Step.SECRETS and isinstance(data.get("fingerprints"), dict):
        st.applied["credentials"] = dict(data["fingerprints"])
    elif step == Step.JOB:
        st.applied.setdefault("start", False)
    elif step == Step.START:
        st.applied["start"] = True


def _fold_instance(replay: Replay, rec: InstanceRecord) -> None:
    st = _state(replay, rec.key, rec.ids)
    st.status = str(rec.status)
    st.record = rec
    if rec.profile is not None:
        st.profile = rec.profile
    if rec.display_name is not None:
        st.display_name = rec.display_name
    if st.status == Status.REMOVED:
        # its objects are deleted: what the ledger knew of them no longer holds
        fresh = InstanceState(
            rec.key, status=st.status, record=rec, removed=st.removed, profile=st.profile
        )
        replay.instances[rec.key] = fresh


def _fold_cleanup(st: InstanceState, rec: CleanupRecord) -> None:
    if rec.profile is not None and st.profile is None:
        st.profile = rec.profile
    if rec.event in (Event.DONE, Event.GONE) and rec.object_id is not None:
        st.removed.add((str(rec.kind), rec.object_id))


def _fold_drift(replay: Replay, rec: DriftRecord) -> None:
    st = replay.instances.get(rec.key)
    if st is None or st.status == Status.REMOVED:
        return  # drift of an instance the ledger no longer has objects of: nothing to fold
    st.drifted = rec.drifted
    if rec.applied:
        st.applied.update(rec.applied)  # what is live now: the next run's diff starts there


def _regular_or_absent(path: Path) -> bool:
    """Whether ``path`` exists, refusing anything but a regular file there (a directory, a
    FIFO that would block a read, a device)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise LedgerError(f"cannot use ledger {path}: {exc.strerror}") from None
    if not stat.S_ISREG(mode):
        what = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise LedgerError(f"ledger {path} is {what}: give the path of a ledger file")
    return True


@dataclass(frozen=True, slots=True)
class _Prepared:
    """What :meth:`Ledger.prepare` found, for :meth:`Ledger.begin` to act on."""

    manifest: str | None
    graph: str
    tenant: str
    command: str
    existing: bool  # the file is a ledger already (else begin() writes its header)
    cut: int  # the offset where its whole records end
    size: int  # its size when prepared
    tenants: Mapping[str, TenantRef] | None = None  # a run across many tenants: its profiles


class Ledger:
    """Appends records to a ledger file; see the module docstring for the format.

    A command that writes the ledger holds its :class:`LedgerLock` from :meth:`prepare` (or
    :meth:`open`) until :meth:`close`; a second one is refused at once (:class:`LedgerBusy`)
    and writes nothing."""

    def __init__(
        self, path: Path, *, redactor: Redactor | None = None, fsync: bool = False
    ) -> None:
        self.path = path
        self.redactor = redactor or Redactor()
        self.fsync = fsync
        self._fd: int | None = None
        self.salt = b""
        self._key: bytes | None = None
        self.replay = Replay(None, {}, 0, False)
        self._lock: LedgerLock | None = None
        self._prepared: _Prepared | None = None
        self._made_dir = False
        # a run across many tenants: key -> profile of each instance in flight, which every
        # step record of it names (set and dropped by the run)
        self.profiles: dict[str, str] = {}

    def open(
        self,
        *,
        manifest: str | None,
        graph: str,
        tenant: str,
        command: str = "run",
        create: bool = True,
        instances: Mapping[str, str] | Callable[[Collection[str]], Mapping[str, str]] | None = None,
        tenants: Mapping[str, TenantRef] | None = None,
    ) -> Replay:
        """:meth:`prepare`, then :meth:`begin`."""
        replay = self.prepare(
            manifest=manifest,
            graph=graph,
            tenant=tenant,
            command=command,
            create=create,
            instances=instances,
            tenants=tenants,
        )
        self.begin()
        return replay

    def prepare(
        self,
        *,
        manifest: str | None,
        graph: str,
        tenant: str,
        command: str = "run",
        create: bool = True,
        instances: Mapping[str, str] | Callable[[Collection[str]], Mapping[str, str]] | None = None,
        tenants: Mapping[str, TenantRef] | None = None,
    ) -> Replay:
        """Lock the ledger, replay it, and check it belongs to this run's Graph and tenant,
        and (given ``instances``, key -> display name, or a function giving it for the keys it
        is asked about) to this manifest. Writes nothing: a refused ledger is left exactly as
        it was, and a new one is not created until :meth:`begin`. A run across many tenants
        gives ``tenants`` (profile -> its Graph and tenant; ``graph`` is then the one they
        share, if they do, and ``tenant`` is not used): the ledger must be one of such runs,
        and record each profile it knows with the same tenant.

        Commands other than ``run`` (``cleanup``, ``monitor``) pass ``create=False``: they
        work on a ledger a run wrote, and refuse a missing one."""
        exists = _regular_or_absent(self.path)
        if not create and not exists:
            raise LedgerError(f"no ledger at {self.path}: give the ledger a run wrote")
        try:
            # (a directory made here for a ledger that is then refused is removed again)
            self._made_dir = not self.path.parent.exists()
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LedgerError(
                f"cannot create the ledger's directory {self.path.parent}: {exc.strerror}"
            ) from None
        self._lock = LedgerLock(self.path, command)
        self._lock.acquire()
        try:
            self._prepare(manifest, graph, tenant, command, create, instances, tenants)
        except BaseException:
            self.close()
            raise
        return self.replay

    def _prepare(
        self,
        manifest: str | None,
        graph: str,
        tenant: str,
        command: str,
        create: bool,
        instances: Mapping[str, str] | Callable[[Collection[str]], Mapping[str, str]] | None,
        tenants: Mapping[str, TenantRef] | None,
    ) -> None:
        # the ledger is read a line at a time: a resumed 100k-instance run never holds it whole
        try:
            size = self.path.stat().st_size if _regular_or_absent(self.path) else 0
            cut = _whole_lines_end(self.path, size)
            # a ledger torn inside its header line (killed while creating it) is a new ledger;
            # any other file without a whole line is not a ledger, and is refused below
            head = b'{"type":"header"'
            first = b""
            if size:
                with open(self.path, "rb") as fh:
                    first = fh.read(len(head))
        except OSError as exc:
            raise LedgerError(f"cannot read ledger {self.path}: {exc.strerror}") from None
        existing = cut > 0 or not head.startswith(first)
        if not create and not existing:
            raise LedgerError(f"{self.path} is not a bulkprov ledger (no header line)")
        if existing:
            lines = _Lines(self.path, cut)
            try:
                self.replay = replay_lines(lines)
            except OSError as exc:
                raise LedgerError(f"cannot read ledger {self.path}: {exc.strerror}") from None
            except LedgerError as exc:
                raise LedgerError(f"{self.path}: {exc}") from None
            if self.replay.bad_last_line is not None:
                # a whole last line that is no record (garbage appended, a write cut short
                # and then ended by a newline): cut like a torn one, or the next record after
                # it would leave a corrupt line in the middle and the ledger refused for good
                cut = lines.last_start
            self.replay.torn = self.replay.torn or cut != size
            header = self.replay.header
            if header is None:
                raise LedgerError(f"{self.path} is not a bulkprov ledger (no header line)")
            if header.version != VERSION:
                raise LedgerError(
                    f"{self.path} is a version {header.version} ledger; "
                    f"this bulkprov writes version {VERSION}"
                )
            if tenants is None:
                check_target(self.path, header, graph=graph, tenant=tenant)
            else:
                check_tenants(self.path, header, self.replay.tenants, tenants)
            self.salt = bytes.fromhex(header.salt or "")
            if callable(instances):
                # the manifest's names of the ledger's instances only: a fresh ledger costs
                # nothing, and a resumed one no map of every instance
                instances = instances(self.replay.instances.keys()) if self.replay.instances else {}
            if instances is not None:
                self.check_manifest(instances, manifest)
        if command == "run":
            self._fingerprint_key()  # no key to be had: the run stops before it writes
        self._prepared = _Prepared(manifest, graph, tenant, command, existing, cut, size, tenants)

    def begin(self) -> None:
        """Start writing a prepared ledger: cut a torn last line, create the file (mode 600)
        with its header if new, and record this command's start."""
        p = self._prepared
        if p is None:
            raise LedgerError("the ledger is not prepared")
        self._prepared = None
        self._made_dir = False
        try:
            if p.cut != p.size:
                # only now that the file is known to be this run's ledger: never cut another
                with open(self.path, "r+b") as fh:
                    fh.truncate(p.cut)
                self.replay.torn = True
                if self.replay.bad_last_line is not None:
                    log.warning(
                        "ledger_corrupt_last_line_cut",
                        ledger=str(self.path),
                        line=self.replay.bad_last_line,
                        bytes=p.size - p.cut,
                    )
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            os.chmod(self.path, 0o600)
        except OSError as exc:
            self.close()
            raise LedgerError(f"cannot open ledger {self.path}: {exc.strerror}") from None
        if not p.existing:
            self.salt = secrets.token_bytes(16)
            self.append(
                Header(
                    version=VERSION,
                    created=now_iso(),
                    manifest=p.manifest,
                    graph=p.graph,
                    tenant=p.tenant if p.tenants is None else None,
                    tenants=as_json(p.tenants.values()) if p.tenants is not None else None,
                    salt=self.salt.hex(),
                    fingerprint_key=(
                        key_id(self._fingerprint_key()) if p.command == "run" else None
                    ),
                )
            )
        manifest = p.manifest if p.command == "run" else None
        self.append(
            RunStart(
                at=now_iso(),
                pid=os.getpid(),
                command=p.command,
                manifest=manifest,
                tenants=as_json(p.tenants.values()) if p.tenants is not None else None,
            )
        )
        if p.tenants is not None:
            self.replay.tenants.update(p.tenants)

    def check_manifest(
        self, instances: Collection[str] | Mapping[str, str], manifest: str | None = None
    ) -> None:
        """Refuse a ledger that belongs to another manifest, so that its application ids are
        not taken for this manifest's instances: one none of whose instances this manifest
        lists, or (given key -> display name, and the manifest's file name differing from the
        one the ledger records) one every instance of which the manifest lists had another
        display name. Otherwise instances the manifest dropped are left to ``run --prune``,
        and a display name changed for a key the ledger has is an update (``rename``)."""
        source = self.replay.header.manifest if self.replay.header else None
        known = self.replay.instances
        common = [k for k in known if k in instances]
        if known and not common:
            sample = ", ".join(repr(k) for k in sorted(known)[:5])
            raise LedgerError(
                f"{self.path} belongs to another manifest: none of its {len(known)} instances "
                f"({sample}) is in {manifest or source} as given now; use a new ledger for a "
                "different manifest"
            )
        if not isinstance(instances, Mapping) or manifest is None or manifest == source:
            return
        named = [(k, known[k].display_name, instances[k]) for k in common]
        renamed = [(k, was, now) for k, was, now in named if was is not None and was != now]
        if renamed and len(renamed) == len([n for n in named if n[1] is not None]):
            k, was, now = sorted(renamed)[0]
            raise LedgerError(
                f"{self.path} belongs to another manifest ({source}, not {manifest}): every "
                f"instance of it has another display name now (instance {k!r} was {was!r}, "
                f"the manifest says {now!r}); the ledger's applications would be taken for "
                "other ones. Use a new ledger for a different manifest, or restore the names"
            )

    def _fingerprint_key(self) -> bytes:
        if self._key is None:
            self._key = fingerprint_key()
        return self._key

    def fingerprint(self, key: str, value: str) -> str:
        """``k1:<key id>:<mac>``, the mac an HMAC-SHA256 of the ledger's salt, ``key`` and
        ``value`` keyed with the user's fingerprint key: the same value gives the same
        fingerprint in every run of this ledger with this key, and the ledger alone cannot
        tell a guess right."""
        secret = self._fingerprint_key()
        message = self.salt + f"{key}\x00{value}".encode()
        mac = hmac.new(secret, message, hashlib.sha256).hexdigest()[:16]
        return f"{key_id(secret)}:{mac}"

    def compare_fingerprint(self, stored: str, key: str, value: str) -> str:
        """What a fingerprint recorded in this ledger says of ``value`` now: ``same``,
        ``changed``, or ``other-key`` (made with a fingerprint key this user does not have:
        it cannot tell). A bare fingerprint of an older ledger is compared by its scheme."""
        if ":" not in stored:  # an older ledger's: keyed with its salt alone
            legacy = hmac.new(self.salt, f"{key}\x00{value}".encode(), hashlib.sha256)
            return "same" if hmac.compare_digest(stored, legacy.hexdigest()[:16]) else "changed"
        scheme, _, rest = stored.partition(":")
        kid = f"{scheme}:{rest.partition(':')[0]}"
        if kid != key_id(self._fingerprint_key()):
            return "other-key"
        return "same" if hmac.compare_digest(stored, self.fingerprint(key, value)) else "changed"

    def append(self, record: Record) -> None:
        """Write ``record`` as one line, every registered secret in it masked."""
        if self._fd is None:
            raise LedgerError("the ledger is not open")
        line = orjson.dumps(self.redactor.value(record.to_json())) + b"\n"
        try:
            if os.fstat(self._fd).st_nlink == 0:
                # deleted (or its directory) while open: what is written now would be lost
                self.close()
                raise LedgerError(
                    f"the ledger {self.path} was deleted while this command was writing it; "
                    "stopping here. Its records are lost: a run with a new ledger adopts the "
                    "applications made so far by their names"
                )
            written = os.write(self._fd, line)
            if written != len(line):
                raise OSError(errno.ENOSPC, "short write")
            if self.fsync:
                os.fsync(self._fd)
        except OSError as exc:
            # a failed write may have left part of the line: appending after it would put a
            # corrupt line in the middle of the ledger, so nothing more is written to it
            self.close()
            raise LedgerError(
                f"cannot append to ledger {self.path}: {exc.strerror or exc}; the run stops here "
                "and resumes from the ledger once the problem is fixed"
            ) from None

    def step(self, key: str, step: Step | str, event: Event | str, **data: Any) -> None:
        """Append a :class:`StepRecord` of now, its fields given by their JSON names
        (``ms=``, ``ids=``, ``data=``, ``displayName=``, ``requestId=``...); None ones are
        left out. An instance of a run across many tenants has its profile named too."""
        profile = self.profiles.get(key)
        if profile is not None:
            data["profile"] = profile
        self.append(StepRecord.of(key, step, event, t=round(time.time(), 3), **data))

    def close(self) -> None:
        """Stop writing and release the lock (idempotent)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
        self._prepared = None
        if self._lock is not None:
            self._lock.release()
        if self._made_dir:  # made for a ledger that was refused before anything was written
            with contextlib.suppress(OSError):
                self.path.parent.rmdir()  # only if still empty
        self._made_dir = False


def read(path: Path, tap: Callable[[Record], object] | None = None) -> Replay:
    """Replay a ledger file without opening it for writing (a torn last line is ignored);
    ``tap``, as for :func:`replay_lines`, sees every record."""
    if not _regular_or_absent(path):
        raise LedgerError(f"no ledger at {path}")
    try:
        size = path.stat().st_size
        cut = _whole_lines_end(path, size)
        replay = replay_lines(_lines_before(path, cut), tap=tap)  # a line at a time
    except OSError as exc:
        raise LedgerError(f"cannot read ledger {path}: {exc.strerror}") from None
    except LedgerError as exc:
        raise LedgerError(f"{path}: {exc}") from None
    replay.torn = replay.torn or cut != size
    return replay
