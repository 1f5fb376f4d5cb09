"""The redactor: encoded forms of a secret (JSON, percent, base64 alone or inside a blob),
mask-then-cut, and the places that cut error text for the ledger, logs and status output."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
import structlog
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bulkprov.errors import GraphError
from bulkprov.ledger import Ledger
from bulkprov.ledger import Redactor as FromLedger
from bulkprov.redact import Redactor, shorten

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def _lower_hex(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)


def _dotnet(value: str) -> str:
    """JSON as System.Text.Json's default encoder writes it: HTML-sensitive characters and
    non-ASCII as upper-case \\uXXXX."""
    out = []
    for ch in value:
        if ch == "\\":
            out.append("\\\\")
        elif ch in "\b\f\n\r\t":
            out.append(json.dumps(ch)[1:-1])
        elif ch in "\"&'+<>`" or ord(ch) < 0x20 or ord(ch) > 0x7E:
            units = ch.encode("utf-16-be")
            out.extend(f"\\u{units[i]:02X}{units[i + 1]:02X}" for i in range(0, len(units), 2))
        else:
            out.append(ch)
    return "".join(out)


ENCODERS: dict[str, Any] = {
    "raw": lambda s: s,
    "json": lambda s: json.dumps(s)[1:-1],
    "json-utf8": lambda s: json.dumps(s, ensure_ascii=False)[1:-1],
    "json-slash": lambda s: json.dumps(s)[1:-1].replace("/", "\\/"),
    "json-dotnet": _dotnet,
    "quote": lambda s: quote(s, safe=""),
    "quote-path": quote,
    "quote-plus": quote_plus,
    "quote-lower": lambda s: _lower_hex(quote(s, safe="")),
    "b64": lambda s: base64.b64encode(s.encode()).decode(),
    "b64-nopad": lambda s: base64.b64encode(s.encode()).decode().rstrip("="),
    "b64url": lambda s: base64.urlsafe_b64encode(s.encode()).decode(),
    "b64url-nopad": lambda s: base64.urlsafe_b64encode(s.encode()).decode().rstrip("="),
}
SECRET_TEXT = st.text(
    st.characters(exclude_categories=("Cs",), exclude_characters="*"), min_size=4, max_size=20
)
CONTEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="*"), max_size=20)


def both(secrets: list[str]) -> tuple[Redactor, Redactor]:
    """A redactor that searches form by form, and one that looks windows up."""
    few, many = Redactor(), Redactor()
    many.FEW = 0
    for v in secrets:
        few.add(v)
        many.add(v)
    return few, many


@settings(max_examples=400, deadline=None)
@given(
    secret=SECRET_TEXT,
    how=st.sampled_from(sorted(ENCODERS)),
    before=CONTEXT,
    after=CONTEXT,
    others=st.lists(SECRET_TEXT, max_size=3),
)
def test_no_encoded_form_of_a_secret_is_left(
    secret: str, how: str, before: str, after: str, others: list[str]
) -> None:
    """Whatever the secret and however it is encoded (JSON escapes, percent-encoding, base64
    of either alphabet, padded or not), neither it nor that form is left in the masked text,
    and both searches mask the same text."""
    encoded = ENCODERS[how](secret)
    text = f"{before}{encoded}{after}"
    few, many = both([secret, *others])
    masked = few.text(text)
    assert masked == many.text(text)
    assert encoded not in masked
    assert secret not in masked


def _blob_case(secret: str, prefix: bytes, suffix: bytes, how: str) -> tuple[str, int, int]:
    """A text holding base64(prefix + secret + suffix), encoded ``how``, and the range of its
    characters that carry any bit of the secret."""
    data = secret.encode()
    blob = base64.b64encode(prefix + data + suffix).decode()
    if how == "url":
        blob = blob.replace("+", "-").replace("/", "_")
    lo = 8 * len(prefix) // 6
    hi = (8 * (len(prefix) + len(data)) - 1) // 6  # inclusive
    escape = {
        "std": {},
        "url": {},
        "json": {"/": "\\/"},
        "percent": {"+": "%2B", "/": "%2F", "=": "%3D"},
    }[how]
    starts, pos = [], 0
    pieces = []
    for ch in blob:
        starts.append(pos)
        piece = escape.get(ch, ch)
        pieces.append(piece)
        pos += len(piece)
    head = "Authorization: Basic "
    start = len(head) + starts[lo]
    end = len(head) + starts[hi] + len(pieces[hi])
    return head + "".join(pieces) + " (rejected)", start, end


@settings(max_examples=400, deadline=None)
@given(
    secret=st.text(st.characters(exclude_categories=("Cs",)), min_size=5, max_size=16),
    prefix=st.binary(max_size=8),
    suffix=st.binary(max_size=8),
    how=st.sampled_from(["std", "url", "json", "percent"]),
)
@example(secret="\n:::: ", prefix=b"a", suffix=b"\xf2", how="std")  # one core, two alignments
def test_a_secret_inside_a_base64_blob_leaves_no_bit_of_it(
    secret: str, prefix: bytes, suffix: bytes, how: str
) -> None:
    """A secret of 5 bytes or more inside a larger base64 blob (HTTP Basic ``user:secret``),
    at any byte alignment, in either alphabet, JSON-escaped or percent-encoded: every
    character that carries a bit of it is masked, and both searches agree."""
    text, start, end = _blob_case(secret, prefix, suffix, how)
    few, many = both([secret])
    assert few.text(text) == many.text(text)
    covered = set()
    for s, e in few._spans(text):
        covered.update(range(s, e))
    assert set(range(start, end)) <= covered, (text, start, end)


def test_basic_auth_header_is_masked_from_the_user_name_on() -> None:
    """HTTP Basic ``user:secret`` as Graph may echo it: the user name's characters stay, the
    rest is masked, and nothing of the secret can be decoded from what is left."""
    r = Redactor()
    r.add(SECRET)
    blob = base64.b64encode(f"user:{SECRET}".encode()).decode()
    assert r.text(f"Basic {blob}") == "Basic dXNlcj*****"


def test_encoded_forms_are_released_with_the_secret() -> None:
    """A secret's encoded forms are masked while it is registered and shown again once its
    last registration is released; a form two secrets share stays masked while one holds it."""
    r = Redactor()
    r.add(SECRET)
    r.add(SECRET)
    forms = [
        quote(SECRET, safe=""),
        base64.b64encode(SECRET.encode()).decode(),
        SECRET.replace("/", "\\/"),
    ]
    text = " ".join(forms)
    assert r.text(text).split() == ["*****"] * 3
    r.discard(SECRET)
    assert r.text(text).split() == ["*****"] * 3
    r.discard(SECRET)
    assert r.text(text) == text and r.held == 0
    assert not r._forms and not r._by_length and not r._heads and not r._widen
    a, b = "Hunter2/abc", "Hunter2%2Fabc"  # b is a's percent-encoded form
    r.add(a)
    r.add(b)
    r.discard(b)
    assert r.text("x Hunter2%2Fabc") == "x *****"


def test_ledger_module_still_exports_the_redactor() -> None:
    """``from bulkprov.ledger import Redactor`` is the redactor of bulkprov.redact."""
    assert FromLedger is Redactor


def test_shorten_masks_a_secret_that_straddles_the_cut() -> None:
    """Cutting a message masks it whole first: a secret that straddles the limit leaves none
    of its characters, only the mask; the cut ends on a word where one is near, marked by an
    ellipsis."""
    r = Redactor()
    r.add(SECRET)
    for limit in (200, 300, 500):
        text = "x" * (limit - 10) + SECRET + " tail" * 10
        got = r.shorten(text, limit)
        assert got == "x" * (limit - 10) + "*****\u2026" and len(got) <= limit
        assert SECRET[:5] not in got
    assert shorten("a" * 50, 10) == "a" * 9 + "\u2026"  # without a redactor: only cut
    assert r.shorten("short", 300) == "short"


class _FailingGraph:
    """A Graph whose reads fail with an error that echoes a secret past character 280."""

    def __init__(self, message: str) -> None:
        self.message = message

    def _error(self) -> GraphError:
        return GraphError(400, "BadRequest", self.message, request_id="r-1")

    async def provisioning_logs(self, *, since: str) -> list[Any]:
        raise self._error()

    async def job(self, sp_id: str, job_id: str) -> Any:
        raise self._error()

    async def restart_job(self, sp_id: str, job_id: str, scope: str) -> None:
        raise self._error()


def _echo() -> str:
    return "the target echoed: " + ("," + SECRET) * 20  # wherever the cut falls, it is in one


def _partial(text: str) -> bool:
    """Whether ``text`` holds 4 or more consecutive characters of the secret."""
    return any(SECRET[i : i + 4] in text for i in range(len(SECRET) - 3))


@pytest.mark.anyio
async def test_log_collector_masks_before_cutting() -> None:
    """The provisioning-log sweep's error, recorded in the ledger for every waiting job, holds
    no part of a secret that straddles its 300-character cut."""
    import anyio

    from bulkprov.run import LogCollector

    red = Redactor()
    red.add(SECRET)
    collector = LogCollector(
        _FailingGraph(_echo()),
        interval=0.0,
        time_scale=0.0,  # type: ignore[arg-type]
        redactor=red,
    )
    got: dict[str, Any] = {}
    async with anyio.create_task_group() as tg:
        tg.start_soon(collector.run)
        got = await collector.summary("job-1", "2024-01-01T00:00:00Z")
        collector.close()
    assert "*****" in got["error"] and not _partial(got["error"])


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_monitor_masks_job_read_and_restart_errors_before_cutting(tmp_path: Path) -> None:
    """``bulkprov monitor``'s row errors (shown by status output and its JSON), its ledger
    record and its log line of a failed restart hold no part of a secret that straddles the
    cut."""
    from bulkprov.ledger import Replay
    from bulkprov.monitor import Monitor, MonitorSettings

    red = Redactor()
    red.add(SECRET)
    ledger = Ledger(tmp_path / "l.jsonl", redactor=red)
    ledger.open(manifest=None, graph="https://g.test/v1.0", tenant="t")
    m = Monitor(
        _FailingGraph(_echo()),
        Replay(None, {}, 0, False),  # type: ignore[arg-type]
        MonitorSettings(restart=True),
        ledger=ledger,
    )
    row: dict[str, Any] = {"key": "a", "servicePrincipalId": "sp", "jobId": "j"}
    with structlog.testing.capture_logs() as logs:
        await m._read(row)
        await m._restart(row)
    ledger.close()
    assert "*****" in row["error"] and not _partial(row["error"])
    assert "*****" in row["restartError"] and not _partial(row["restartError"])
    assert not _partial((tmp_path / "l.jsonl").read_text())
    failed = [e for e in logs if e["event"] == "restart_failed"]
    assert failed and not _partial(failed[0]["error"])
