"""desired.diff: what the ledger says was applied against the manifest line now."""

from __future__ import annotations

import json
from pathlib import Path

from bulkprov import desired
from bulkprov.desired import Applied, Change
from bulkprov.ledger import replay_lines
from bulkprov.manifest import Instance
from bulkprov.refs import CredentialRef


def _instance(**kw: object) -> Instance:
    fields: dict[str, object] = dict(
        key="k",
        display_name="AWS k",
        template="AWS Single-Account Access",
        sync_template=None,
        credentials=(
            CredentialRef("ClientSecret", "literal", "id-1"),
            CredentialRef("SecretToken", "literal", "s-1"),
        ),
        start=True,
        validate=True,
        profile=None,
        file="m.csv",
        line=2,
    )
    fields.update(kw)
    return Instance(**fields)  # type: ignore[arg-type]


def _compare(stored: str, key: str, value: str) -> str:
    return "same" if stored == f"fp({key}={value})" else "changed"


APPLIED = Applied(
    credentials={"ClientSecret": "fp(ClientSecret=id-1)", "SecretToken": "fp(SecretToken=s-1)"},
    job_settings=(),
    display_name="AWS k",
    start=True,
)


def test_nothing_differs() -> None:
    assert desired.diff(APPLIED, _instance(), compare=_compare) == []


def test_each_kind_is_named() -> None:
    inst = _instance(
        credentials=(
            CredentialRef("ClientSecret", "literal", "id-2"),
            CredentialRef("SecretToken", "literal", "s-1"),
        ),
        display_name="AWS renamed",
        start=False,
        job_settings=(("SyncAll", "true"),),
    )
    changes = desired.diff(APPLIED, inst, compare=_compare)
    assert changes == [
        Change("credentials", ("ClientSecret",)),
        Change("job_settings", ("SyncAll",)),
        Change("display_name", ("AWS renamed",)),
        Change("start", ("false",)),
    ]
    assert desired.counts(changes) == {
        "credentials": 1,
        "job_settings": 1,
        "display_name": 1,
        "start": 1,
    }
    assert "s-1" not in desired.summary(changes) and "id-2" not in desired.summary(changes)


def test_unknown_is_taken_as_applied() -> None:
    """A ledger of an earlier release records no schema and no job settings: no change."""
    inst = _instance(job_settings=(("SyncAll", "true"),), schema_file=Path("/nowhere.json"))
    assert desired.diff(Applied(), inst, compare=_compare) == []


def test_schema_names_its_first_differing_paths(tmp_path: Path) -> None:
    base = {
        "synchronizationRules": [
            {
                "name": "r",
                "objectMappings": [
                    {"name": "User", "attributeMappings": [{"targetAttributeName": "a"}]},
                    {"name": "Group", "attributeMappings": []},
                ],
            }
        ],
        "directories": [],
        "version": "1",
    }
    old = desired.schema_state(base)
    base["synchronizationRules"][0]["objectMappings"][1]["attributeMappings"] = [  # type: ignore[index]
        {"targetAttributeName": "b"}
    ]
    f = tmp_path / "s.json"
    f.write_text(json.dumps(base))
    changes = desired.diff(Applied(schema=old), _instance(schema_file=f))
    assert changes == [Change("schema", ("synchronizationRules[0].objectMappings[1]",))]
    f.write_text(json.dumps({**base, "id": "another job's id"}))  # ids Graph assigns: the same
    old = desired.schema_state(json.loads(f.read_text()))
    assert desired.diff(Applied(schema=old), _instance(schema_file=f)) == []


def test_replay_folds_applied_state_and_old_ledgers() -> None:
    lines = [
        {
            "type": "step",
            "key": "k",
            "step": "instantiate",
            "event": "attempt",
            "displayName": "AWS k",
            "attempt": 1,
        },
        {"type": "step", "key": "k", "step": "job", "event": "done", "data": {"status": "x"}},
        {
            "type": "step",
            "key": "k",
            "step": "secrets",
            "event": "done",
            "data": {"keys": ["ClientSecret"], "fingerprints": {"ClientSecret": "f1"}},
        },
        {"type": "step", "key": "k", "step": "start", "event": "done"},
        {
            "type": "step",
            "key": "k",
            "step": "job_pause",
            "event": "done",
            "data": {"applied": {"start": False}},
        },
    ]
    st = replay_lines(json.dumps(x).encode() for x in lines).instances["k"]
    applied = Applied.read(st.applied, st.display_name)
    assert applied.credentials == {"ClientSecret": "f1"}
    assert applied.start is False and applied.display_name == "AWS k"
    assert applied.schema is None and applied.job_settings is None
