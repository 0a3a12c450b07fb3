"""Garbage-collection pauses of every Python process the bench starts.

(Not a PRESENCE_ variable: the bench passes none of those on to the servers.)

    PYTHONPATH=bench/probes BENCH_GC_LOG=/tmp/gc.log python -m bench.run --only churn

Python imports ``sitecustomize`` at start-up from the path, so with this folder
on ``PYTHONPATH`` the bench and each server it runs append one line per
collection of 2 ms or more to the log: ``<pid> <argv> gen<N> <ms> collected=<n>``.
Without ``BENCH_GC_LOG`` it does nothing.
"""

import gc
import os
import sys
import time

_LOG = os.environ.get("BENCH_GC_LOG")
_THRESHOLD_MS = 2.0
_started: list[float] = []


def _time_collections(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _started[:] = [time.perf_counter()]
        return
    took = (time.perf_counter() - _started[0]) * 1000
    if _LOG and took >= _THRESHOLD_MS:
        with open(_LOG, "a") as log:
            log.write(
                f"{os.getpid()} {' '.join(sys.orig_argv[1:])} gen{info['generation']} "
                f"{took:.1f} collected={info['collected']}\n"
            )


if _LOG:
    gc.callbacks.append(_time_collections)
