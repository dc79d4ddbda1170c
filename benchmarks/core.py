"""Scaler's own figures on this machine, printed as one JSON line (issue: core engine targets).

    python benchmarks/core.py [--workers 2]

Measures: start to first result, 10k no-op submit+gather, 300 sequential submit+get, 1 MiB and
64 MiB put + a task reading it, 400 x 20 ms tasks, cluster RSS idle and after the throughput run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import workloads
from peer_run import ScalerEngine


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=10_000)
    args = parser.parse_args()
    figures: dict[str, Any] = {"engine": "scaler", "workers": args.workers}
    figures.update(
        workloads.measure(lambda: ScalerEngine(args.workers), args.tasks, args.workers, result_back_too=False)
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
