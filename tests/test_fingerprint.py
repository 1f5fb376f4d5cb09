"""Credential fingerprints: keyed with a key kept outside the ledger, so the ledger alone cannot
test guesses; stable for one user's runs; named by a key id; older ledgers still read."""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
import threading
from pathlib import Path

import orjson
import pytest

from bulkprov import ledger as ledger_mod
from bulkprov.errors import LedgerError
from bulkprov.ledger import Ledger, fingerprint_key, fingerprint_key_path, key_id

GRAPH = "https://graph.example.test/v1.0"
TENANT = "11111111-2222-3333-4444-555555555555"
GUESSES = ["password", "123456", "hunter2", "letmein", "Summer2024!", "secret"]


def opened(path: Path) -> Ledger:
    led = Ledger(path)
    led.open(manifest="m.csv", graph=GRAPH, tenant=TENANT)
    return led


def header(path: Path) -> dict[str, object]:
    return dict(orjson.loads(path.read_bytes().splitlines()[0]))


def test_the_ledger_alone_cannot_test_a_guess(tmp_path: Path) -> None:
    """Holding the ledger (its salt included) but not the user's key, no guess reproduces a
    fingerprint: neither the salt-keyed HMAC older ledgers used nor any salt-only variant."""
    path = tmp_path / "l.jsonl"
    led = opened(path)
    fp = led.fingerprint("SecretToken", "hunter2")
    led.close()
    salt = bytes.fromhex(str(header(path)["salt"]))
    assert fp.startswith("k1:") and len(fp.split(":")[2]) == 16
    mac = fp.rsplit(":", 1)[1]
    for guess in GUESSES:
        message = f"SecretToken\x00{guess}".encode()
        for k, m in (
            (salt, message),
            (salt, salt + message),
            (b"", salt + message),
            (salt, b"SecretToken" + guess.encode()),
        ):
            assert hmac.new(k, m, hashlib.sha256).hexdigest()[:16] != mac


def test_same_value_same_fingerprint_with_the_same_key(tmp_path: Path) -> None:
    """Two Ledger objects on one ledger with one key give one value the same fingerprint, and
    another value another one; compare_fingerprint says same and changed."""
    path = tmp_path / "l.jsonl"
    first = opened(path)
    fp = first.fingerprint("SecretToken", "s3cret-value")
    first.close()
    second = opened(path)
    assert second.fingerprint("SecretToken", "s3cret-value") == fp
    assert second.fingerprint("SecretToken", "s3cret-valuf") != fp
    assert second.fingerprint("ClientSecret", "s3cret-value") != fp
    assert second.compare_fingerprint(fp, "SecretToken", "s3cret-value") == "same"
    assert second.compare_fingerprint(fp, "SecretToken", "another") == "changed"
    second.close()
    assert header(path)["fingerprintKey"] == fp.rsplit(":", 1)[0]


def test_another_key_gives_another_id_and_cannot_compare(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With another fingerprint key (another user, another machine) the same value gets a
    different fingerprint and key id, and a fingerprint made with the first key is reported
    as made with another key rather than as a changed secret."""
    path = tmp_path / "l.jsonl"
    led = opened(path)
    fp = led.fingerprint("SecretToken", "s3cret-value")
    led.close()
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "other-user"))
    other = opened(path)
    fp2 = other.fingerprint("SecretToken", "s3cret-value")
    other.close()
    assert fp2 != fp and fp2.rsplit(":", 1)[0] != fp.rsplit(":", 1)[0]
    assert other.compare_fingerprint(fp, "SecretToken", "s3cret-value") == "other-key"


def test_an_older_ledgers_bare_fingerprints_are_still_read(tmp_path: Path) -> None:
    """A ledger written before key ids (no fingerprintKey in its header, bare 16-hex salted
    fingerprints) replays, resumes, and its fingerprints are compared by their own scheme."""
    path = tmp_path / "old.jsonl"
    salt = bytes.fromhex("00112233445566778899aabbccddeeff")
    bare = hmac.new(salt, b"SecretToken\x00hunter2", hashlib.sha256).hexdigest()[:16]
    lines = [
        {
            "type": "header",
            "version": 1,
            "created": "2024-01-01T00:00:00.000Z",
            "manifest": "m.csv",
            "graph": GRAPH,
            "tenant": TENANT,
            "salt": salt.hex(),
        },
        {
            "type": "step",
            "key": "a",
            "step": "secrets",
            "event": "done",
            "data": {"keys": ["SecretToken"], "fingerprints": {"SecretToken": bare}},
        },
    ]
    path.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    assert "secrets" in ledger_mod.read(path).instances["a"].done
    led = opened(path)
    assert led.compare_fingerprint(bare, "SecretToken", "hunter2") == "same"
    assert led.compare_fingerprint(bare, "SecretToken", "hunter3") == "changed"
    assert led.fingerprint("SecretToken", "hunter2").startswith("k1:")
    led.close()


def test_key_file_is_private_and_made_once(tmp_path: Path) -> None:
    """The key goes to $XDG_STATE_HOME/bulkprov/fingerprint.key, mode 600 in a directory of
    mode 700; processes (here threads) that start together all get the one key."""
    path = fingerprint_key_path()
    assert path == Path(os.environ["XDG_STATE_HOME"]) / "bulkprov" / "fingerprint.key"
    got: list[bytes] = []
    threads = [threading.Thread(target=lambda: got.append(fingerprint_key())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(got)) == 1 and len(got[0]) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["fingerprint.key"]  # no temp file left
    assert key_id(got[0]) == "k1:" + hashlib.sha256(got[0]).hexdigest()[:8]


def test_key_file_variable_shares_one_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """BULKPROV_FINGERPRINT_KEY_FILE names the key file whatever the state directory: CI
    machines that share it give a value the same fingerprint; without XDG_STATE_HOME the key
    lives under ~/.local/state."""
    shared = tmp_path / "ci" / "fp.key"
    monkeypatch.setenv("BULKPROV_FINGERPRINT_KEY_FILE", str(shared))
    key = fingerprint_key()
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "elsewhere"))
    assert fingerprint_key() == key and fingerprint_key_path() == shared
    monkeypatch.delenv("BULKPROV_FINGERPRINT_KEY_FILE")
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert fingerprint_key_path() == tmp_path / "home/.local/state/bulkprov/fingerprint.key"


def test_a_bad_key_file_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A key file that is not a key, or cannot be created, stops a run before it starts with an
    error naming the file, and writes no ledger line."""
    bad = tmp_path / "bad.key"
    bad.write_text("not hex\n")
    monkeypatch.setenv("BULKPROV_FINGERPRINT_KEY_FILE", str(bad))
    with pytest.raises(LedgerError, match=r"bad\.key is not a bulkprov fingerprint key"):
        opened(tmp_path / "l.jsonl")
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("BULKPROV_FINGERPRINT_KEY_FILE", str(blocker / "sub" / "fp.key"))
    with pytest.raises(LedgerError, match=r"fp\.key: Not a directory; set BULKPROV_"):
        opened(tmp_path / "l2.jsonl")
    assert not (tmp_path / "l.jsonl").exists() and not (tmp_path / "l2.jsonl").exists()


@pytest.mark.anyio
async def test_a_runs_ledger_holds_keyed_fingerprints(mock: object, tmp_path: Path) -> None:
    """After a run sets secrets, the ledger's fingerprints carry the key id its header names,
    and the salt-keyed HMAC of the real secret (what the ledger alone allows) does not match."""
    from .enginekit import SECRET_KEY, aws_manifest, run_engine

    manifest = aws_manifest(tmp_path / "m.csv", 1, start=False)
    result = await run_engine(mock, manifest, tmp_path / "l.jsonl", monitor=False)  # type: ignore[arg-type]
    assert result.statuses == {"done": 1}
    records = [orjson.loads(x) for x in (tmp_path / "l.jsonl").read_bytes().splitlines()]
    salt = bytes.fromhex(records[0]["salt"])
    done = next(r for r in records if r.get("step") == "secrets" and r.get("event") == "done")
    fp = done["data"]["fingerprints"]["SecretToken"]
    assert fp.rsplit(":", 1)[0] == records[0]["fingerprintKey"]
    legacy = hmac.new(salt, f"SecretToken\x00{SECRET_KEY}".encode(), hashlib.sha256)
    assert fp.rsplit(":", 1)[1] != legacy.hexdigest()[:16]
