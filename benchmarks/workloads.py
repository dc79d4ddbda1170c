"""Benchmark workloads, written once against a tiny engine-neutral interface.

An engine adapter provides ``submit(fn, *args) -> handle``, ``gather(handles) -> list``,
``get(handle)``, ``put(value) -> ref`` and ``processes() -> list[pid]``; each workload below returns
its figures as a dict. The core benchmark and a later side-by-side harness share these.
"""

from __future__ import annotations

import gc
import statistics
import time
from typing import Any, Protocol

import psutil


class Engine(Protocol):
    def submit(self, fn: Any, *args: Any) -> Any: ...
    def gather(self, handles: list[Any]) -> list[Any]: ...
    def get(self, handle: Any) -> Any: ...
    def put(self, value: Any) -> Any: ...
    def pids(self) -> list[int]: ...
    def close(self) -> None: ...


def noop(x: Any = None) -> Any:
    return x


def nbytes_of(array: Any) -> int:
    return int(array.nbytes)


def sleep_ms(ms: float) -> float:
    time.sleep(ms / 1000.0)
    return ms


def throughput(engine: Engine, n: int = 10_000) -> dict[str, float]:
    start = time.perf_counter()
    handles = [engine.submit(noop, i) for i in range(n)]
    results = engine.gather(handles)
    elapsed = time.perf_counter() - start
    if results[-1] != n - 1:
        raise RuntimeError("wrong results from the throughput run")
    return {"throughput_tasks_per_s": round(n / elapsed, 1)}


def settle() -> None:
    """Let an engine finish freeing the last run's 10k results, so latency is measured at rest."""
    gc.collect()
    time.sleep(0.5)


def latency(engine: Engine, n: int = 300) -> dict[str, float]:
    samples = []
    for i in range(n):
        start = time.perf_counter()
        engine.get(engine.submit(noop, i))
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return {
        "latency_median_ms": round(statistics.median(samples), 3),
        "latency_p99_ms": round(samples[int(0.99 * (n - 1))], 3),
    }


def import_numpy_slowly(_: int) -> int:
    import numpy as np

    time.sleep(0.05)
    return int(np.zeros(8, dtype=np.uint8).nbytes)


def warm_numpy(engine: Engine, slots: int) -> None:
    """Let every task process import numpy once, so transfer figures measure transfer, not imports.

    The tasks take 50 ms each so that every engine spreads them over all its processes (a no-op
    task may all land on one worker, leaving the other's first numpy import inside a figure)."""
    engine.gather([engine.submit(import_numpy_slowly, i) for i in range(4 * slots)])


def put_and_read(engine: Engine, mib: int) -> dict[str, float]:
    import numpy as np

    array = np.random.default_rng(0).integers(0, 255, size=mib << 20, dtype=np.uint8)
    start = time.perf_counter()
    ref = engine.put(array)
    size = engine.get(engine.submit(nbytes_of, ref))
    elapsed = time.perf_counter() - start
    if size != array.nbytes:
        raise RuntimeError("wrong size read back")
    return {f"put_{mib}mib_task_s": round(elapsed, 4)}


def median_of_3(workload: Any, engine: Engine, mib: int) -> dict[str, float]:
    """A transfer figure is one sample of a few ms: take the median of three, for every engine."""
    runs = [workload(engine, mib) for _ in range(3)]
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def make_array(mib: int) -> Any:
    import numpy as np

    return np.ones(mib << 20, dtype=np.uint8)


def result_back(engine: Engine, mib: int = 64) -> dict[str, float]:
    """A task makes a ``mib`` MiB array and the client receives it."""
    start = time.perf_counter()
    array = engine.get(engine.submit(make_array, mib))
    elapsed = time.perf_counter() - start
    if int(array.nbytes) != mib << 20:
        raise RuntimeError("wrong size received")
    return {f"result_{mib}mib_back_s": round(elapsed, 4)}


def sleepy(engine: Engine, n: int = 400, ms: float = 20.0) -> dict[str, float]:
    start = time.perf_counter()
    engine.gather([engine.submit(sleep_ms, ms) for _ in range(n)])
    return {"sleep_400x20ms_wall_s": round(time.perf_counter() - start, 3)}


def rss_mb(engine: Engine) -> float:
    """Total RSS of the engine's processes (``pids()`` lists them all: the whole tree, once)."""
    total = 0
    for pid in set(engine.pids()):
        try:
            total += psutil.Process(pid).memory_info().rss
        except psutil.Error:
            pass
    return round(total / (1 << 20), 1)


def measure(
    make_engine: Any, tasks: int, slots: int, *, transfers: bool = True, result_back_too: bool = True
) -> dict[str, Any]:
    """Run the workloads in order on a fresh engine from ``make_engine()``; start-up is timed from here."""
    figures: dict[str, Any] = {}
    start = time.perf_counter()
    engine = make_engine()
    try:
        if engine.get(engine.submit(noop, 1)) != 1:
            raise RuntimeError("first task returned a wrong result")
        figures["start_to_first_result_s"] = round(time.perf_counter() - start, 3)
        time.sleep(1.0)
        figures["rss_idle_mb"] = rss_mb(engine)
        figures.update(throughput(engine, tasks))
        figures["rss_after_throughput_mb"] = rss_mb(engine)
        if transfers:
            settle()
            figures.update(latency(engine))
            warm_numpy(engine, slots)
            figures.update(median_of_3(put_and_read, engine, 1))
            figures.update(median_of_3(put_and_read, engine, 64))
            if result_back_too:
                figures.update(median_of_3(result_back, engine, 64))
            figures.update(sleepy(engine))
    finally:
        engine.close()
    return figures
