"""The ledger's record types: each writes exactly the JSON the ledger has always held, reads
older and odder ledgers leniently, and replays into the instance state it always gave."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulkprov import ledger as ledger_mod
from bulkprov.ledger import Ledger, Redactor, replay_lines
from bulkprov.records import (
    VERSION,
    CleanupRecord,
    Event,
    Header,
    InstanceError,
    InstanceRecord,
    RunStart,
    Status,
    Step,
    StepRecord,
    parse_record,
)

DATA = Path(__file__).parent / "data"
FIXTURES = sorted(DATA.glob("ledger-*/ledger.jsonl"))
GRAPH = "https://graph.example.test/v1.0"
TENANT = "11111111-2222-3333-4444-555555555555"


def lines_of(*records: dict[str, Any]) -> list[bytes]:
    return [orjson.dumps(r) for r in records]


# ------------------------------------------------------------------ to_json / from_json
@pytest.mark.parametrize("path", FIXTURES, ids=[p.parent.name for p in FIXTURES])
def test_every_record_of_the_fixtures_is_written_back_byte_for_byte(path: Path) -> None:
    """Each line an earlier release wrote parses to a record whose JSON is that line: the same
    keys in the same order, nothing left over in ``extra``."""
    seen: set[type] = set()
    for line in path.read_bytes().splitlines():
        rec = parse_record(orjson.loads(line))
        assert rec is not None, line
        assert orjson.dumps(rec.to_json()) == line
        assert rec.extra == {}
        seen.add(type(rec))
    assert {Header, RunStart, StepRecord, InstanceRecord} <= seen


def test_the_fixtures_hold_every_kind_of_record() -> None:
    """Between them, the fixtures hold every record type and every event a run, a cleanup and
    a monitor restart wrote then."""
    records = [parse_record(orjson.loads(x)) for p in FIXTURES for x in p.read_bytes().splitlines()]
    assert {type(r) for r in records} == {
        Header,
        RunStart,
        StepRecord,
        InstanceRecord,
        CleanupRecord,
    }
    steps = {(r.step, r.event) for r in records if isinstance(r, StepRecord)}
    assert {
        (Step.INSTANTIATE, Event.ATTEMPT),
        (Step.SYNC_TEMPLATE, Event.ERROR),
        (Step.RESTART, Event.START),
        (Step.RESTART, Event.DONE),
    } <= steps
    statuses = {r.status for r in records if isinstance(r, InstanceRecord)}
    assert statuses == set(Status) - {Status.TIMEOUT, Status.SKIPPED}
    commands = {r.command for r in records if isinstance(r, RunStart)}
    assert commands == {"run", "cleanup", "monitor"}


def legacy_step(key: str, step: str, event: str, t: float, **data: Any) -> dict[str, Any]:
    """The step record ``Ledger.step`` built before records had types."""
    rec: dict[str, Any] = {"type": "step", "t": t, "key": key, "step": step, "event": event}
    rec.update({k: v for k, v in data.items() if v is not None})
    return rec


# the keyword arguments pipeline.py and monitor.py give Ledger.step, in their order
CALLS: list[tuple[str, str, dict[str, Any]]] = [
    ("instantiate", "start", {}),
    ("instantiate", "attempt", {"attempt": 2, "displayName": "AWS 1", "templateId": "t-1"}),
    (
        "instantiate",
        "done",
        {"ms": 5, "ids": {"applicationId": "a", "appId": "b"}, "data": {"created": True}},
    ),
    ("instantiate", "error", {"settled": True, "message": "no application appeared"}),
    ("instantiate", "error", {"settled": True, "code": "BadRequest"}),
    ("instantiate", "dedupe", {"removed": "app-2"}),
    ("schema", "done", {"ms": 3, "ids": None, "data": None}),
    ("secrets", "error", {"ms": 9, "code": "X", "message": "m", "requestId": "r-1"}),
    ("validate", "error", {"ms": 9, "code": None, "message": "m", "requestId": None}),
    ("restart", "start", {"resetScope": "Watermark"}),
    ("restart", "error", {"code": "Transport", "message": "no answer"}),
    ("restart", "done", {"ms": 12, "data": {"resetScope": "Watermark"}}),
]


@pytest.mark.parametrize(("step", "event", "data"), CALLS)
def test_a_step_record_is_written_as_before(step: str, event: str, data: dict[str, Any]) -> None:
    """Each call shape of ``Ledger.step`` gives the JSON it gave before, key order included."""
    rec = StepRecord.of("k", step, event, t=1.5, **data)
    assert isinstance(rec.step, Step) and isinstance(rec.event, Event)
    got = rec.to_json()
    want = legacy_step("k", step, event, 1.5, **data)
    assert got == want and list(got) == list(want)
    assert StepRecord.from_json(got) == rec


def test_typed_fields_read_back() -> None:
    """The JSON names come back as the typed fields."""
    raw = legacy_step(
        "k", "instantiate", "attempt", 2.0, attempt=1, displayName="AWS", templateId="t"
    )
    rec = parse_record(raw)
    assert isinstance(rec, StepRecord)
    assert (rec.attempt, rec.display_name, rec.template_id) == (1, "AWS", "t")
    err = parse_record(
        {
            "type": "instance",
            "key": "k",
            "status": "failed",
            "error": {"step": "job", "code": "C", "message": "m", "requestId": None},
        }
    )
    assert isinstance(err, InstanceRecord) and err.status is Status.FAILED
    assert err.error == InstanceError(step="job", code="C", message="m")
    assert err.to_json()["error"] == {"step": "job", "code": "C", "message": "m", "requestId": None}


def test_instance_records_of_a_run_and_of_a_cleanup() -> None:
    """A run's instance record and a cleanup's ``removed`` one keep their layouts."""
    run = InstanceRecord(
        key="k",
        status=Status.DONE,
        t=1.0,
        display_name="AWS",
        template="AWS SSO",
        ids={"applicationId": "a"},
        template_id="aws",
        job_status="Active",
        last_execution="Succeeded",
        timings={"instantiate": 4},
        seconds=0.5,
    )
    assert list(run.to_json()) == [
        "type",
        "t",
        "key",
        "status",
        "displayName",
        "template",
        "ids",
        "templateId",
        "jobStatus",
        "lastExecution",
        "timings",
        "seconds",
    ]
    removed = InstanceRecord(
        key="k", status=Status.REMOVED, at="now", display_name="AWS", removed_ids={}, purged=False
    )
    assert removed.to_json() == {
        "type": "instance",
        "key": "k",
        "status": "removed",
        "at": "now",
        "displayName": "AWS",
        "removedIds": {},
        "purged": False,
    }


def test_cleanup_records_keep_their_layout() -> None:
    """A deletion is written with ``found`` only when true; an error with its request id,
    null or not."""
    done = CleanupRecord(key="k", kind="job", object_id="j", event=Event.DONE)
    assert done.to_json() == {
        "type": "cleanup",
        "key": "k",
        "object": "job",
        "id": "j",
        "event": "done",
    }
    found = CleanupRecord(key="k", kind="application", object_id="a", event=Event.GONE, found=True)
    assert found.to_json()["found"] is True
    err = CleanupRecord(
        key="k", kind="job", object_id="j", event=Event.ERROR, code="C", message="m"
    ).to_json()
    assert list(err) == ["type", "key", "object", "id", "event", "code", "message", "requestId"]
    assert err["requestId"] is None and CleanupRecord.from_json(err).request_id is None


def test_header_and_run_records() -> None:
    """The header is written with every field this release knows (none of them null); a run
    names its manifest, another command names itself."""
    h = Header(
        version=VERSION,
        created="c",
        manifest="m.csv",
        graph=GRAPH,
        tenant=TENANT,
        salt="00",
        fingerprint_key="k1:abcd",
    )
    assert list(h.to_json()) == [
        "type",
        "version",
        "created",
        "manifest",
        "graph",
        "tenant",
        "salt",
        "fingerprintKey",
    ]
    assert Header.from_json(h.to_json()) == h
    assert RunStart(at="a", pid=1, manifest="m.csv").to_json() == {
        "type": "run",
        "at": "a",
        "pid": 1,
        "manifest": "m.csv",
    }
    assert RunStart(at="a", pid=1, command="cleanup").to_json() == {
        "type": "run",
        "at": "a",
        "pid": 1,
        "command": "cleanup",
    }


# ------------------------------------------------------------------ lenient reading
def test_an_older_header_reads() -> None:
    """A 0.1.0 header has no fingerprint key; one without a version reads as version None
    (a run refuses it), not as this release's."""
    old = Header.from_json({"type": "header", "version": 1, "graph": GRAPH, "salt": "ab"})
    assert old.fingerprint_key is None and old.version == 1
    assert "fingerprintKey" not in old.to_json()
    assert Header.from_json({"type": "header"}).version is None


def test_unknown_keys_and_wrong_types_are_kept_not_refused() -> None:
    """A key no field has, or a field's key holding another type, stays in ``extra`` and is
    written back as it was; the field reads as None."""
    raw = {
        "type": "step",
        "t": 1.0,
        "key": "k",
        "step": "job",
        "event": "done",
        "ms": "slow",
        "data": [1],
        "note": "hi",
    }
    rec = parse_record(raw)
    assert isinstance(rec, StepRecord)
    assert rec.ms is None and rec.data is None
    assert rec.extra == {"ms": "slow", "data": [1], "note": "hi"}
    assert rec.to_json() == raw


def test_names_this_release_does_not_know_are_kept_as_strings() -> None:
    """A step, event or status of another release reads as its plain string."""
    rec = parse_record({"type": "step", "key": "k", "step": "servicePrincipal", "event": "paused"})
    assert isinstance(rec, StepRecord)
    assert rec.step == "servicePrincipal" and not isinstance(rec.step, Step)
    assert rec.event == "paused" and not isinstance(rec.event, Event)
    inst = parse_record({"type": "instance", "key": "k", "status": "parked"})
    assert isinstance(inst, InstanceRecord) and inst.status == "parked"


@pytest.mark.parametrize(
    "raw",
    [
        {"type": "step", "step": "job", "event": "done"},  # no key
        {"type": "instance", "key": 7, "status": "done"},  # a key that is no string
        {"type": "note", "key": "k"},  # a type of no record
        {"key": "k", "status": "done"},  # no type
    ],
)
def test_objects_that_are_no_record_parse_to_none(raw: dict[str, Any]) -> None:
    """What is no record of this release is no record (replay passes over it)."""
    assert parse_record(raw) is None


def test_a_run_record_without_command_is_a_run() -> None:
    """``{"type": "run"}`` (and an empty command) count as a run."""
    assert RunStart.from_json({"type": "run"}).command == "run"
    assert RunStart.from_json({"type": "run", "command": ""}).command == "run"
    assert RunStart.from_json({"type": "run", "command": "monitor"}).command == "monitor"


scalar = (
    st.none()
    | st.booleans()
    | st.integers(-10, 10)
    | st.floats(allow_nan=False)
    | st.text(max_size=4)
)
json_value = st.recursive(
    scalar,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=6,
)
KNOWN = {
    "step": [k for k, _a, _r in StepRecord.SPEC.table if k != "key"],
    "instance": [k for k, _a, _r in InstanceRecord.SPEC.table if k not in ("key", "error")],
    "cleanup": [k for k, _a, _r in CleanupRecord.SPEC.table if k not in ("key", "event")],
    "header": [k for k, _a, _r in Header.SPEC.table],
}


@st.composite
def raw_records(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(sorted(KNOWN)))
    names = st.sampled_from(KNOWN[kind]) | st.sampled_from(["note", "x"])
    raw: dict[str, Any] = draw(st.dictionaries(names, json_value, max_size=6))
    raw["type"] = kind
    if kind != "header":
        raw["key"] = draw(st.text(max_size=5))
    return raw


@given(raw=raw_records())
def test_property_any_object_is_written_back_as_read(raw: dict[str, Any]) -> None:
    """Whatever the values' types, a record's JSON is the object it was read from (null
    values left out): an odd ledger loses nothing by being read and written."""
    rec = parse_record(raw)
    assert rec is not None
    assert rec.to_json() == {k: v for k, v in raw.items() if v is not None}


# ------------------------------------------------------------------ replay, per record type
def test_replay_of_header_and_run_records() -> None:
    """The last header is the ledger's; runs are counted, other commands by name."""
    replay = replay_lines(
        lines_of(
            {"type": "header", "version": 1, "graph": GRAPH, "tenant": TENANT},
            {"type": "run"},
            {"type": "run", "command": "cleanup"},
            {"type": "run", "command": "monitor"},
            {"type": "run", "command": "cleanup"},
            {"type": "run", "at": "a", "pid": 2, "manifest": "m.csv"},
        )
    )
    assert replay.header == Header(version=1, graph=GRAPH, tenant=TENANT)
    assert replay.runs == 2 and replay.commands == {"cleanup": 2, "monitor": 1}
    assert replay.instances == {}


def test_replay_of_step_records() -> None:
    """Ids are gathered from every step record; done adds the step and, for instantiate and
    job, how the objects came; errors are counted; an attempt is pending until done or a
    settled error; a dedupe changes nothing but makes the instance known."""
    replay = replay_lines(
        lines_of(
            legacy_step(
                "a", "instantiate", "attempt", 1, attempt=1, displayName="AWS a", templateId="t"
            ),
            legacy_step(
                "a",
                "instantiate",
                "done",
                2,
                ids={"applicationId": "1", "appId": ""},
                data={"recovered": True},
            ),
            legacy_step("a", "job", "done", 3, ids={"jobId": "j"}, data={"adopted": True}),
            legacy_step("a", "secrets", "error", 4, code="X", message="m"),
            legacy_step("b", "instantiate", "attempt", 5, attempt=1),
            legacy_step("b", "instantiate", "error", 6, settled=True),
            legacy_step("c", "instantiate", "dedupe", 7, removed="app-9"),
        )
    )
    a, b, c = (replay.instances[k] for k in "abc")
    assert a.ids == {"applicationId": "1", "jobId": "j"}
    assert a.done == {"instantiate", "job"} and a.origin == "recovered" and a.job_adopted
    assert a.errors == 1 and not a.instantiate_pending and a.instantiate_attempts == 1
    assert a.attempt == {"displayName": "AWS a", "templateId": "t"}
    assert a.display_name == "AWS a" and a.status is None and a.record is None
    assert b.instantiate_attempts == 1 and not b.instantiate_pending and b.errors == 1
    assert c.done == set() and c.errors == 0 and c.ids == {}
    assert all(type(s) is str for st_ in replay.instances.values() for s in st_.done)


def test_replay_of_instance_records() -> None:
    """An instance record gives the status, the typed record (and its JSON as ``final``),
    and the display name; ``removed`` forgets the ids and steps but keeps what was deleted."""
    run = {
        "type": "instance",
        "t": 1.0,
        "key": "a",
        "status": "quarantined",
        "displayName": "AWS a",
        "ids": {"applicationId": "1"},
        "jobStatus": "Quarantine",
    }
    replay = replay_lines(
        lines_of(
            legacy_step("a", "job", "done", 0.5, ids={"jobId": "j"}),
            run,
            {"type": "cleanup", "key": "a", "object": "application", "id": "1", "event": "done"},
            {
                "type": "instance",
                "key": "a",
                "status": "removed",
                "at": "now",
                "removedIds": {"application": "1"},
                "purged": False,
            },
            {"type": "instance", "key": "b", "status": "done", "ids": {"jobId": "k"}},
        )
    )
    a, b = replay.instances["a"], replay.instances["b"]
    assert a.status == "removed" and type(a.status) is str and not a.finished
    assert a.ids == {} and a.done == set() and a.removed == {("application", "1")}
    assert a.record is not None and a.record.removed_ids == {"application": "1"}
    assert a.display_name is None
    assert (
        b.finished
        and b.ids == {"jobId": "k"}
        and b.final == {"type": "instance", "key": "b", "status": "done", "ids": {"jobId": "k"}}
    )
    again = replay_lines(lines_of(run))
    rec = again.instances["a"].record
    assert rec is not None and rec.job_status == "Quarantine" and again.instances["a"].finished
    assert again.instances["a"].final == run and again.instances["a"].display_name == "AWS a"


def test_replay_of_cleanup_records() -> None:
    """Deleted and already-gone objects count as removed; a failed deletion does not."""
    replay = replay_lines(
        lines_of(
            {"type": "cleanup", "key": "a", "object": "job", "id": "j", "event": "done"},
            {
                "type": "cleanup",
                "key": "a",
                "object": "servicePrincipal",
                "id": "s",
                "event": "gone",
            },
            {
                "type": "cleanup",
                "key": "a",
                "object": "application",
                "id": "p",
                "event": "error",
                "code": "C",
                "message": "m",
                "requestId": None,
            },
        )
    )
    assert replay.instances["a"].removed == {("job", "j"), ("servicePrincipal", "s")}


def test_replay_passes_over_objects_that_are_no_record() -> None:
    """A JSON object of no known type, or an instance's record without a key, is skipped; a
    line that is no object is only allowed last."""
    replay = replay_lines(
        lines_of({"type": "note", "text": "x"}, {"type": "step", "step": "job", "event": "done"})
    )
    assert replay.instances == {} and not replay.torn
    assert replay_lines([b"[1, 2]"]).bad_last_line == 1


# ------------------------------------------------------------------ Ledger.append and step
def test_append_writes_a_record_masked(tmp_path: Path) -> None:
    """``append`` writes the record's JSON with every registered secret masked; ``step``
    builds its record from the JSON names, an unknown one kept."""
    red = Redactor()
    red.add("s3cret-value")
    led = Ledger(tmp_path / "l.jsonl", redactor=red)
    led.open(manifest="m.csv", graph=GRAPH, tenant=TENANT)
    led.append(
        InstanceRecord(
            key="a", status=Status.FAILED, error=InstanceError(message="bad s3cret-value")
        )
    )
    led.step("a", Step.SECRETS, Event.ERROR, code="X", note="s3cret-value here")
    led.close()
    data = (tmp_path / "l.jsonl").read_bytes()
    assert b"s3cret-value" not in data
    lines = [orjson.loads(x) for x in data.splitlines()]
    assert lines[0]["type"] == "header" and lines[0]["version"] == VERSION
    assert lines[1] == {
        "type": "run",
        "at": lines[1]["at"],
        "pid": lines[1]["pid"],
        "manifest": "m.csv",
    }
    assert lines[2]["error"]["message"] == "bad *****"
    assert lines[3]["note"] == "***** here" and lines[3]["step"] == "secrets"
    assert ledger_mod.read(tmp_path / "l.jsonl").instances["a"].errors == 1
