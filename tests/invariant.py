"""The invariant every run must keep, whatever Graph did, checked from the mock's own state.

:func:`check_run` compares a manifest, the ledger of its run(s) and the mock's directory:

- every instance of the manifest has a final record: done (or quarantined), or failed with its
  step and a reason;
- every done instance's application, service principal and job exist in the mock, are live,
  belong together and carry the instance's display name and template;
- nothing else exists: every live application and service principal is one the ledger records
  for exactly one instance (no duplicate, no orphan), and a service principal without a job
  belongs to an instance that failed before its job was created.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bulkprov import ledger as ledger_mod
from bulkprov.manifest import iter_instances
from bulkprov.mockgraph import MockGraph
from bulkprov.steps import ALL_STEPS


@dataclass
class Verdict:
    statuses: Counter[str] = field(default_factory=Counter)
    failed_at: Counter[str] = field(default_factory=Counter)  # step -> failed instances
    failures: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> error record
    problems: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        shown = "\n  ".join(self.problems[:15])
        return (
            f"statuses {dict(self.statuses)}, failed at {dict(self.failed_at)}; "
            f"{len(self.problems)} problem(s):\n  {shown}"
        )


def check_run(mock: MockGraph, manifest: Path, ledger: Path) -> Verdict:
    """Check the invariant; the returned verdict's ``problems`` must be empty."""
    assert mock.info is not None
    tenant = mock.service.tenants[mock.info.tenant_id]
    replay = ledger_mod.read(ledger)
    verdict = Verdict()
    bad = verdict.problems.append
    owner: dict[str, str] = {}  # application id -> instance key
    sp_owner: dict[str, str] = {}
    for inst in iter_instances(manifest):
        st = replay.instances.get(inst.key)
        if st is None or st.final is None:
            bad(f"{inst.key}: no final record in the ledger")
            continue
        status = st.final.get("status")
        verdict.statuses[str(status)] += 1
        ids = st.final.get("ids") or {}
        for id_name, table in (("applicationId", owner), ("servicePrincipalId", sp_owner)):
            if id_name in ids:
                if ids[id_name] in table:
                    bad(
                        f"{inst.key}: {id_name} {ids[id_name]} also recorded for "
                        f"{table[ids[id_name]]}"
                    )
                table[ids[id_name]] = inst.key
        if status in ("failed", "timeout"):
            err = st.final.get("error") or {}
            verdict.failures[inst.key] = err
            verdict.failed_at[str(err.get("step"))] += 1
            if err.get("step") not in ALL_STEPS or not str(err.get("message") or "").strip():
                bad(f"{inst.key}: failed without a step and a reason: {err}")
            continue
        if status not in ("done", "quarantined"):
            bad(f"{inst.key}: ended {status!r}, neither done nor failed")
            continue
        app = tenant.applications.get(ids.get("applicationId", ""))
        sp = tenant.service_principals.get(ids.get("servicePrincipalId", ""))
        if app is None or app.deleted is not None:
            bad(f"{inst.key}: done, but its application {ids.get('applicationId')} is not live")
            continue
        if app.display_name != inst.display_name or app.app_id != ids.get("appId"):
            bad(
                f"{inst.key}: application {app.id} is {app.display_name!r}/{app.app_id}, the "
                f"ledger says {inst.display_name!r}/{ids.get('appId')}"
            )
        if inst.template not in (app.template.display_name, app.template.id):
            bad(f"{inst.key}: application {app.id} comes from template {app.template.id}")
        if sp is None or sp.deleted is not None or sp.app_id != app.app_id:
            bad(
                f"{inst.key}: service principal {ids.get('servicePrincipalId')} is not the live "
                f"one of application {app.id}"
            )
            continue
        if sp.display_name != inst.display_name:
            bad(f"{inst.key}: service principal named {sp.display_name!r}")
        if ids.get("jobId") not in sp.jobs:
            bad(f"{inst.key}: job {ids.get('jobId')} is not on service principal {sp.id}")
    for a in tenant.applications.values():
        if a.deleted is None and a.id not in owner:
            bad(
                f"application {a.id} ({a.display_name!r}) is live but no instance records it "
                "(a duplicate or an orphan)"
            )
    for s in tenant.service_principals.values():
        if s.deleted is not None:
            continue
        key = sp_owner.get(s.id)
        if key is None:
            bad(f"service principal {s.id} ({s.display_name!r}) is live but no instance records it")
        elif not s.jobs and verdict.failures.get(key) is None:
            bad(f"service principal {s.id} of {key} has no job, and {key} did not fail")
        elif len(s.jobs) > 1:
            bad(f"service principal {s.id} of {key} has {len(s.jobs)} jobs")
    stats = tenant.stats()
    if stats["duplicates"]:
        bad(f"the mock counts {stats['duplicates']} duplicate application(s)")
    return verdict
