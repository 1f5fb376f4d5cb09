"""What the command line imports: the mock stays out of `import bulkprov.cli` and of
`bulkprov --help`, and a command without --mock takes the mock's options without its server
(the lazy names of bulkprov/mockgraph/__init__.py keep it so)."""

from __future__ import annotations

import re
import subprocess
import sys

import orjson

MOCK_MODULES = "sorted(m for m in sys.modules if m.startswith('bulkprov.mockgraph'))"


def _loaded_after(code: str) -> list[str]:
    """The mock's modules loaded once ``code`` ran in a new interpreter."""
    script = (
        "import sys, json\n"
        f"try:\n    {code}\nexcept SystemExit:\n    pass\n"
        f"sys.stderr.write('\\nMODULES ' + json.dumps({MOCK_MODULES}) + '\\n')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    marker = out.stderr.rsplit("MODULES ", 1)[1]
    loaded: list[str] = orjson.loads(marker)
    return loaded


def test_importing_the_cli_loads_no_module_of_the_mock() -> None:
    """`import bulkprov.cli` loads nothing of bulkprov.mockgraph."""
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import bulkprov.cli, sys; "
            "print(sorted(m for m in sys.modules if m.startswith('bulkprov.mockgraph')))",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert out.stdout.strip() == "[]"


def test_help_loads_no_module_of_the_mock() -> None:
    """`bulkprov --help` lists the commands without building their parsers: nothing of the
    mock is loaded, nor any command's module."""
    assert _loaded_after("import bulkprov.cli as c; c.main(['--help'])") == []
    out = subprocess.run(
        [sys.executable, "-m", "bulkprov", "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    listed = re.findall(r"^    (\S+)", out.stdout, flags=re.MULTILINE)
    assert listed[:9] == [
        "mock-graph",
        "run",
        "plan",
        "export",
        "status",
        "cleanup",
        "monitor",
        "report",
        "templates",
    ], out.stdout


def test_a_command_without_mock_does_not_load_the_mock_server() -> None:
    """`bulkprov plan` parses the mock's options (they are on every command that takes
    --mock) from bulkprov.mockgraph.cli, but the mock's server is loaded only to start a
    mock (or read a running one's info file)."""
    loaded = _loaded_after(
        "import bulkprov.cli as c; c.build_parser().parse_args(['plan', 'm.csv', '--seed', '3'])"
    )
    assert set(loaded) <= {
        "bulkprov.mockgraph",
        "bulkprov.mockgraph.cli",
        "bulkprov.mockgraph.settings",
    }, loaded


def test_mock_graph_options_come_from_the_mock_package() -> None:
    """`bulkprov mock-graph --help` is built by bulkprov.mockgraph.cli."""
    out = subprocess.run(
        [sys.executable, "-m", "bulkprov", "mock-graph", "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert out.stdout.startswith("usage: bulkprov mock-graph ")
    for option in ("--info-file", "--profiles-file", "--state-dir", "--fault-rate"):
        assert option in out.stdout
