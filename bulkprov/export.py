"""``bulkprov export``: the provisioning set-up of a tenant as a manifest another run applies.

For every service principal with a synchronization job (optionally only those of one gallery
template, whose display name matches, or whose ids are listed), it reads the job (template,
schedule, settings, whether it runs), the job's schema, the synchronization template's
``ConfigurationFields`` and the keys of the saved secrets, and writes::

    OUT/manifest.json        the instances, in the JSON manifest format ``run`` and ``plan`` read
    OUT/schemas/<key>.json   each job's synchronization schema (referenced by the manifest)
    OUT/secrets.env          the environment variables the credentials refer to, to fill in

Graph never returns a secret value, so each credential is a reference ``env:VAR`` to a variable
named after the instance and the key; ``plan`` and ``run`` refuse the manifest until every one
is set. Reads only: export sends no write to Graph.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import structlog

from .errors import ConfigError, GraphError
from .files import write_atomic
from .graph import Graph, Job
from .ids import is_guid
from .jsontypes import JSON
from .ledger import now_iso
from .planner import configuration_fields
from .pool import map_ordered

log = structlog.get_logger("bulkprov.export")
_KEY_BAD = re.compile(r"[^A-Za-z0-9._\-]+")
_ENV_BAD = re.compile(r"[^A-Z0-9]+")


@dataclass(frozen=True, slots=True)
class ExportFilter:
    template: str | None = None  # gallery template display name or id
    name: str | None = None  # substring of the display name, or a glob (* ? [)
    ids: frozenset[str] | None = None  # service principal object ids or appIds

    def name_matches(self, display_name: str) -> bool:
        if self.name is None:
            return True
        if any(c in self.name for c in "*?["):
            return fnmatch.fnmatchcase(display_name.lower(), self.name.lower())
        return self.name.lower() in display_name.lower()


@dataclass(slots=True)
class ExportResult:
    manifest: Path
    instances: list[JSON] = field(default_factory=list)
    variables: list[tuple[str, str, str]] = field(default_factory=list)  # var, key, secret key
    skipped: list[tuple[str, str]] = field(default_factory=list)  # display name, why
    scanned: int = 0


def read_ids_file(path: Path) -> frozenset[str]:
    """One id per line; blank lines and ``#`` comments are ignored."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(f"cannot read ids file {path}: {exc.strerror}") from None
    ids = set()
    for n, line in enumerate(text.splitlines(), start=1):
        item = line.split("#", 1)[0].strip()
        if not item:
            continue
        if not is_guid(item):
            raise ConfigError(f"{path} line {n}: {item!r} is not a service principal id or appId")
        ids.add(item.lower())
    if not ids:
        raise ConfigError(f"{path} lists no ids")
    return frozenset(ids)


def _unique(base: str, taken: set[str]) -> str:
    candidate, n = base, 2
    while candidate in taken:
        candidate = f"{base}-{n}"
        n += 1
    taken.add(candidate)
    return candidate


def instance_key(display_name: str, taken: set[str]) -> str:
    slug = _KEY_BAD.sub("-", display_name.strip().lower()).strip("-._")[:100] or "app"
    if not slug[0].isalnum():
        slug = "app-" + slug
    return _unique(slug, taken)


def env_name(key: str, secret_key: str, taken: set[str]) -> str:
    # not BULKPROV_*: those are bulkprov's own settings, which no manifest reference may name
    base = f"SECRET_{_ENV_BAD.sub('_', key.upper()).strip('_')}_{secret_key.upper()}"
    return _unique(base, taken).replace("-", "_")


async def export(
    graph: Graph,
    out_dir: Path,
    flt: ExportFilter,
    *,
    source: str,
    concurrency: int = 16,
    on_progress: Callable[[int, int], None] | None = None,
) -> ExportResult:
    """Read the source tenant and write ``out_dir`` (see the module docstring).

    ``on_progress(read, total)`` is told how many of the matching service principals have
    been read: once they are listed, and after each one."""
    sps = await _matching(graph, flt)
    result = ExportResult(manifest=out_dir / "manifest.json", scanned=len(sps))
    found_jobs = await _read_jobs(graph, sps, result, concurrency, on_progress)
    schemas = out_dir / "schemas"
    schemas.mkdir(parents=True, exist_ok=True)
    keys: set[str] = set()
    env_taken: set[str] = set()
    for sp in sps:
        item = found_jobs.get(str(sp["id"]))
        if item is None:
            continue
        key = instance_key(str(sp["displayName"]), keys)
        secret_keys = list(dict.fromkeys([*item["keys"], *item["saved"]]))
        credentials: dict[str, str] = {}
        for sk in secret_keys:
            var = env_name(key, sk, env_taken)
            credentials[sk] = f"env:{var}"
            result.variables.append((var, key, sk))
        schema_path = schemas / f"{key}.json"
        schema_path.write_bytes(orjson.dumps(item["schema"], option=orjson.OPT_INDENT_2) + b"\n")
        result.instances.append(_instance(sp, item["job"], key, credentials, result))
    manifest = {
        "version": 1,
        "description": f"exported by bulkprov export from {source} at {now_iso()}",
        "instances": result.instances,
    }
    _write(result.manifest, orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
    _write_secrets_env(out_dir / "secrets.env", result.variables)
    return result


async def _matching(graph: Graph, flt: ExportFilter) -> list[JSON]:
    """The gallery apps' service principals that ``flt`` selects, by display name and id."""
    template_id: str | None = None
    if flt.template is not None:
        found = await graph.find_templates(flt.template)
        if len(found) != 1:
            raise ConfigError(
                f"--template {flt.template!r} matches {len(found)} gallery templates; "
                + ("use the id" if found else "check the name")
            )
        template_id = str(found[0]["id"])
    sps = await graph.service_principals(template_id)
    sps = [
        sp
        for sp in sps
        if sp.get("applicationTemplateId")
        and flt.name_matches(str(sp.get("displayName") or ""))
        and (
            flt.ids is None
            or str(sp.get("id")).lower() in flt.ids
            or str(sp.get("appId")).lower() in flt.ids
        )
    ]
    sps.sort(key=lambda sp: (str(sp.get("displayName")), str(sp.get("id"))))
    return sps


async def _read_jobs(
    graph: Graph,
    sps: list[JSON],
    result: ExportResult,
    concurrency: int,
    on_progress: Callable[[int, int], None] | None,
) -> dict[str, JSON]:
    """Service principal id -> its first job, the job's schema, the credential keys of its
    synchronization template and those saved, for each of ``sps`` that has a job (``concurrency``
    read at once); extra jobs are noted in ``result.skipped``."""
    read_count = 0

    def advanced(n: int) -> None:
        nonlocal read_count
        read_count += n
        if on_progress is not None:
            on_progress(read_count, len(sps))

    async def read(sp: JSON) -> JSON | None:
        sp_id = str(sp["id"])
        jobs = await graph.jobs(sp_id)
        if not jobs:
            return None
        if len(jobs) > 1:
            result.skipped.extend(
                (str(sp["displayName"]), f"extra job {j.id} (one job per instance)")
                for j in jobs[1:]
            )
        job = jobs[0]
        schema = await graph.job_schema(sp_id, job.id)
        templates = await graph.sync_templates(sp_id)
        tpl = next((t for t in templates if t.get("id") == job.template_id), None)
        fields = configuration_fields(tpl) if tpl else []
        try:
            saved = await graph.secret_keys(sp_id)
        except GraphError as err:
            if err.status not in (403, 404):
                raise
            saved = []
        return {
            "sp": sp,
            "job": job,
            "schema": schema,
            "keys": fields,
            "saved": saved,
        }

    async def counted(sp: JSON) -> JSON | None:
        try:
            return await read(sp)
        finally:
            advanced(1)

    advanced(0)
    found = await map_ordered(counted, sps, workers=concurrency)
    return {str(sp["id"]): item for sp, item in zip(sps, found, strict=True) if item is not None}


def _instance(
    sp: JSON, job: Job, key: str, credentials: dict[str, str], result: ExportResult
) -> JSON:
    """The manifest instance of one exported job (a job that runs but needs no credential is
    noted in ``result.skipped``: it is not started)."""
    running = job.schedule_state == "Active" or job.status.code in (
        "Active",
        "Quarantine",
    )
    record: JSON = {
        "key": key,
        "displayName": sp["displayName"],
        "template": sp["applicationTemplateId"],
        "syncTemplate": job.template_id,
        "start": bool(running and credentials),
        "validate": bool(credentials),
        "schema": f"schemas/{key}.json",
    }
    schedule = {"interval": job.schedule_interval, "state": job.schedule_state}
    sched = {k: v for k, v in schedule.items() if v is not None}
    if sched:
        record["schedule"] = sched
    settings = [{"name": name, "value": value or ""} for name, value in job.settings]
    if settings:
        record["jobSettings"] = settings
    if credentials:
        record["credentials"] = credentials
    if running and not credentials:
        result.skipped.append(
            (str(sp["displayName"]), "runs in the source but needs no credentials; not started")
        )
    return record


def _write_secrets_env(path: Path, variables: list[tuple[str, str, str]]) -> None:
    """``secrets.env``: a line ``VAR=`` to fill in for each credential of the manifest."""
    lines = [
        "# Secrets for the credentials of manifest.json (Graph never returns secret values).",
        "# Fill in each value, then: set -a; . ./secrets.env; set +a",
        "# and run `bulkprov plan manifest.json` against the target tenant.",
    ]
    for var, key, sk in variables:
        lines.append(f"# {key}: {sk}")
        lines.append(f"{var}=")
    _write(path, ("\n".join(lines) + "\n").encode(), mode=0o600)


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    write_atomic(path, data, mode)
