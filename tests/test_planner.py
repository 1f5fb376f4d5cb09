"""The pure decision plan and run share: decide(), TemplateNeeds and the credential check,
table-driven."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
import pytest

from bulkprov.ledger import InstanceState
from bulkprov.manifest import CredentialRef, Instance
from bulkprov.planner import (
    UNKNOWN_NEEDS,
    Decision,
    TemplateNeeds,
    configuration_fields,
    credential_problem,
    decide,
    key_set,
)

AWS_ID = "8b1025e4-1dd2-430b-a150-2ef79cd700f5"
SLACK_ID = "3a2b1c0d-0000-4000-8000-00000000beef"


def _fields(*names: str) -> list[dict[str, str]]:
    return [
        {
            "key": "ConfigurationFields",
            "value": orjson.dumps([{"name": n.lower()} for n in names]).decode(),
        }
    ]


AWS_NEEDS = TemplateNeeds.read(
    [
        {"id": "aws", "default": True, "metadata": _fields("ClientSecret", "SecretToken")},
        {"id": "aws-scim", "metadata": _fields("BaseAddress", "SecretToken")},
    ]
)
NO_TEMPLATES = TemplateNeeds.read([])


def inst(*keys: str, **changes: Any) -> Instance:
    base = Instance(
        key="acct-1",
        display_name="AWS one",
        template="AWS Single-Account Access",
        sync_template=None,
        credentials=tuple(CredentialRef(k, "env", f"V_{k}") for k in keys),
        start=True,
        validate=True,
        profile=None,
        file="m.csv",
        line=2,
    )
    return replace(base, **changes)


GOOD = inst("ClientSecret", "SecretToken")
LACKS = inst("ClientSecret")


def state(**changes: Any) -> InstanceState:
    st = InstanceState("acct-1")
    for k, v in changes.items():
        setattr(st, k, v)
    return st


def app(id_: str, template: str | None = AWS_ID, created: str = "") -> dict[str, Any]:
    return {"id": id_, "applicationTemplateId": template, "createdDateTime": created}


# (id, instance, ledger state, decide() keywords, action, code, application id)
CASES: list[
    tuple[str, Instance, InstanceState | None, dict[str, Any], str, str | None, str | None]
] = [
    ("new, needs known, no app", GOOD, None, {"apps": []}, "create", None, None),
    ("not looked up yet", GOOD, None, {}, "lookup", None, None),
    ("ledger: done", LACKS, state(status="done"), {}, "done", None, None),
    ("ledger: quarantined", GOOD, state(status="quarantined"), {}, "quarantined", None, None),
    (
        "ledger: failed is not finished",
        GOOD,
        state(status="failed"),
        {"apps": []},
        "create",
        None,
        None,
    ),
    (
        "ledger: removed by cleanup starts anew",
        GOOD,
        state(status="removed"),
        {"apps": []},
        "create",
        None,
        None,
    ),
    (
        "ledger: holds the application",
        GOOD,
        state(ids={"applicationId": "app-1"}),
        {},
        "resume",
        None,
        "app-1",
    ),
    (
        "agent group, app-only",
        replace(GOOD, agent_group="HR"),
        None,
        {},
        "refuse",
        "DelegatedOnly",
        None,
    ),
    (
        "agent group, app-only, done in the ledger",
        replace(GOOD, agent_group="HR"),
        state(status="done"),
        {},
        "done",
        None,
        None,
    ),
    (
        "agent group, delegated",
        replace(GOOD, agent_group="HR"),
        None,
        {"delegated": True, "apps": []},
        "create",
        None,
        None,
    ),
    ("lacks SecretToken", LACKS, None, {"apps": []}, "refuse", "MissingCredentials", None),
    (
        "lacks SecretToken, not validated nor started",
        replace(LACKS, validate=False, start=False),
        None,
        {"apps": []},
        "create",
        None,
        None,
    ),
    (
        "lacks SecretToken, validated only",
        replace(LACKS, start=False),
        None,
        {"apps": []},
        "refuse",
        "MissingCredentials",
        None,
    ),
    (
        "lacks SecretToken, resumed before sync_template",
        LACKS,
        state(ids={"applicationId": "app-1"}, done={"instantiate", "replicate"}),
        {},
        "refuse",
        "MissingCredentials",
        None,
    ),
    (
        "lacks SecretToken, resumed past sync_template",
        LACKS,
        state(ids={"applicationId": "app-1"}, done={"instantiate", "sync_template"}),
        {},
        "resume",
        None,
        "app-1",
    ),
    (
        "lacks SecretToken, needs unknown",
        LACKS,
        None,
        {"needs": None, "apps": []},
        "create",
        None,
        None,
    ),
    (
        "another sync template, its keys given",
        inst("BaseAddress", "SecretToken", sync_template="aws-scim"),
        None,
        {"apps": []},
        "create",
        None,
        None,
    ),
    (
        "another sync template, default's keys given",
        replace(GOOD, sync_template="aws-scim"),
        None,
        {"apps": []},
        "refuse",
        "MissingCredentials",
        None,
    ),
    (
        "sync template not offered",
        replace(GOOD, sync_template="nope"),
        None,
        {"apps": []},
        "refuse",
        "UnknownSyncTemplate",
        None,
    ),
    (
        "gallery app without provisioning",
        GOOD,
        None,
        {"needs": NO_TEMPLATES, "apps": []},
        "refuse",
        "NoSyncTemplate",
        None,
    ),
    ("one app of its name and template", GOOD, None, {"apps": [app("a1")]}, "adopt", None, "a1"),
    (
        "template id compared without case",
        GOOD,
        None,
        {"apps": [app("a1", AWS_ID.upper())]},
        "adopt",
        None,
        "a1",
    ),
    (
        "one app, --on-existing fail",
        GOOD,
        None,
        {"apps": [app("a1")], "on_existing": "fail"},
        "conflict",
        "Exists",
        "a1",
    ),
    (
        "one app, --on-existing fail, after an attempt",
        GOOD,
        state(instantiate_attempts=1),
        {"apps": [app("a1")], "on_existing": "fail"},
        "adopt",
        None,
        "a1",
    ),
    (
        "one app, claimed by another instance",
        GOOD,
        None,
        {"apps": [app("a1")], "claimed": {"a1": "acct-2"}},
        "create",
        None,
        None,
    ),
    (
        "two apps of its name and template",
        GOOD,
        None,
        {"apps": [app("a1"), app("a2")]},
        "conflict",
        "Conflict",
        None,
    ),
    (
        "two apps after an attempt: the oldest",
        GOOD,
        state(instantiate_attempts=2),
        {
            "apps": [
                app("a1", created="2025-02-01T00:00:00Z"),
                app("a2", created="2025-01-01T00:00:00Z"),
            ]
        },
        "adopt",
        None,
        "a2",
    ),
    (
        "an app of its name from another template",
        GOOD,
        None,
        {"apps": [app("s1", SLACK_ID)]},
        "conflict",
        "OtherTemplate",
        None,
    ),
    (
        "an app of its name from no gallery template",
        GOOD,
        None,
        {"apps": [app("s1", None)]},
        "conflict",
        "OtherTemplate",
        None,
    ),
    (
        "another template's app claimed by the ledger",
        GOOD,
        None,
        {"apps": [app("s1", SLACK_ID)], "claimed": {"s1": "acct-2"}},
        "create",
        None,
        None,
    ),
    (
        "another template's app after an attempt",
        GOOD,
        state(instantiate_attempts=1, instantiate_pending=True),
        {"apps": [app("s1", SLACK_ID)]},
        "create",
        None,
        None,
    ),
    (
        "its own app beside another template's",
        GOOD,
        None,
        {"apps": [app("s1", SLACK_ID), app("a1")]},
        "adopt",
        None,
        "a1",
    ),
    (
        "credentials before the applications",
        LACKS,
        None,
        {"apps": [app("s1", SLACK_ID)]},
        "refuse",
        "MissingCredentials",
        None,
    ),
]


def run(instance: Instance, st: InstanceState | None, **kw: Any) -> Decision:
    kw.setdefault("needs", AWS_NEEDS)
    return decide(instance, st, template_id=AWS_ID, **kw)


class TestDecide:
    @pytest.mark.parametrize(
        ("instance", "st", "kw", "action", "code", "app_id"),
        [c[1:] for c in CASES],
        ids=[c[0] for c in CASES],
    )
    def test_table(
        self,
        instance: Instance,
        st: InstanceState | None,
        kw: dict[str, Any],
        action: str,
        code: str | None,
        app_id: str | None,
    ) -> None:
        """Each case gets its action, failure code and application."""
        d = run(instance, st, **kw)
        assert (d.action, d.code, d.application_id) == (action, code, app_id)

    def test_refusal_names_the_missing_key(self) -> None:
        """A refusal for credentials names the keys the manifest lacks and fails at
        sync_template."""
        d = run(LACKS, None, apps=[])
        assert d.step == "sync_template"
        assert (
            "lacks SecretToken" in d.note
            and "needs credentials ClientSecret, SecretToken" in d.note
        )

    def test_unknown_needs_are_said(self) -> None:
        """Without the template's needs the decision says they are unknown, and marks it."""
        d = run(LACKS, None, needs=None, apps=[])
        assert d.needs_unknown and UNKNOWN_NEEDS in d.note
        quiet = run(replace(LACKS, validate=False, start=False), None, needs=None, apps=[])
        assert quiet.needs_unknown and quiet.note == ""
        assert not run(
            LACKS, state(ids={"applicationId": "a"}, done={"sync_template"}), needs=None
        ).needs_unknown

    def test_agent_group_note_names_the_credential(self) -> None:
        """The agentGroup refusal names the app-only credential and the fix."""
        d = run(replace(GOOD, agent_group="HR"), None, credential_kind="certificate")
        assert d.step == "agent_group"
        assert "app-only certificate" in d.note and "device-code profile" in d.note

    def test_conflicts_fail_at_instantiate(self) -> None:
        """Conflicts name the application and fail at instantiate."""
        d = run(GOOD, None, apps=[app("s1", SLACK_ID)])
        assert d.step == "instantiate" and "another template" in d.note and "s1" in d.note


class TestTemplateNeeds:
    def test_default_and_keys(self) -> None:
        """The default synchronization template is the one marked default; keys come back in
        Graph's secret-key spelling."""
        assert AWS_NEEDS.default == "aws"
        assert AWS_NEEDS.chosen(None) == ("aws", ("ClientSecret", "SecretToken"))
        assert AWS_NEEDS.chosen("aws-scim") == ("aws-scim", ("BaseAddress", "SecretToken"))
        assert AWS_NEEDS.chosen("other") is None

    def test_first_when_none_is_default(self) -> None:
        """Without a template marked default, the first one is taken (as sync_template does)."""
        needs = TemplateNeeds.read([{"id": "b", "metadata": []}, {"id": "a"}])
        assert needs.default == "b" and needs.chosen(None) == ("b", ())

    @pytest.mark.parametrize(
        "metadata",
        [
            [],
            [{"key": "ConfigurationFields", "value": "not json"}],
            [{"key": "ConfigurationFields", "value": "{}"}],
            ["junk"],
            None,
        ],
    )
    def test_unreadable_fields_ask_for_nothing(self, metadata: Any) -> None:
        """Metadata without readable configurationFields asks for no key."""
        assert configuration_fields({"metadata": metadata}) == []

    def test_problem_is_none_when_keys_given(self) -> None:
        """An instance giving every key its template asks for has no problem."""
        assert credential_problem(GOOD, AWS_NEEDS) is None


class TestKeySet:
    def test_order_does_not_matter(self) -> None:
        """Two instances with the same keys in another order have the same key set."""
        assert key_set(GOOD) == key_set(inst("SecretToken", "ClientSecret", key="b"))

    def test_other_keys_or_template_differ(self) -> None:
        """Other keys, or another synchronization template, make another key set."""
        assert key_set(GOOD) != key_set(LACKS)
        assert key_set(GOOD) != key_set(replace(GOOD, sync_template="aws-scim"))
