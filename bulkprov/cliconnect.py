"""The connection flags of the commands that talk to Graph, and :func:`connection_options`, which
turns what argparse made of them into the plain :class:`~bulkprov.connect.ConnectionOptions`
that :mod:`bulkprov.connect` resolves."""

from __future__ import annotations

import argparse
from pathlib import Path

from .connect import SECRET_ENV, ConnectionOptions
from .settings import AUTHORITY_HOST, GRAPH_URL

GROUP = "connection (each flag also reads the BULKPROV_* variable named in its help)"


def add_connection_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(GROUP)
    g.add_argument(
        "--mock",
        action="store_true",
        help="run against the embedded mock Graph (no tenant or credentials needed); its "
        "tenant is kept beside the ledger (runs/x.jsonl -> runs/x.mock/), where the next "
        "--mock command with that ledger (run, plan, monitor, cleanup) finds it",
    )
    g.add_argument(
        "--profile",
        default=None,
        metavar="NAME",
        help="connection profile from the profiles file [BULKPROV_PROFILE]; flags given "
        "as well override its values",
    )
    g.add_argument(
        "--profiles",
        type=Path,
        default=None,
        metavar="FILE",
        help="profiles file (TOML) [BULKPROV_PROFILES] (default "
        "$XDG_CONFIG_HOME/bulkprov/profiles.toml, i.e. ~/.config/bulkprov/profiles.toml)",
    )
    g.add_argument(
        "--mock-info",
        type=Path,
        default=None,
        help="connect to a running `bulkprov mock-graph` through its --info-file "
        "[BULKPROV_MOCK_INFO]",
    )
    _endpoint_options(g)
    _credential_options(g)
    g.add_argument(
        "--client-time-scale",
        dest="client_time_scale",
        type=float,
        default=None,
        help=argparse.SUPPRESS,
    )


def _endpoint_options(g: argparse._ArgumentGroup) -> None:
    g.add_argument(
        "--graph-url",
        default=None,
        help=f"Graph base URL without version [BULKPROV_GRAPH_URL] (default {GRAPH_URL};"
        " e.g. https://graph.microsoft.us, https://microsoftgraph.chinacloudapi.cn)",
    )
    g.add_argument(
        "--api-version",
        choices=("v1.0", "beta"),
        default=None,
        help="Graph API version of the provisioning calls (default v1.0; on-premises agent "
        "group assignment always uses beta)",
    )
    g.add_argument(
        "--authority-host",
        default=None,
        help=f"identity platform [BULKPROV_AUTHORITY_HOST] (default {AUTHORITY_HOST})",
    )
    g.add_argument("--tenant-id", default=None, help="tenant id [BULKPROV_TENANT_ID]")
    g.add_argument(
        "--client-id", default=None, help="app registration (client) id [BULKPROV_CLIENT_ID]"
    )


def _credential_options(g: argparse._ArgumentGroup) -> None:
    g.add_argument(
        "--client-secret-env",
        default=None,
        metavar="VAR",
        help=f"environment variable holding the client secret (default {SECRET_ENV}); "
        "secrets are never taken from the command line",
    )
    g.add_argument(
        "--client-secret-file",
        type=Path,
        default=None,
        help="file holding the client secret [BULKPROV_CLIENT_SECRET_FILE]",
    )
    g.add_argument(
        "--certificate-file",
        type=Path,
        default=None,
        help="PEM file with the private key and certificate of the app [BULKPROV_CERTIFICATE_FILE]",
    )
    g.add_argument(
        "--ca-file",
        type=Path,
        default=None,
        help="CA bundle to trust for Graph and the authority [BULKPROV_CA_FILE]",
    )
    g.add_argument(
        "--allow-http",
        action="store_true",
        help="allow a non-TLS Graph or authority that is not on loopback",
    )


def connection_options(args: argparse.Namespace) -> ConnectionOptions:
    """What the command line says about the Graph to use (the CLI's one conversion from
    argparse): the flags of :func:`add_connection_options`, and with ``--mock`` the settings of
    the embedded mock (from the options of :func:`bulkprov.mockgraph.cli.add_mock_options`)."""
    mock = None
    if args.mock:
        from .mockgraph.cli import mock_settings_from_args

        mock = mock_settings_from_args(args, default_time_scale=0.02)
    return ConnectionOptions(
        profile=args.profile,
        profiles=args.profiles,
        mock_info=args.mock_info,
        graph_url=args.graph_url,
        api_version=args.api_version,
        authority_host=args.authority_host,
        tenant_id=args.tenant_id,
        client_id=args.client_id,
        client_secret_env=args.client_secret_env,
        client_secret_file=args.client_secret_file,
        certificate_file=args.certificate_file,
        ca_file=args.ca_file,
        allow_http=args.allow_http,
        time_scale=args.client_time_scale,
        mock=mock,
    )
