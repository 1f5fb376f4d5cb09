"""The mock's throttle settings as options of ``mock-graph`` and ``--mock``."""

from __future__ import annotations

import argparse

import pytest

from bulkprov.errors import ConfigError
from bulkprov.mockgraph.cli import add_mock_options, mock_settings_from_args
from bulkprov.mockgraph.settings import ThrottleSettings


def settings(*argv: str) -> ThrottleSettings:
    p = argparse.ArgumentParser()
    add_mock_options(p)
    return mock_settings_from_args(p.parse_args(list(argv))).throttle


def test_defaults_are_graphs_published_quotas() -> None:
    assert settings() == ThrottleSettings()


def test_each_option_reaches_its_setting() -> None:
    t = settings(
        "--write-limit",
        "1500",
        "--write-window",
        "150",
        "--other-app-write-rate",
        "5",
        "--other-app-period",
        "30",
        "--other-app-duty",
        "0.5",
        "--shed-factor",
        "0.5",
        "--shed-scopes",
        "Tenant_Application/Write, Tenant/Write",
        "--shed-start",
        "60",
        "--shed-duration",
        "120",
        "--start-empty",
        "--retry-after",
        "scaled",
        "--retry-after-value",
        "10",
        "--retry-after-factor",
        "0.5",
    )
    assert (t.write_limit, t.write_window) == (1500, 150.0)
    assert (t.other_app_write_rate, t.other_app_period, t.other_app_duty) == (5.0, 30.0, 0.5)
    assert t.shed_factor == 0.5 and t.shed_scopes == ("Tenant_Application/Write", "Tenant/Write")
    assert (t.shed_start, t.shed_duration) == (60.0, 120.0)
    assert not t.start_full
    assert (t.retry_after, t.retry_after_value, t.retry_after_factor) == ("scaled", 10.0, 0.5)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--shed-factor", "2"), "shed_factor"),
        (("--shed-scopes", "Nope/Write"), "Nope/Write"),
        (("--other-app-duty", "0"), "other_app_duty"),
        (("--write-limit", "0"), "write_limit"),
    ],
)
def test_bad_values_are_one_line_errors(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        settings(*argv)
    assert "\n" not in str(err.value)
