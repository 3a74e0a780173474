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
* **database round trips**: every statement an SQLite connection runs (the same trace), and,
  when ``BENCH_COUNT_PG`` is set, every query call on an ``asyncpg`` connection (``execute``,
  ``fetch``, ``fetchrow``, ``fetchval``, ``executemany``; a transaction's BEGIN and COMMIT are
  ``execute`` calls too), each one request and answer between the bot and its database.
* optionally **cProfile** of the main thread when ``BENCH_CPROFILE`` names an output file.
* optionally an **object census** (``python -m bench.soak``): when ``BENCH_CENSUS_FILE`` names a
  file, each time the number written in it goes up, the flush thread counts the objects the
  garbage collector tracks (class instances and containers; not str, bytes or numbers) by type,
  in one pass of ``gc.get_objects()`` (tens of milliseconds, holding the GIL), and writes
  ``C <unix time> <JSON {type: count}>`` with every type that has at least 20 objects.

Samples are appended to ``BENCH_AGENT_OUT`` about once a second by a daemon thread, as lines
``L <unix time> <lag seconds>``, ``W <unix time> <write transactions> <write statements>`` and
``R <unix time> <round trips>``, and once more at exit.
"""

from __future__ import annotations

import os

_OUT = os.environ.get("BENCH_AGENT_OUT")


class _Samples:
    """What the agent has measured and not yet written out (shared with the flush thread)."""

    def __init__(self) -> None:
        import threading

        self.lock = threading.Lock()
        self.lags: list[tuple[float, float]] = []
        self.writes = {"tx": 0, "stmts": 0, "trips": 0}


def _install(out_path: str) -> None:
    samples = _Samples()
    _sample_loop_lag(samples, float(os.environ.get("BENCH_LAG_INTERVAL", "0.02")))
    _trace_sqlite_writes(samples)
    if os.environ.get("BENCH_COUNT_PG"):
        _count_asyncpg_calls(samples)
    _flush_every_second(samples, out_path)
    profile_path = os.environ.get("BENCH_CPROFILE")
    if profile_path:
        _profile_main_thread(profile_path)


def _sample_loop_lag(samples: _Samples, interval: float) -> None:
    """Every new event loop gets a plain timer callback that re-arms itself (cheaper than a task
    awaiting sleep()): each run records how far past its due time the loop got round to it."""
    import asyncio
    import time

    def start_sampler(loop: asyncio.AbstractEventLoop) -> None:
        perf = time.perf_counter

        def tick(due: float) -> None:
            now = perf()
            with samples.lock:
                samples.lags.append((time.time(), max(0.0, now - due)))
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


_WRITE_VERBS = ("INSERT", "UPDATE", "DELETE", "REPLACE", "UPSERT")


def _trace_sqlite_writes(samples: _Samples) -> None:
    """Count committed transactions that wrote, and autocommit writes, on every connection."""
    import sqlite3

    original_connect = sqlite3.connect

    def traced_connect(*args, **kwargs):  # type: ignore[no-untyped-def]
        conn = original_connect(*args, **kwargs)
        conn.set_trace_callback(_WriteTrace(samples.writes))
        return conn

    sqlite3.connect = traced_connect  # type: ignore[assignment]


class _WriteTrace:
    """A connection's statement trace: is a transaction open, and has it written yet?"""

    def __init__(self, writes: dict[str, int]) -> None:
        self.writes = writes
        self.in_tx = False
        self.dirty = False

    def __call__(self, statement: str) -> None:
        self.writes["trips"] += 1
        head = statement.lstrip()[:8].upper()
        if head.startswith("BEGIN"):
            self.in_tx, self.dirty = True, False
        elif head.startswith(("COMMIT", "END")):
            if self.dirty:
                self.writes["tx"] += 1
            self.in_tx = False
        elif head.startswith("ROLLBACK"):
            self.in_tx = False
        elif head.startswith(_WRITE_VERBS):
            self.writes["stmts"] += 1
            if self.in_tx:
                self.dirty = True
            else:
                self.writes["tx"] += 1


def _count_asyncpg_calls(samples: _Samples) -> None:
    """Count the query calls made on every asyncpg connection (pooled ones delegate to these)."""
    import asyncpg.connection

    def counted(original):  # type: ignore[no-untyped-def]
        async def call(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            samples.writes["trips"] += 1
            return await original(self, *args, **kwargs)
        return call

    connection = asyncpg.connection.Connection
    for name in ("execute", "executemany", "fetch", "fetchrow", "fetchval"):
        setattr(connection, name, counted(getattr(connection, name)))


def _flush_every_second(samples: _Samples, out_path: str) -> None:
    """Append the samples to `out_path` from a daemon thread about once a second, and at exit."""
    import atexit
    import threading
    import time

    def flush() -> None:
        with samples.lock:
            batch = samples.lags[:]
            samples.lags.clear()
        lines = [f"L {t:.6f} {lag:.6f}\n" for t, lag in batch]
        now = time.time()
        lines.append(f"W {now:.6f} {samples.writes['tx']} {samples.writes['stmts']}\n")
        lines.append(f"R {now:.6f} {samples.writes['trips']}\n")
        with open(out_path, "a", encoding="ascii") as fh:
            fh.writelines(lines)

    census = _Census(os.environ.get("BENCH_CENSUS_FILE"), out_path)

    def flusher() -> None:
        while True:
            time.sleep(1.0)
            try:
                flush()
                census.if_asked()
            except OSError:
                return

    threading.Thread(target=flusher, name="bench-agent-flush", daemon=True).start()
    atexit.register(flush)


class _Census:
    """Objects by type, counted when the benchmark asks (a higher number in the request file)."""

    def __init__(self, request_path: str | None, out_path: str) -> None:
        self.request_path = request_path
        self.out_path = out_path
        self.done = 0

    def if_asked(self) -> None:
        if not self.request_path:
            return
        try:
            with open(self.request_path, encoding="ascii") as fh:
                asked = int(fh.read().strip() or 0)
        except (OSError, ValueError):
            return
        if asked > self.done:
            self.done = asked
            self.count()

    def count(self) -> None:
        import gc
        import json
        import time
        from collections import Counter

        counts = Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.get_objects())
        kept = {name: n for name, n in counts.items() if n >= 20}
        with open(self.out_path, "a", encoding="utf-8") as fh:
            fh.write(f"C {time.time():.6f} {json.dumps(kept, separators=(',', ':'))}\n")


def _profile_main_thread(profile_path: str) -> None:
    import atexit
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()

    def dump() -> None:
        profiler.disable()
        profiler.dump_stats(profile_path)

    atexit.register(dump)


if _OUT:
    _install(_OUT)
