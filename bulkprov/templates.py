"""``bulkprov templates``: the gallery's application templates, and the credential keys that
each one's synchronization template asks for.

Graph lists the gallery with ``GET /applicationTemplates``, filtered only on ``displayName``
(``contains``, ``startswith``, ``eq``) and ``categories``: a search is
``$filter=contains(displayName, '...')``, and an id is read with
``GET /applicationTemplates/{id}``. Whether a template supports provisioning is in its
``supportedProvisioningTypes`` (``sync``).

The credential keys a manifest must give (``ClientSecret``, ``SecretToken``, ``BaseAddress``,
...) are not on the application template: Graph publishes them only as the
``ConfigurationFields`` metadata of the synchronization templates of an *instantiated* app
(``GET /servicePrincipals/{id}/synchronization/templates``). So they are read from the
tenant's first service principal of that template (``$filter=applicationTemplateId eq ...``),
and are unknown when the tenant has none. Reads only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from .errors import GraphError
from .graph import Graph, odata_string
from .ids import is_guid
from .jsontypes import JSON
from .manifest import PLAIN_KEYS, SECRET_KEYS
from .pool import each

_KEY_CASE = {k.lower(): k for k in SECRET_KEYS}
NO_INSTANCE = "unknown (no instance in the tenant)"
WHY_UNKNOWN = (
    "unknown: Graph lists a template's credential keys only on the synchronization templates "
    "of an instance (an app made from it), and the tenant has none. Instantiate one (a "
    "manifest row with start and validate false: `bulkprov run`), then ask again."
)


@dataclass(frozen=True, slots=True)
class CredentialKey:
    key: str  # as a manifest spells it (Graph's synchronizationSecret member)
    secret: bool  # a manifest must give it as env:VAR or file:PATH


@dataclass(frozen=True, slots=True)
class SyncKeys:
    """The keys one synchronization template of a gallery app asks for."""

    sync_template: str
    default: bool
    keys: tuple[CredentialKey, ...]


@dataclass(slots=True)
class TemplateInfo:
    id: str
    display_name: str
    publisher: str
    provisioning_types: list[str]
    categories: list[str]
    keys: list[SyncKeys] | None = None  # None: not read, or not known (see keys_note)
    keys_note: str | None = None
    source: str | None = None  # the service principal the keys were read from

    @property
    def provisioning(self) -> bool:
        return "sync" in self.provisioning_types

    def as_json(self) -> JSON:
        return {
            "id": self.id,
            "displayName": self.display_name,
            "publisher": self.publisher,
            "provisioning": self.provisioning,
            "supportedProvisioningTypes": self.provisioning_types,
            "categories": self.categories,
            "credentialKeys": None
            if self.keys is None
            else [
                {
                    "syncTemplate": s.sync_template,
                    "default": s.default,
                    "keys": [{"key": k.key, "secret": k.secret} for k in s.keys],
                }
                for s in self.keys
            ],
            "credentialKeysNote": self.keys_note,
            "readFromServicePrincipal": self.source,
        }


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def template_info(t: JSON) -> TemplateInfo:
    return TemplateInfo(
        id=str(t.get("id") or ""),
        display_name=str(t.get("displayName") or ""),
        publisher=str(t.get("publisher") or ""),
        provisioning_types=_strings(t.get("supportedProvisioningTypes")),
        categories=_strings(t.get("categories")),
    )


def configuration_fields(sync_template: JSON) -> tuple[CredentialKey, ...] | None:
    """The keys of a synchronization template's ``ConfigurationFields`` metadata, or None
    when it has none (or none that can be read)."""
    for item in sync_template.get("metadata") or []:
        if not isinstance(item, dict) or str(item.get("key", "")).lower() != "configurationfields":
            continue
        try:
            fields = orjson.loads(str(item.get("value") or "[]"))
        except orjson.JSONDecodeError:
            return None
        if not isinstance(fields, list):
            return None
        keys = []
        for f in fields:
            if not isinstance(f, dict) or not f.get("name"):
                continue
            name = _KEY_CASE.get(str(f["name"]).lower(), str(f["name"]))
            keys.append(CredentialKey(name, bool(f.get("secret")) or name not in PLAIN_KEYS))
        return tuple(keys)
    return None


async def find(graph: Graph, search: str | None) -> list[TemplateInfo]:
    """The gallery templates whose display name contains ``search`` (or whose id it is)."""
    if search is not None and search.strip() and is_guid(search.strip()):
        found = await graph.find_templates(search.strip())
    else:
        params = {}
        if search is not None and search.strip():
            params["$filter"] = f"contains(displayName, {odata_string(search.strip())})"
        found = await graph.collect("/applicationTemplates", params=params)
        found = [t for t in found if isinstance(t, dict)]  # the others are not templates
    infos = [template_info(t) for t in found if t.get("id")]
    infos.sort(key=lambda i: (i.display_name.casefold(), i.id))
    return infos


async def read_keys(graph: Graph, info: TemplateInfo) -> None:
    """Fill ``info.keys`` from an instance of the template in the tenant (or say why not)."""
    sps = await graph.service_principals(info.id)
    sps.sort(key=lambda sp: str(sp.get("id")))
    if not sps:
        info.keys_note = NO_INSTANCE
        return
    last = ""
    for sp in sps[:3]:
        try:
            sync_templates = await graph.sync_templates(str(sp["id"]))
        except GraphError as err:
            # a service principal just created may not be readable yet (replication)
            last = f"{err.status} {err.code}"
            continue
        found = []
        for st in sync_templates:
            keys = configuration_fields(st)
            if keys is not None:
                found.append(SyncKeys(str(st.get("id")), bool(st.get("default")), keys))
        info.source = str(sp["id"])
        if not sync_templates:
            info.keys_note = "none: its instances have no synchronization template"
        elif not found:
            info.keys_note = "unknown: its synchronization templates publish no ConfigurationFields"
        else:
            found.sort(key=lambda s: (not s.default, s.sync_template))
            info.keys = found
        return
    info.keys_note = f"unknown: its synchronization templates could not be read ({last})"


async def lookup(
    graph: Graph, search: str | None, *, keys: bool, provisioning_only: bool
) -> list[TemplateInfo]:
    infos = await find(graph, search)
    if provisioning_only:
        infos = [i for i in infos if i.provisioning]
    if keys or len(infos) == 1:
        for info in infos:
            if not info.provisioning:
                info.keys_note = "none: this template does not support provisioning"

        async def one(info: TemplateInfo) -> None:
            await read_keys(graph, info)

        await each(one, [i for i in infos if i.provisioning], workers=8)
    return infos
