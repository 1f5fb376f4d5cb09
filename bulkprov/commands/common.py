"""What the commands share: the console they report progress and errors on, what a
manifest's references may reach, reading a ledger a command looks after, the SIGINT/SIGTERM
handling of the commands that drain (a first signal stops feeding, a second stops at once),
and the client's request counts in a summary."""

from __future__ import annotations

import signal
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
from rich.console import Console

from .. import ledger as ledger_mod
from ..connect import ConnectionOptions
from ..errors import ConfigError
from ..refs import RefRules


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False)


def ref_rules(opts: ConnectionOptions, secrets_dirs: Sequence[Path] | None = None) -> RefRules:
    """What the manifest's references may reach: ``--secrets-dir`` and the profile's
    ``secrets_dirs`` besides the manifest's directory; never the variable or the file that
    bulkprov's own credential comes from (flags, BULKPROV_* variables, the profile)."""
    from .. import profiles as profiles_mod
    from ..connect import SECRET_ENV

    dirs: list[Path] = []
    for d in secrets_dirs or ():
        if not d.is_dir():
            why = "does not exist" if not d.exists() else "is not a directory"
            raise ConfigError(f"--secrets-dir {d}: {why}")
        dirs.append(d)
    own_env = {opts.client_secret_env or SECRET_ENV}
    own_files: set[Path] = set()
    for name in ("client_secret_file", "certificate_file", "mock_info"):
        value = opts.env(name)
        if value:
            own_files.add(Path(value))
    profile = opts.profile_name()
    if profile and opts.mock is None:
        path = profiles_mod.profiles_path(opts.profiles)
        prof = profiles_mod.select(path, profile)
        dirs.extend(prof.checked_secrets_dirs())
        env, files = prof.own_sources()
        own_env |= env
        own_files |= files
    return RefRules(
        secrets_dirs=tuple(dirs), own_env=frozenset(own_env), own_files=frozenset(own_files)
    )


def read_ledger(path: Path) -> ledger_mod.Replay:
    replay = ledger_mod.read(path)
    if replay.header is None:
        raise ConfigError(f"{path} is not a bulkprov ledger (no header line)")
    return replay


async def stop_on_signals(
    stop: Callable[[], None], scope: anyio.CancelScope, console: Console, what: str
) -> None:
    """On a first SIGINT or SIGTERM say ``what`` the command does now and call ``stop`` (a
    drain); on a second, cancel ``scope``: the command stops at once."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        count = 0
        async for signum in signals:
            count += 1
            if count == 1:
                console.print(
                    f"[yellow]{signal.Signals(signum).name}: {what}; again to stop at once[/]"
                )
                stop()
            else:
                scope.cancel()
                return


def client_stats(stats: Any) -> str:
    """The client's requests, 429 answers and retries, as a summary's line says them."""
    return f"requests {stats.requests}, 429s {stats.throttled}, retries {stats.retries}"
