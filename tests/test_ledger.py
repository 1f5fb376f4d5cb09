"""The JSONL ledger: append and replay, torn and corrupt lines, ownership checks, redaction,
instantiate bookkeeping, any-prefix crash safety, and a full disk."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bulkprov import ledger as ledger_mod
from bulkprov.errors import LedgerError
from bulkprov.ledger import Ledger, Redactor, Replay, replay_lines
from bulkprov.records import InstanceError, InstanceRecord, RunStart

GRAPH = "https://graph.example.test/v1.0"
TENANT = "11111111-2222-3333-4444-555555555555"
APP_ID = "aaaaaaaa-0000-0000-0000-000000000001"


def open_ledger(
    path: Path, *, redactor: Redactor | None = None, graph: str = GRAPH, tenant: str = TENANT
) -> tuple[Ledger, Replay]:
    led = Ledger(path, redactor=redactor)
    return led, led.open(manifest="m.csv", graph=graph, tenant=tenant)


def lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines()]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "runs" / "ledger.jsonl"


def test_append_and_replay_round_trip(path: Path) -> None:
    """Steps and final records appended are replayed into per-instance state, across reopen."""
    led, replay = open_ledger(path)
    assert replay.instances == {} and replay.header is None
    led.step("a", "instantiate", "attempt")
    led.step("a", "instantiate", "done", ids={"applicationId": APP_ID, "appId": None})
    led.step("a", "job", "done", ids={"jobId": "aws.abc.123"})
    led.step("b", "instantiate", "error", code="BadRequest", message="nope")
    led.append(InstanceRecord(key="a", status="done", job_status="Active"))
    led.close()
    for replay in (ledger_mod.read(path), open_ledger(path)[1]):
        assert replay.header is not None and replay.header.tenant == TENANT
        assert replay.header.graph == GRAPH and replay.header.version == 1
        a, b = replay.instances["a"], replay.instances["b"]
        assert a.ids == {"applicationId": APP_ID, "jobId": "aws.abc.123"}
        assert a.done == {"instantiate", "job"} and a.finished and a.status == "done"
        assert a.final is not None and a.final["jobStatus"] == "Active"
        assert b.errors == 1 and not b.finished and b.done == set()
        assert not replay.torn
    assert ledger_mod.read(path).runs == 2  # the reopen above recorded a second run
    assert [r["type"] for r in lines(path)[:2]] == ["header", "run"]


def test_append_on_closed_ledger_raises(path: Path) -> None:
    """Appending to a ledger that is not open raises LedgerError."""
    led = Ledger(path)
    with pytest.raises(LedgerError, match="not open"):
        led.append(RunStart())
    led, _ = open_ledger(path)
    led.close()
    led.close()  # idempotent
    with pytest.raises(LedgerError):
        led.step("a", "job", "done")


def test_torn_last_line_tolerated_on_read_and_cut_on_open(path: Path) -> None:
    """A torn last line is ignored by read(), cut by open(), and later appends replay fine."""
    led, _ = open_ledger(path)
    led.step("a", "instantiate", "done", ids={"applicationId": APP_ID})
    led.close()
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"type":"step","key":"a","step":"job","ev')
    replay = ledger_mod.read(path)
    assert replay.torn and replay.instances["a"].done == {"instantiate"}
    led, replay = open_ledger(path)
    assert replay.torn
    data = path.read_bytes()  # cut back to the last whole line, then this run's record
    assert data.startswith(whole) and orjson.loads(data[len(whole) :])["type"] == "run"
    led.step("a", "job", "done", ids={"jobId": "j1"})
    led.close()
    data = path.read_bytes()
    assert data.endswith(b"\n")
    replay = ledger_mod.read(path)
    assert not replay.torn
    assert replay.instances["a"].done == {"instantiate", "job"}
    assert replay.instances["a"].ids == {"applicationId": APP_ID, "jobId": "j1"}


def test_corrupt_line_in_the_middle_raises(path: Path) -> None:
    """A line that is not JSON followed by more lines is refused by read() and open()."""
    led, _ = open_ledger(path)
    led.step("a", "instantiate", "done")
    led.close()
    data = path.read_bytes().splitlines(keepends=True)
    data.insert(2, b'{"type":"step","key":"a",garbage\n')
    path.write_bytes(b"".join(data))
    before = path.read_bytes()
    with pytest.raises(LedgerError, match="line 3 is corrupt"):
        ledger_mod.read(path)
    with pytest.raises(LedgerError, match="line 3 is corrupt"):
        open_ledger(path)
    assert path.read_bytes() == before


def test_corrupt_line_then_blank_line_is_still_corrupt() -> None:
    """A non-JSON line is only tolerated as the very last line, not before a blank one."""
    with pytest.raises(LedgerError):
        replay_lines([b'{"type":"header","version":1}', b"{oops", b""])
    assert replay_lines([b'{"type":"header","version":1}', b"{oops"]).torn


def test_ledger_file_mode_is_0600(path: Path) -> None:
    """A new ledger is created 0600, and an existing one is set to 0600 when opened."""
    old = os.umask(0)
    try:
        led, _ = open_ledger(path)
        led.close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o644)
    led, _ = open_ledger(path)
    led.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("name", "kw", "theirs", "mine"),
    [
        (
            "tenant",
            {"tenant": "99999999-2222-3333-4444-555555555555"},
            TENANT,
            "99999999-2222-3333-4444-555555555555",
        ),
        (
            "graph",
            {"graph": "https://graph.microsoft.us/v1.0"},
            GRAPH,
            "https://graph.microsoft.us/v1.0",
        ),
    ],
)
def test_ledger_of_another_tenant_or_graph_is_refused(
    path: Path, name: str, kw: dict[str, str], theirs: str, mine: str
) -> None:
    """Opening a ledger against another tenant or Graph raises, naming both, and changes nothing."""
    led, _ = open_ledger(path)
    led.close()
    path.write_bytes(path.read_bytes() + b'{"type":"ru')  # a torn line must not be cut either
    before = path.read_bytes()
    with pytest.raises(LedgerError) as info:
        open_ledger(path, **kw)
    msg = str(info.value)
    assert name in msg and theirs in msg and mine in msg
    assert path.read_bytes() == before


def test_version_mismatch_is_refused(path: Path) -> None:
    """A ledger written by another ledger version is refused with both versions named."""
    path.parent.mkdir(parents=True)
    path.write_bytes(
        orjson.dumps(
            {"type": "header", "version": 2, "graph": GRAPH, "tenant": TENANT, "salt": "00"}
        )
        + b"\n"
    )
    with pytest.raises(LedgerError, match="version 2"):
        open_ledger(path)


@pytest.mark.parametrize(
    "content",
    [
        # a manifest, no final newline
        b'[\n  {"key": "a", "displayName": "A", "template": "T"}\n]',
        b"key,displayName,template\na,A,T",
        b"just some text",
    ],
)
def test_a_file_that_is_not_a_ledger_is_refused_and_left_intact(path: Path, content: bytes) -> None:
    """--ledger pointing at another file raises LedgerError and never truncates that file."""
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with pytest.raises(LedgerError, match=r"not a bulkprov ledger|corrupt"):
        open_ledger(path)
    assert path.read_bytes() == content


@pytest.mark.parametrize("cut", [1, 5, 16, 30])
def test_ledger_torn_inside_its_header_starts_afresh(path: Path, cut: int) -> None:
    """A kill while writing the header leaves a torn header: the next open starts a new ledger."""
    led, _ = open_ledger(path)
    led.close()
    path.write_bytes(path.read_bytes()[:cut])
    led, replay = open_ledger(path)
    led.close()
    assert replay.instances == {}
    replay = ledger_mod.read(path)
    assert replay.header is not None and replay.header.tenant == TENANT
    assert replay.runs == 1 and not replay.torn


def test_check_manifest_refuses_foreign_instances(path: Path) -> None:
    """check_manifest accepts a superset, and a manifest that dropped some of the ledger's
    instances (desired state: run --prune deletes them); it refuses one that lists none of
    them, naming them."""
    led, _ = open_ledger(path)
    led.step("a", "instantiate", "done")
    led.step("zz-other", "instantiate", "done")
    led.close()
    led, _ = open_ledger(path)
    try:
        led.check_manifest({"a", "b", "zz-other"})
        led.check_manifest({"a", "b"})  # zz-other removed from the manifest
        with pytest.raises(LedgerError) as info:
            led.check_manifest({"b", "c"})
        assert "'zz-other'" in str(info.value) and "another manifest" in str(info.value)
    finally:
        led.close()


def test_a_ledger_whose_instances_had_other_names_is_refused_untouched(path: Path) -> None:
    """Same keys, every one with another display name, in a manifest of another name: another
    manifest's ledger. open() refuses it before writing anything, naming an instance and both
    names; the same names are accepted, and so is a renamed instance of the same manifest
    (an update: rename)."""
    led, _ = open_ledger(path)
    led.step("a", "instantiate", "attempt", attempt=1, displayName="AWS prod", templateId="t")
    led.append(InstanceRecord(key="b", status="done", display_name="AWS dev"))
    led.close()
    before = path.read_bytes()
    with pytest.raises(LedgerError) as info:
        Ledger(path).open(
            manifest="other.csv",
            graph=GRAPH,
            tenant=TENANT,
            instances={"a": "Contoso prod", "b": "Contoso dev", "c": "new"},
        )
    assert "'a' was 'AWS prod'" in str(info.value) and "'Contoso prod'" in str(info.value)
    assert path.read_bytes() == before
    for manifest, names in (
        ("other.csv", {"a": "AWS prod", "b": "AWS dev", "c": "new"}),
        ("m.csv", {"a": "AWS prod", "b": "Contoso dev"}),
        ("other.csv", {"a": "AWS prod", "b": "Contoso dev"}),
    ):
        led = Ledger(path)
        led.open(manifest=manifest, graph=GRAPH, tenant=TENANT, instances=names)
        led.close()
    assert ledger_mod.read(path).runs == 4


def test_redactor_masks_registered_secrets_in_nested_structures() -> None:
    """Every registered value is masked in strings inside dicts, lists and tuples."""
    r = Redactor()
    assert r.value({"x": "s3cret"}) == {"x": "s3cret"}  # nothing registered: unchanged
    r.add("s3cret")
    r.add("abc")  # shorter than 4: not registered (it would mask ordinary text)
    got = r.value({"a": ["x s3cret y", {"b": ("s3cret",), "n": 5}], "c": None, "d": "abc"})
    assert got == {"a": ["x ***** y", {"b": ["*****"], "n": 5}], "c": None, "d": "abc"}
    assert r.text("s3crets3cret") == "**********"


def test_redactor_masks_the_longer_of_overlapping_secrets_whole() -> None:
    """When one secret contains another, the longer one is masked whole, leaving no tail."""
    r = Redactor()
    for v in ("abcd", "abcdWXYZ1234"):
        r.add(v)
    assert r.text("key=abcdWXYZ1234;") == "key=*****;"
    r2 = Redactor()
    for v in ("abcdWXYZ1234", "abcd"):
        r2.add(v)
    assert r2.text("key=abcdWXYZ1234; abcd") == "key=*****; *****"


def test_ledger_never_writes_a_registered_secret(path: Path) -> None:
    """No ledger byte holds a registered secret, raw or JSON-escaped, wherever it appears."""
    secret = 'pa"ss\\w\u00f6rd-XYZ'
    red = Redactor()
    red.add(secret)
    led, _ = open_ledger(path, redactor=red)
    led.step(
        "a",
        "secrets",
        "error",
        code="X",
        message=f"rejected {secret}",
        data={"nested": [secret, {"deep": (secret,)}]},
    )
    led.append(InstanceRecord(key="a", status="failed", error=InstanceError(message=secret * 2)))
    led.close()
    data = path.read_bytes()
    for form in (secret.encode(), orjson.dumps(secret)[1:-1], secret.encode("unicode_escape")):
        assert form not in data
    assert data.count(b"*****") >= 5
    assert ledger_mod.read(path).instances["a"].errors == 1


def test_instantiate_attempt_pending_semantics() -> None:
    """An attempt without an outcome is pending; done or a settled error clears it."""

    def rec(**kw: Any) -> bytes:
        return orjson.dumps({"type": "step", **kw})

    recs = [
        b'{"type":"header","version":1}',
        rec(key="p", step="instantiate", event="attempt"),
        rec(key="d", step="instantiate", event="attempt"),
        rec(key="d", step="instantiate", event="done", ids={"applicationId": APP_ID}),
        rec(key="s", step="instantiate", event="attempt"),
        rec(key="s", step="instantiate", event="error", settled=True),
        rec(key="u", step="instantiate", event="attempt"),
        rec(key="u", step="instantiate", event="error"),  # not settled: may have taken effect
        rec(key="r", step="instantiate", event="attempt"),
        rec(key="r", step="instantiate", event="error", settled=True),
        rec(key="r", step="instantiate", event="attempt"),
        rec(key="j", step="instantiate", event="attempt"),
        rec(key="j", step="job", event="done"),  # another step's done does not settle it
    ]
    st_ = replay_lines(recs).instances
    pending = {k: (s.instantiate_pending, s.instantiate_attempts) for k, s in st_.items()}
    assert pending == {
        "p": (True, 1),
        "d": (False, 1),
        "s": (False, 1),
        "u": (True, 1),
        "r": (True, 2),
        "j": (True, 1),
    }
    assert st_["d"].done == {"instantiate"} and st_["u"].errors == 1


def test_claimed_maps_ids_to_keys() -> None:
    """Replay.claimed lists the id values instances hold, optionally except one instance."""
    replay = replay_lines(
        [
            orjson.dumps(
                {
                    "type": "step",
                    "key": k,
                    "step": "instantiate",
                    "event": "done",
                    "ids": {"applicationId": v},
                }
            )
            for k, v in (("a", "1"), ("b", "2"))
        ]
    )
    assert replay.claimed("applicationId") == {"1": "a", "2": "b"}
    assert replay.claimed("applicationId", except_key="a") == {"2": "b"}


# ---------------------------------------------------------------- crash safety: any prefix

STEPS = ("instantiate", "servicePrincipal", "job", "validate", "secrets", "start")
KEYS = ("app-1", "app-2", "ünï-3")
IDS = {
    k: {
        "applicationId": f"aaaaaaaa-0000-0000-0000-00000000000{i}",
        "servicePrincipalId": f"bbbbbbbb-0000-0000-0000-00000000000{i}",
        "jobId": f"job.{i}",
    }
    for i, k in enumerate(KEYS)
}

op = st.one_of(
    st.tuples(
        st.just("step"),
        st.sampled_from(KEYS),
        st.sampled_from(STEPS),
        st.sampled_from(["start", "attempt", "done", "error"]),
        st.booleans(),
        st.booleans(),
        st.text(max_size=12),
    ),
    st.tuples(
        st.just("instance"),
        st.sampled_from(KEYS),
        st.sampled_from(["done", "failed", "quarantined"]),
    ),
    st.tuples(st.just("run")),
)


def write_ops(path: Path, ops: list[tuple[Any, ...]]) -> None:
    led, _ = open_ledger(path)
    for o in ops:
        if o[0] == "step":
            _, key, step, event, settled, with_ids, note = o
            ids = {n: v for n, v in IDS[key].items() if with_ids}
            led.step(key, step, event, settled=settled or None, ids=ids or None, note=note)
        elif o[0] == "instance":
            led.append(InstanceRecord(key=o[1], status=o[2]))
        else:
            led.append(RunStart(at="now", pid=1))
    led.close()


def assert_prefix_of(part: Replay, full: Replay) -> None:
    assert part.runs <= full.runs
    if part.header is not None:
        assert full.header == part.header
    for key, s in part.instances.items():
        f = full.instances[key]
        assert s.done <= f.done
        assert all(f.ids[n] == v for n, v in s.ids.items())
        assert s.instantiate_attempts <= f.instantiate_attempts
        assert s.errors <= f.errors


def check_cut(src: bytes, cut: int, path: Path, full: Replay) -> None:
    path.write_bytes(src[:cut])
    part = ledger_mod.read(path)
    assert_prefix_of(part, full)
    led, opened = open_ledger(path)
    assert_prefix_of(opened, full)
    assert path.read_bytes().endswith(b"\n")
    led.step(KEYS[0], "start", "done")
    led.close()
    after = ledger_mod.read(path)
    assert (
        not after.torn and KEYS[0] in after.instances and "start" in after.instances[KEYS[0]].done
    )
    assert after.runs == (part.runs if part.header is not None else 0) + 1


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(op, max_size=25), cuts=st.lists(st.floats(0, 1), min_size=1, max_size=12))
def test_property_any_prefix_replays_consistently(
    ops: list[tuple[Any, ...]], cuts: list[float]
) -> None:
    """A ledger cut at any byte replays without error (read and open) to a prefix of the full."""
    with tempfile.TemporaryDirectory() as d:
        src_path = Path(d) / "full.jsonl"
        write_ops(src_path, ops)
        src = src_path.read_bytes()
        full = ledger_mod.read(src_path)
        line_ends = [i + 1 for i, b in enumerate(src) if b == 0x0A]
        for c in {int(f * len(src)) for f in cuts} | set(line_ends[-2:]):
            check_cut(src, c, Path(d) / f"cut-{c}.jsonl", full)


def test_every_byte_prefix_of_a_ledger_replays(tmp_path: Path) -> None:
    """Exhaustively: each of the byte prefixes of one multi-byte-UTF-8 ledger replays cleanly."""
    ops: list[tuple[Any, ...]] = [
        ("step", KEYS[2], "instantiate", "attempt", False, False, "ß→🚀"),
        ("step", KEYS[2], "instantiate", "done", False, True, "ok"),
        ("step", KEYS[0], "instantiate", "error", True, False, ""),
        ("instance", KEYS[2], "done"),
        ("run",),
    ]
    src_path = tmp_path / "full.jsonl"
    write_ops(src_path, ops)
    src = src_path.read_bytes()
    full = ledger_mod.read(src_path)
    for c in range(len(src) + 1):
        check_cut(src, c, tmp_path / "cut.jsonl", full)


# ---------------------------------------------------------------- a full disk

needs_dev_full = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")


@needs_dev_full
def test_disk_full_append_raises_clear_error_and_file_stays_valid(path: Path) -> None:
    """ENOSPC on append raises LedgerError naming the path; the file on disk still replays."""
    led, _ = open_ledger(path)
    led.step("a", "instantiate", "done", ids={"applicationId": APP_ID})
    assert led._fd is not None
    os.close(led._fd)
    led._fd = os.open("/dev/full", os.O_WRONLY)
    with pytest.raises(LedgerError) as info:
        led.step("a", "job", "done")
    msg = str(info.value)
    assert str(path) in msg and "No space left on device" in msg
    # after a failed write nothing more goes to the ledger: a half line must stay the last line
    with pytest.raises(LedgerError):
        led.step("a", "job", "done")
    led.close()
    replay = ledger_mod.read(path)
    assert replay.instances["a"].done == {"instantiate"} and not replay.torn


def test_short_write_leaves_only_a_torn_last_line(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A short write raises, later appends are refused, and a reopen cuts the partial line."""
    led, _ = open_ledger(path)
    led.step("a", "instantiate", "done")
    real_write = os.write

    def short(fd: int, data: bytes) -> int:
        return real_write(fd, data[: len(data) // 2])

    monkeypatch.setattr(ledger_mod.os, "write", short)
    with pytest.raises(LedgerError, match="cannot append"):
        led.step("a", "job", "done", ids={"jobId": "j1"})
    monkeypatch.setattr(ledger_mod.os, "write", real_write)
    with pytest.raises(LedgerError):  # the space came back: still nothing after a torn line
        led.step("a", "secrets", "done")
    led.close()
    assert ledger_mod.read(path).torn
    led, replay = open_ledger(path)
    led.step("a", "job", "done")
    led.close()
    replay = ledger_mod.read(path)
    assert replay.instances["a"].done == {"instantiate", "job"} and not replay.torn


@pytest.mark.parametrize("block", [1, 7, 64, 1 << 16])
def test_whole_lines_end_across_read_blocks(tmp_path: Path, block: int) -> None:
    """The end of the last whole line is found however far back it is from the end of the
    file: a torn tail longer than the read block, no newline at all, an empty file."""
    from bulkprov.ledger import _whole_lines_end

    p = tmp_path / "f"
    for data in (b"", b"no newline", b"a\nb\n", b"a\n" + b"x" * 200, b"\n" + b"y" * 100):
        p.write_bytes(data)
        assert _whole_lines_end(p, len(data), block) == data.rfind(b"\n") + 1, data[:12]


@settings(max_examples=300, deadline=None)
@given(
    secrets=st.lists(st.text(alphabet="ab", min_size=4, max_size=7), min_size=1, max_size=30),
    text=st.text(alphabet="abx", max_size=60),
)
def test_redactor_leaves_no_secret_and_both_searches_agree(secrets: list[str], text: str) -> None:
    """Whatever the secrets (overlapping, containing each other), no registered secret is left
    in the masked text, and searching value by value (few secrets) or by windows of each length
    (many secrets) masks the same text."""
    few, many = Redactor(), Redactor()
    many.FEW = 0
    for v in secrets:
        few.add(v)
        many.add(v)
    masked = few.text(text)
    assert masked == many.text(text)
    assert not any(v in masked for v in secrets)


def test_redactor_counts_registrations() -> None:
    """A value registered twice is masked until both registrations are released; a released
    value is shown again, and releasing an unknown value does nothing."""
    r = Redactor()
    r.add("s3cret-one")
    r.add("s3cret-one")
    r.add("s3cret-two")
    r.discard("s3cret-one")
    assert r.text("s3cret-one s3cret-two") == "***** *****"
    r.discard("s3cret-one")
    r.discard("never-added")
    assert r.text("s3cret-one s3cret-two") == "s3cret-one *****"
    assert r.held == 1
