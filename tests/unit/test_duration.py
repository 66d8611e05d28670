"""Go time.Duration parsing and formatting."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stolon.model.duration import Duration, DurationError, format_go_duration, parse_go_duration


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("0", 0),
        ("5s", 5_000_000_000),
        ("1m30s", 90_000_000_000),
        ("48h", 48 * 3600 * 10**9),
        ("100ms", 100_000_000),
        ("1.5s", 1_500_000_000),
        ("300us", 300_000),
        ("300µs", 300_000),
        ("10ns", 10),
        ("-2m", -120 * 10**9),
        ("+3s", 3 * 10**9),
        ("1h2m3.5s", (3600 + 120 + 3) * 10**9 + 500_000_000),
        (".5s", 500_000_000),
    ],
)
def test_parse(text: str, ns: int) -> None:
    assert parse_go_duration(text) == ns


@pytest.mark.parametrize("text", ["", "5", "s", "5x", "1.2.3s", "--5s", "5s ", " 5s", "."])
def test_parse_rejects(text: str) -> None:
    with pytest.raises(DurationError):
        parse_go_duration(text)


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "0s"),
        (5 * 10**9, "5s"),
        (90 * 10**9, "1m30s"),
        (48 * 3600 * 10**9, "48h0m0s"),
        (5 * 60 * 10**9, "5m0s"),
        (100_000_000, "100ms"),
        (1_500_000_000, "1.5s"),
        (300_000, "300µs"),
        (1, "1ns"),
        (-90 * 10**9, "-1m30s"),
        (3600 * 10**9 + 500_000_000, "1h0m0.5s"),
    ],
)
def test_format_like_go(ns: int, text: str) -> None:
    assert format_go_duration(ns) == text


@given(st.integers(min_value=-(2**62), max_value=2**62))
def test_round_trip(ns: int) -> None:
    assert parse_go_duration(format_go_duration(ns)) == ns


def test_duration_ordering_and_seconds() -> None:
    assert Duration.parse("1s") < Duration.parse("2s")
    assert Duration.parse("1m").seconds == 60.0
    assert not Duration(0)
