"""A small OData ``$filter`` parser and evaluator, as much of it as Graph supports here.

Grammar (case-insensitive keywords)::

    expr    := and ('or' and)*
    and     := unary ('and' unary)*
    unary   := 'not' unary | '(' expr ')' | call | compare | lambda
    call    := ('contains' | 'startswith' | 'endswith') '(' path ',' literal ')'
    compare := path ('eq'|'ne'|'gt'|'ge'|'lt'|'le') literal
    lambda  := path '/any(' var ':' <expr over var> ')'
    literal := 'string with '' escaped quotes' | number | true | false | null | guid | datetime

Each resource declares which properties may be filtered and with which operators; anything
else is a :class:`FilterError` that the mock turns into Graph's 400.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Predicate = Callable[[Mapping[str, Any]], bool]

COMPARISONS = frozenset({"eq", "ne", "gt", "ge", "lt", "le"})
FUNCTIONS = frozenset({"contains", "startswith", "endswith"})


class FilterError(ValueError):
    """The filter is malformed, or uses a property or operator the resource does not support."""

    def __init__(self, message: str, *, unsupported_property: str | None = None) -> None:
        super().__init__(message)
        self.unsupported_property = unsupported_property


_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>'(?:[^']|'')*')
  | (?P<datetime>\d{4}-\d{2}-\d{2}T[0-9:.]+(?:Z|[+-]\d{2}:\d{2})?)
  | (?P<guid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(?![\w-]))
  | (?P<number>-?\d+(?:\.\d+)?(?![\w-]))
  | (?P<punct>[(),:/])
  | (?P<name>[A-Za-z_][A-Za-z0-9_.@]*)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str
    text: str
    pos: int


def _tokenize(text: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise FilterError(f"Invalid filter clause: syntax error at position {pos} in '{text}'.")
        kind = m.lastgroup or ""
        if kind != "ws":
            tokens.append(_Tok(kind, m.group(), pos))
        pos = m.end()
    return tokens


@dataclass(frozen=True, slots=True)
class FilterSpec:
    """What one resource lets ``$filter`` use: property path -> allowed operators.

    A collection of strings filterable with a lambda (``tags/any(t:t eq ...)``) allows ``any``.
    """

    resource: str  # e.g. "Application" (used in error messages)
    properties: Mapping[str, frozenset[str]]


class _Parser:
    def __init__(self, text: str, spec: FilterSpec) -> None:
        self.text = text
        self.spec = spec
        self.tokens = _tokenize(text)
        self.i = 0

    # -- token helpers
    def peek(self, offset: int = 0) -> _Tok | None:
        j = self.i + offset
        return self.tokens[j] if j < len(self.tokens) else None

    def take(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise self.error("unexpected end of filter")
        self.i += 1
        return tok

    def expect(self, text: str) -> None:
        tok = self.take()
        if tok.text.lower() != text:
            raise self.error(f"expected '{text}'", tok)

    def error(self, what: str, tok: _Tok | None = None) -> FilterError:
        pos = tok.pos if tok is not None else len(self.text)
        return FilterError(f"Invalid filter clause: {what} at position {pos} in '{self.text}'.")

    def is_word(self, word: str, offset: int = 0) -> bool:
        tok = self.peek(offset)
        return tok is not None and tok.kind == "name" and tok.text.lower() == word

    # -- grammar
    def parse(self) -> Predicate:
        if not self.tokens:
            raise FilterError("Invalid filter clause: the filter is empty.")
        pred = self.expr(lambda_var=None)
        if self.peek() is not None:
            raise self.error("unexpected token", self.peek())
        return pred

    def expr(self, lambda_var: str | None) -> Predicate:
        left = self.conj(lambda_var)
        while self.is_word("or"):
            self.take()
            right = self.conj(lambda_var)
            left = _or(left, right)
        return left

    def conj(self, lambda_var: str | None) -> Predicate:
        left = self.unary(lambda_var)
        while self.is_word("and"):
            self.take()
            right = self.unary(lambda_var)
            left = _and(left, right)
        return left

    def unary(self, lambda_var: str | None) -> Predicate:
        tok = self.peek()
        if tok is None:
            raise self.error("unexpected end of filter")
        if self.is_word("not"):
            self.take()
            inner = self.unary(lambda_var)
            return lambda obj: not inner(obj)
        if tok.text == "(":
            self.take()
            inner = self.expr(lambda_var)
            self.expect(")")
            return inner
        if tok.kind == "name" and tok.text.lower() in FUNCTIONS and self._next_is("("):
            return self.call(lambda_var)
        return self.compare_or_lambda(lambda_var)

    def _next_is(self, text: str) -> bool:
        nxt = self.peek(1)
        return nxt is not None and nxt.text == text

    def path(self) -> tuple[str, _Tok]:
        first = self.take()
        if first.kind != "name":
            raise self.error("expected a property name", first)
        parts = [first.text]
        while (
            self.peek() is not None
            and self.peek().text == "/"  # type: ignore[union-attr]
            and not self.is_word("any", 1)
        ):
            self.take()
            nxt = self.take()
            if nxt.kind != "name":
                raise self.error("expected a property name", nxt)
            parts.append(nxt.text)
        return "/".join(parts), first

    def check_property(self, path: str, op: str, tok: _Tok, lambda_var: str | None) -> None:
        if lambda_var is not None and path == lambda_var:
            return
        allowed = self.spec.properties.get(path)
        if allowed is None or op not in allowed:
            raise FilterError(
                "Unsupported or invalid query filter clause specified for property "
                f"'{path}' of resource '{self.spec.resource}'.",
                unsupported_property=path,
            )

    def literal(self) -> Any:
        tok = self.take()
        if tok.kind == "string":
            return tok.text[1:-1].replace("''", "'")
        if tok.kind == "number":
            return float(tok.text) if "." in tok.text else int(tok.text)
        if tok.kind in ("guid", "datetime"):
            return tok.text
        if tok.kind == "name" and tok.text.lower() in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[tok.text.lower()]
        raise self.error("expected a literal", tok)

    def call(self, lambda_var: str | None) -> Predicate:
        fn = self.take().text.lower()
        self.expect("(")
        path, tok = self.path()
        self.check_property(path, fn, tok, lambda_var)
        self.expect(",")
        value = self.literal()
        self.expect(")")
        if not isinstance(value, str):
            raise self.error(f"{fn} needs a string literal", tok)
        getter = _getter(path, lambda_var)
        needle = value.lower()
        if fn == "contains":
            return lambda obj: needle in str(getter(obj) or "").lower()
        if fn == "startswith":
            return lambda obj: str(getter(obj) or "").lower().startswith(needle)
        return lambda obj: str(getter(obj) or "").lower().endswith(needle)

    def compare_or_lambda(self, lambda_var: str | None) -> Predicate:
        path, tok = self.path()
        if self.peek() is not None and self.peek().text == "/" and self.is_word("any", 1):  # type: ignore[union-attr]
            self.take()
            self.take()
            self.check_property(path, "any", tok, lambda_var)
            self.expect("(")
            var = self.take()
            if var.kind != "name":
                raise self.error("expected a lambda variable", var)
            self.expect(":")
            inner = self.expr(lambda_var=var.text)
            self.expect(")")
            getter = _getter(path, lambda_var)

            def any_(obj: Mapping[str, Any]) -> bool:
                items = getter(obj) or []
                return any(inner({"__it__": item}) for item in items)

            return any_
        op_tok = self.take()
        op = op_tok.text.lower()
        if op_tok.kind != "name" or op not in COMPARISONS:
            raise self.error("expected a comparison operator", op_tok)
        self.check_property(path, op, tok, lambda_var)
        value = self.literal()
        return _compare(_getter(path, lambda_var), op, value)


def _getter(path: str, lambda_var: str | None) -> Callable[[Mapping[str, Any]], Any]:
    if lambda_var is not None and path == lambda_var:
        return lambda obj: obj.get("__it__")
    parts = path.split("/")

    def get(obj: Mapping[str, Any]) -> Any:
        cur: Any = obj
        for p in parts:
            if not isinstance(cur, Mapping):
                return None
            cur = cur.get(p)
        return cur

    return get


def _norm(v: Any) -> Any:
    return v.lower() if isinstance(v, str) else v


def _compare(get: Callable[[Mapping[str, Any]], Any], op: str, value: Any) -> Predicate:
    want = _norm(value)

    def pred(obj: Mapping[str, Any]) -> bool:
        have = _norm(get(obj))
        if op == "eq":
            return bool(have == want)
        if op == "ne":
            return bool(have != want)
        if have is None or want is None:
            return False
        try:
            if op == "gt":
                return bool(have > want)
            if op == "ge":
                return bool(have >= want)
            if op == "lt":
                return bool(have < want)
            return bool(have <= want)
        except TypeError:
            return False

    return pred


def _and(a: Predicate, b: Predicate) -> Predicate:
    return lambda obj: a(obj) and b(obj)


def _or(a: Predicate, b: Predicate) -> Predicate:
    return lambda obj: a(obj) or b(obj)


def parse_filter(text: str, spec: FilterSpec) -> Predicate:
    """Compile ``text`` into a predicate over a JSON object, or raise :class:`FilterError`."""
    return _Parser(text, spec).parse()


def quote(value: str) -> str:
    """An OData string literal: single quotes doubled, the whole in single quotes."""
    return "'" + value.replace("'", "''") + "'"
