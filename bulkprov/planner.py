"""What to do with one instance: the decision ``plan`` shows and ``run`` takes.

    decide(instance, its ledger state, the applications of its display name, the claims of
           the ledger, what its template's credentials are, --on-existing, delegated?)
        -> Decision(action, note, application_id, code, step)

Pure (no I/O), so that ``plan`` and ``run`` cannot disagree: ``plan`` calls it for every
instance of the manifest, ``run`` where an instance enters setup, before anything is created
for it. The actions, in the order they are considered:

=============== ==========================================================================
done            the ledger records the instance as finished (or ``quarantined``): nothing
                is sent for it
refuse          ``run`` fails it before creating anything: an ``agentGroup`` under an
                app-only credential, or credentials its synchronization template needs and
                the manifest lacks (once the template's needs are known)
resume          the ledger holds its application: ``run`` continues from its last step
lookup          (no applications given) the rest depends on the applications of its name
conflict        an application of its name from another gallery template; several of its
                name and template (or one, under ``--on-existing fail``)
adopt           one application of its name and template that no other instance claims
create          none: ``run`` instantiates the template
=============== ==========================================================================

What a template needs (:class:`TemplateNeeds`) is the ``configurationFields`` metadata of its
synchronization templates. Graph lists them only under a service principal of that gallery
template, so they are unknown until one exists in the tenant: ``plan`` then says so, and
``run`` learns them from its first instance of the template (see ``pipeline``).

``instantiate`` itself (in ``pipeline``) still makes the adopt / conflict choice for
applications of the instance's own template, under its claims across concurrent instances;
the rules below mirror it, and the tests hold the two to the same outcomes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from .ledger import InstanceState
from .manifest import SECRET_KEYS, Instance

__all__ = [
    "UNKNOWN_NEEDS",
    "Action",
    "CredentialProblem",
    "Decision",
    "TemplateNeeds",
    "configuration_fields",
    "credential_problem",
    "decide",
    "key_set",
]

Action = Literal["done", "quarantined", "refuse", "resume", "lookup", "conflict", "adopt", "create"]
UNKNOWN_NEEDS = "needed keys unknown until the first app of this template exists"
_SECRET_KEY_CASE = {k.lower(): k for k in SECRET_KEYS}


def configuration_fields(template: Mapping[str, Any]) -> list[str]:
    """The credential keys a synchronization template asks for (its ConfigurationFields)."""
    for item in template.get("metadata") or []:
        if not isinstance(item, dict):
            continue
        if str(item.get("key", "")).lower() == "configurationfields":
            try:
                fields = orjson.loads(str(item.get("value") or "[]"))
            except orjson.JSONDecodeError:
                return []
            if not isinstance(fields, list):
                return []
            names = [str(f.get("name")) for f in fields if isinstance(f, dict) and f.get("name")]
            return [_SECRET_KEY_CASE.get(n.lower(), n) for n in names]
    return []


@dataclass(frozen=True, slots=True)
class TemplateNeeds:
    """What the synchronization templates of one gallery template ask for, as a service
    principal of it lists them: each template's id and credential keys, in Graph's order,
    and the one an instance without ``syncTemplate`` gets."""

    templates: tuple[tuple[str, tuple[str, ...]], ...]
    default: str | None

    @classmethod
    def read(cls, sync_templates: Sequence[Mapping[str, Any]]) -> TemplateNeeds:
        """From ``GET /servicePrincipals/{id}/synchronization/templates``' items."""
        items = tuple((str(t.get("id")), tuple(configuration_fields(t))) for t in sync_templates)
        default = next((str(t.get("id")) for t in sync_templates if t.get("default")), None)
        if default is None and items:
            default = items[0][0]
        return cls(items, default)

    def chosen(self, sync_template: str | None) -> tuple[str, tuple[str, ...]] | None:
        """The synchronization template an instance gets, and its keys (None: not offered)."""
        wanted = sync_template or self.default
        return next((t for t in self.templates if t[0] == wanted), None)


@dataclass(frozen=True, slots=True)
class CredentialProblem:
    """Why an instance's synchronization template cannot work with its manifest line."""

    code: str
    message: str


def credential_problem(inst: Instance, needs: TemplateNeeds) -> CredentialProblem | None:
    """What the ``sync_template`` step fails the instance for, given its template's needs."""
    if not needs.templates:
        return CredentialProblem(
            "NoSyncTemplate",
            "the application has no synchronization template: its gallery app "
            "does not support provisioning",
        )
    chosen = needs.chosen(inst.sync_template)
    if chosen is None:
        ids = ", ".join(t for t, _keys in needs.templates)
        return CredentialProblem(
            "UnknownSyncTemplate",
            f"synchronization template {inst.sync_template!r} not offered; "
            f"the application has {ids}",
        )
    template_id, fields = chosen
    given = {c.key.lower() for c in inst.credentials}
    missing = [f for f in fields if f.lower() not in given]
    if not missing or not (inst.validate or inst.start):
        return None
    gives = ", ".join(sorted(c.key for c in inst.credentials)) or "none"
    return CredentialProblem(
        "MissingCredentials",
        f"template {template_id!r} needs credentials {', '.join(fields)}; the manifest lacks "
        f"{', '.join(missing)} (it gives {gives})",
    )


def key_set(inst: Instance) -> tuple[str, frozenset[str]]:
    """What an instance's credential check depends on: its synchronization template and its
    credential keys. Instances of one template with the same key set fare the same."""
    return inst.sync_template or "", frozenset(c.key.lower() for c in inst.credentials)


@dataclass(frozen=True, slots=True)
class Decision:
    """What happens to one instance; ``code`` and ``step`` are those ``run`` fails it with
    (refuse, and the conflicts it finds before instantiate)."""

    action: Action
    note: str = ""
    application_id: str | None = None
    code: str | None = None
    step: str | None = None
    # its credentials can be checked only once the template's needs are known
    needs_unknown: bool = False


def _join(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


def _app_id(app: Mapping[str, Any]) -> str:
    return str(app.get("id") or "")


def decide(
    inst: Instance,
    state: InstanceState | None,
    *,
    template_id: str,
    needs: TemplateNeeds | None,
    apps: Sequence[Mapping[str, Any]] | None = None,
    claimed: Mapping[str, str] | None = None,
    on_existing: str = "adopt",
    delegated: bool = False,
    credential_kind: str = "app-only",
) -> Decision:
    """The decision for ``inst`` (see the module docstring).

    ``state`` is what the ledger knows of it (None: nothing); ``template_id`` its gallery
    template's id; ``needs`` what that template's credentials are (None: unknown); ``apps``
    the applications named like it, of every template (None: not looked up, and the decision
    is ``lookup`` unless an earlier rule settles it); ``claimed`` application id -> the key of
    the instance that holds it; ``credential_kind`` names an app-only credential in the note
    that refuses an ``agentGroup``."""
    if state is not None and state.finished:
        return Decision("quarantined" if state.status == "quarantined" else "done")
    if inst.agent_group is not None and not delegated:
        return Decision(
            "refuse",
            f"agentGroup {inst.agent_group!r} needs delegated permissions: Graph assigns "
            "agent groups only for a signed-in user, and this connection uses an app-only "
            f"{credential_kind} credential; run it with a device-code profile "
            '(--profile NAME with auth = "device_code")',
            code="DelegatedOnly",
            step="agent_group",
        )
    unknown = False
    note = ""
    if state is None or "sync_template" not in state.done:
        if needs is None:
            unknown = True
            note = UNKNOWN_NEEDS if inst.validate or inst.start else ""
        elif (problem := credential_problem(inst, needs)) is not None:
            return Decision("refuse", problem.message, code=problem.code, step="sync_template")
    if state is not None and state.ids.get("applicationId"):
        return Decision(
            "resume", note, application_id=state.ids["applicationId"], needs_unknown=unknown
        )
    if apps is None:
        return Decision("lookup", note, needs_unknown=unknown)
    return _by_applications(
        inst, state, template_id, apps, claimed or {}, on_existing, note, unknown
    )


def _by_applications(
    inst: Instance,
    state: InstanceState | None,
    template_id: str,
    apps: Sequence[Mapping[str, Any]],
    claimed: Mapping[str, str],
    on_existing: str,
    note: str,
    unknown: bool,
) -> Decision:
    """create / adopt / conflict from the applications of the instance's display name."""
    tid = template_id.lower()
    free = [a for a in apps if _app_id(a) and claimed.get(_app_id(a), inst.key) == inst.key]
    ours = [str(a.get("applicationTemplateId") or "").lower() == tid for a in free]
    mine = [a for a, same in zip(free, ours, strict=True) if same]
    attempts = state.instantiate_attempts if state is not None else 0
    if not mine:
        others = [a for a, same in zip(free, ours, strict=True) if not same]
        if others and attempts == 0:
            other = others[0]
            source = other.get("applicationTemplateId") or "no gallery template"
            return Decision(
                "conflict",
                f"an application named {inst.display_name!r} exists from another template "
                f"({source}, application {_app_id(other)})",
                code="OtherTemplate",
                step="instantiate",
            )
        pending = state is not None and state.instantiate_pending
        return Decision(
            "create",
            _join(
                "an earlier instantiate may still appear: waits for it first" if pending else "",
                note,
            ),
            needs_unknown=unknown,
        )
    if len(mine) > 1:
        if attempts == 0:
            return Decision(
                "conflict",
                f"{len(mine)} applications named {inst.display_name!r} from this template "
                "already exist; bulkprov cannot tell which belongs to this instance (rename "
                "them or remove the extras)",
                code="Conflict",
                step="instantiate",
            )
        oldest = min(mine, key=lambda a: (str(a.get("createdDateTime") or ""), _app_id(a)))
        return Decision(
            "adopt",
            _join(f"recovered from an earlier attempt; {len(mine) - 1} duplicates deleted", note),
            application_id=_app_id(oldest),
            needs_unknown=unknown,
        )
    app_id = _app_id(mine[0])
    if attempts == 0 and on_existing == "fail":
        return Decision(
            "conflict",
            f"an application named {inst.display_name!r} from this template already exists "
            f"({app_id}); pass --on-existing adopt to take it over",
            application_id=app_id,
            code="Exists",
            step="instantiate",
        )
    return Decision(
        "adopt",
        _join("recovered from an earlier attempt" if attempts else "", note),
        application_id=app_id,
        needs_unknown=unknown,
    )
