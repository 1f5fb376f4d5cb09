"""Manifests: the app instances to onboard, from CSV, JSON or JSONL.

One instance is::

    key           unique within the manifest (the ledger tracks instances by it)
    displayName   the name the application and service principal get
    template      the gallery application template: its display name or its id
    syncTemplate  the synchronization template (default: the one marked default)
    start         start the provisioning job (default true)
    validate      validate the credentials before saving them (default true)
    profile       connection profile (optional)
    agentGroup    on-premises apps: the provisioning agent group (id or display name) the
                  application is assigned to; needs a delegated (device-code) connection
    credentials   synchronizationSecret key -> reference: env:VAR, file:PATH, literal:VALUE
    schema        a synchronizationSchema JSON file (relative to the manifest) PUT onto the job
    schedule      the job's schedule in the source tenant: {"interval": "PT40M", "state": ...}
    jobSettings   synchronizationJobSettings for the new job: [{"name": ..., "value": ...}]

``schema``, ``schedule`` and ``jobSettings`` come from ``bulkprov export``; ``schedule`` and
``jobSettings`` are JSON/JSONL only, ``schema`` may also be a CSV column.

In CSV, credentials are columns ``cred.<Key>`` (``cred.ClientSecret``, ``cred.BaseAddress``);
in JSON and JSONL an object ``"credentials": {"ClientSecret": "env:AWS_KEY_ID_1"}``. Secret
values are never in the manifest unless ``allow_inline_secrets`` says so: a reference is checked
when the manifest is validated and read only when the step needs it, under the rules of
:mod:`bulkprov.refs` (``file:`` inside the manifest's directory or a secrets directory, a regular
file of at most 64 KiB; no ``env:BULKPROV_*``).

:func:`validate` reads the whole manifest and reports every problem (file, line, field) at once;
:func:`iter_instances` streams instances for a run, so a manifest of 100k rows is never held
in memory whole.
"""

from __future__ import annotations

import difflib
import re
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .errors import ConfigError, ManifestError, Problem
from .graphenums import SYNCHRONIZATION_SECRETS
from .manifestfile import detect_format, records
from .refs import DEFAULT_RULES, CredentialRef, RefRules, Secret, parse_ref

__all__ = [
    "CredentialRef",  # re-exported from bulkprov.refs, where references are read
    "Instance",
    "Lines",
    "ManifestSummary",
    "RefRules",
    "Secret",
    "build_instance",
    "iter_instances",
    "validate",
]

MAX_FIELD = 4096
KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@\-]{0,127}$")
SYNC_TEMPLATE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,255}$")
ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1 (Unicode Cc)

#: Keys a manifest may give: Graph's synchronizationSecret members (but ``None``).
SECRET_KEYS = frozenset(SYNCHRONIZATION_SECRETS) - {"None"}
#: Keys whose values are settings rather than secrets: a plain value is fine for them.
PLAIN_KEYS = frozenset(
    [
        "BaseAddress",
        "Url",
        "Domain",
        "InstanceName",
        "Server",
        "CompanyId",
        "Sandbox",
        "SandboxName",
        "SyncAll",
        "SkipOutOfScopeDeletions",
        "HardDeletesEnabled",
        "EnforceDomain",
        "ValidateDomain",
        "SystemOfRecord",
        "SingleSignOnType",
        "AuthenticationType",
        "UpdateKeyOnSoftDelete",
        "SyncNotificationSettings",
        "ApplicationTemplateIdentifier",
        "Oauth2ClientId",
        "UserName",
    ]
)
FIELDS = (
    "key",
    "displayName",
    "template",
    "syncTemplate",
    "start",
    "validate",
    "profile",
    "agentGroup",
    "schema",
    "schedule",
    "jobSettings",
)
JSON_ONLY = frozenset({"schedule", "jobSettings"})
SCHEDULE_STATES = frozenset({"Active", "Disabled", "Paused"})  # synchronizationScheduleState
DURATION_RE = re.compile(
    r"^-?P(?=\d|T\d)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$"
)
REQUIRED = ("key", "displayName", "template")
TRUE = frozenset({"true", "yes", "1", "y"})
FALSE = frozenset({"false", "no", "0", "n"})


@dataclass(frozen=True, slots=True)
class Instance:
    """One app instance of a manifest."""

    key: str
    display_name: str
    template: str
    sync_template: str | None
    credentials: tuple[CredentialRef, ...]
    start: bool
    validate: bool
    profile: str | None
    file: str
    line: int
    schema_file: Path | None = None  # the schema to PUT onto the job (resolved path)
    schedule: tuple[tuple[str, str], ...] = ()  # (name, value) of synchronizationSchedule
    job_settings: tuple[tuple[str, str], ...] = ()  # synchronizationJobSettings
    agent_group: str | None = None  # on-premises provisioning agent group: id or display name

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(slots=True)
class Lines:
    """The manifest lines that use one value: the first ``KEEP`` of them and how many in all
    (a 100k-row manifest of one template keeps 20 line numbers, not 100,000)."""

    first: list[int] = field(default_factory=list)
    count: int = 0

    KEEP: ClassVar[int] = 20

    def add(self, line: int) -> None:
        self.count += 1
        if len(self.first) < self.KEEP:
            self.first.append(line)


@dataclass(slots=True)
class SharedName:
    """A display name that several instances use, as the second of them writes it."""

    name: str
    lines: Lines


@dataclass(slots=True)
class ManifestSummary:
    """What validation learned: counts, the distinct templates, and every problem."""

    path: Path
    count: int = 0
    templates: dict[str, Lines] = field(default_factory=dict)  # template -> its lines
    agent_groups: dict[str, Lines] = field(default_factory=dict)  # agent group -> its lines
    profiles: dict[str, Lines] = field(default_factory=dict)  # profile -> its lines
    unprofiled: Lines = field(default_factory=Lines)  # the lines that name no profile
    keys_digest: str = ""
    problems: list[Problem] = field(default_factory=list)
    # display names (casefolded: Graph's `eq` ignores case) that several instances use; only
    # their applications need telling apart by the ledger while the run goes
    shared_names: set[str] = field(default_factory=set)
    # the lines of the first SHARED_KEEP of them (casefolded name -> name and lines), in the
    # order their second use appears
    shared_lines: dict[str, SharedName] = field(default_factory=dict)

    SHARED_KEEP: ClassVar[int] = 20

    def profile_names(self, default: str | None, only: Sequence[str] | None = None) -> list[str]:
        """The profiles the rows name, a row naming none counting as ``default`` (none: a run
        of one tenant), or those of ``only`` (``--tenant``), each of which some row must name;
        rows naming none among rows that do, with no ``default``, are problems
        (:class:`ManifestError`)."""
        names = self._profile_names(default)
        if not only:
            return names
        if not names:
            raise ConfigError(f"--tenant: the rows of {self.path} name no profile (one tenant)")
        unknown = sorted(set(only) - set(names))
        if unknown:
            raise ConfigError(
                f"--tenant {unknown[0]}: no row of {self.path} names that profile; its "
                f"profiles: {', '.join(names)}"
            )
        return sorted(set(only))

    def count_of(self, profiles: Sequence[str], default: str | None) -> int:
        """The instances of ``profiles`` (rows naming none are ``default``'s); every instance
        when ``profiles`` is empty (a run of one tenant)."""
        if not profiles:
            return self.count
        named = sum(self.profiles[p].count for p in profiles if p in self.profiles)
        return named + (self.unprofiled.count if default in profiles else 0)

    def _profile_names(self, default: str | None) -> list[str]:
        if not self.profiles:
            return []
        names = set(self.profiles)
        if not self.unprofiled.count:
            return sorted(names)
        if default is not None:
            return sorted({*names, default})
        name, lines = next(iter(self.profiles.items()))
        where = f"line {lines.first[0]}: {name!r}" if lines.first else repr(name)
        message = (
            f"names no profile, while other rows do ({where}); name the tenant's profile on "
            "every row, or give --profile for the rows that name none"
        )
        problems = [
            Problem(str(self.path), line, "profile", message) for line in self.unprofiled.first[:5]
        ]
        if self.unprofiled.count > 5:
            more = self.unprofiled.count - 5
            problems.append(Problem(str(self.path), None, "profile", f"... and {more} more rows"))
        raise ManifestError(problems)

    def shared_note(self, shown: int = 3) -> str | None:
        """One line for ``plan``: "2 display names are shared by several instances: 'X'
        (lines 3, 7), 'Y' (lines 4, 9)", or None when every display name is used once."""
        if not self.shared_names:
            return None
        n = len(self.shared_names)
        parts = []
        for shared in list(self.shared_lines.values())[:shown]:
            lines = ", ".join(map(str, shared.lines.first[:5]))
            more = shared.lines.count - min(len(shared.lines.first), 5)
            parts.append(f"{shared.name!r} (lines {lines}{f' and {more} more' if more else ''})")
        rest = f", and {n - len(parts)} more" if n > len(parts) else ""
        what = "display name is" if n == 1 else "display names are"
        return f"{n} {what} shared by several instances: {', '.join(parts)}{rest}"


def _csv_header_problems(name: str, header: list[str]) -> list[Problem]:
    """What is wrong with a CSV manifest's header (its stripped columns)."""
    problems: list[Problem] = []
    for i, column in enumerate(header):
        if column in JSON_ONLY:
            problems.append(Problem(name, 1, column, "is only allowed in JSON and JSONL manifests"))
            continue
        if column in FIELDS or (column.startswith("cred.") and column[5:] in SECRET_KEYS):
            continue
        if column.startswith("cred."):
            hint = _hint(column[5:], SECRET_KEYS)
            problems.append(
                Problem(
                    name,
                    1,
                    column or f"column {i + 1}",
                    f"unknown credential key {column[5:]!r}{hint}",
                )
            )
        else:
            hint = _hint(column, FIELDS)
            problems.append(
                Problem(
                    name,
                    1,
                    column or f"column {i + 1}",
                    f"unknown column{hint}; columns are {', '.join(FIELDS)} and cred.<Key>",
                )
            )
    dupes = {c for c in header if header.count(c) > 1}
    problems.extend(Problem(name, 1, c, "column appears more than once") for c in sorted(dupes))
    missing = [c for c in REQUIRED if c not in header]
    problems.extend(Problem(name, 1, c, "required column is missing") for c in missing)
    return problems


def _hint(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in TRUE | FALSE:
        return value.strip().lower() in TRUE
    return None


def build_instance(
    name: str,
    base_dir: Path,
    line: int,
    record: dict[str, Any],
    *,
    allow_inline_secrets: bool,
    check_refs: bool = True,
    rules: RefRules = DEFAULT_RULES,
    cred_field: str = "credentials.",
    checked_files: dict[str, str | None] | None = None,
) -> tuple[Instance | None, list[Problem]]:
    """An :class:`Instance` from a raw record, or the problems that prevent it.

    ``check_refs`` reads each reference now, under ``rules`` (which the instance's references
    keep for the read at run time); ``cred_field`` prefixes a credential's key in a problem's
    field: ``cred.`` for a CSV column, ``credentials.`` for JSON. ``checked_files`` remembers,
    across the records of one validation, the outcome of reading each ``file:`` target (the
    problem, or None; never the value): a manifest whose 100k rows share one secret file reads
    it once."""
    problems: list[Problem] = []
    key_value = record.get("key")
    key = key_value if isinstance(key_value, str) else None

    def bad(field_name: str | None, message: str) -> None:
        problems.append(Problem(name, line, field_name, message, key))

    for k in record:
        if k not in FIELDS and k != "credentials":
            bad(k, f"unknown field{_hint(k, (*FIELDS, 'credentials'))}")
    strings = _strings(record, bad)
    flags = _flags(record, bad)
    raw_creds = record.get("credentials", {})
    if not isinstance(raw_creds, dict):
        bad("credentials", "must be an object of key -> reference")
        raw_creds = {}
    refs: list[CredentialRef] = []
    for ckey, cval in raw_creds.items():
        ref = _credential(
            ckey,
            cval,
            f"{cred_field}{ckey}",
            base_dir,
            bad,
            allow_inline_secrets=allow_inline_secrets,
            check_refs=check_refs,
            rules=rules,
            checked_files=checked_files,
        )
        if ref is not None:
            refs.append(ref)
    if (flags["start"] or flags["validate"]) and not raw_creds:
        bad(
            "credentials",
            "are required to validate or start the job (set start and validate "
            "to false to only create the app and job)",
        )
    schema_file, schedule, job_settings = _migration_fields(record, base_dir, bad, check_refs)
    if problems:
        return None, problems
    assert strings["key"] and strings["displayName"] and strings["template"]
    return Instance(
        key=strings["key"],
        display_name=strings["displayName"],
        template=strings["template"],
        sync_template=strings["syncTemplate"],
        credentials=tuple(refs),
        start=flags["start"],
        validate=flags["validate"],
        profile=strings["profile"],
        file=name,
        line=line,
        schema_file=schema_file,
        schedule=schedule,
        job_settings=job_settings,
        agent_group=strings["agentGroup"],
    ), []


_Bad = Callable[[str | None, str], None]  # (field, message): note a problem of the record


def _strings(record: dict[str, Any], bad: _Bad) -> dict[str, str | None]:
    """The record's string fields, stripped; None for each that is missing or not valid."""
    strings: dict[str, str | None] = {}
    for f in ("key", "displayName", "template", "syncTemplate", "profile", "agentGroup"):
        v = record.get(f)
        if v is None or (isinstance(v, str) and not v.strip()):
            if f in REQUIRED:
                bad(f, "is required")
            strings[f] = None
            continue
        if not isinstance(v, str):
            bad(f, f"must be a string, got {type(v).__name__}")
            strings[f] = None
            continue
        if len(v) > MAX_FIELD:
            bad(f, f"is {len(v)} characters long; the limit is {MAX_FIELD}")
            strings[f] = None
            continue
        if CONTROL_RE.search(v):
            bad(f, "contains control characters")
            strings[f] = None
            continue
        strings[f] = v.strip()
    if strings["key"] is not None and not KEY_RE.match(strings["key"]):
        bad(
            "key",
            "must be 1-128 characters of letters, digits and . _ : @ - (starting with a "
            "letter or digit)",
        )
        strings["key"] = None
    if strings["displayName"] is not None and len(strings["displayName"]) > 256:
        bad("displayName", "is longer than Graph's 256 characters")
    if strings["syncTemplate"] is not None and not SYNC_TEMPLATE_RE.match(strings["syncTemplate"]):
        bad("syncTemplate", "is not a synchronization template id")
    if strings["agentGroup"] is not None and len(strings["agentGroup"]) > 256:
        bad("agentGroup", "is longer than 256 characters (an agent group id or display name)")
        strings["agentGroup"] = None
    return strings


def _flags(record: dict[str, Any], bad: _Bad) -> dict[str, bool]:
    """``start`` and ``validate`` (default true)."""
    flags: dict[str, bool] = {}
    for f in ("start", "validate"):
        v = record.get(f, True)
        b = _bool(v)
        if b is None:
            bad(f, f"must be true or false, got {v!r}")
            b = False  # not True: "credentials are required" would be a spurious second problem
        flags[f] = b
    return flags


def _credential(
    ckey: str,
    cval: Any,
    fname: str,
    base_dir: Path,
    bad: _Bad,
    *,
    allow_inline_secrets: bool,
    check_refs: bool,
    rules: RefRules,
    checked_files: dict[str, str | None] | None,
) -> CredentialRef | None:
    """The reference of credential ``ckey`` (a problem of field ``fname`` when it is not one
    that may be used)."""
    if ckey not in SECRET_KEYS:
        bad(fname, f"is not a synchronization secret key{_hint(ckey, SECRET_KEYS)}")
        return None
    if not isinstance(cval, str) or not cval.strip():
        bad(fname, "must be a reference string such as env:VAR or file:PATH")
        return None
    ref = parse_ref(ckey, cval.strip(), base_dir, rules)
    why: str | None = None
    if ref.scheme == "literal" and ckey not in PLAIN_KEYS and not allow_inline_secrets:
        why = "is an inline secret value; use env:VAR or file:PATH, or pass --allow-inline-secrets"
    elif ref.scheme == "env" and not ENV_RE.match(ref.target):
        why = f"env:{ref.target} is not a valid environment variable name"
    elif ref.scheme == "env":
        why = rules.env_refusal(ref.target)
    elif ref.scheme == "file" and not ref.target.strip():
        why = "file: needs the path of the file that holds the secret"
    if why is None and check_refs and ref.scheme != "literal":
        why = _check_ref(ref, checked_files)
    if why is not None:
        bad(fname, why)
        return None
    return ref


def _check_ref(ref: CredentialRef, checked_files: dict[str, str | None] | None) -> str | None:
    """Why ``ref`` cannot be read now, or None (the value read is dropped at once)."""
    if ref.scheme == "file" and checked_files is not None and ref.target in checked_files:
        return checked_files[ref.target]
    try:
        ref.resolve()
        why = None
    except LookupError as exc:  # RefError: names the reference, never the value
        why = str(exc)
    if ref.scheme == "file" and checked_files is not None:
        if len(checked_files) >= 1024:  # a manifest of one secret file per row: stay bounded
            checked_files.clear()
        checked_files[ref.target] = why
    return why


def _not_regular_file(path: Path) -> str | None:
    """What ``path`` is if it exists and is not a regular file (reading a FIFO would block)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None  # the read says why
    if stat.S_ISREG(mode):
        return None
    return "a directory" if stat.S_ISDIR(mode) else "a FIFO or device"


def _migration_fields(
    record: dict[str, Any],
    base_dir: Path,
    bad: Callable[[str | None, str], None],
    check_files: bool,
) -> tuple[Path | None, tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
    """``schema``, ``schedule`` and ``jobSettings`` of a record (written by ``export``)."""
    return (
        _schema_field(record.get("schema"), base_dir, bad, check_files),
        _schedule_field(record.get("schedule"), bad),
        _job_settings_field(record.get("jobSettings"), bad),
    )


def _schema_field(raw: Any, base_dir: Path, bad: _Bad, check_files: bool) -> Path | None:
    from . import schema as schema_mod

    if isinstance(raw, str) and raw.strip():
        schema_file = Path(raw.strip())
        if not schema_file.is_absolute():
            schema_file = base_dir / schema_file
        if check_files and (why := _not_regular_file(schema_file)) is not None:
            bad("schema", f"{schema_file} is {why}; a schema must be in a regular file")
        elif check_files:
            try:
                schema_mod.load(schema_file)
            except ValueError as exc:
                bad("schema", str(exc))
        return schema_file
    if raw is not None and raw != "":
        bad("schema", f"must be the path of a schema file, got {type(raw).__name__}")
    return None


def _schedule_field(raw: Any, bad: _Bad) -> tuple[tuple[str, str], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        bad("schedule", 'must be an object such as {"interval": "PT40M", "state": "Active"}')
        return ()
    schedule: list[tuple[str, str]] = []
    for k, v in raw.items():
        if k == "interval":
            if not isinstance(v, str) or not DURATION_RE.match(v):
                bad("schedule.interval", f"must be an ISO 8601 duration such as PT40M, got {v!r}")
                continue
        elif k == "state":
            if v not in SCHEDULE_STATES:
                bad("schedule.state", f"must be one of {', '.join(sorted(SCHEDULE_STATES))}")
                continue
        elif k == "expiration":
            if v is not None and not isinstance(v, str):
                bad("schedule.expiration", "must be a date-time string or null")
                continue
            if v is None:
                continue
        else:
            bad(f"schedule.{k}", "is not a property of synchronizationSchedule")
            continue
        schedule.append((k, str(v)))
    return tuple(schedule)


def _job_settings_field(raw: Any, bad: _Bad) -> tuple[tuple[str, str], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        bad("jobSettings", 'must be a list of {"name": ..., "value": ...}')
        return ()
    settings: list[tuple[str, str]] = []
    for i, item in enumerate(raw):
        if (
            not isinstance(item, dict)
            or set(item) != {"name", "value"}
            or not isinstance(item["name"], str)
            or not item["name"]
            or not isinstance(item["value"], str)
        ):
            bad(f"jobSettings[{i}]", 'must be {"name": string, "value": string}')
            continue
        settings.append((item["name"], item["value"]))
    return tuple(settings)


def validate(
    path: Path, *, allow_inline_secrets: bool = False, rules: RefRules = DEFAULT_RULES
) -> ManifestSummary:
    """Read the whole manifest; every problem is in the summary (nothing is raised for them,
    except for a file that cannot be read as a manifest at all). ``rules``: what its credential
    references may reach besides the manifest's directory (:class:`bulkprov.refs.RefRules`)."""
    import hashlib

    summary = ManifestSummary(path=path)
    seen: dict[str, int] = {}
    names: dict[int, int] = {}  # hash of a casefolded display name -> its first line
    digest = hashlib.sha256()
    base_dir = path.parent
    cred_field = _cred_field(path)
    checked_files: dict[str, str | None] = {}  # file: target -> why it cannot be read, or None
    for line, record in records(path, _csv_header_problems):
        if isinstance(record, Problem):
            summary.problems.append(record)
            continue
        inst, problems = build_instance(
            str(path),
            base_dir,
            line,
            record,
            allow_inline_secrets=allow_inline_secrets,
            rules=rules,
            cred_field=cred_field,
            checked_files=checked_files,
        )
        summary.problems.extend(problems)
        # a duplicate key is reported with the row's other problems, not only for a row that
        # builds: the first use of a key counts even if its row has problems of its own
        key = inst.key if inst is not None else _valid_key(record)
        if key is not None:
            if key in seen:
                summary.problems.append(
                    Problem(
                        str(path),
                        line,
                        "key",
                        f"duplicate key; first used on line {seen[key]}",
                        key,
                    )
                )
                continue
            seen[key] = line
        if inst is None:
            continue
        summary.count += 1
        _note_name(summary, names, inst.display_name, line, inst.profile)
        summary.templates.setdefault(inst.template, Lines()).add(line)
        if inst.profile is not None:
            summary.profiles.setdefault(inst.profile, Lines()).add(line)
        else:
            summary.unprofiled.add(line)
        if inst.agent_group is not None:
            summary.agent_groups.setdefault(inst.agent_group, Lines()).add(line)
        digest.update(f"{inst.key}\x00{inst.template}\x00{inst.display_name}\n".encode())
    if summary.count == 0 and not summary.problems:
        summary.problems.append(Problem(str(path), None, None, "the manifest has no instances"))
    summary.keys_digest = digest.hexdigest()
    return summary


def _cred_field(path: Path) -> str:
    """How a credential's field is named in a problem: as the CSV column, or the JSON member."""
    return "cred." if detect_format(path) == "csv" else "credentials."


def _valid_key(record: dict[str, Any]) -> str | None:
    """The record's key if it is a valid one (as :func:`build_instance` checks it), else None."""
    value = record.get("key")
    if not isinstance(value, str) or len(value) > MAX_FIELD:
        return None
    value = value.strip()
    return value if KEY_RE.match(value) else None


def _note_name(
    summary: ManifestSummary,
    names: dict[int, int],
    display_name: str,
    line: int,
    profile: str | None = None,
) -> None:
    """Record ``display_name`` (on ``line``) among the shared names if an earlier instance of
    the same ``profile`` (tenant) uses it too: names in two tenants never meet. Only a hash
    and a line per name are kept (a hash collision only costs a name wrongly taken as shared:
    a claim kept by the ledger, a note in ``plan``)."""
    name = display_name.casefold()
    first = names.get(h := hash((profile, name)))
    if first is None:  # (two JSON objects may share a line: the line cannot tell)
        names[h] = line
        return
    summary.shared_names.add(name)
    shared = summary.shared_lines.get(name)
    if shared is None and len(summary.shared_lines) < summary.SHARED_KEEP:
        shared = summary.shared_lines[name] = SharedName(display_name, Lines())
        shared.lines.add(first)
    if shared is not None:
        shared.lines.add(line)


def _raw_profile(record: dict[str, Any]) -> str | None:
    """A raw record's profile as :func:`build_instance` reads it (stripped; empty: None)."""
    v = record.get("profile")
    return v.strip() or None if isinstance(v, str) else None


def iter_instances(
    path: Path,
    *,
    allow_inline_secrets: bool = False,
    rules: RefRules = DEFAULT_RULES,
    profile: str | None = None,
    default_profile: str | None = None,
) -> Iterator[Instance]:
    """Stream the instances of a manifest that :func:`validate` accepted (their references are
    read when needed, under ``rules``); given a ``profile``, only those that name it (a row
    naming none counts as naming ``default_profile``), the others skipped before they are
    built (one tenant's pass over a manifest of many tenants costs little more than reading)."""
    base_dir = path.parent
    cred_field = _cred_field(path)
    for line, record in records(path, _csv_header_problems):
        if isinstance(record, Problem):
            raise ManifestError([record])
        if profile is not None and (_raw_profile(record) or default_profile) != profile:
            continue
        inst, problems = build_instance(
            str(path),
            base_dir,
            line,
            record,
            allow_inline_secrets=allow_inline_secrets,
            check_refs=False,
            rules=rules,
            cred_field=cred_field,
        )
        if problems:
            raise ManifestError(problems)
        assert inst is not None
        yield inst
