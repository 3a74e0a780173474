"""The lateness that decides shedding (bot/ack.py): an interaction's age against the quickest
recent one, so that a clock off Discord's neither sheds everything nor hides a late delivery."""

from __future__ import annotations

from bot.ack import SKEW_WINDOW, _Skew


def test_a_late_delivery_stands_out_from_the_quick_ones() -> None:
    skew = _Skew()
    assert [round(a - skew.offset(a, now), 2) for now, a in
            [(0.0, 0.05), (1.0, 0.08), (2.0, 2.55)]] == [0.0, 0.03, 2.5]


def test_a_clock_five_seconds_fast_sheds_nothing_on_time() -> None:
    skew = _Skew()
    late = [a - skew.offset(a, now) for now, a in [(0.0, 5.1), (1.0, 5.05), (2.0, 5.2)]]
    assert max(late) < 0.2


def test_a_clock_behind_still_sees_a_late_delivery() -> None:
    skew = _Skew()
    skew.offset(-1.0, 0.0)
    assert skew.offset(1.5, 1.0) == -1.0  # 1.5 - (-1.0): reached 2.5 s late


def test_the_quickest_is_forgotten_after_the_window() -> None:
    skew = _Skew()
    skew.offset(0.05, 0.0)
    assert skew.offset(3.0, SKEW_WINDOW + 1) == 3.0
