"""A small conformance checker for JSON payloads against the Microsoft Graph v1.0 CSDL.

The metadata is the official ``v1.0-Prod.csdl`` (EDMX/CSDL XML). It is read from
``<repo>/../shared/graph/v1.0-Prod.csdl`` when that file exists, else from the vendored
gzip copy ``tests/data/v1.0-Prod.csdl.gz``. Standard library only.

Usage::

    from tests.csdl import load_csdl
    problems = load_csdl().check("synchronizationJob", payload)
    assert problems == []

``check`` returns human readable problems, each naming the JSON path (``a.b[0].c``) and
what is wrong; an empty list means the payload conforms.

Rules, in short: every key must be a declared structural or navigation property of the type
or one of its base types. Undeclared (dynamic) keys are accepted on ``OpenType="true"``
types only when the type declares no properties at all (property bags such as
``detailsInfo``), for directory extension attributes (``extension_<appId>_<name>``), or
with ``allow_dynamic=True``;
instance annotations (``@odata.*``, ``@microsoft.graph.*``, and ``<prop>@odata.*`` for a
declared ``<prop>``) are ignored; ``@odata.type`` switches to a derived type; complex and
entity values are checked recursively; collections must be lists; enum values must be
member names (comma-separated for ``IsFlags`` enums); primitives are checked by JSON type
and, for Guid / DateTimeOffset / Duration / Date / TimeOfDay, by format. ``null`` is
accepted everywhere unless ``strict_nulls=True``.
"""

from __future__ import annotations

import gzip
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any

__all__ = [
    "SHARED_CSDL",
    "VENDORED_CSDL",
    "Csdl",
    "EnumDef",
    "PropertyDef",
    "StructuredDef",
    "csdl_source",
    "load_csdl",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_CSDL = REPO_ROOT.parent / "shared" / "graph" / "v1.0-Prod.csdl"
VENDORED_CSDL = Path(__file__).resolve().parent / "data" / "v1.0-Prod.csdl.gz"

DEFAULT_NAMESPACE = "microsoft.graph"
_EDM = "{http://docs.oasis-open.org/odata/ns/edm}"
_EDMX = "{http://docs.oasis-open.org/odata/ns/edmx}"

# Annotation namespaces accepted in payloads: OData control information and Graph's own.
_ANNOTATION_PREFIXES = ("odata.", "microsoft.graph.")

_GUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
_DATETIMEOFFSET_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,12})?)?(?:Z|[+-]\d{2}:\d{2})$"
)
_DURATION_RE = re.compile(
    r"^-?P(?=\d|T\d)(?:\d+D)?(?:T(?=\d)(?:\d+H)?(?:\d+M)?(?:\d+(?:\.\d+)?S)?)?$"
)
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIME_OF_DAY_RE = re.compile(r"^([01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d{1,12})?)?$")
_COLLECTION_RE = re.compile(r"^Collection\((.+)\)$")
# Directory extension attributes on open directory objects: extension_<appId w/o dashes>_<name>
_EXTENSION_RE = re.compile(r"^extension_[0-9a-fA-F]{32}_\w+$")

_INT_RANGES: dict[str, tuple[int, int]] = {
    "Edm.Byte": (0, 255),
    "Edm.SByte": (-128, 127),
    "Edm.Int16": (-(2**15), 2**15 - 1),
    "Edm.Int32": (-(2**31), 2**31 - 1),
    "Edm.Int64": (-(2**63), 2**63 - 1),
}
_FLOAT_TYPES = frozenset({"Edm.Double", "Edm.Single", "Edm.Decimal"})
_FLOAT_SPECIALS = frozenset({"NaN", "INF", "-INF"})
_STRING_TYPES = frozenset({"Edm.String", "Edm.Binary", "Edm.Stream"})
_ANY_TYPES = frozenset({"Edm.Untyped", "Edm.PrimitiveType"})


@dataclass(frozen=True)
class PropertyDef:
    """One structural or navigation property, with its type qualified (aliases resolved)."""

    name: str
    type: str  # e.g. "Edm.String", "microsoft.graph.synchronizationStatus", "Collection(...)"
    nullable: bool
    navigation: bool

    @property
    def is_collection(self) -> bool:
        return _COLLECTION_RE.match(self.type) is not None

    @property
    def element_type(self) -> str:
        m = _COLLECTION_RE.match(self.type)
        return m.group(1) if m else self.type


@dataclass
class StructuredDef:
    """An EntityType or ComplexType."""

    qualified_name: str
    kind: str  # "EntityType" or "ComplexType"
    base_type: str | None
    abstract: bool
    open_type: bool
    properties: dict[str, PropertyDef] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.qualified_name.rsplit(".", 1)[1]


@dataclass
class EnumDef:
    """An EnumType."""

    qualified_name: str
    is_flags: bool
    members: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.qualified_name.rsplit(".", 1)[1]


@dataclass(frozen=True)
class _Options:
    strict_nulls: bool
    allow_dynamic: bool


def csdl_source() -> Path:
    """Return the CSDL file used: the shared plain file if present, else the vendored gzip."""
    return SHARED_CSDL if SHARED_CSDL.is_file() else VENDORED_CSDL


def _read_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data


def _short(qualified: str) -> str:
    return qualified.rsplit(".", 1)[-1]


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class Csdl:
    """Parsed CSDL: structured types, enums, and a payload checker."""

    def __init__(self, xml_bytes: bytes) -> None:
        root = ET.fromstring(xml_bytes)
        schemas = root.findall(f"{_EDMX}DataServices/{_EDM}Schema")
        if not schemas:
            raise ValueError("no CSDL <Schema> elements found")
        self._aliases: dict[str, str] = {}
        for schema in schemas:
            alias = schema.get("Alias")
            if alias:
                self._aliases[alias] = schema.get("Namespace", "")
        self.types: dict[str, StructuredDef] = {}
        self.enums: dict[str, EnumDef] = {}
        self.namespaces: list[str] = [s.get("Namespace", "") for s in schemas]
        for schema in schemas:
            ns = schema.get("Namespace", "")
            for el in schema:
                tag = el.tag.removeprefix(_EDM)
                if tag in ("EntityType", "ComplexType"):
                    self._add_structured(ns, tag, el)
                elif tag == "EnumType":
                    qn = f"{ns}.{el.get('Name')}"
                    self.enums[qn] = EnumDef(
                        qualified_name=qn,
                        is_flags=el.get("IsFlags") == "true",
                        members=[m.get("Name", "") for m in el.findall(f"{_EDM}Member")],
                    )
        self._by_short: dict[str, list[str]] = {}
        for qn in [*self.types, *self.enums]:
            self._by_short.setdefault(_short(qn), []).append(qn)

    # -- parsing ---------------------------------------------------------------------------

    def _qualify(self, type_ref: str) -> str:
        m = _COLLECTION_RE.match(type_ref)
        if m:
            return f"Collection({self._qualify(m.group(1))})"
        if "." not in type_ref:
            return type_ref
        prefix, name = type_ref.rsplit(".", 1)
        return f"{self._aliases.get(prefix, prefix)}.{name}"

    def _add_structured(self, ns: str, kind: str, el: ET.Element) -> None:
        qn = f"{ns}.{el.get('Name')}"
        base = el.get("BaseType")
        sdef = StructuredDef(
            qualified_name=qn,
            kind=kind,
            base_type=self._qualify(base) if base else None,
            abstract=el.get("Abstract") == "true",
            open_type=el.get("OpenType") == "true",
        )
        for child in el:
            tag = child.tag.removeprefix(_EDM)
            if tag not in ("Property", "NavigationProperty"):
                continue
            name = child.get("Name", "")
            sdef.properties[name] = PropertyDef(
                name=name,
                type=self._qualify(child.get("Type", "")),
                nullable=child.get("Nullable", "true") != "false",
                navigation=tag == "NavigationProperty",
            )
        self.types[qn] = sdef

    # -- lookup ----------------------------------------------------------------------------

    def resolve(self, name: str) -> str:
        """Qualify a short, alias-qualified or '#'-prefixed type name; KeyError if unknown."""
        name = self._qualify(name.removeprefix("#"))
        if name in self.types or name in self.enums:
            return name
        candidates = self._by_short.get(name, [])
        preferred = f"{DEFAULT_NAMESPACE}.{name}"
        if preferred in candidates:
            return preferred
        if len(candidates) == 1:
            return candidates[0]
        if candidates:
            raise KeyError(f"ambiguous type name {name!r}: {sorted(candidates)}")
        raise KeyError(f"unknown type {name!r}")

    def structured(self, type_name: str) -> StructuredDef:
        """The EntityType or ComplexType definition named (short or qualified)."""
        qn = self.resolve(type_name)
        if qn not in self.types:
            raise KeyError(f"{type_name!r} is not an EntityType or ComplexType")
        return self.types[qn]

    def enum(self, name: str) -> EnumDef:
        """The EnumType definition named (short or qualified)."""
        qn = self.resolve(name)
        if qn not in self.enums:
            raise KeyError(f"{name!r} is not an EnumType")
        return self.enums[qn]

    def enum_members(self, name: str) -> list[str]:
        """Member names of an EnumType, in declaration order."""
        return list(self.enum(name).members)

    def base_chain(self, type_name: str) -> list[str]:
        """Qualified names from the type itself up to its root base type."""
        chain: list[str] = []
        current: str | None = self.structured(type_name).qualified_name
        while current is not None:
            if current in chain:
                raise ValueError(f"BaseType cycle at {current}")
            chain.append(current)
            current = self.types[current].base_type
        return chain

    def all_properties(self, type_name: str) -> dict[str, PropertyDef]:
        """All properties including inherited ones (base types first, then derived)."""
        props: dict[str, PropertyDef] = {}
        for qn in reversed(self.base_chain(type_name)):
            props.update(self.types[qn].properties)
        return props

    def properties(self, type_name: str) -> dict[str, str]:
        """Property name -> qualified type string, including inherited properties."""
        return {name: p.type for name, p in self.all_properties(type_name).items()}

    def is_open(self, type_name: str) -> bool:
        """True when the type or one of its base types is declared OpenType="true"."""
        return any(self.types[qn].open_type for qn in self.base_chain(type_name))

    def is_derived_from(self, type_name: str, base_name: str) -> bool:
        """True when type_name is base_name or derives from it."""
        return self.resolve(base_name) in self.base_chain(type_name)

    # -- checking --------------------------------------------------------------------------

    def check(
        self,
        type_name: str,
        payload: dict[str, Any],
        *,
        strict_nulls: bool = False,
        allow_dynamic: bool = False,
    ) -> list[str]:
        """Problems of payload as a JSON value of type_name; empty when conformant.

        strict_nulls: also report null for single-valued properties declared
        Nullable="false" and null elements of Nullable="false" collections.
        allow_dynamic: accept any undeclared key on OpenType types (OData dynamic
        properties). Off by default because directoryObject (hence application and
        servicePrincipal) is open, which would let any key through.
        """
        sdef = self.structured(type_name)
        problems: list[str] = []
        opts = _Options(strict_nulls=strict_nulls, allow_dynamic=allow_dynamic)
        self._check_structured(sdef.qualified_name, payload, sdef.name, problems, opts)
        return problems

    def _dynamic_ok(self, qn: str, key: str, props: dict[str, PropertyDef], opts: _Options) -> bool:
        """Whether an undeclared key is an acceptable dynamic property of type qn."""
        if not self.is_open(qn):
            return False
        # Pure property bags (open types declaring nothing, e.g. detailsInfo, Dictionary)
        # and directory extension attributes are dynamic by design.
        return opts.allow_dynamic or not props or _EXTENSION_RE.match(key) is not None

    def _check_structured(
        self, qn: str, value: Any, path: str, problems: list[str], opts: _Options
    ) -> None:
        if not isinstance(value, dict):
            problems.append(
                f"{path}: expected an object of type {_short(qn)}, got {type(value).__name__}"
            )
            return
        odata_type = value.get("@odata.type")
        if odata_type is not None:
            if not isinstance(odata_type, str):
                problems.append(f"{path}.@odata.type: expected a string, got {odata_type!r}")
                return
            try:
                actual = self.resolve(odata_type)
            except KeyError:
                problems.append(f"{path}.@odata.type: unknown type {odata_type!r}")
                return
            if actual not in self.types or not self.is_derived_from(actual, qn):
                problems.append(
                    f"{path}.@odata.type: {odata_type!r} is not {_short(qn)} "
                    "or a type derived from it"
                )
                return
            qn = actual
        props = self.all_properties(qn)
        for key, item in value.items():
            if "@" in key:
                prop, _, term = key.partition("@")
                if not term.startswith(_ANNOTATION_PREFIXES):
                    problems.append(f"{_join(path, key)}: unknown annotation {key!r}")
                elif prop and prop not in props and not self._dynamic_ok(qn, prop, props, opts):
                    problems.append(
                        f"{_join(path, key)}: annotation of {prop!r}, "
                        f"which is not a property of {_short(qn)}"
                    )
                continue
            pdef = props.get(key)
            if pdef is None:
                if not self._dynamic_ok(qn, key, props, opts):
                    problems.append(f"{_join(path, key)}: not a property of {_short(qn)}")
                continue
            self._check_property(pdef, item, _join(path, key), problems, opts)

    def _check_property(
        self, pdef: PropertyDef, value: Any, path: str, problems: list[str], opts: _Options
    ) -> None:
        if value is None:
            if opts.strict_nulls and not pdef.nullable and not pdef.is_collection:
                problems.append(f'{path}: null, but declared Nullable="false" ({pdef.type})')
            return
        if not pdef.is_collection:
            self._check_value(pdef.type, value, path, problems, opts)
            return
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list for {pdef.type}, got {type(value).__name__}")
            return
        for i, element in enumerate(value):
            epath = f"{path}[{i}]"
            if element is None:
                if opts.strict_nulls and not pdef.nullable:
                    problems.append(f'{epath}: null element, but declared Nullable="false"')
                continue
            self._check_value(pdef.element_type, element, epath, problems, opts)

    def _check_value(
        self, type_ref: str, value: Any, path: str, problems: list[str], opts: _Options
    ) -> None:
        if type_ref.startswith("Edm."):
            problem = _primitive_problem(type_ref, value)
            if problem:
                problems.append(f"{path}: {problem}")
        elif type_ref in self.enums:
            self._check_enum(self.enums[type_ref], value, path, problems)
        elif type_ref in self.types:
            self._check_structured(type_ref, value, path, problems, opts)
        # Types outside the parsed schemas (e.g. Org.OData.Core.V1.*) are not checked.

    @staticmethod
    def _check_enum(edef: EnumDef, value: Any, path: str, problems: list[str]) -> None:
        if not isinstance(value, str):
            problems.append(
                f"{path}: expected a member name of {edef.name}, got {type(value).__name__} "
                f"{value!r}"
            )
            return
        names = [part.strip() for part in value.split(",")] if edef.is_flags else [value]
        problems.extend(
            f"{path}: {name!r} is not a member of {edef.name}"
            for name in names
            if name not in edef.members
        )


def _primitive_problem(type_ref: str, value: Any) -> str | None:
    """Why value is not a JSON representation of the Edm primitive type, or None."""
    if type_ref in _ANY_TYPES:
        return None

    def wrong(what: str) -> str:
        return f"expected {type_ref} ({what}), got {type(value).__name__} {value!r}"

    if type_ref == "Edm.Boolean":
        return None if isinstance(value, bool) else wrong("bool")
    if type_ref in _INT_RANGES:
        if not isinstance(value, int) or isinstance(value, bool):
            return wrong("int")
        low, high = _INT_RANGES[type_ref]
        return None if low <= value <= high else f"{value!r} is out of range for {type_ref}"
    if type_ref in _FLOAT_TYPES:
        if isinstance(value, bool):
            return wrong("number")
        if isinstance(value, int):
            return None
        if isinstance(value, float):
            return None if math.isfinite(value) or type_ref != "Edm.Decimal" else wrong("number")
        if type_ref != "Edm.Decimal" and value in _FLOAT_SPECIALS:
            return None
        return wrong("number")
    if not isinstance(value, str):
        return wrong("string")
    if type_ref in _STRING_TYPES:
        return None
    ok: bool
    if type_ref == "Edm.Guid":
        ok = _GUID_RE.match(value) is not None
    elif type_ref == "Edm.DateTimeOffset":
        ok = _DATETIMEOFFSET_RE.match(value) is not None and _parses_datetime(value)
    elif type_ref == "Edm.Duration":
        ok = _DURATION_RE.match(value) is not None
    elif type_ref == "Edm.Date":
        ok = _DATE_RE.match(value) is not None and _parses_date(value)
    elif type_ref == "Edm.TimeOfDay":
        ok = _TIME_OF_DAY_RE.match(value) is not None
    else:
        return None  # other Edm types (geography, ...) are not checked
    return None if ok else f"{value!r} is not a valid {type_ref}"


def _parses_datetime(value: str) -> bool:
    # fromisoformat (3.11) takes 'Z' but at most 6 fraction digits reliably: trim the rest.
    m = re.match(r"^(.*T\d{2}:\d{2}(?::\d{2})?)(\.\d+)?(.*)$", value)
    if m is None:
        return False
    head, frac, tail = m.groups()
    frac = (frac or "")[:7]
    try:
        datetime.fromisoformat(head + frac + ("+00:00" if tail == "Z" else tail))
    except ValueError:
        return False
    return True


def _parses_date(value: str) -> bool:
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


@cache
def load_csdl() -> Csdl:
    """The Graph v1.0 CSDL, parsed once per process."""
    return Csdl(_read_bytes(csdl_source()))
