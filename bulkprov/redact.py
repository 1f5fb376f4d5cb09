"""Masking secret values, and the encoded forms an error body may echo them in.

A Graph error body, a provisioning log reason or an exception's text may carry a credential
value as it was sent, or encoded. The :class:`Redactor` masks, for each registered value:

- the value itself;
- its JSON-escaped forms (``\\"`` and ``\\\\``, ``\\/`` for ``/``, ``\\u00e9`` or ``\\u00E9``
  for non-ASCII and control characters, ``\\u002B`` and the like as .NET escapes ``+<>&'"``);
- its percent-encoded forms (``quote`` with and without ``/`` kept, ``quote_plus``, the
  characters ``encodeURIComponent`` keeps, upper- or lower-case hex);
- its UTF-8 bytes in base64, standard and URL-safe alphabets, padded or not, and inside a
  larger base64 blob (HTTP Basic ``user:secret``): for each of the three byte alignments the
  *core*, the characters that encode the value's bytes alone, is looked for, and the mask is
  widened over the neighbouring characters that carry some of the value's bits, so no part of
  the value can be decoded from what is left. A base64 core may itself be JSON-escaped
  (``\\/``) or percent-encoded (``%2B``, ``%2F``). A value of 5 bytes or more is found in every
  alignment; a 4-byte value in two of the three.

:meth:`Redactor.shorten` is the one way a message is cut for a ledger record, a log line, the
console or a summary: it masks the whole text first, then cuts, so a secret that straddles
the cut is never left partly shown.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "*****"
MIN_LENGTH = 4  # a shorter value is not masked: it would mask ordinary text
_HEAD = MIN_LENGTH  # every form is at least this long: the window lookup starts from its head
_B64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_")
_B64_ESCAPED = ("\\/", "%2B", "%2F", "%2b", "%2f")  # a base64 character JSON- or URL-encoded
_EDGE = (0, 2, 3)  # base64 characters that carry some bits of 0, 1 or 2 bytes at a group edge
_DOTNET = frozenset("\"&'+<>`")  # System.Text.Json's default encoder escapes these as \uXXXX
_SHORT = {"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")  # what percent-encoding leaves as it is


def _json_escape(value: str, *, ascii_only: bool, upper: bool, slash: bool, html: bool) -> str:
    parts: list[str] = []
    hex_ = "\\u{:04X}" if upper else "\\u{:04x}"
    for ch in value:
        o = ord(ch)
        if html and ch in _DOTNET:
            parts.append(hex_.format(o))
        elif ch == '"':
            parts.append('\\"')
        elif ch == "\\":
            parts.append("\\\\")
        elif ch == "/" and slash:
            parts.append("\\/")
        elif o < 0x20:
            parts.append(_SHORT.get(ch) or hex_.format(o))
        elif o > 0x7E and (ascii_only or html):
            if o > 0xFFFF:
                o -= 0x10000
                parts.append(hex_.format(0xD800 + (o >> 10)) + hex_.format(0xDC00 + (o & 0x3FF)))
            else:
                parts.append(hex_.format(o))
        else:
            parts.append(ch)
    return "".join(parts)


def _json_forms(value: str) -> set[str]:
    """The value as JSON string encoders write it: only the switches that change something
    for this value are tried (a plain value has one form, itself)."""
    non_ascii = any(ord(c) > 0x7E for c in value)
    slash = "/" in value
    html = any(c in _DOTNET for c in value)
    escapes = non_ascii or html or any(ord(c) < 0x20 and c not in _SHORT for c in value)
    forms = {value}
    for a in (False, True) if non_ascii else (False,):
        for u in (False, True) if escapes else (False,):
            for s in (False, True) if slash else (False,):
                for h in (False, True) if html else (False,):
                    forms.add(_json_escape(value, ascii_only=a, upper=u, slash=s, html=h))
    return forms


def _lower_hex(text: str) -> str:
    out = text.split("%")
    return out[0] + "".join("%" + p[:2].lower() + p[2:] for p in out[1:])


def _percent_forms(value: str) -> set[str]:
    if _UNRESERVED.fullmatch(value):
        return {value}
    forms: set[str] = set()
    for safe in ("", "/", "!'()*"):
        for enc in (quote(value, safe=safe), quote_plus(value, safe=safe)):
            forms.update((enc, _lower_hex(enc)))
            if "/" in enc:
                forms.add(enc.replace("/", "\\/"))  # percent-encoded, then put in JSON
    return forms


def _base64_cores(data: bytes) -> Iterator[tuple[str, int, int]]:
    """(core, characters to widen before, after) for each alignment of ``data`` in a blob."""
    for skip in range(3):
        rest = data[skip:]
        groups = len(rest) // 3
        if groups == 0:
            continue
        core = base64.b64encode(rest[: 3 * groups]).decode()
        before, after = _EDGE[skip], _EDGE[len(rest) - 3 * groups]
        urlsafe = core.replace("+", "-").replace("/", "_")
        for form in (core, urlsafe, core.replace("/", "\\/"), quote(core, safe="")):
            yield form, before, after
            if "%" in form:
                yield _lower_hex(form), before, after


def forms(value: str) -> dict[str, tuple[int, int]]:
    """Every form of ``value`` the :class:`Redactor` masks -> how many base64 characters the
    mask is widened over before and after it (0, 0 for all but base64 cores)."""
    out: dict[str, tuple[int, int]] = {}
    for f in {value} | _json_forms(value) | _percent_forms(value):
        out[f] = (0, 0)
    for core, before, after in _base64_cores(value.encode("utf-8", "surrogatepass")):
        if len(core) >= MIN_LENGTH:  # one core may stand for several alignments: widen most
            was = out.get(core, (0, 0))
            out[core] = (max(was[0], before), max(was[1], after))
    return out


class Redactor:
    """Replaces every registered secret value in text, and its encoded forms (see the module
    docstring), with ``*****``.

    Values are counted: an instance registers its secrets while it runs and releases them when
    it ends, so that a run of 100k instances, each with secrets of its own, holds those of the
    instances in flight only. A value's forms are registered with it and released with it
    (counted too: two values may share a form). Where one form contains or overlaps another,
    the text they cover is masked whole.

    With few values each form is searched for; beyond, the text's windows are looked up: at
    each position its first four characters select the lengths of the forms that start so,
    and only those windows are looked up, so the cost per string grows with its length and
    not with the number of values held."""

    MASK = MASK
    FEW = 16  # up to this many values, search for each form; beyond, look up windows

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._of: dict[str, tuple[str, ...]] = {}  # held value -> its forms
        self._forms: dict[str, int] = {}  # form -> how many held values have it
        self._widen: dict[str, tuple[int, int]] = {}  # base64 core -> characters to widen over
        self._by_length: dict[int, set[str]] = {}
        self._heads: dict[str, dict[int, int]] = {}  # first 4 characters -> length -> forms

    @property
    def held(self) -> int:
        """How many distinct values are masked now."""
        return len(self._counts)

    def add(self, value: str) -> None:
        if len(value) < MIN_LENGTH:
            return
        n = self._counts.get(value, 0)
        self._counts[value] = n + 1
        if n:
            return
        mine = forms(value)
        self._of[value] = tuple(mine)
        for form, widen in mine.items():
            k = self._forms.get(form, 0)
            self._forms[form] = k + 1
            if widen != (0, 0):
                was = self._widen.get(form, (0, 0))
                self._widen[form] = (max(was[0], widen[0]), max(was[1], widen[1]))
            if k == 0:
                self._by_length.setdefault(len(form), set()).add(form)
                lengths = self._heads.setdefault(form[:_HEAD], {})
                lengths[len(form)] = lengths.get(len(form), 0) + 1

    def discard(self, value: str) -> None:
        """Release one registration of ``value``; it is no longer masked once none is left."""
        n = self._counts.get(value)
        if n is None:
            return
        if n > 1:
            self._counts[value] = n - 1
            return
        del self._counts[value]
        for form in self._of.pop(value, ()):
            k = self._forms.get(form)
            if k is None:
                continue
            if k > 1:
                self._forms[form] = k - 1
                continue
            del self._forms[form]
            self._widen.pop(form, None)
            bucket = self._by_length.get(len(form))
            if bucket is not None:
                bucket.discard(form)
                if not bucket:
                    del self._by_length[len(form)]
            lengths = self._heads.get(form[:_HEAD])
            if lengths is not None:
                left = lengths.get(len(form), 0) - 1
                if left > 0:
                    lengths[len(form)] = left
                else:
                    lengths.pop(len(form), None)
                    if not lengths:
                        del self._heads[form[:_HEAD]]

    def _spans(self, text: str) -> list[tuple[int, int]]:
        found: list[tuple[int, int, str]] = []
        if len(self._counts) <= self.FEW:
            for v in tuple(self._forms):  # a snapshot: log lines may come from other threads
                i = text.find(v)
                while i >= 0:
                    found.append((i, i + len(v), v))
                    i = text.find(v, i + 1)
        else:
            heads, by_length = self._heads, self._by_length
            for i in range(len(text) - _HEAD + 1):
                lengths = heads.get(text[i : i + _HEAD])
                if lengths is None:
                    continue
                for length in tuple(lengths):
                    window = text[i : i + length]
                    if len(window) == length and window in by_length.get(length, ()):
                        found.append((i, i + length, window))
        if not self._widen:
            return [(s, e) for s, e, _v in found]
        spans = []
        for s, e, v in found:
            before, after = self._widen.get(v, (0, 0))
            spans.append((_widen_back(text, s, before), _widen_on(text, e, after)))
        return spans

    def text(self, text: str) -> str:
        if not self._counts:
            return text
        spans = self._spans(text)
        if not spans:
            return text
        spans.sort()
        parts: list[str] = []
        pos = 0
        start, end = spans[0]
        for s, e in spans[1:]:
            if s < end:  # overlapping: one mask over both
                end = max(end, e)
                continue
            parts += (text[pos:start], self.MASK)
            pos, (start, end) = end, (s, e)
        parts += (text[pos:start], self.MASK, text[end:])
        return "".join(parts)

    def shorten(self, text: str, limit: int) -> str:
        """``text`` masked whole, then cut to at most ``limit`` characters: a secret that
        straddles the cut is masked, never left with its first characters shown."""
        masked = self.text(text)
        if len(masked) <= limit:
            return masked
        cut = masked[: max(0, limit - 1)]
        space = cut.rfind(" ")
        if space >= limit * 0.6:  # end on a whole word where one is near
            cut = cut[:space]
        return cut + "\u2026"

    def value(self, obj: Any) -> Any:
        if not self._counts:
            return obj
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return {k: self.value(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [self.value(v) for v in obj]
        return obj


def shorten(text: str, limit: int, redactor: Redactor | None = None) -> str:
    """:meth:`Redactor.shorten` with ``redactor`` (none: the text is only cut)."""
    return (redactor or _NONE).shorten(text, limit)


def _widen_back(text: str, start: int, count: int) -> int:
    """Where the mask starts once widened over ``count`` base64 characters before ``start``."""
    for _ in range(count):
        if esc := next((x for x in _B64_ESCAPED if text.endswith(x, 0, start)), None):
            start -= len(esc)
        elif start >= 1 and text[start - 1] in _B64_CHARS:
            start -= 1
        else:
            break
    return start


def _widen_on(text: str, end: int, count: int) -> int:
    """Where the mask ends once widened over ``count`` base64 characters after ``end``."""
    for _ in range(count):
        if end < len(text) and text[end] in _B64_CHARS:
            end += 1
        elif esc := next((x for x in _B64_ESCAPED if text.startswith(x, end)), None):
            end += len(esc)
        else:
            return end
    for _ in range(2 if count else 0):  # and the padding of a partial last group
        pad = next((p for p in ("=", "%3D", "%3d") if text.startswith(p, end)), None)
        if pad is None:
            break
        end += len(pad)
    return end


_NONE = Redactor()
