"""Manifest parsing and validation: the bad-manifest corpus in tests/manifests/, streaming,
credential references, the CLI's handling of a bad manifest, and property tests."""

from __future__ import annotations

import csv
import json
import os
import shutil
import string
import time
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bulkprov import cli
from bulkprov.errors import ManifestError, Problem
from bulkprov.manifest import (
    FALSE,
    PLAIN_KEYS,
    TRUE,
    CredentialRef,
    Instance,
    Lines,
    ManifestSummary,
    Secret,
    iter_instances,
    validate,
)

CORPUS = Path(__file__).parent / "manifests"
SECRET_ENV = "APP_TEST_SECRET"
UNSET_ENV = "APP_TEST_SURELY_UNSET_VAR"


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, "s3cret-from-env")
    monkeypatch.delenv(UNSET_ENV, raising=False)


def problems_of(path: Path, **kw: bool) -> list[Problem]:
    """Every problem validate() finds, whether returned in the summary or raised."""
    try:
        summary = validate(path, **kw)
    except ManifestError as err:
        assert err.problems, "a ManifestError must carry its problems"
        return err.problems
    return summary.problems


# (corpus file, [(line, field, fragment of the message)]): exactly these problems, in order
BAD = [
    ("bad_quote.csv", [(3, None, "bad CSV quoting")]),
    ("duplicate_key.csv", [(4, "key", "first used on line 2")]),
    ("missing_column.csv", [(1, "template", "required column is missing")]),
    ("unknown_column.csv", [(1, "strat", "did you mean 'start'?")]),
    ("missing_value.csv", [(3, "displayName", "is required")]),
    ("unknown_cred_key.json", [(3, "credentials.ClientSecert", "did you mean 'ClientSecret'?")]),
    ("unknown_cred_column.csv", [(1, "cred.ClientSecert", "did you mean 'ClientSecret'?")]),
    ("inline_secret.csv", [(2, "cred.ClientSecret", "--allow-inline-secrets")]),
    ("env_unset.csv", [(2, "cred.ClientSecret", UNSET_ENV)]),
    ("file_missing.csv", [(2, "cred.ClientSecret", "no-such-file.txt")]),
    (
        "wrong_types.json",
        [
            (2, "key", "must be a string, got int"),
            (3, "start", "must be true or false, got 'maybe'"),
        ],
    ),
    ("latin1.csv", [(3, None, "not valid UTF-8")]),
    ("syntax_error.json", [(4, None, "not valid JSON")]),
    ("jsonl_mixed.jsonl", [(3, None, "not valid JSON"), (5, "template", "is required")]),
    ("control_chars.json", [(1, "displayName", "control characters")]),
    ("long_field.json", [(1, "template", "4097 characters")]),
    (
        "traversal.csv",
        [
            (2, "syncTemplate", "not a synchronization template id"),
            (3, "syncTemplate", "not a synchronization template id"),
            (4, "syncTemplate", "not a synchronization template id"),
            (5, "syncTemplate", "not a synchronization template id"),
        ],
    ),
]


@pytest.mark.parametrize(("name", "expected"), BAD, ids=[b[0] for b in BAD])
def test_bad_manifest_reports_each_problem_with_file_line_field(
    name: str, expected: list[tuple[int, str | None, str]]
) -> None:
    """Each bad corpus manifest yields exactly its problems, each naming file, line and field."""
    path = CORPUS / name
    problems = problems_of(path)
    assert [(p.line, p.field) for p in problems] == [(e[0], e[1]) for e in expected], problems
    for p, (_line, _field, fragment) in zip(problems, expected, strict=True):
        assert p.file == str(path)
        assert fragment in p.message, p
        text = str(p)
        assert text.startswith(f"{path}:{p.line}: ")
        if p.field is not None:
            assert repr(p.field) in text


# iter_instances streams what validate() accepted: whole-file checks (duplicate keys) and the
# resolution of references (at step time) are validate's, so those files are left out here
STREAM_BAD = [
    b[0] for b in BAD if b[0] not in ("duplicate_key.csv", "env_unset.csv", "file_missing.csv")
]


@pytest.mark.parametrize("name", STREAM_BAD)
def test_bad_manifest_fails_iter_instances_too(name: str) -> None:
    """Streaming a manifest with a per-record problem raises ManifestError, never skips it."""
    with pytest.raises(ManifestError) as info:
        list(iter_instances(CORPUS / name))
    assert info.value.problems


def test_inline_secret_problem_never_shows_the_value() -> None:
    """The inline-secret problem names the field but not the secret value it refuses."""
    with pytest.raises(ManifestError) as info:
        summary = validate(CORPUS / "inline_secret.csv")
        raise ManifestError(summary.problems)
    assert "hunter2" not in str(info.value)


def test_inline_secret_accepted_with_opt_in() -> None:
    """With allow_inline_secrets the same manifest validates and the literal is resolvable."""
    summary = validate(CORPUS / "inline_secret.csv", allow_inline_secrets=True)
    assert summary.problems == [] and summary.count == 1
    (inst,) = iter_instances(CORPUS / "inline_secret.csv", allow_inline_secrets=True)
    (ref,) = inst.credentials
    assert ref.scheme == "literal"
    assert ref.resolve().reveal() == "hunter2-inline-value"


@pytest.mark.parametrize("name", ["empty.csv", "blank.jsonl"])
def test_empty_manifest_is_one_clear_error(name: str) -> None:
    """An empty (or whitespace-only) manifest raises one ManifestError saying it is empty."""
    with pytest.raises(ManifestError) as info:
        validate(CORPUS / name)
    (p,) = info.value.problems
    assert p.file == str(CORPUS / name)
    assert "empty" in p.message


def test_utf8_bom_is_not_an_error() -> None:
    """A UTF-8 BOM is skipped: the first column is 'key', not '\\ufeffkey'."""
    summary = validate(CORPUS / "bom.csv")
    assert summary.problems == []
    (inst,) = iter_instances(CORPUS / "bom.csv")
    assert (inst.key, inst.display_name, inst.line) == ("app-1", "Caf\u00e9", 2)


def test_latin1_error_names_offset_and_asks_for_utf8() -> None:
    """A latin-1 byte is reported with its byte value and a hint to save as UTF-8."""
    (p,) = problems_of(CORPUS / "latin1.csv")
    assert "0xe9" in p.message and "UTF-8" in p.message


@pytest.mark.parametrize(
    ("encoding", "line", "why"),
    [
        ("utf-16", 1, "UTF-16 byte-order mark"),
        ("utf-16-le", 1, "NUL bytes (the first at offset 1)"),
        ("utf-16-be", 1, "NUL bytes (the first at offset 0)"),
        ("utf-32", 1, "UTF-32 byte-order mark"),
    ],
)
def test_utf16_and_utf32_are_refused_clearly(
    tmp_path: Path, encoding: str, line: int, why: str
) -> None:
    """A manifest saved as UTF-16/UTF-32 ("Unicode" in spreadsheets), with or without a BOM,
    is one clear problem naming the encoding issue and asking for UTF-8; ASCII-only text does
    not slip through as columns full of NUL characters."""
    path = tmp_path / "m.csv"
    path.write_bytes("key,displayName,template\napp-1,App,AWS\n".encode(encoding))
    (p,) = problems_of(path)
    assert p.line == line and why in p.message and "save it as UTF-8" in p.message


def test_huge_csv_field_is_one_located_problem(tmp_path: Path) -> None:
    """A CSV field past the csv module's limit (a never-closed quote, or a pasted blob) is
    reported on its line as such, not as a crash or a vague quoting error."""
    path = tmp_path / "m.csv"
    path.write_text(
        "key,displayName,template,start,validate\n"
        "app-1,App 1,T,false,false\n"
        f"app-2,{'A' * 200_000},T,false,false\n"
    )
    (p,) = problems_of(path)
    assert p.line == 3 and "longer than 131072 characters" in p.message


def test_huge_json_field_is_refused_with_its_length(tmp_path: Path) -> None:
    """A 10-million-character display name in JSONL is one problem giving its length."""
    path = tmp_path / "m.jsonl"
    path.write_text(
        '{"key": "a", "displayName": "'
        + "A" * 10_000_000
        + '", "template": "T", "start": false, "validate": false}\n'
    )
    (p,) = problems_of(path)
    assert (p.line, p.field) == (1, "displayName") and "10000000 characters" in p.message


def test_json_object_form_gives_element_lines() -> None:
    """{"instances": [...]} gives each instance the line its object starts on."""
    insts = list(iter_instances(CORPUS / "instances_object.json"))
    assert [(i.key, i.line) for i in insts] == [("app-1", 5), ("app-2", 8)]
    assert validate(CORPUS / "instances_object.json").templates == {
        "AWS Single-Account Access": Lines(first=[5, 8], count=2)
    }


def test_json_bare_list_gives_element_lines() -> None:
    """A bare JSON list gives each element its line, also with two on one line and blank lines."""
    insts = list(iter_instances(CORPUS / "bare_list.json"))
    assert [(i.key, i.line) for i in insts] == [
        ("app-1", 2),
        ("app-2", 3),
        ("app-3", 3),
        ("app-4", 6),
    ]


def test_jsonl_reports_all_problems_not_only_the_first() -> None:
    """The good lines around bad ones still count, and every bad line is reported."""
    summary = validate(CORPUS / "jsonl_mixed.jsonl")
    assert summary.count == 4
    assert [p.line for p in summary.problems] == [3, 5]


@pytest.mark.parametrize("name", ["odata_names.csv", "odata_names.jsonl"])
def test_display_names_with_odata_metacharacters_and_unicode_are_valid(name: str) -> None:
    """Quotes, &, /, %, parentheses, emoji and U+2028 in display names are accepted verbatim."""
    summary = validate(CORPUS / name)
    assert summary.problems == []
    names = [i.display_name for i in iter_instances(CORPUS / name)]
    assert "O'Brien & Co / 50% (test)" in names
    assert len(names) == summary.count >= 3
    if name.endswith(".jsonl"):
        assert names == [
            "O'Brien & Co / 50% (test)",
            "日本語アプリ 🚀🎉",
            "line\u2028separator",
            "it''s \"fine\" {x}",
        ]
    else:
        assert any("🚀" in n for n in names)


def test_wrong_flag_type_does_not_add_a_spurious_credentials_problem() -> None:
    """start: "maybe" is one problem, not also "credentials are required"."""
    fields = [p.field for p in problems_of(CORPUS / "wrong_types.json")]
    assert "credentials" not in fields


@pytest.mark.parametrize(
    "bad", ["../x", "..", "a/b", "/etc/passwd", "x/../../y", "%2e%2e%2f", "a\\b", "a b", ".hidden"]
)
def test_sync_template_rejects_path_like_values(tmp_path: Path, bad: str) -> None:
    """A syncTemplate that could reshape a URL path is rejected with field syncTemplate."""
    path = tmp_path / "m.json"
    path.write_text(
        json.dumps(
            [
                {
                    "key": "k",
                    "displayName": "d",
                    "template": "t",
                    "syncTemplate": bad,
                    "start": False,
                    "validate": False,
                }
            ]
        )
    )
    assert [(p.line, p.field) for p in problems_of(path)] == [(1, "syncTemplate")]


def test_c1_control_characters_are_rejected(tmp_path: Path) -> None:
    """A C1 control character (U+0085 NEL) in a display name is a control character too."""
    path = tmp_path / "m.json"
    path.write_text(
        json.dumps(
            [
                {
                    "key": "k",
                    "displayName": "a\u0085b",
                    "template": "t",
                    "start": False,
                    "validate": False,
                }
            ]
        )
    )
    assert [(p.line, p.field) for p in problems_of(path)] == [(1, "displayName")]


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("deep.json", b"[" * 100_000),
        ("deep.jsonl", b'{"a":' * 100_000 + b"\n"),
        ("bigint.json", b"[" + b"9" * 5000 + b"]"),
        ("bigint.jsonl", b"9" * 5000 + b"\n"),
    ],
    ids=["deep.json", "deep.jsonl", "bigint.json", "bigint.jsonl"],
)
def test_json_parser_limits_are_manifest_errors(tmp_path: Path, name: str, data: bytes) -> None:
    """Deep nesting or a 5000-digit number is a located ManifestError, not a crash."""
    path = tmp_path / name
    path.write_bytes(data)
    problems = problems_of(path)
    assert problems and all(p.line == 1 for p in problems)


@pytest.mark.parametrize(
    "text",
    [
        # the "instances" array is found by walking the top-level object, not by a regex
        '{"instances": [], "instances": [\n{"key": "a"},\n{"key": "b"}]}',
        '{"\\u0069nstances": [\n{"key": "a"},\n{"key": "b"}]}',
        '{"description": {"instances": [1]},\n "instances": [\n{"key": "a"},\n{"key": "b"}]}',
        '{"description": "\\"instances\\": [", "instances": [\n{"key": "a"},\n{"key": "b"}]}',
    ],
)
def test_json_instances_array_is_located_exactly(tmp_path: Path, text: str) -> None:
    """Repeated, escaped or nested "instances" keys neither crash nor shift line numbers."""
    path = tmp_path / "m.json"
    path.write_text(text)
    problems = problems_of(path)
    # both instances lack displayName and template: the lines are those of their objects
    last = text.count("\n") + 1
    assert {p.line for p in problems} == {last - 1, last}


def test_unknown_format_is_a_manifest_error(tmp_path: Path) -> None:
    """A file that is not .csv/.tsv/.json/.jsonl is refused with a ManifestError."""
    path = tmp_path / "m.xlsx"
    path.write_text("key\n")
    with pytest.raises(ManifestError, match="unknown manifest format"):
        validate(path)


# ---------------------------------------------------------------- scale


def test_100k_rows_with_one_bad_row_at_the_end(tmp_path: Path) -> None:
    """100,000 good rows and one bad last row: exactly that one problem, with its line."""
    path = tmp_path / "big.csv"
    rows = [f"app-{i},App {i},Template {i % 7},false,false\n" for i in range(100_000)]
    rows.append("app-bad,,Template 1,false,false\n")
    path.write_text("key,displayName,template,start,validate\n" + "".join(rows))
    t0 = time.monotonic()
    summary = validate(path)
    elapsed = time.monotonic() - t0
    assert summary.count == 100_000
    assert [(p.line, p.field, p.key) for p in summary.problems] == [
        (100_002, "displayName", "app-bad")
    ]
    assert len(summary.templates) == 7
    assert elapsed < 5, f"validate took {elapsed:.1f}s"


@pytest.mark.anyio
async def test_run_of_100k_rows_with_one_bad_row_sends_nothing(tmp_path: Path) -> None:
    """`run` on 100,000 good rows and one bad last row refuses the manifest with that row's
    line, before any request reaches Graph (not even a token) and without writing a ledger."""
    from bulkprov.mockgraph import MockGraph, MockSettings

    from .enginekit import AWS, run_engine

    path = tmp_path / "big.csv"
    rows = [f"acct-{i},AWS {i},{AWS},false,false\n" for i in range(100_000)]
    rows.append(f"acct-bad,,{AWS},false,false\n")
    path.write_text("key,displayName,template,start,validate\n" + "".join(rows))
    async with MockGraph(MockSettings.quiet(time_scale=0.01)) as mock:
        with pytest.raises(ManifestError) as info:
            await run_engine(mock, path, tmp_path / "l.jsonl")
        stats = mock.stats()
    assert [(p.line, p.field, p.key) for p in info.value.problems] == [
        (100_002, "displayName", "acct-bad")
    ]
    assert stats["requests"] == 0 and stats["tokensIssued"] == 0
    assert not (tmp_path / "l.jsonl").exists()


# ---------------------------------------------------------------- streaming and credentials


def test_iter_instances_streams_in_order_with_lines() -> None:
    """iter_instances is a lazy generator yielding each instance in file order with its line."""
    it = iter_instances(CORPUS / "with_refs.csv")
    first = next(it)
    assert isinstance(first, Instance)
    assert (first.key, first.line, first.where) == ("app-1", 2, f"{CORPUS / 'with_refs.csv'}:2")
    rest = list(it)
    assert [(i.key, i.line) for i in rest] == [("app-2", 3)]


def test_credentials_resolve_env_and_file_relative_to_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """env: reads the variable at resolve time; file: is relative to the manifest's directory."""
    monkeypatch.chdir(tmp_path)  # not the manifest's directory
    app1, app2 = iter_instances(CORPUS / "with_refs.csv")
    refs1 = {r.key: r for r in app1.credentials}
    refs2 = {r.key: r for r in app2.credentials}
    assert refs1["ClientSecret"].resolve().reveal() == "s3cret-from-env"
    assert refs1["BaseAddress"].resolve().reveal() == "https://example.test/scim"
    assert refs2["ClientSecret"].resolve().reveal() == "s3cret-from-file"
    assert refs2["BaseAddress"].scheme == "literal"
    assert refs2["BaseAddress"].resolve().reveal() == "https://b.example.test"
    monkeypatch.setenv(SECRET_ENV, "rotated")
    assert refs1["ClientSecret"].resolve().reveal() == "rotated"
    monkeypatch.delenv(SECRET_ENV)
    with pytest.raises(LookupError, match=SECRET_ENV):
        refs1["ClientSecret"].resolve()


def test_file_reference_is_checked_against_the_manifest_directory(tmp_path: Path) -> None:
    """A manifest copied elsewhere without its secret file fails validation at that ref."""
    shutil.copy(CORPUS / "with_refs.csv", tmp_path / "m.csv")
    problems = validate(tmp_path / "m.csv").problems
    assert [(p.line, p.field) for p in problems] == [(3, "cred.ClientSecret")]
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "app2.txt").write_text("x\n")
    assert validate(tmp_path / "m.csv").problems == []


def test_secret_repr_and_str_hide_the_value() -> None:
    """Secret's repr, str and format never contain the value; reveal() returns it."""
    s = Secret("p@ssw0rd-value")
    for shown in (repr(s), str(s), f"{s}", f"{s!r}", repr([s]), repr({"k": s})):
        assert "p@ssw0rd" not in shown
    assert s.reveal() == "p@ssw0rd-value"


def test_credential_ref_repr_hides_a_literal_value() -> None:
    """CredentialRef's repr and describe() never show a literal's value (nor an Instance's)."""
    ref = CredentialRef("ClientSecret", "literal", "hunter2-literal", Path("."))
    assert "hunter2" not in repr(ref)
    assert "hunter2" not in ref.describe()
    (inst,) = iter_instances(CORPUS / "inline_secret.csv", allow_inline_secrets=True)
    assert "hunter2" not in repr(inst)
    env = CredentialRef("ClientSecret", "env", "MY_VAR")
    assert env.describe() == "ClientSecret=env:MY_VAR"


# ---------------------------------------------------------------- CLI


@pytest.mark.parametrize("name", ["duplicate_key.csv", "jsonl_mixed.jsonl", "empty.csv"])
def test_cli_plan_offline_bad_manifest_exits_2(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`bulkprov plan BAD --offline` exits 2 and prints every problem to stderr."""
    path = CORPUS / name
    code = cli.main(["plan", str(path), "--offline"])
    out, err = capsys.readouterr()
    assert code == 2
    assert "error" in err and str(path) in err
    for p in problems_of(path):
        assert str(p) in err
    assert "valid" not in out


def test_cli_run_bad_manifest_exits_2_and_writes_no_ledger(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`bulkprov run BAD --ledger X --mock` exits 2, prints the problems, and creates no ledger."""
    ledger = tmp_path / "sub" / "ledger.jsonl"
    path = CORPUS / "jsonl_mixed.jsonl"
    code = cli.main(["run", str(path), "--ledger", str(ledger), "--mock"])
    _out, err = capsys.readouterr()
    assert code == 2
    assert f"{path}:3" in err and f"{path}:5" in err
    assert not ledger.exists() and not ledger.parent.exists()


def test_cli_plan_offline_good_manifest_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    """A valid manifest passes `plan --offline` with exit 0 and a count on stdout."""
    code = cli.main(["plan", str(CORPUS / "bare_list.json"), "--offline"])
    out, _err = capsys.readouterr()
    assert code == 0
    assert "4 instances" in out


# ---------------------------------------------------------------- properties

KEY_FIRST = string.ascii_letters + string.digits
KEY_REST = KEY_FIRST + "._:@-"


def _clean(s: str) -> bool:
    return bool(s) and s == s.strip()


keys = st.builds(lambda a, b: a + b, st.sampled_from(KEY_FIRST), st.text(KEY_REST, max_size=20))
names = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=40).filter(
    _clean
)
sync_templates = st.none() | st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_\-]{0,15}\Z")


def spelled(value: bool) -> st.SearchStrategy[object]:
    """The bool itself, or any accepted spelling of it in any case ("Yes", "0", "FALSE")."""
    words = sorted(TRUE if value else FALSE)
    return st.just(value) | st.sampled_from(words).flatmap(
        lambda w: st.sampled_from([w, w.upper(), w.capitalize(), f" {w} "])
    )


@st.composite
def instances(draw: st.DrawFn) -> list[dict[str, Any]]:
    ks = draw(st.lists(keys, min_size=1, max_size=8, unique=True))
    out = []
    for k in ks:
        start, valid = draw(st.booleans()), draw(st.booleans())
        creds: dict[str, str] = {}
        if start or valid or draw(st.booleans()):
            creds["ClientSecret"] = f"env:{SECRET_ENV}"
            if draw(st.booleans()):
                creds[draw(st.sampled_from(sorted(PLAIN_KEYS)))] = "literal:" + draw(names)
        out.append(
            {
                "key": k,
                "displayName": draw(names),
                "template": draw(names),
                "syncTemplate": draw(sync_templates),
                "start": start,
                "validate": valid,
                "profile": draw(st.none() | names),
                "credentials": creds,
                "spelled": {"start": draw(spelled(start)), "validate": draw(spelled(valid))},
            }
        )
    return out


def _write(path: Path, fmt: str, recs: list[dict[str, Any]]) -> None:
    if fmt == "csv":
        cred_cols = sorted({c for r in recs for c in r["credentials"]})
        cols = ["key", "displayName", "template", "syncTemplate", "start", "validate", "profile"]
        with path.open("w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(cols + [f"cred.{c}" for c in cred_cols])
            for r in recs:
                row = [str(r["spelled"].get(c, r[c]) if r[c] is not None else "") for c in cols]
                w.writerow(row + [r["credentials"].get(c, "") for c in cred_cols])
    else:
        clean = [
            {
                k: r["spelled"].get(k, v)
                for k, v in r.items()
                if v is not None and v != {} and k != "spelled"
            }
            for r in recs
        ]
        if fmt == "json":
            path.write_text(
                json.dumps({"instances": clean}, ensure_ascii=False, indent=1), encoding="utf-8"
            )
        else:
            path.write_text(
                "\n".join(json.dumps(r, ensure_ascii=False) for r in clean) + "\n", encoding="utf-8"
            )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(recs=instances(), fmt=st.sampled_from(["csv", "json", "jsonl"]))
def test_property_valid_instances_round_trip(
    recs: list[dict[str, Any]], fmt: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Any valid instances written as CSV/JSON/JSONL validate clean and stream back unchanged."""
    path = tmp_path_factory.mktemp("prop") / f"m.{fmt}"
    _write(path, fmt, recs)
    with mock.patch.dict(os.environ, {SECRET_ENV: "value"}):
        summary = validate(path)
        assert summary.problems == []
        assert summary.count == len(recs)
        got = list(iter_instances(path))
    assert [
        (i.key, i.display_name, i.template, i.sync_template, i.start, i.validate, i.profile)
        for i in got
    ] == [
        (
            r["key"],
            r["displayName"],
            r["template"],
            r["syncTemplate"],
            r["start"],
            r["validate"],
            r["profile"],
        )
        for r in recs
    ]
    for inst, r in zip(got, recs, strict=True):
        want = {k: tuple(v.partition(":")) for k, v in r["credentials"].items()}
        assert {c.key: (c.scheme, ":", c.target) for c in inst.credentials} == want
    lines = [i.line for i in got]
    assert lines == sorted(lines) and len(set(lines)) == len(lines)
    if fmt != "json":
        assert lines == list(
            range(2 if fmt == "csv" else 1, len(recs) + (2 if fmt == "csv" else 1))
        )


fragments = st.sampled_from(
    [
        b"key,displayName,template\n",
        b'"',
        b",",
        b"\n",
        b"\r",
        b"\x00",
        b"\xff",
        b"\xef\xbb\xbf",
        b"{",
        b"}",
        b"[",
        b"]",
        b":",
        b'"instances"',
        b'"key"',
        b'"k1"',
        b"12",
        b"null",
        b"true",
        b'"credentials"',
        b'{"ClientSecret": "env:X"}',
        b"cred.ClientSecret",
        b"\\u0000",
        b"\xc3",
    ]
)
manifest_bytes = st.one_of(
    st.binary(max_size=300),
    st.lists(fragments | st.binary(max_size=4), max_size=40).map(b"".join),
    st.text(max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass")),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=manifest_bytes, suffix=st.sampled_from([".csv", ".tsv", ".json", ".jsonl"]))
def test_property_arbitrary_bytes_never_crash(
    data: bytes, suffix: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Any bytes give a summary or a ManifestError; a clean summary means iter_instances works."""
    path = tmp_path_factory.mktemp("fuzz") / f"m{suffix}"
    path.write_bytes(data)
    try:
        summary = validate(path)
    except ManifestError as err:
        assert err.problems and all(p.file == str(path) for p in err.problems)
        return
    assert isinstance(summary, ManifestSummary)
    assert all(p.file == str(path) for p in summary.problems)
    if not summary.problems:
        assert len(list(iter_instances(path))) == summary.count
