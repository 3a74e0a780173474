"""The pure parts of `python -m bench.soak` (bench/soak_report.py, bench/soak.py's traffic plan):
the straight-line fit, the warm-up split, the accounting of turns and the PASS/MISS verdicts,
on hand-made figures whose answers are worked out here, not by the code under test."""

from __future__ import annotations

import random

import pytest

from bench import soak_report
from bench.soak import Traffic, default_out


def test_slope_of_a_straight_line_is_its_rise_per_minute():
    # 2 MB every 30 s is 4 MB a minute, whatever the starting level
    points = [(t, 100.0 + 2.0 * t / 30) for t in (0, 30, 60, 90, 120)]
    assert soak_report.slope_per_minute(points) == pytest.approx(4.0)


def test_slope_of_a_flat_noisy_series_is_near_zero_and_of_a_falling_one_negative():
    flat = [(t * 5.0, 50.0 + (1 if t % 2 else -1)) for t in range(100)]
    assert abs(soak_report.slope_per_minute(flat)) < 0.05
    falling = [(0.0, 10.0), (60.0, 9.0), (120.0, 8.0)]
    assert soak_report.slope_per_minute(falling) == pytest.approx(-1.0)


def test_slope_needs_two_points_spread_in_time():
    assert soak_report.slope_per_minute([]) is None
    assert soak_report.slope_per_minute([(1.0, 5.0)]) is None
    assert soak_report.slope_per_minute([(1.0, 5.0), (1.0, 7.0)]) is None


def test_warmup_split_drops_samples_outside_the_window():
    points = [(float(t), float(t)) for t in range(-5, 120, 10)]  # -5, 5, 15, ..., 115
    warm, rest = soak_report.split_warmup(points, 0.0, 100.0, 0.2)
    assert [t for t, _ in warm] == [5.0, 15.0]
    assert [t for t, _ in rest] == [25.0, 35.0, 45.0, 55.0, 65.0, 75.0, 85.0, 95.0]


def test_series_summary_fits_only_after_warmup():
    # steep growth during warm-up (first 20 s), flat at 120 afterwards
    points = [(float(t), 100.0 + t if t < 20 else 120.0) for t in range(0, 101, 5)]
    summary = soak_report.series_summary(points, 0.0, 100.0, 0.2)
    assert summary["warmup"] == {"samples": 4, "first": 100.0, "last": 115.0, "max": 115.0,
                                 "mean": 107.5}
    assert summary["after"]["max"] == 120.0 and summary["after"]["samples"] == 17
    assert summary["slope_per_min"] == 0.0


def test_acks_late_and_never():
    interactions = {
        "1": {"dispatched": 10.0, "acked": 10.2, "errors": []},
        "2": {"dispatched": 10.0, "acked": 13.5, "errors": []},  # after Discord's 3 s
        "3": {"dispatched": 10.0, "acked": None, "errors": []},  # never
        "4": {"dispatched": 10.0, "acked": None, "errors": [10062]},  # refused as too late
        "5": {"dispatched": 10.0, "acked": 10.4, "errors": [50035]},  # a later request failed
    }
    acks = soak_report.ack_figures(interactions)
    assert (acks["interactions"], acks["late"], acks["refused_as_late"], acks["unacked"],
            acks["errored"]) == (5, 2, 1, 1, 2)
    assert acks["max_ms"] == 3500.0


def _turn(k, kind, iid=None):
    return {"k": k, "kind": kind, "prompt": f"p{k}", "interaction_id": iid, "at": 0.0}


def test_accounting_finds_each_kind_of_lost_turn_and_duplicates():
    sent = [_turn(0, "imagine", "i0"), _turn(1, "reply"), _turn(2, "imagine", "i2"),
            _turn(3, "reply"), _turn(4, "imagine", "i4")]
    rows = [  # thread 7: turns 1 and 2 (p0, p1); thread 8: p2; thread 9: p3 failed; p4 missing
        {"id": 1, "conversation_id": 7, "prompt": "p0", "status": "done"},
        {"id": 2, "conversation_id": 8, "prompt": "p2", "status": "done"},
        {"id": 3, "conversation_id": 7, "prompt": "p1", "status": "done"},
        {"id": 4, "conversation_id": 9, "prompt": "p3", "status": "failed"},
    ]
    threads = {"7": [{"number": 1, "at": 1.0}, {"number": 2, "at": 2.0}, {"number": 2, "at": 3.0}],
               "8": [], "9": [{"number": 5, "at": 1.0}]}
    generations = [{"prompt": p, "terminal": "response.completed"} for p in ("p0", "p1", "p1", "p2")]
    interactions = {"i0": {"acked": 1.0}, "i2": {"acked": 1.0}, "i4": {"acked": None}}
    turns = soak_report.account_turns(sent, rows, threads, generations, interactions)
    assert turns["lost"] == 3
    assert turns["lost_by_reason"] == {"not_shown": 1, "status_failed": 1, "not_recorded": 1}
    assert turns["lost_by_kind"] == {"imagine": 2, "reply": 1}
    assert turns["answered_without_result"] == 1  # i2 was answered, its result never showed
    assert turns["duplicates"] == 1 and turns["stray_results"] == 1
    assert turns["generations"] == 4 and turns["generated_twice"] == 1
    assert turns["generations_per_turn"] == 0.8


def test_accounting_of_a_clean_run():
    sent = [_turn(0, "imagine", "i0"), _turn(1, "reply")]
    rows = [{"id": 1, "conversation_id": 7, "prompt": "p0", "status": "done"},
            {"id": 2, "conversation_id": 7, "prompt": "p1", "status": "done"}]
    threads = {"7": [{"number": 1, "at": 4.0}, {"number": 2, "at": 9.0}]}
    generations = [{"prompt": "p0", "terminal": "response.completed"},
                   {"prompt": "p1", "terminal": "response.completed"}]
    turns = soak_report.account_turns(sent, rows, threads, generations, {"i0": {"acked": 0.1}})
    assert (turns["lost"], turns["duplicates"], turns["stray_results"], turns["generated_twice"]) \
        == (0, 0, 0, 0)
    assert soak_report.latency_figures(sent, rows, threads) == [4.0, 9.0]


def _process(name, rss_slope, fd_slope):
    return {"name": name, "rss_mb": {"slope_per_min": rss_slope}, "fds": {"slope_per_min": fd_slope}}


def test_verdicts_pass_within_tolerance_and_miss_above_it_or_unmeasured():
    acks = {"late": 0, "unacked": 0}
    turns = {"lost": 0, "duplicates": 0, "generated_twice": 0}
    checks = soak_report.verdicts(
        [_process("a", 0.5, -3.0), _process("b", 0.51, None)], acks, turns,
        {"rss_mb_per_min": 0.5, "fds_per_min": 0.5})
    verdict = {c["target"].split(" <=")[0].split(" =")[0]: c["verdict"] for c in checks}
    assert verdict == {
        "a: RSS slope after warm-up": "PASS", "a: open fds slope after warm-up": "PASS",
        "b: RSS slope after warm-up": "MISS", "b: open fds slope after warm-up": "MISS",
        "interactions acknowledged after 3 s": "PASS", "interactions never acknowledged": "PASS",
        "turns lost": "PASS", "results shown twice": "PASS", "turns generated twice": "PASS",
    }


@pytest.mark.parametrize("field", ["late", "unacked", "lost", "duplicates", "generated_twice"])
def test_any_late_ack_lost_turn_or_duplicate_is_a_miss(field):
    acks = {"late": 0, "unacked": 0}
    turns = {"lost": 0, "duplicates": 0, "generated_twice": 0}
    (acks if field in acks else turns)[field] = 1
    checks = soak_report.verdicts([], acks, turns)
    assert [c["verdict"] for c in checks].count("MISS") == 1


def test_traffic_replies_only_in_idle_conversations():
    traffic = Traffic(users=2, reply_share=1.0, rng=random.Random(1))
    first = traffic.next_turn(0)
    assert first["kind"] == "imagine"  # no conversation yet
    first["interaction_id"] = "i0"
    traffic.record(first)
    traffic.update({"threads_of": {"i0": "t1"}, "shown": {"t1": []}})
    second = traffic.next_turn(1)
    assert second["kind"] == "imagine" and second["user"] != first["user"]  # t1's owner is busy
    second["interaction_id"] = "i1"
    traffic.record(second)
    traffic.update({"threads_of": {"i1": None}, "shown": {"t1": [1]}})  # t1's first result shows
    third = traffic.next_turn(2)
    assert (third["kind"], third["thread_id"], third["user"], third["number"]) == (
        "reply", "t1", first["user"], 2)


def test_only_the_default_run_writes_the_committed_file():
    assert default_out([]).parts[-2:] == ("results", "soak.json")
    assert default_out(["--keep"]).name == "soak.json"
    short = default_out(["--turns", "120", "--seconds=60"])
    assert short.parent.name == "scratch" and short.name.startswith("soak-")


def test_process_figures_split_rss_fds_and_loop_lag_at_the_warmup():
    from bench.soak import process_figures

    start = 1000.0
    # (unix time, VmRSS KiB, open fds): 100 MiB rising 1 MiB a minute after warm-up, 20 fds
    samples = [(start + t, 102400 + 1024 * t // 60, 20) for t in range(0, 101, 10)]
    lags = [(start + 5, 0.5), (start + 50, 0.010), (start + 90, 0.030), (start + 200, 0.9)]
    figures = process_figures("p", samples, lags, (start, start + 100), 0.2, rate_per_min=200)
    assert figures["rss_mb"]["warmup"]["samples"] == 2
    assert figures["rss_mb"]["slope_per_min"] == pytest.approx(1.0, abs=0.02)
    assert figures["rss_mb"]["kb_per_turn"] == pytest.approx(1024 / 200, abs=0.1)
    assert figures["fds"]["slope_per_min"] == 0.0 and figures["fds"]["after"]["max"] == 20.0
    # only the lags after warm-up and inside the window: 10 and 30 ms
    assert figures["loop_lag_ms"]["max"] == 30.0 and figures["loop_lag_ms"]["count"] == 2


def test_census_growth_lists_only_what_grew_largest_first():
    before = {"discord.message.Message": 1000, "builtins.dict": 5000, "asyncio.Future": 40}
    after = {"discord.message.Message": 1000, "builtins.dict": 5600, "asyncio.Future": 25,
             "bot.core.models.Turn": 300}
    assert soak_report.census_growth(before, after) == [
        {"type": "builtins.dict", "before": 5000, "after": 5600, "growth": 600},
        {"type": "bot.core.models.Turn", "before": 0, "after": 300, "growth": 300},
    ]
    assert soak_report.census_growth(before, after, top=1)[0]["type"] == "builtins.dict"
