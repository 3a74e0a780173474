"""Benchmark agent, injected into a bot process with ``PYTHONPATH=bench/agent`` (bench only).

Python imports ``sitecustomize`` at start-up, so this runs in the bot process without any change
to the bot's code. It does nothing unless ``BENCH_AGENT_OUT`` names a file; then it:

* **event-loop lag**: every event loop created through the asyncio policy (``asyncio.run`` does
  that) gets a timer callback, armed with ``call_soon`` when the loop is created, that re-arms
  itself every ``BENCH_LAG_INTERVAL`` seconds (default 0.02) and records how late past its due
  time it ran. A callback that blocks the loop for X ms shows up as a sample of about X ms.
* **SQLite write transactions**: ``sqlite3.connect`` is wrapped to set a statement trace callback
  on each connection (aiosqlite calls ``sqlite3.connect`` in its worker thread). It counts
  committed transactions that contained a write, plus writes run in autocommit mode. This is a
  cross-check; the benchmark's primary count reads commit frames from the WAL file.
* optionally **cProfile** of the main thread when ``BENCH_CPROFILE`` names an output file.

Samples are appended to ``BENCH_AGENT_OUT`` about once a second by a daemon thread, as lines
``L <unix time> <lag seconds>`` and ``W <unix time> <write transactions> <write statements>``,
and once more at exit.
"""

from __future__ import annotations

import os

_OUT = os.environ.get("BENCH_AGENT_OUT")


def _install(out_path: str) -> None:
    import asyncio
    import atexit
    import sqlite3
    import threading
    import time

    interval = float(os.environ.get("BENCH_LAG_INTERVAL", "0.02"))
    lock = threading.Lock()
    lag_samples: list[tuple[float, float]] = []
    writes = {"tx": 0, "stmts": 0}

    # ---------------------------------------------------------------- event-loop lag
    # A plain timer callback that re-arms itself (cheaper than a task awaiting sleep()):
    # each run records how far past its due time the loop got round to it.
    def start_sampler(loop: asyncio.AbstractEventLoop) -> None:
        perf = time.perf_counter

        def tick(due: float) -> None:
            now = perf()
            with lock:
                lag_samples.append((time.time(), max(0.0, now - due)))
            if not loop.is_closed():
                loop.call_later(interval, tick, perf() + interval)

        loop.call_later(interval, tick, perf() + interval)

    base_policy = type(asyncio.get_event_loop_policy())

    class SamplingPolicy(base_policy):  # type: ignore[misc, valid-type]
        def new_event_loop(self) -> asyncio.AbstractEventLoop:
            loop = super().new_event_loop()
            loop.call_soon(start_sampler, loop)
            return loop

    asyncio.set_event_loop_policy(SamplingPolicy())

    # ---------------------------------------------------------------- SQLite writes
    original_connect = sqlite3.connect
    write_verbs = ("INSERT", "UPDATE", "DELETE", "REPLACE", "UPSERT")

    def traced_connect(*args, **kwargs):  # type: ignore[no-untyped-def]
        conn = original_connect(*args, **kwargs)
        state = {"in_tx": False, "dirty": False}

        def trace(statement: str) -> None:
            head = statement.lstrip()[:8].upper()
            if head.startswith("BEGIN"):
                state["in_tx"], state["dirty"] = True, False
            elif head.startswith(("COMMIT", "END")):
                if state["dirty"]:
                    writes["tx"] += 1
                state["in_tx"] = False
            elif head.startswith("ROLLBACK"):
                state["in_tx"] = False
            elif head.startswith(write_verbs):
                writes["stmts"] += 1
                if state["in_tx"]:
                    state["dirty"] = True
                else:
                    writes["tx"] += 1

        conn.set_trace_callback(trace)
        return conn

    sqlite3.connect = traced_connect  # type: ignore[assignment]

    # ---------------------------------------------------------------- output
    def flush() -> None:
        with lock:
            batch = lag_samples[:]
            lag_samples.clear()
        lines = [f"L {t:.6f} {lag:.6f}\n" for t, lag in batch]
        lines.append(f"W {time.time():.6f} {writes['tx']} {writes['stmts']}\n")
        with open(out_path, "a", encoding="ascii") as fh:
            fh.writelines(lines)

    def flusher() -> None:
        while True:
            time.sleep(1.0)
            try:
                flush()
            except OSError:
                return

    threading.Thread(target=flusher, name="bench-agent-flush", daemon=True).start()
    atexit.register(flush)

    profile_path = os.environ.get("BENCH_CPROFILE")
    if profile_path:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()

        def dump() -> None:
            profiler.disable()
            profiler.dump_stats(profile_path)

        atexit.register(dump)


if _OUT:
    _install(_OUT)
