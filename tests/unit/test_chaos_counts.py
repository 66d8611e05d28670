"""The chaos matrix's counting rules (pure functions of the recorded samples)."""

from __future__ import annotations

from stolon.testing.chaos import Landing, _gap, double_writable

OLD, NEW = 5001, 5002  # the old and the new master's ports


def at(sample: int, path: str, port: int) -> Landing:
    return Landing(sample, path, port)


def test_a_clean_failover_counts_nothing() -> None:
    landings = [
        at(1, "direct:k0", OLD), at(1, "proxy", OLD), at(1, "proxy-new", OLD),
        at(2, "direct:k0", OLD),
        # gap: O gone; N promoted
        at(40, "direct:k1", NEW), at(40, "proxy-new", NEW), at(41, "proxy", NEW),
    ]  # fmt: skip
    assert double_writable(landings) == (0, 0)


def test_two_instances_taking_direct_writes_in_one_sample() -> None:
    landings = [
        at(10, "direct:k0", OLD),
        at(10, "direct:k1", NEW),
        at(11, "direct:k1", NEW),
        at(12, "direct:k0", OLD),
    ]
    assert double_writable(landings) == (0, 1)


def test_the_proxy_on_two_instances_in_one_sample() -> None:
    landings = [at(10, "proxy", OLD), at(10, "proxy-new", NEW)]
    assert double_writable(landings) == (1, 0)


def test_the_proxy_going_back_to_a_deposed_master_still_writable() -> None:
    landings = [
        at(1, "proxy", OLD),
        at(20, "proxy-new", NEW), at(21, "direct:k1", NEW),
        at(25, "proxy", OLD),  # back on O while N took a write 0.4 s ago
    ]  # fmt: skip
    assert double_writable(landings) == (1, 0)


def test_the_proxy_back_on_an_old_master_long_after_is_a_new_failover() -> None:
    landings = [at(1, "proxy", OLD), at(20, "proxy", NEW), at(200, "proxy", OLD)]
    assert double_writable(landings) == (0, 0)


def test_gap_counts_from_the_injection_to_the_next_ack() -> None:
    acks = [9.0, 9.5, 10.2, 14.0, 14.1, 20.0]
    # injected at 10: acks at 10.2, then 14.0 (gap 3.8 from 10.2), then 20.0 (gap 5.9)
    length, start, end = _gap(acks, 10.0, 21.0)
    assert (round(length, 1), round(start, 1), round(end, 1)) == (5.9, 4.1, 10.0)
    # nothing acknowledged after the injection: the gap runs to the end
    assert _gap([1.0], 10.0, 12.0) == (2.0, 0.0, 2.0)
