"""Process-wide TLS tuning: asyncio's per-connection read buffer, capped at one TLS record.

asyncio gives every TLS connection a 256 KiB read buffer (``SSLProtocol.max_size``, a private
attribute), written at connect time, so it is resident: with the client's 200 connections that
is 50 MB, for answers of a few KiB. A TLS record holds at most 16 KiB, so reading one record at
a time is enough. The command line's entry point calls :func:`small_tls_read_buffers` once; a
program that makes its own clients calls it itself (the tests do, in a fixture that undoes it).
"""

from __future__ import annotations

import asyncio.sslproto

TLS_READ_BUFFER = 16 * 1024


def small_tls_read_buffers() -> int | None:
    """Cap asyncio's per-connection TLS read buffer at one TLS record, for the whole process.
    Returns the size it replaced, for :func:`restore_tls_read_buffers`, or None when there was
    nothing to cap."""
    proto = asyncio.sslproto.SSLProtocol
    before = getattr(proto, "max_size", None)
    if not isinstance(before, int) or before <= TLS_READ_BUFFER:
        return None
    proto.max_size = TLS_READ_BUFFER
    return before


def restore_tls_read_buffers(before: int | None) -> None:
    """Undo :func:`small_tls_read_buffers`, given what it returned."""
    if before is not None:
        asyncio.sslproto.SSLProtocol.max_size = before
