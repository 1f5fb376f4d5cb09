"""What the page shows of a value: masked by the run's redactor, cut, then HTML-escaped."""

from __future__ import annotations

from html import escape

from ..redact import Redactor


class Text:
    """Masks, cuts and escapes every value the page shows (names come from users, messages
    from Graph and the targets)."""

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor

    def __call__(self, value: object, limit: int | None = None) -> str:
        if value is None:
            return ""
        text = str(value)
        text = self.redactor.shorten(text, limit) if limit else self.redactor.text(text)
        return escape(text, quote=True)
