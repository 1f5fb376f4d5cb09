"""Text from Graph, a manifest or a ledger, made safe to show in a terminal.

Display names, keys and error messages are anybody's text: a name with an ANSI escape
sequence could repaint the screen, one with U+202E (right-to-left override) could make
``evil.exe`` read as ``exe.live``, and rich would read ``[bold]`` in it as markup. Every table
cell goes through :func:`cell`, and every line that quotes such text through
:func:`printable`, so those characters are shown escaped (``\\u202e``) and markup stays text.
"""

from __future__ import annotations

import unicodedata

from rich.text import Text

# Unicode's Bidi_Control characters: embeddings, overrides, isolates and the marks
BIDI_CONTROLS = frozenset([0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)])
# categories never shown as they are: controls (C0, DEL, C1), format characters (zero-width
# spaces and joiners, bidi controls, tags), line and paragraph separators, surrogates
_HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def _escaped(ch: str) -> str:
    n = ord(ch)
    if n < 0x100:
        return f"\\x{n:02x}"
    if n < 0x10000:
        return f"\\u{n:04x}"
    return f"\\U{n:08x}"


def printable(value: object, *, keep_newlines: bool = False) -> str:
    """``value`` as text with control, format and bidirectional characters escaped."""
    text = "" if value is None else str(value)
    if text.isascii() and text.isprintable():
        return text
    out: list[str] = []
    for ch in text:
        if ch == "\n" and keep_newlines:
            out.append(ch)
        elif ord(ch) in BIDI_CONTROLS or unicodedata.category(ch) in _HIDDEN:
            out.append(_escaped(ch))
        else:
            out.append(ch)
    return "".join(out)


def cell(value: object, *, keep_newlines: bool = False) -> Text:
    """A table cell showing ``value`` exactly (escaped as :func:`printable`), never as markup."""
    return Text(printable(value, keep_newlines=keep_newlines))
