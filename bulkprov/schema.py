"""Synchronization schemas as files: checking, normalising, and comparing them.

A job's schema (``GET .../jobs/{id}/schema``: ``synchronizationRules`` with their object and
attribute mappings and scoping filters, and ``directories``) is what ``bulkprov export`` writes
and what the ``schema`` step of a run PUTs onto the new job. Graph assigns some fields itself:
the schema's ``id`` (the job id), ``@odata.*`` annotations, and per tenant the ids and
discovery times of the directory definitions. :func:`normalise` drops exactly those, so two
schemas that configure the same provisioning compare equal across tenants, and
:func:`first_difference` names the first path where two normalised schemas differ.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .jsontypes import JSON

#: Fields of a directoryDefinition that the tenant assigns.
_DIRECTORY_SERVER_FIELDS = frozenset({"id", "discoveryDateTime"})
_SCHEMA_FIELDS = frozenset({"id", "version", "synchronizationRules", "directories"})


def _strip_annotations(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_annotations(v) for k, v in value.items() if "@odata." not in k}
    if isinstance(value, list):
        return [_strip_annotations(v) for v in value]
    return value


def normalise(schema: JSON) -> JSON:
    """The schema without the fields Graph assigns (id, annotations, directory ids)."""
    out = _strip_annotations(schema)
    assert isinstance(out, dict)
    out.pop("id", None)
    dirs = out.get("directories")
    if isinstance(dirs, list):
        out["directories"] = [
            {k: v for k, v in d.items() if k not in _DIRECTORY_SERVER_FIELDS}
            if isinstance(d, dict)
            else d
            for d in dirs
        ]
    return out


def for_put(exported: JSON, current: JSON | None) -> JSON:
    """The body that replaces a job's schema with ``exported``: the exported content, with the
    target tenant's directory ids (matched by directory name) where the job has them."""
    body = normalise(exported)
    ids: dict[str, Any] = {}
    for d in (current or {}).get("directories") or []:
        if isinstance(d, dict) and isinstance(d.get("name"), str) and d.get("id"):
            ids[d["name"]] = d["id"]
    dirs = body.get("directories")
    if isinstance(dirs, list):
        for d in dirs:
            if isinstance(d, dict) and d.get("name") in ids:
                d["id"] = ids[d["name"]]
    return body


def first_difference(a: Any, b: Any, path: str = "") -> tuple[str, Any, Any] | None:
    """(path, value in ``a``, value in ``b``) of the first place ``a`` and ``b`` differ."""
    where = path or "(the schema)"
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            sub = f"{path}.{key}" if path else key
            if key not in b:
                return sub, a[key], "(missing)"
            if key not in a:
                return sub, "(missing)", b[key]
            found = first_difference(a[key], b[key], sub)
            if found is not None:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            found = first_difference(x, y, f"{path}[{i}]")
            if found is not None:
                return found
        if len(a) != len(b):
            return f"{where} (length)", len(a), len(b)
        return None
    if type(a) is not type(b) or a != b:
        return where, a, b
    return None


def check(doc: Any) -> list[tuple[str, str]]:
    """(field path, problem) for a document that cannot be a synchronizationSchema."""
    if not isinstance(doc, dict):
        return [("", "must be a JSON object (a synchronizationSchema)")]
    problems: list[tuple[str, str]] = [
        (key, "is not a property of synchronizationSchema")
        for key in doc
        if key not in _SCHEMA_FIELDS and "@odata." not in key
    ]
    rules = doc.get("synchronizationRules")
    if not isinstance(rules, list):
        problems.append(("synchronizationRules", "must be a list"))
        rules = []
    for i, rule in enumerate(rules):
        where = f"synchronizationRules[{i}]"
        if not isinstance(rule, dict):
            problems.append((where, "must be an object"))
            continue
        mappings = rule.get("objectMappings", [])
        if not isinstance(mappings, list):
            problems.append((f"{where}.objectMappings", "must be a list"))
            continue
        for j, om in enumerate(mappings):
            om_where = f"{where}.objectMappings[{j}]"
            if not isinstance(om, dict):
                problems.append((om_where, "must be an object"))
                continue
            attrs = om.get("attributeMappings", [])
            if not isinstance(attrs, list) or not all(isinstance(x, dict) for x in attrs):
                problems.append((f"{om_where}.attributeMappings", "must be a list of objects"))
            scope = om.get("scope")
            if scope is not None and not isinstance(scope, dict):
                problems.append((f"{om_where}.scope", "must be an object or null"))
    dirs = doc.get("directories", [])
    if not isinstance(dirs, list) or not all(isinstance(d, dict) for d in dirs):
        problems.append(("directories", "must be a list of objects"))
    return problems


def load(path: Path) -> JSON:
    """A schema file; ``ValueError`` naming the file (and line, or field) if it is unusable."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not valid UTF-8"
        raise ValueError(f"cannot read schema file {path}: {reason}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"schema file {path} line {exc.lineno}: not valid JSON: {exc.msg}"
        ) from None
    except (ValueError, RecursionError):
        raise ValueError(f"schema file {path}: not usable JSON") from None
    problems = check(doc)
    if problems:
        field_path, message = problems[0]
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise ValueError(f"schema file {path}: {field_path or 'the document'} {message}{more}")
    assert isinstance(doc, dict)
    return doc


def summary(schema: JSON) -> JSON:
    """Counts for ledgers and tables: rules, object mappings, attribute mappings, scoped ones."""
    rules = schema.get("synchronizationRules") or []
    oms = [om for r in rules for om in (r.get("objectMappings") or [])]
    return {
        "rules": len(rules),
        "objectMappings": len(oms),
        "attributeMappings": sum(len(om.get("attributeMappings") or []) for om in oms),
        "scoped": sum(1 for om in oms if om.get("scope")),
    }
