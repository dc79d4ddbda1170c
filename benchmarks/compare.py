"""Side by side with the peers, on this machine, with the same workloads (issue: faster than Ray).

    python benchmarks/compare.py [--rounds 3] [--peers scaler,ray,ray-compat,dask,opengris] [--cache DIR]

Builds one venv per peer in the cache directory (opengris-scaler==2.9.0, ray, dask[distributed],
and this checkout for ``scaler`` and ``ray-compat``), then runs ``peer_run.py`` for every peer in
every round, rotating the order so drift hits all alike. Every run happens in a loopback-only
network namespace (``unshare --net`` + ``ip link set lo up``): real Ray probes cloud metadata on
its own and nothing may leave this machine. Prints medians (min-max) and each peer's ratio to
Scaler, and writes the table to ``benchmarks/results/<date>.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PACKAGES = {
    "scaler": ["-e", str(ROOT), "numpy", "psutil"],
    "ray-compat": None,
    "ray": ["ray", "numpy", "psutil"],
    "dask": ["dask[distributed]", "numpy", "psutil"],
    "opengris": ["opengris-scaler==2.9.0", "numpy", "psutil"],
}
HIGHER_IS_BETTER = {"throughput_tasks_per_s"}


def venv_for(peer: str, cache: Path) -> Path:
    name = "scaler" if peer == "ray-compat" else peer
    venv = cache / f"venv-{name}"
    python = venv / "bin" / "python"
    marker = venv / ".ready"
    if not marker.exists():
        if venv.exists():
            shutil.rmtree(venv)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        packages = PACKAGES[name] or []
        subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=True)
        marker.touch()
    return python


def isolated(argv: list[str]) -> list[str]:
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        raise SystemExit("compare.py needs root with unshare and ip: every run must be in a loopback-only namespace")
    return ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *argv]


def run_peer(peer: str, python: Path, tasks: int) -> dict[str, float] | None:
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", SCALER_LOG_LEVEL="WARNING", PYTHONPATH="")
    argv = isolated([str(python), str(HERE / "peer_run.py"), "--peer", peer, "--tasks", str(tasks)])
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=900, env=env, cwd="/tmp")
    except subprocess.TimeoutExpired:
        print(f"  {peer}: timed out", file=sys.stderr)
        return None
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        print(f"  {peer}: failed ({result.returncode}): {result.stderr[-1500:]}", file=sys.stderr)
        return None
    figures: dict[str, float] = json.loads(lines[-1])
    return figures


def quiesce(cache: Path, timeout: float = 20.0) -> None:
    """Between runs: end what a peer left running (by its venv's path), then wait for idle CPUs,
    so no run pays for the teardown of the one before it."""
    mine = str(cache)
    keep = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
    for process in psutil.process_iter(["cmdline"]):
        if process.pid not in keep and any(mine in part for part in process.info["cmdline"] or []):
            try:
                process.kill()
            except psutil.Error:
                pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and psutil.cpu_percent(interval=0.5) > 15.0:
        pass


def table(results: dict[str, list[dict[str, float]]]) -> str:
    metrics = sorted({k for runs in results.values() for run in runs for k in run if k != "peer"})
    peers = list(results)
    head = "| figure | " + " | ".join(peers) + " |\n|---|" + "---|" * len(peers) + "\n"
    rows = []
    for metric in metrics:
        cells = []
        ours = [r[metric] for r in results.get("scaler", []) if metric in r]
        base = statistics.median(ours) if ours else None
        for peer in peers:
            values = [r[metric] for r in results[peer] if metric in r]
            if not values:
                cells.append("-")
                continue
            med = statistics.median(values)
            cell = f"{med:g} ({min(values):g}-{max(values):g})"
            if base and peer != "scaler":
                ratio = med / base if metric not in HIGHER_IS_BETTER else base / med
                cell += f" x{ratio:.2f}"
            cells.append(cell)
        rows.append(f"| {metric} | " + " | ".join(cells) + " |")
    legend = (
        "\nxN: the peer's cost relative to Scaler's (for throughput, Scaler's rate over the peer's); "
        "above 1 means Scaler is better.\n"
    )
    return head + "\n".join(rows) + "\n" + legend


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--peers", default="scaler,ray,ray-compat,dask,opengris")
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "scaler-bench")
    args = parser.parse_args()
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    args.cache.mkdir(parents=True, exist_ok=True)
    pythons = {peer: venv_for(peer, args.cache) for peer in peers}
    results: dict[str, list[dict[str, float]]] = {peer: [] for peer in peers}
    for round_no in range(args.rounds):
        order = peers[round_no % len(peers) :] + peers[: round_no % len(peers)]
        for peer in order:
            print(f"round {round_no + 1}/{args.rounds}: {peer}", file=sys.stderr, flush=True)
            quiesce(args.cache)
            figures = run_peer(peer, pythons[peer], args.tasks)
            if figures is not None:
                results[peer].append(figures)
    text = table(results)
    missing = [f"{peer}: {args.rounds - len(runs)} of {args.rounds} rounds failed" for peer, runs in results.items()]
    missing = [line for line, runs in zip(missing, results.values(), strict=True) if len(runs) < args.rounds]
    if missing:
        text += "\nFailed runs (see stderr; their peer's medians are over the rounds that finished): "
        text += "; ".join(missing) + ".\n"
    stamp = datetime.date.today().isoformat()
    out = HERE / "results" / f"{stamp}.md"
    out.parent.mkdir(exist_ok=True)
    header = (
        f"# Peer comparison {stamp}\n\n`python benchmarks/compare.py --rounds {args.rounds} --peers {','.join(peers)}`"
        f" on {os.cpu_count()} cores; 2 workers of 1 cpu each; medians (min-max) of {args.rounds} rounds.\n\n"
    )
    out.write_text(header + text)
    print(header + text)


if __name__ == "__main__":
    main()
