"""The pure half of ``python -m bench.soak``: straight-line fits of the resource samples, the
accounting of every turn, the PASS/MISS verdicts and the Markdown table. No I/O here, so
``tests/unit/test_bench_soak.py`` checks it on hand-made figures.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from bench.run import ACK_DEADLINE, ms, quantile

UNKNOWN_INTERACTION = 10062  # the fake's (and Discord's) answer to a callback after 3 s

# "Flat after warm-up", per bot process: the slope of a least-squares line through the samples
# taken after the warm-up, at most (see bench/README.md, "python -m bench.soak"):
# - RSS 0.5 MB a minute: 6 MB over the 12 measured minutes of the default run, 5 KB per turn of
#   the process's own server (100 a minute each): less than one retained result image (30 KB)
#   or one cached message with its embeds per turn, the smallest leaks such a bot can have. The
#   fit's own noise is far below: samples scattered by ±0.5 MB (a short run's) give a slope
#   error under 0.01 MB a minute over 360 samples (one every 2 s) in 12 minutes.
# - open file descriptors 0.5 a minute: 6 over the window, against a count that swings by a few
#   with the streams and REST calls in flight (slope error about 0.03 a minute); a socket or
#   file leaked once every 200 of a process's turns, or more often, shows above it.
TOLERANCES = {"rss_mb_per_min": 0.5, "fds_per_min": 0.5}


def slope_per_minute(points: list[tuple[float, float]]) -> float | None:
    """The least-squares slope of ``(seconds, value)`` points, in value per minute; None for
    fewer than two points or no spread in time."""
    if len(points) < 2:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var_t = sum((t - mean_t) ** 2 for t, _ in points)
    if var_t == 0:
        return None
    cov = sum((t - mean_t) * (y - mean_y) for t, y in points)
    return cov / var_t * 60.0


def split_warmup(points: list[tuple[float, float]], start: float, end: float,
                 fraction: float) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """The samples of the first ``fraction`` of the ``start``..``end`` window (the warm-up) and
    those after it (samples outside the window are dropped)."""
    cut = start + (end - start) * fraction
    inside = [(t, y) for t, y in points if start <= t <= end]
    return [p for p in inside if p[0] < cut], [p for p in inside if p[0] >= cut]


def series_summary(points: list[tuple[float, float]], start: float, end: float,
                   fraction: float) -> dict[str, Any]:
    """Warm-up vs the rest of one resource series: first, max, and the slope after warm-up."""
    warm, rest = split_warmup(points, start, end, fraction)
    slope = slope_per_minute(rest)

    def stats(part: list[tuple[float, float]]) -> dict[str, Any]:
        values = [y for _, y in part]
        return {"samples": len(values),
                "first": round(values[0], 2) if values else None,
                "last": round(values[-1], 2) if values else None,
                "max": round(max(values), 2) if values else None,
                "mean": round(sum(values) / len(values), 2) if values else None}

    return {"warmup": stats(warm), "after": stats(rest),
            "slope_per_min": None if slope is None else round(slope, 3)}


def census_growth(before: dict[str, int], after: dict[str, int],
                  top: int = 12) -> list[dict[str, Any]]:
    """The object types that grew most between two censuses (types under the census's floor of
    20 objects count as 0), largest growth first; only growth."""
    grown = [(after.get(name, 0) - before.get(name, 0), name) for name in set(before) | set(after)]
    return [{"type": name, "before": before.get(name, 0), "after": after.get(name, 0),
             "growth": n} for n, name in sorted(grown, key=lambda g: (-g[0], g[1]))[:top] if n > 0]


def ack_figures(interactions: dict[str, dict[str, Any]],
                deadline: float = ACK_DEADLINE) -> dict[str, Any]:
    """Acknowledgement delays of the /imagine interactions. Late: acknowledged after
    ``deadline``, or refused as too late: the fake, like Discord, answers a callback after 3 s
    with 404 "Unknown interaction" (code 10062) and records it as an error, not an
    acknowledgement. Never: no callback at all."""
    delays = sorted(i["acked"] - i["dispatched"] for i in interactions.values()
                    if i["acked"] is not None)
    refused = sum(1 for i in interactions.values()
                  if i["acked"] is None and UNKNOWN_INTERACTION in i["errors"])
    return {
        "interactions": len(interactions),
        "late": sum(1 for d in delays if d > deadline) + refused,
        "refused_as_late": refused,
        "unacked": sum(1 for i in interactions.values() if i["acked"] is None) - refused,
        "errored": sum(1 for i in interactions.values() if i["errors"]),
        "p50_ms": ms(quantile(delays, 0.5)), "p99_ms": ms(quantile(delays, 0.99)),
        "max_ms": ms(delays[-1] if delays else None),
    }


def account_turns(sent: list[dict[str, Any]], rows: list[dict[str, Any]],
                  threads: dict[str, list[dict[str, Any]]], generations: list[dict[str, Any]],
                  interactions: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Every turn sent, followed to the database and to the thread it shows in.

    ``sent``: one dict per turn with its unique ``prompt`` and ``kind`` (and, for ``/imagine``,
    its ``interaction_id``); ``rows``: the ``turns`` table (``id``, ``conversation_id``,
    ``prompt``, ``status``); ``threads``: per thread id, the result messages with their footer
    ``number``; ``generations``: the fake API's, with ``prompt`` and ``terminal``;
    ``interactions``: as the fake Discord saw them. A turn's number is its place in its
    conversation by id, as the bot counts it (``bot/store/repositories.py``). Lost: sent, but not
    ``done`` in the database, or done and not shown in its thread.
    """
    numbered = _numbered(rows)
    by_prompt: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_prompt[row["prompt"]].append(row)
    shown = Counter((str(tid), r["number"]) for tid, rs in threads.items() for r in rs)
    lost = [(turn, reason) for turn in sent
            if (reason := _lost_reason(turn, by_prompt.get(turn["prompt"], []), numbered, shown))]
    acked = {iid for iid, i in (interactions or {}).items() if i["acked"] is not None}
    expected = {(str(r["conversation_id"]), numbered[r["id"]]) for r in rows}
    made = Counter(g["prompt"] for g in generations if g.get("terminal") == "response.completed")
    return {
        "sent": len(sent),
        "sent_by_kind": dict(Counter(t["kind"] for t in sent)),
        "recorded": len(rows),
        "recorded_twice": sum(len(v) - 1 for v in by_prompt.values() if len(v) > 1),
        "status": dict(Counter(r["status"] for r in rows)),
        "lost": len(lost),
        "lost_by_reason": dict(Counter(reason for _, reason in lost)),
        "lost_by_kind": dict(Counter(turn["kind"] for turn, _ in lost)),
        "answered_without_result": sum(1 for turn, _ in lost
                                       if turn.get("interaction_id") in acked),
        "lost_examples": [{"k": t.get("k"), "kind": t["kind"], "reason": r} for t, r in lost[:10]],
        "results_shown": sum(shown.values()),
        "duplicates": sum(c - 1 for c in shown.values() if c > 1),
        "stray_results": sum(c for key, c in shown.items() if key not in expected),
        "generations": sum(made.values()),
        "generated_twice": sum(c - 1 for c in made.values() if c > 1),
        "generations_per_turn": round(sum(made.values()) / len(sent), 3) if sent else None,
    }


def _lost_reason(turn: dict[str, Any], found: list[dict[str, Any]], numbered: dict[int, int],
                 shown: Counter[tuple[str, int]]) -> str | None:
    """Why a sent turn is lost (None: it is done and shown)."""
    if not found:
        return "not_recorded"
    row = found[0]
    if row["status"] != "done":
        return f"status_{row['status']}"
    if not shown[(str(row["conversation_id"]), numbered[row["id"]])]:
        return "not_shown"
    return None


def _numbered(rows: list[dict[str, Any]]) -> dict[int, int]:
    """Each turn's place in its conversation (1 = first), by id."""
    seen: Counter[Any] = Counter()
    out = {}
    for row in sorted(rows, key=lambda r: r["id"]):
        seen[row["conversation_id"]] += 1
        out[row["id"]] = seen[row["conversation_id"]]
    return out


def latency_figures(sent: list[dict[str, Any]], rows: list[dict[str, Any]],
                    threads: dict[str, list[dict[str, Any]]]) -> list[float]:
    """Seconds from each turn's sending to its result showing (turns that showed)."""
    numbered = _numbered(rows)
    first_shown: dict[tuple[str, int], float] = {}
    for tid, results in threads.items():
        for r in results:
            key = (str(tid), r["number"])
            first_shown[key] = min(r["at"], first_shown.get(key, r["at"]))
    by_prompt = {row["prompt"]: row for row in rows}
    out = []
    for turn in sent:
        row = by_prompt.get(turn["prompt"])
        at = first_shown.get((str(row["conversation_id"]), numbered[row["id"]])) if row else None
        if at is not None:
            out.append(at - turn["at"])
    return out


def verdicts(processes: list[dict[str, Any]], acks: dict[str, Any], turns: dict[str, Any],
             tolerances: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """PASS/MISS per target: each process's RSS and fd slopes after warm-up within tolerance,
    no late or missing acknowledgement, no turn lost, no result shown twice."""
    tol = tolerances or TOLERANCES
    checks = []
    for proc in processes:
        name = proc["name"]
        checks.append(_check(f"{name}: RSS slope after warm-up <= {tol['rss_mb_per_min']} MB/min",
                             proc["rss_mb"]["slope_per_min"], tol["rss_mb_per_min"]))
        checks.append(_check(f"{name}: open fds slope after warm-up <= {tol['fds_per_min']} /min",
                             proc["fds"]["slope_per_min"], tol["fds_per_min"]))
    checks.append(_check("interactions acknowledged after 3 s = 0", acks["late"], 0))
    checks.append(_check("interactions never acknowledged = 0", acks["unacked"], 0))
    checks.append(_check("turns lost = 0", turns["lost"], 0))
    checks.append(_check("results shown twice = 0", turns["duplicates"], 0))
    checks.append(_check("turns generated twice = 0", turns["generated_twice"], 0))
    return checks


def _check(name: str, value: float | None, limit: float) -> dict[str, Any]:
    verdict = "PASS" if value is not None and value <= limit else "MISS"
    return {"target": name, "value": value, "limit": limit, "verdict": verdict}


def markdown(report: dict[str, Any]) -> str:
    """The run's figures as Markdown: one row per process, then the targets."""
    cfg, turns, acks = report["config"], report["turns"], report["acks"]
    lines = [
        f"{cfg['turns']} turns over {cfg['seconds']} s ({cfg['rate_per_min']} a minute, "
        f"{turns['sent_by_kind']}), L = {cfg['latency_s']} s, fleet of {len(report['processes'])}; "
        f"warm-up = first {int(cfg['warmup_fraction'] * 100)} % of the sending window.",
        "",
        "| process | RSS warm-up max | RSS after: first / max / last | RSS slope | "
        "fds warm-up max | fds after: first / max / last | fd slope | loop lag p99 / max |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in report["processes"]:
        rss, fds, lag = p["rss_mb"], p["fds"], p.get("loop_lag_ms") or {}
        lines.append(
            f"| {p['name']} | {_f(rss['warmup']['max'])} MB "
            f"| {_f(rss['after']['first'])} / {_f(rss['after']['max'])} / {_f(rss['after']['last'])} MB "
            f"| {_f(rss['slope_per_min'])} MB/min ({_f(rss.get('kb_per_turn'))} KB/turn) "
            f"| {_f(fds['warmup']['max'])} "
            f"| {_f(fds['after']['first'])} / {_f(fds['after']['max'])} / {_f(fds['after']['last'])} "
            f"| {_f(fds['slope_per_min'])} /min | {_f(lag.get('p99'))} / {_f(lag.get('max'))} ms |")
    for p in report["processes"]:
        grown = (p.get("object_growth") or [])[:5]
        if grown:
            lines.append(f"\n{p['name']}, objects grown after warm-up: " + ", ".join(
                f"{g['type']} +{g['growth']} ({g['before']} → {g['after']})" for g in grown))
    lat = report.get("turn_latency_s") or {}
    lines += [
        "",
        f"Acknowledgement p50 / p99 / max: {_f(acks['p50_ms'])} / {_f(acks['p99_ms'])} / "
        f"{_f(acks['max_ms'])} ms ({acks['interactions']} interactions). Turn latency (sent → "
        f"result shown) p50 / p99: {_f(lat.get('p50'))} / {_f(lat.get('p99'))} s. Recorded "
        f"{turns['recorded']}, statuses {turns['status']}, generations {turns['generations']} "
        f"for {turns['sent']} turns; lost by reason {turns['lost_by_reason'] or '{}'}. Each turn "
        f"went out at most {_f(turns.get('schedule_slip_max_s'))} s behind its schedule.",
        "",
        "| target | value | verdict |",
        "|---|---:|---|",
    ]
    lines += [f"| {c['target']} | {_f(c['value'])} | **{c['verdict']}** |" for c in report["checks"]]
    return "\n".join(lines)


def _f(value: Any) -> str:
    return "–" if value is None else str(value)


def quantiles_s(values: list[float]) -> dict[str, float | None]:
    """p50 / p99 / max of seconds, rounded to milliseconds."""
    def r(v: float | None) -> float | None:
        return None if v is None else round(v, 3)

    return {"p50": r(quantile(values, 0.5)), "p99": r(quantile(values, 0.99)),
            "max": r(max(values, default=None)), "count": len(values)}
