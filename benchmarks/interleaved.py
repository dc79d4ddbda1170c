"""Two checkouts of Scaler, run alternately on the same workloads: what a change costs.

    python benchmarks/interleaved.py --base /tmp/old:/tmp/old-venv/bin/python \\
                                     --head .:/path/to/venv/bin/python [--rounds 5] [--tasks 10000]

Each side is a source tree and the interpreter of a venv where that tree is installed (``pip install
-e TREE``). Rounds alternate the order (base first, then head first), wait for idle CPUs before every
run, and run ``benchmarks/peer_run.py --peer scaler`` of each side's own tree in a loopback-only
network namespace, as ``compare.py`` does. Prints every run, then each figure's median for both
sides and the change in percent. On a shared machine, compare only figures from one invocation.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from pathlib import Path

import psutil
from compare import isolated


def side(text: str) -> tuple[Path, str]:
    tree, _, python = text.partition(":")
    if not python:
        raise argparse.ArgumentTypeError(f"{text!r}: expected TREE:PYTHON")
    return Path(tree).resolve(), python


def wait_idle(timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and psutil.cpu_percent(interval=0.5) > 15.0:
        pass


def run(tree: Path, python: str, tasks: int) -> dict[str, float] | None:
    env = dict(os.environ, SCALER_LOG_LEVEL="WARNING", PYTHONPATH="")
    argv = isolated([python, str(tree / "benchmarks" / "peer_run.py"), "--peer", "scaler", "--tasks", str(tasks)])
    result = subprocess.run(argv, capture_output=True, text=True, env=env, cwd="/tmp", timeout=900)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        print(f"  {tree}: failed ({result.returncode}): {result.stderr[-1500:]}")
        return None
    figures: dict[str, float] = json.loads(lines[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=side, required=True, help="TREE:PYTHON before the change")
    parser.add_argument("--head", type=side, required=True, help="TREE:PYTHON after the change")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=10_000)
    args = parser.parse_args()
    sides = {"base": args.base, "head": args.head}
    results: dict[str, list[dict[str, float]]] = {"base": [], "head": []}
    for round_number in range(args.rounds):
        for name in ("base", "head") if round_number % 2 == 0 else ("head", "base"):
            wait_idle()
            figures = run(*sides[name], args.tasks)
            if figures is not None:
                results[name].append(figures)
                print(name, round_number, json.dumps(figures), flush=True)
    metrics = sorted({k for runs in results.values() for r in runs for k, v in r.items() if isinstance(v, float)})
    print("\n| figure | base | head | change |\n|---|---|---|---|")
    for metric in metrics:
        base = [r[metric] for r in results["base"] if metric in r]
        head = [r[metric] for r in results["head"] if metric in r]
        if base and head:
            b, h = statistics.median(base), statistics.median(head)
            print(f"| {metric} | {b:g} | {h:g} | {100 * (h - b) / b:+.1f}% |")


if __name__ == "__main__":
    main()
